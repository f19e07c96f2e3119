package meshsync

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/ringmesh/ringmesh/pkg/events"
)

const gib = int64(1) << 30

func fsIDs(t *testing.T, host string) []string {
	t.Helper()
	ids, err := SharedFilesystems(filepath.Join("testdata", "mountinfo", host))
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func TestSharedFilesystems(t *testing.T) {
	cases := map[string][]string{
		"lambda-a":     {"nfs:10.19.0.5:/ringrift-us-east"},
		"lambda-b":     {"nfs:10.19.0.5:/ringrift-us-east"},
		"lambda-c":     {"cifs://nas.example/backup", "nfs:10.19.0.5:/ringrift-us-west"},
		"lambda-d":     {"nfs:10.19.0.5:/ringrift-us-east/games"},
		"hetzner-cpu1": nil, // ext4, a bind mount and gvfs: nothing shared
	}
	for host, want := range cases {
		if got := fsIDs(t, host); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %q, want %q", host, got, want)
		}
	}
	if _, err := SharedFilesystems(filepath.Join("testdata", "mountinfo", "no-such-host")); err == nil {
		t.Error("missing mountinfo: no error")
	}
	ms, err := ParseMountInfo(strings.NewReader(`44 22 0:44 / /home/ubuntu/shared\040data rw - nfs4 h:/x rw` + "\n"))
	if err != nil || len(ms) != 1 || ms[0].MountPoint != "/home/ubuntu/shared data" || ms[0].FSType != "nfs4" {
		t.Fatalf("parse: %+v %v", ms, err)
	}
	if _, err := ParseMountInfo(strings.NewReader("garbage line\n")); err == nil {
		t.Error("malformed mountinfo accepted")
	}
}

// receiver is an eligible persistent node with the given free/total GiB.
func receiver(id string, freeGiB, totalGiB int64) NodeInfo {
	return NodeInfo{NodeID: id, Provider: "hetzner", Persistent: true, Status: "ready",
		DiskFreeBytes: freeGiB * gib, DiskTotalBytes: totalGiB * gib}
}

func bptr(b bool) *bool { return &b }

