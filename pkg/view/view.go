// Package view renders registry records for people: the rows of
// `meshctl status` and of the coordinator's status page. Unknown values are
// shown as "?" (never as 0).
package view

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/ringmesh/ringmesh/pkg/events"
	"github.com/ringmesh/ringmesh/pkg/registry"
)

// Row is one node, formatted. Every field is free of control characters
// (events.StripControl): what a node reports cannot drive the terminal.
type Row struct {
	Node, Provider, Role, State, GPUs, GPUUtil, DiskFree, RPO, LastSeen, Version, Cause, Gossip string
	// Trust is "quarantined" for a node neither in the inventory nor
	// admitted, "host key changed" when a pinned key was contradicted, else "-".
	Trust string
}

// Clean strips control characters (terminal escapes, newlines) from s.
func Clean(s string) string { return events.StripControl(s) }

// Unknown is how an unmeasured value is shown.
const Unknown = "?"

// StatusRows formats records relative to now.
func StatusRows(recs []registry.Record, now time.Time) []Row {
	out := make([]Row, 0, len(recs))
	for _, r := range recs {
		row := Row{Node: r.Node, Provider: r.Provider, Role: dash(r.Role), State: string(r.State), Version: dash(r.AgentVersion),
			Cause: r.Cause, GPUs: Unknown, GPUUtil: Unknown, DiskFree: Unknown, RPO: Unknown, LastSeen: "never", Gossip: dash(r.Gossip.State)}
		if !r.LastSeen.IsZero() {
			row.LastSeen = Ago(now.Sub(r.LastSeen)) + " ago"
		}
		if h := r.Health; h != nil {
			if h.GPUProbe == "ok" || len(h.GPUs) > 0 {
				names := map[string]int{}
				var utils []string
				for _, g := range h.GPUs {
					names[g.Name]++
					if g.UtilizationPercent != nil {
						utils = append(utils, fmt.Sprintf("%.0f%%", *g.UtilizationPercent))
					} else {
						utils = append(utils, Unknown)
					}
				}
				row.GPUs = gpuSummary(names)
				row.GPUUtil = strings.Join(utils, ",")
			} else if strings.HasPrefix(h.GPUProbe, "nvidia-smi not found") || h.GPUProbe == "no-gpu" {
				row.GPUs, row.GPUUtil = "0", "-"
			}
			if len(h.Disks) > 0 && h.Disks[0].FreeBytes != nil {
				d := h.Disks[0]
				row.DiskFree = Bytes(int64(*d.FreeBytes))
				if d.UsedBytes != nil {
					if pct, ok := events.DiskUsedPercent(*d.UsedBytes, *d.FreeBytes); ok {
						row.DiskFree += fmt.Sprintf(" (%.1f%% used)", pct)
					}
				}
			}
		}
		row.Trust = "-"
		switch {
		case r.Quarantined:
			row.Trust = "quarantined"
		case r.HostKeyConflict != "":
			row.Trust = "host key changed"
		}
		if r.RPO.UnsyncedBytes != nil {
			row.RPO = Bytes(*r.RPO.UnsyncedBytes)
			if r.RPO.OldestUnsyncedSeconds != nil && *r.RPO.UnsyncedBytes > 0 {
				row.RPO += " / " + Ago(time.Duration(*r.RPO.OldestUnsyncedSeconds*float64(time.Second)))
			}
		}
		for _, f := range []*string{&row.Node, &row.Provider, &row.Role, &row.State, &row.GPUs, &row.GPUUtil, &row.Version, &row.Cause, &row.Gossip} {
			*f = Clean(*f)
		}
		out = append(out, row)
	}
	return out
}

func gpuSummary(names map[string]int) string {
	if len(names) == 0 {
		return "0"
	}
	keys := make([]string, 0, len(names))
	for k := range names {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%dx %s", names[k], strings.TrimPrefix(k, "NVIDIA "))
	}
	return strings.Join(parts, ", ")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Bytes formats a size with binary units (KiB, MiB, GiB, TiB).
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

// Ago formats a duration compactly: 4s, 3m12s, 5h3m, 2d4h.
func Ago(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
}
