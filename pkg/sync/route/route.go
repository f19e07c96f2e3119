// Package route is meshsync's target router: which persistent nodes
// receive which data classes from a source node (rules, order, disk
// headroom), as a pure function of the nodes' reported state. It depends on
// the standard library and pkg/events only, so the API's sync plan reply
// (pkg/api) and meshctl use its types without linking the sync engine
// (SQLite, bbolt, SSH); pkg/sync re-exports them.
package route

import (
	"fmt"
	"slices"
	"strings"

	"github.com/ringmesh/ringmesh/pkg/events"
)

// DefaultReplicationTarget is sync_routing.replication_target's default:
// how many receivers each source wants.
const DefaultReplicationTarget = 2

// Class is the kind of data a Source holds. It decides the flush order and
// which receivers accept it (sync_routing excluded_hosts receive_* flags).
type Class string

// Data classes.
const (
	// ClassManifest: small metadata files (game manifests, indexes).
	ClassManifest Class = "manifest"
	// ClassCheckpoint: training checkpoints.
	ClassCheckpoint Class = "checkpoint"
	// ClassModel: exported models.
	ClassModel Class = "model"
	// ClassNPZ: NPZ training-data exports.
	ClassNPZ Class = "npz"
	// ClassDB: SQLite databases (game databases). They are never copied live:
	// each push sends a consistent snapshot made with the SQLite backup API
	// (over SFTP only its pages that changed).
	ClassDB Class = "db"
)

// AllClasses lists every data class in flush order.
var AllClasses = []Class{ClassManifest, ClassCheckpoint, ClassModel, ClassDB, ClassNPZ}

// Valid reports whether c is one of the known classes.
func (c Class) Valid() bool {
	for _, k := range AllClasses {
		if c == k {
			return true
		}
	}
	return false
}

// NodeInfo is what the router needs to know about a node.
type NodeInfo struct {
	NodeID   string
	Provider string
	// Ephemeral: the node can vanish with little notice (never a receiver).
	Ephemeral bool
	// Persistent: the node's disk outlives restarts and is meant to keep
	// data (only persistent nodes receive).
	Persistent bool
	// Status from the registry or inventory; only "ready", "healthy" and
	// "degraded" nodes receive.
	Status  string
	Retired bool
	// DiskFreeBytes, DiskUsedBytes and DiskTotalBytes describe the receive
	// path's file system in bytes, as the heartbeat reports them (free:
	// available to unprivileged users; used: blocks in use). DiskTotalBytes
	// 0 = unknown (such a node is not chosen). DiskUsedBytes 0 = not
	// reported: total − free is used instead. Usage is
	// events.DiskUsedPercent(used, free), the definition the status view
	// shows.
	DiskFreeBytes  int64
	DiskUsedBytes  int64
	DiskTotalBytes int64
	// FilesystemIDs are the shared filesystems the node mounts, as returned
	// by SharedFilesystems (from the mount table, never from the name).
	FilesystemIDs []string
	// SkipSyncReceive is the inventory's skip_sync_receive flag.
	SkipSyncReceive bool
	// Unconfigured: the node is not a configured host of the inventory
	// (quarantined, or known only from what it says about itself). Only
	// configured persistent nodes receive.
	Unconfigured bool
	// PendingBytes (source only): bytes the source still has to replicate
	// (its RPO unsynced bytes); a receiver must have room for them within
	// the disk limits. 0 = not checked.
	PendingBytes int64
}

// ExcludedHost mirrors one sync_routing.excluded_hosts entry. A bare name
// excludes the host from receiving anything. The receive_* flags carve out
// what it still receives: only classes whose flag is explicitly true
// (ReceiveGames: db; ReceiveNPZ: npz; ReceiveModels: model and checkpoint;
// manifests go wherever anything else goes).
type ExcludedHost struct {
	Name          string
	ReceiveGames  *bool
	ReceiveNPZ    *bool
	ReceiveModels *bool
	Reason        string
}