func TestRouteRules(t *testing.T) {
	source := NodeInfo{NodeID: "vast-29129529", Provider: "vast", Ephemeral: true, Status: "healthy"}
	lambdaSrc := NodeInfo{NodeID: "lambda-a", Provider: "lambda", Persistent: true, Status: "ready",
		DiskFreeBytes: 500 * gib, DiskTotalBytes: 1000 * gib, FilesystemIDs: fsIDs(t, "lambda-a")}
	policy := RoutingPolicy{ReplicationTarget: 2} // 70 % / 15 % defaults

	withFS := func(n NodeInfo, host string) NodeInfo {
		n.FilesystemIDs = fsIDs(t, host)
		n.Provider = "lambda"
		return n
	}

	cases := []struct {
		name       string
		source     NodeInfo
		cand       NodeInfo
		policy     RoutingPolicy
		selected   bool
		reason     string
		wantClsses []Class
	}{
		{"eligible", source, receiver("hetzner-cpu1", 500, 1000), policy, true, "500.0 GiB free (50.0% used)", nil},
		{"self", lambdaSrc, withFS(receiver("lambda-a", 500, 1000), "lambda-a"), policy, false, "is the source node", nil},
		{"retired", source, modified(receiver("h", 500, 1000), func(n *NodeInfo) { n.Retired = true }), policy, false, "retired", nil},
		{"status offline", source, modified(receiver("h", 500, 1000), func(n *NodeInfo) { n.Status = "offline" }), policy, false, "status offline", nil},
		{"status unknown", source, modified(receiver("h", 500, 1000), func(n *NodeInfo) { n.Status = "" }), policy, false, "status unknown", nil},
		{"degraded ok", source, modified(receiver("h", 500, 1000), func(n *NodeInfo) { n.Status = "degraded" }), policy, true, "free", nil},
		{"ephemeral", source, modified(receiver("vast-2", 500, 1000), func(n *NodeInfo) { n.Ephemeral = true }), policy, false, "ephemeral node", nil},
		{"not persistent", source, modified(receiver("h", 500, 1000), func(n *NodeInfo) { n.Persistent = false }), policy, false, "no persistent storage", nil},
		{"skip_sync_receive", source, modified(receiver("h", 500, 1000), func(n *NodeInfo) { n.SkipSyncReceive = true }), policy, false, "skip_sync_receive", nil},
		{"excluded (bare name)", source, receiver("hetzner-cpu3", 500, 1000),
			RoutingPolicy{ExcludedHosts: []ExcludedHost{{Name: "hetzner-cpu3", ReceiveGames: bptr(false), Reason: "small disk"}}},
			false, "in sync_routing.excluded_hosts (small disk)", nil},
		{"excluded but receives models", source, receiver("hetzner-cpu3", 500, 1000),
			RoutingPolicy{ExcludedHosts: []ExcludedHost{{Name: "hetzner-cpu3", ReceiveModels: bptr(true)}}},
			true, "receives manifest,checkpoint,model only", []Class{ClassManifest, ClassCheckpoint, ClassModel}},
		{"disk unknown", source, receiver("h", 0, 0), policy, false, "disk usage unknown", nil},
		{"disk too full", source, receiver("h", 250, 1000), policy, false, "disk 75.0% used > max_disk_usage_percent 70", nil},
		{"disk exactly at max", source, receiver("h", 300, 1000), policy, true, "70.0% used", nil},
		{"free below min", source, receiver("h", 100, 1000), RoutingPolicy{MaxDiskUsagePercent: 95}, false, "disk 10.0% free < min_free_disk_percent 15", nil},
		{"inconsistent disk report", source, receiver("h", 2000, 1000), policy, false, "inconsistent", nil},
		{"no room for pending bytes", modified(source, func(n *NodeInfo) { n.PendingBytes = 300 * gib }), receiver("h", 500, 1000), policy,
			false, "would fill the disk to 80.0%", nil},
		{"room for pending bytes", modified(source, func(n *NodeInfo) { n.PendingBytes = 100 * gib }), receiver("h", 500, 1000), policy, true, "free", nil},
		{"same NFS export (mount, not name)", lambdaSrc, withFS(receiver("lambda-b", 500, 1000), "lambda-b"), policy,
			false, "shares filesystem nfs:10.19.0.5:/ringrift-us-east with the source", nil},
		{"NFS sub-directory of the source's export", lambdaSrc, withFS(receiver("lambda-d", 500, 1000), "lambda-d"), policy,
			false, "shares filesystem nfs:10.19.0.5:/ringrift-us-east/games", nil},
		{"other NFS export, same provider and server", lambdaSrc, withFS(receiver("lambda-c", 500, 1000), "lambda-c"), policy, true, "free", nil},
		{"lambda name but no shared mount", lambdaSrc, receiver("lambda-gh200-9", 500, 1000), policy, true, "free", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ch := Route(tc.source, []NodeInfo{tc.cand}, tc.policy)
			if len(ch) != 1 {
				t.Fatalf("choices %+v", ch)
			}
			c := ch[0]
			if c.Selected != tc.selected || !strings.Contains(c.Reason, tc.reason) {
				t.Fatalf("choice %+v, want selected=%v with reason containing %q", c, tc.selected, tc.reason)
			}
			if c.Selected {
				want := tc.wantClsses
				if want == nil {
					want = AllClasses
				}
				if !slices.Equal(c.Classes, want) || c.Rank != 1 {
					t.Fatalf("classes %v rank %d, want %v rank 1", c.Classes, c.Rank, want)
				}
			} else if c.Rank != 0 || len(c.Classes) != 0 {
				t.Fatalf("rejected choice has rank/classes: %+v", c)
			}
		})
	}
}

