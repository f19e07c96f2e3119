package meshctl

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ringmesh/ringmesh/pkg/registry"
	"github.com/ringmesh/ringmesh/pkg/view"
)

// printNodeDetail writes one node's record as `meshctl status NODE` shows
// it: identity and state, where it is reachable, its last health sample
// (GPUs and disks), RPO and last sync, and gossip. Every string from the
// node goes through view.Clean; an unmeasured value prints as "?".
func printNodeDetail(w io.Writer, r registry.Record, now time.Time) error {
	c := view.Clean
	since := "?"
	if !r.StateSince.IsZero() {
		since = view.Ago(now.Sub(r.StateSince)) + " ago"
	}
	fmt.Fprintf(w, "%s  %s for %s", c(r.Node), c(string(r.State)), strings.TrimSuffix(since, " ago"))
	if r.Cause != "" {
		fmt.Fprintf(w, " (%s)", oneLine(c(r.Cause), 160))
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	kv := func(k, v string) { fmt.Fprintf(tw, "  %s\t%s\n", k, v) }
	trust := "quarantined (not in the inventory, a provider listing or enrolled)"
	switch {
	case r.Configured:
		trust = "configured (inventory)"
	case r.Admitted != "":
		trust = "admitted: " + c(r.Admitted)
	}
	kv("provider", c(r.Provider)+"  instance "+dash(c(r.InstanceID))+"  role "+dash(c(r.Role)))
	kv("trust", trust)
	flags := []string{}
	if r.Voter {
		flags = append(flags, "voter")
	}
	if r.Ephemeral {
		flags = append(flags, "ephemeral (its data must be moved off)")
	}
	if len(flags) > 0 {
		kv("kind", strings.Join(flags, ", "))
	}
	seen := "never"
	if !r.LastSeen.IsZero() {
		seen = view.Ago(now.Sub(r.LastSeen)) + " ago"
	}
	kv("agent", dash(c(r.AgentVersion))+"  host "+dash(c(r.Hostname))+"  last seen "+seen)
	for _, e := range r.SSH {
		kv("ssh ("+c(e.Kind)+")", fmt.Sprintf("%s@%s:%d", dash(c(e.User)), c(e.Host), e.Port))
	}
	if r.HostKey != "" {
		kv("host key", c(r.HostKey))
	}
	risk := view.Unknown
	if r.RPO.UnsyncedBytes != nil {
		risk = view.Bytes(*r.RPO.UnsyncedBytes)
		if r.RPO.UnsyncedFiles != nil {
			risk += fmt.Sprintf(" in %d files", *r.RPO.UnsyncedFiles)
		}
		if r.RPO.OldestUnsyncedSeconds != nil {
			risk += fmt.Sprintf(", oldest %s", view.Ago(time.Duration(*r.RPO.OldestUnsyncedSeconds*float64(time.Second))))
		}
	}
	kv("at risk (RPO)", risk)
	if s := r.LastSync; s != nil {
		line := fmt.Sprintf("%s %s: made %d, missed %d, sent %s", c(s.Phase), oneLine(c(s.Trigger), 40), len(s.Made), len(s.Missed), view.Bytes(s.BytesSent))
		if s.Error != "" {
			line += ", error: " + oneLine(c(s.Error), 120)
		}
		kv("last sync", line)
	}
	if r.Gossip.State != "" {
		kv("gossip", c(r.Gossip.State))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	h := r.Health
	if h == nil {
		fmt.Fprintln(w, "  no health sample yet")
		return nil
	}
	if len(h.GPUs) > 0 {
		gw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(gw, "  GPU\tNAME\tUTIL\tMEMORY USED\tTEMP\tPOWER")
		for _, g := range h.GPUs {
			util, mem, temp, pow := view.Unknown, view.Unknown, view.Unknown, view.Unknown
			if g.UtilizationPercent != nil {
				util = fmt.Sprintf("%.0f%%", *g.UtilizationPercent)
			}
			if g.MemoryUsedBytes != nil && g.MemoryTotalBytes != nil {
				mem = view.Bytes(int64(*g.MemoryUsedBytes)) + " / " + view.Bytes(int64(*g.MemoryTotalBytes))
			}
			if g.TemperatureC != nil {
				temp = fmt.Sprintf("%.0f C", *g.TemperatureC)
			}
			if g.PowerWatts != nil {
				pow = fmt.Sprintf("%.0f W", *g.PowerWatts)
			}
			fmt.Fprintf(gw, "  %d\t%s\t%s\t%s\t%s\t%s\n", g.Index, oneLine(c(g.Name), 40), util, mem, temp, pow)
		}
		if err := gw.Flush(); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(w, "  GPUs: none reported (probe %s)\n", dash(c(h.GPUProbe)))
	}
	if len(h.Disks) > 0 {
		dw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(dw, "  DISK\tUSED\tFREE")
		for _, d := range h.Disks {
			used, free := view.Unknown, view.Unknown
			if d.UsedPercent != nil {
				used = fmt.Sprintf("%.1f%%", *d.UsedPercent)
			}
			if d.FreeBytes != nil {
				free = view.Bytes(int64(*d.FreeBytes))
			}
			if d.Error != "" {
				used = "error: " + oneLine(c(d.Error), 60)
			}
			fmt.Fprintf(dw, "  %s\t%s\t%s\n", oneLine(c(d.Path), 60), used, free)
		}
		return dw.Flush()
	}
	return nil
}