func (x ExcludedHost) accepts(c Class) bool {
	is := func(b *bool) bool { return b != nil && *b }
	switch c {
	case ClassDB:
		return is(x.ReceiveGames)
	case ClassNPZ:
		return is(x.ReceiveNPZ)
	case ClassModel, ClassCheckpoint:
		return is(x.ReceiveModels)
	case ClassManifest:
		return is(x.ReceiveGames) || is(x.ReceiveNPZ) || is(x.ReceiveModels)
	}
	return false
}

// RoutingPolicy mirrors distributed_hosts.yaml sync_routing.
type RoutingPolicy struct {
	// MaxDiskUsagePercent: a receiver's disk may be at most this full
	// (percent of total, after receiving the source's pending bytes);
	// default 70.
	MaxDiskUsagePercent float64
	// MinFreeDiskPercent: a receiver must keep at least this much free
	// (percent of total); default 15.
	MinFreeDiskPercent float64
	// ReplicationTarget is the number of receivers per class; default 2.
	ReplicationTarget int
	ExcludedHosts     []ExcludedHost
	// PriorityHosts are chosen before other eligible hosts.
	PriorityHosts []string
	// Classes routed; default AllClasses.
	Classes []Class
}

func (p RoutingPolicy) withDefaults() RoutingPolicy {
	if p.MaxDiskUsagePercent <= 0 {
		p.MaxDiskUsagePercent = 70
	}
	if p.MinFreeDiskPercent <= 0 {
		p.MinFreeDiskPercent = 15
	}
	if p.ReplicationTarget <= 0 {
		p.ReplicationTarget = DefaultReplicationTarget
	}
	if len(p.Classes) == 0 {
		p.Classes = AllClasses
	}
	return p
}

// Choice is the router's verdict on one candidate.
type Choice struct {
	NodeID string
	// Selected: the node is a target for Classes.
	Selected bool
	// Rank is the 1-based position among selected targets (0 if rejected).
	Rank int
	// Classes the node receives from this source (selected only).
	Classes []Class
	// Priority: the node is a priority host.
	Priority bool
	// DiskFreeBytes as given, for display.
	DiskFreeBytes int64
	// DiskUsedPercent is the candidate's disk usage (events.DiskUsedPercent);
	// nil when unknown.
	DiskUsedPercent *float64 `json:",omitempty"`
	// Reason says why the node was selected or rejected (every failed rule,
	// "; "-separated).
	Reason string
}

// eligibleStatus lists the statuses of nodes that may receive.
var eligibleStatus = map[string]bool{"ready": true, "healthy": true, "degraded": true}