func TestRouteOrderAndReplication(t *testing.T) {
	source := NodeInfo{NodeID: "vast-29129529", Ephemeral: true}
	cands := []NodeInfo{
		receiver("hetzner-cpu1", 400, 1000),
		receiver("hetzner-cpu2", 600, 1000),
		receiver("hetzner-cpu3", 600, 1000), // ties cpu2 on free space: name decides
		receiver("lambda-gh200-1", 320, 1000),
		modified(receiver("vast-1", 900, 1000), func(n *NodeInfo) { n.Ephemeral = true }),
		receiver("nebius-1", 0, 0),
	}
	policy := RoutingPolicy{ReplicationTarget: 2, PriorityHosts: []string{"lambda-gh200-1"}}
	want := []string{"lambda-gh200-1", "hetzner-cpu2"}

	r := rand.New(rand.NewPCG(1, 2))
	var first []Choice
	for i := 0; i < 20; i++ {
		shuffled := slices.Clone(cands)
		r.Shuffle(len(shuffled), func(a, b int) { shuffled[a], shuffled[b] = shuffled[b], shuffled[a] })
		ch := Route(source, shuffled, policy)
		if i == 0 {
			first = ch
		} else if !reflect.DeepEqual(ch, first) {
			t.Fatalf("order depends on input order:\n%+v\n%+v", ch, first)
		}
	}
	sel := Selected(first)
	var got []string
	for _, c := range sel {
		got = append(got, c.NodeID)
	}
	if !slices.Equal(got, want) || !sel[0].Priority || !strings.Contains(sel[0].Reason, "priority host") || sel[1].Rank != 2 {
		t.Fatalf("selected %+v, want %v (priority host first, then most free)", sel, want)
	}
	if len(first) != len(cands) {
		t.Fatalf("%d choices for %d candidates: every candidate needs a verdict", len(first), len(cands))
	}
	reasons := map[string]string{}
	for _, c := range first[2:] {
		reasons[c.NodeID] = c.Reason
	}
	for id, want := range map[string]string{
		"hetzner-cpu3": "replication target 2 is met",
		"hetzner-cpu1": "replication target 2 is met",
		"vast-1":       "ephemeral node",
		"nebius-1":     "disk usage unknown",
	} {
		if !strings.Contains(reasons[id], want) {
			t.Errorf("%s: reason %q, want %q", id, reasons[id], want)
		}
	}
	// Rejected ones are sorted by node ID.
	var rej []string
	for _, c := range first[2:] {
		rej = append(rej, c.NodeID)
	}
	if !slices.IsSorted(rej) {
		t.Errorf("rejected not sorted: %v", rej)
	}

	// Per-class replication: a host excluded from games still takes models,
	// and games go to the next hosts.
	policy.ExcludedHosts = []ExcludedHost{{Name: "lambda-gh200-1", ReceiveModels: bptr(true)}}
	sel = Selected(Route(source, cands, policy))
	byNode := map[string][]Class{}
	for _, c := range sel {
		byNode[c.NodeID] = c.Classes
	}
	if !slices.Equal(byNode["lambda-gh200-1"], []Class{ClassManifest, ClassCheckpoint, ClassModel}) ||
		!slices.Equal(byNode["hetzner-cpu2"], AllClasses) ||
		!slices.Equal(byNode["hetzner-cpu3"], []Class{ClassDB, ClassNPZ}) {
		t.Fatalf("per-class selection %v", byNode)
	}

	// Duplicate candidates get one verdict each, the second is rejected.
	ch := Route(source, []NodeInfo{receiver("a", 500, 1000), receiver("a", 500, 1000)}, RoutingPolicy{})
	if len(ch) != 2 || !ch[0].Selected || ch[1].Selected || ch[1].Reason != "duplicate candidate" {
		t.Fatalf("duplicates: %+v", ch)
	}
}

// modified returns n changed by f.
func modified(n NodeInfo, f func(*NodeInfo)) NodeInfo { f(&n); return n }

func TestResolveBandwidth(t *testing.T) {
	ov := map[string]float64{"vast-*": 50, "hetzner-*": 30}
	for node, want := range map[string]int64{"vast-123": 50e6, "hetzner-cpu1": 30e6, "lambda-1": 100e6} {
		if got := ResolveBandwidth(node, 100, ov); got != want {
			t.Errorf("%s: %d, want %d", node, got, want)
		}
	}
	if ResolveBandwidth("x", 0, nil) != 0 {
		t.Error("0 MB/s must mean unlimited (0)")
	}
}

// The router and the heartbeat/status view use one definition of disk
// usage (used / (used + free), as df): a filesystem with much space that
// is neither used nor available (reserved blocks, overlay accounting) is
// 19.5 % used, not 1 − free/total = 70.7 %, and is chosen.
func TestRouteDiskUsageIsDfDefinition(t *testing.T) {
	src := NodeInfo{NodeID: "vast-1", Ephemeral: true, Status: "healthy"}
	tgt := NodeInfo{NodeID: "hetzner-1", Persistent: true, Status: "healthy",
		DiskTotalBytes: 1000 * gib, DiskFreeBytes: 293 * gib, DiskUsedBytes: 71 * gib}
	ch := Route(src, []NodeInfo{tgt}, RoutingPolicy{})
	if len(ch) != 1 || !ch[0].Selected {
		t.Fatalf("target rejected: %+v", ch)
	}
	if ch[0].DiskUsedPercent == nil || fmt.Sprintf("%.1f", *ch[0].DiskUsedPercent) != "19.5" || !strings.Contains(ch[0].Reason, "19.5% used") {
		t.Fatalf("choice %+v (used %v), want 19.5%% used", ch[0], ch[0].DiskUsedPercent)
	}
	if pct, _ := events.DiskUsedPercent(71, 293); fmt.Sprintf("%.1f", pct) != "19.5" {
		t.Fatalf("events.DiskUsedPercent = %.2f", pct)
	}
	// Really full by that definition: rejected, with the figure.
	tgt.DiskUsedBytes, tgt.DiskFreeBytes = 800*gib, 200*gib
	ch = Route(src, []NodeInfo{tgt}, RoutingPolicy{})
	if ch[0].Selected || !strings.Contains(ch[0].Reason, "80.0% used > max_disk_usage_percent 70") {
		t.Fatalf("full target: %+v", ch[0])
	}
}