// Route picks the targets for source's data among candidates: persistent,
// live, not the source itself, not excluded, with known disk usage within
// the limits, never sharing a filesystem with the source, up to the
// replication target per class, in a deterministic order (priority hosts
// first, then most free space, then node ID). It returns one Choice per
// candidate: the selected ones first in rank order, then the rejected ones
// sorted by node ID, each with its reason.
func Route(source NodeInfo, candidates []NodeInfo, policy RoutingPolicy) []Choice {
	pol := policy.withDefaults()
	excluded := map[string]ExcludedHost{}
	for _, x := range pol.ExcludedHosts {
		excluded[x.Name] = x
	}
	prio := map[string]bool{}
	for _, h := range pol.PriorityHosts {
		prio[h] = true
	}

	type cand struct {
		n       NodeInfo
		accepts []Class
		choice  Choice
	}
	var eligible []*cand
	var rejected []Choice
	seen := map[string]bool{}
	for _, n := range candidates {
		c := Choice{NodeID: n.NodeID, Priority: prio[n.NodeID], DiskFreeBytes: n.DiskFreeBytes}
		if pct, ok := usedPercent(n); ok {
			c.DiskUsedPercent = &pct
		}
		var why []string
		if seen[n.NodeID] {
			c.Reason = "duplicate candidate"
			rejected = append(rejected, c)
			continue
		}
		seen[n.NodeID] = true
		if n.NodeID == source.NodeID {
			c.Reason = "is the source node"
			rejected = append(rejected, c)
			continue
		}
		switch {
		case n.Retired:
			why = append(why, "retired")
		case !eligibleStatus[strings.ToLower(n.Status)]:
			st := n.Status
			if st == "" {
				st = "unknown"
			}
			why = append(why, fmt.Sprintf("status %s (receivers must be ready, healthy or degraded)", st))
		}
		if n.Ephemeral {
			why = append(why, "ephemeral node")
		}
		if !n.Persistent {
			why = append(why, "no persistent storage")
		}
		if n.Unconfigured {
			why = append(why, "not a configured host in the inventory")
		}
		if n.SkipSyncReceive {
			why = append(why, "skip_sync_receive is set")
		}
		accepts := pol.Classes
		if x, ok := excluded[n.NodeID]; ok {
			accepts = nil
			for _, cl := range pol.Classes {
				if x.accepts(cl) {
					accepts = append(accepts, cl)
				}
			}
			if len(accepts) == 0 {
				r := "in sync_routing.excluded_hosts"
				if x.Reason != "" {
					r += " (" + x.Reason + ")"
				}
				why = append(why, r)
			}
		}
		why = append(why, diskReasons(n, source.PendingBytes, pol)...)
		for _, a := range source.FilesystemIDs {
			for _, b := range n.FilesystemIDs {
				if SharesFilesystem(a, b) {
					why = append(why, fmt.Sprintf("shares filesystem %s with the source (%s)", b, a))
				}
			}
		}
		if len(why) > 0 {
			c.Reason = strings.Join(why, "; ")
			rejected = append(rejected, c)
			continue
		}
		eligible = append(eligible, &cand{n: n, accepts: accepts, choice: c})
	}

	slices.SortFunc(eligible, func(a, b *cand) int {
		if a.choice.Priority != b.choice.Priority {
			if a.choice.Priority {
				return -1
			}
			return 1
		}
		if a.n.DiskFreeBytes != b.n.DiskFreeBytes {
			if a.n.DiskFreeBytes > b.n.DiskFreeBytes {
				return -1
			}
			return 1
		}
		return strings.Compare(a.n.NodeID, b.n.NodeID)
	})

	for _, cl := range pol.Classes {
		picked := 0
		for _, e := range eligible {
			if picked == pol.ReplicationTarget {
				break
			}
			if slices.Contains(e.accepts, cl) {
				e.choice.Classes = append(e.choice.Classes, cl)
				picked++
			}
		}
	}

	var out []Choice
	rank := 0
	for _, e := range eligible {
		c := e.choice
		if len(c.Classes) == 0 {
			c.Reason = fmt.Sprintf("eligible, but replication target %d is met by higher-ranked hosts", pol.ReplicationTarget)
			rejected = append(rejected, c)
			continue
		}
		rank++
		c.Selected, c.Rank = true, rank
		var why []string
		if c.Priority {
			why = append(why, "priority host")
		}
		used, _ := usedPercent(e.n)
		why = append(why, fmt.Sprintf("%s free (%.1f%% used)", FormatBytes(e.n.DiskFreeBytes), used))
		if len(c.Classes) < len(pol.Classes) {
			why = append(why, "receives "+joinClasses(c.Classes)+" only")
		}
		c.Reason = strings.Join(why, "; ")
		out = append(out, c)
	}
	slices.SortFunc(rejected, func(a, b Choice) int { return strings.Compare(a.NodeID, b.NodeID) })
	return append(out, rejected...)
}

// Selected returns the selected choices, in rank order.
func Selected(choices []Choice) []Choice {
	var out []Choice
	for _, c := range choices {
		if c.Selected {
			out = append(out, c)
		}
	}
	return out
}

// diskUsed is the candidate's used bytes: as reported, else total − free.
func diskUsed(n NodeInfo) int64 {
	if n.DiskUsedBytes > 0 {
		return n.DiskUsedBytes
	}
	return n.DiskTotalBytes - n.DiskFreeBytes
}

// usedPercent is the candidate's disk usage by the one definition
// (events.DiskUsedPercent); false when unknown or inconsistent.
func usedPercent(n NodeInfo) (float64, bool) {
	if n.DiskTotalBytes <= 0 || n.DiskFreeBytes < 0 || n.DiskFreeBytes > n.DiskTotalBytes || diskUsed(n) < 0 {
		return 0, false
	}
	return events.DiskUsedPercent(uint64(diskUsed(n)), uint64(n.DiskFreeBytes))
}

func diskReasons(n NodeInfo, pending int64, pol RoutingPolicy) []string {
	if n.DiskTotalBytes <= 0 {
		return []string{"disk usage unknown (no disk report), not chosen"}
	}
	used, ok := usedPercent(n)
	if !ok {
		return []string{fmt.Sprintf("disk report inconsistent (free %d, used %d of %d bytes), not chosen", n.DiskFreeBytes, n.DiskUsedBytes, n.DiskTotalBytes)}
	}
	var why []string
	free := 100 - used
	if used > pol.MaxDiskUsagePercent {
		why = append(why, fmt.Sprintf("disk %.1f%% used > max_disk_usage_percent %.0f", used, pol.MaxDiskUsagePercent))
	}
	if free < pol.MinFreeDiskPercent {
		why = append(why, fmt.Sprintf("disk %.1f%% free < min_free_disk_percent %.0f", free, pol.MinFreeDiskPercent))
	}
	if len(why) == 0 && pending > 0 {
		after, _ := events.DiskUsedPercent(uint64(diskUsed(n)+pending), uint64(max(n.DiskFreeBytes-pending, 0)))
		if after > pol.MaxDiskUsagePercent || 100-after < pol.MinFreeDiskPercent {
			why = append(why, fmt.Sprintf("receiving the source's %s would fill the disk to %.1f%% (max %.0f%%, min free %.0f%%)",
				FormatBytes(pending), after, pol.MaxDiskUsagePercent, pol.MinFreeDiskPercent))
		}
	}
	return why
}

func joinClasses(cs []Class) string {
	s := make([]string, len(cs))
	for i, c := range cs {
		s[i] = string(c)
	}
	return strings.Join(s, ",")
}

// SharesFilesystem reports whether two filesystem IDs denote overlapping
// storage: equal, or the same NFS/CIFS server with one path inside the other.
func SharesFilesystem(a, b string) bool {
	if a == b {
		return true
	}
	ka, ra, _ := strings.Cut(a, ":")
	kb, rb, _ := strings.Cut(b, ":")
	if ka != kb || (ka != "nfs" && ka != "cifs") {
		return false
	}
	var ha, pa, hb, pb string
	if ka == "nfs" {
		ha, pa, _ = strings.Cut(ra, ":")
		hb, pb, _ = strings.Cut(rb, ":")
	} else { // "//server/share/path"
		ha, pa = splitCIFS(ra)
		hb, pb = splitCIFS(rb)
	}
	if ha != hb {
		return false
	}
	return pathWithin(pa, pb) || pathWithin(pb, pa)
}

func splitCIFS(s string) (host, p string) {
	s = strings.TrimPrefix(s, "//")
	host, p, _ = strings.Cut(s, "/")
	return host, "/" + p
}

// pathWithin reports whether p is dir or inside it.
func pathWithin(p, dir string) bool {
	if dir == "/" || p == dir {
		return true
	}
	return strings.HasPrefix(p, strings.TrimRight(dir, "/")+"/")
}

// FormatBytes renders n bytes in binary units ("512 B", "1.5 GiB").
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit && n > -unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit || m <= -unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
