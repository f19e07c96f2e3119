package coordinator_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ringmesh/ringmesh/internal/testutil"
	"github.com/ringmesh/ringmesh/pkg/agent"
	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/auth"
	"github.com/ringmesh/ringmesh/pkg/coordinator"
	"github.com/ringmesh/ringmesh/pkg/detect"
	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/paths"
	meshsync "github.com/ringmesh/ringmesh/pkg/sync"
)

// The safe-to-terminate gate asks the node for a figure measured now: with
// the last heartbeat saying RPO 0 (heartbeats paused), a file written a
// moment ago makes the node unsafe at once; the answer names the bytes.
func TestSafeGateAsksNodeForFreshRPO(t *testing.T) {
	r := startSyncRig(t, "")
	data := filepath.Join(r.srcRoot, "root/ringrift/ai-service")
	writeFile(t, filepath.Join(data, "checkpoints/ckpt-1.pt"), 256<<10)
	waitRPOZero(t, r.h, "vast-77", 30*time.Second)
	nc := mustConnect(t, r.h.url)
	safe := func() api.Safe {
		t.Helper()
		var s api.Safe
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := testutil.APIClient(t, r.h.url, nc).Call(ctx, api.OpSafe, api.NodeRequest{Node: "vast-77"}, &s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	testutil.Eventually(t, 15*time.Second, func() error {
		if s := safe(); !s.Safe || !strings.Contains(s.Reason, "measured by the node just now") {
			return fmt.Errorf("synced node: %+v", s)
		}
		return nil
	})
	// From now on the registry's figure stays at the last heartbeat (0)
	// and the push of the new file is slowed so it is still at risk.
	r.src.PauseHeartbeats(true)
	r.target.SetWriteDelay(200 * time.Millisecond)
	writeFile(t, filepath.Join(data, "checkpoints/ckpt-big.pt"), 8<<20)
	// Usually the registry still says 0 here; on a busy machine a heartbeat
	// sent just before the pause may already carry part of the new file.
	// Either way the gate must name what the node measures now.
	if rec, _ := r.h.coord.Registry().Get("vast-77"); rec.RPO.UnsyncedBytes != nil {
		t.Logf("registry RPO before the gate: %d bytes", *rec.RPO.UnsyncedBytes)
	}
	s := safe()
	if s.Safe || !strings.Contains(s.Reason, fmt.Sprint(8<<20)) {
		t.Fatalf("gate with 8 MiB written just now: %+v, want unsafe naming %d bytes", s, 8<<20)
	}
	// Once everything is copied and the agent is gone, the last report says
	// 0, but nobody answers now: unsafe.
	r.target.SetWriteDelay(0)
	r.src.PauseHeartbeats(false)
	waitRPOZero(t, r.h, "vast-77", 60*time.Second)
	r.stopSrc(errors.New("signal:SIGINT"))
	<-r.srcDone
	waitRPOZero(t, r.h, "vast-77", 10*time.Second)
	s = safe()
	if s.Safe || !strings.Contains(s.Reason, "no answer") {
		t.Fatalf("gate for a node whose agent is gone: %+v, want unsafe (no answer)", s)
	}
}

// A target the router rejects says why in `meshctl sync targets`, and the
// ephemeral node holding data without any target is degraded with that
// reason, never healthy. Sync results are listed by `meshctl events`.
func TestNoTargetExplainedAndDegraded(t *testing.T) {
	r := startSyncRigWith(t, "", "sync_routing: {max_disk_usage_percent: 100, min_free_disk_percent: 0.01, replication_target: 1}\nhosts:\n  hetzner-cpu2: {provider: hetzner, skip_sync_receive: true, $SSH}\n  vast-77: {provider: vast, is_ephemeral: true}\n")
	data := filepath.Join(r.srcRoot, "root/ringrift/ai-service")
	writeFile(t, filepath.Join(data, "checkpoints/ckpt-1.pt"), 64<<10)
	testutil.Eventually(t, 30*time.Second, func() error {
		rec, _ := r.h.coord.Registry().Get("vast-77")
		if rec.State != mesh.StateDegraded || !strings.Contains(rec.Cause, "no sync target") || !strings.Contains(rec.Cause, "skip_sync_receive") {
			return fmt.Errorf("vast-77 %s: %s", rec.State, rec.Cause)
		}
		return nil
	})
	out, err := run(t, r.h.url, "", "sync", "targets", "vast-77")
	if err != nil || !strings.Contains(out, "NO sync target") || !strings.Contains(out, "hetzner-cpu2") || !strings.Contains(out, "skip_sync_receive is set") {
		t.Fatalf("meshctl sync targets: %v\n%s", err, out)
	}
	t.Logf("meshctl sync targets vast-77:\n%s", out)
	// status warns about it, and a sync that cannot protect the data fails.
	if out, err := run(t, r.h.url, "", "status"); err != nil || !strings.Contains(out, "warning: vast-77: ") || !strings.Contains(out, "no sync target") {
		t.Fatalf("meshctl status does not warn about the node without a target: %v\n%s", err, out)
	}
	if out, err := run(t, r.h.url, "", "sync", "vast-77"); err == nil || !strings.Contains(err.Error(), "still at risk") {
		t.Fatalf("meshctl sync of a node without a target: err %v, want a non-zero exit naming what was not pushed\n%s", err, out)
	}
	if _, err := run(t, r.h.url, "", "sync", "targets", "no-such-node"); err == nil || !strings.Contains(err.Error(), "no routing plan") {
		t.Fatalf("unknown node: %v", err)
	}
}

// A target that was not set up with `meshctl target setup` and whose
// inventory entry has no ssh_host_key is not used, even though its agent
// reports a host key: what a node says about itself is not trusted for the
// key its sources pin. The reason names both ways to fix it and the key the
// node reports, for the operator to check out of band.
func TestTargetHostKeyNeverFromTheNodesOwnReport(t *testing.T) {
	r := startSyncRigWith(t, "", "sync_routing: {max_disk_usage_percent: 100, min_free_disk_percent: 0.01, replication_target: 1}\nhosts:\n  hetzner-cpu2: {provider: hetzner, ssh_host: 127.0.0.1, ssh_user: root}\n  vast-77: {provider: vast, is_ephemeral: true}\n")
	testutil.Eventually(t, 30*time.Second, func() error {
		out, err := run(t, r.h.url, "", "sync", "targets", "vast-77")
		if err != nil {
			return err
		}
		for _, want := range []string{"NO sync target", "hetzner-cpu2", "no trusted host key", "meshctl target setup hetzner-cpu2", "ssh_host_key", "the node reports SHA256:"} {
			if !strings.Contains(out, want) {
				return fmt.Errorf("meshctl sync targets lacks %q:\n%s", want, out)
			}
		}
		return nil
	})
}

// `meshctl events --kind sync --node NODE` lists continuous sync results
// with what made it and what did not.
func TestEventsKindSync(t *testing.T) {
	r := startSyncRig(t, "")
	data := filepath.Join(r.srcRoot, "root/ringrift/ai-service")
	writeFile(t, filepath.Join(data, "checkpoints/ckpt-1.pt"), 64<<10)
	var out string
	testutil.Eventually(t, 30*time.Second, func() error {
		var err error
		out, err = run(t, r.h.url, "", "events", "--kind", "sync", "--node", "vast-77")
		if err != nil || !strings.Contains(out, "vast-77") || !strings.Contains(out, "result") || !strings.Contains(out, "continuous") || !strings.Contains(out, "made 1") {
			return fmt.Errorf("meshctl events --kind sync: %v\n%s", err, out)
		}
		return nil
	})
	t.Logf("meshctl events --kind sync --node vast-77:\n%s", out)
	// meshctl reads them through the events API, which a viewer may call;
	// pages of 1 yield what one page does; a node may not call it.
	sb := testutil.Lookup(r.h.url)
	vnc, err := sb.Connect(t, []string{r.h.url}, auth.RoleViewer, "test-viewer")
	if err != nil {
		t.Fatal(err)
	}
	defer vnc.Close()
	vs, err := auth.LoadSigner(sb.Creds(t, auth.RoleViewer, "test-viewer"))
	if err != nil {
		t.Fatal(err)
	}
	viewer := api.Client{NC: vnc, Sign: vs.Sign}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var whole api.Events
	if err := viewer.Call(ctx, api.OpEvents, api.EventsRequest{Kind: "sync", Node: "vast-77"}, &whole); err != nil || len(whole.Items) == 0 {
		t.Fatalf("viewer: events: %v %+v", err, whole)
	}
	for _, e := range whole.Items {
		if e.Subject != "mesh.v1.evt.vast-77.sync" || len(e.Envelope) == 0 {
			t.Fatalf("event %+v", e)
		}
	}
	var paged []uint64
	req := api.EventsRequest{Kind: "sync", Node: "vast-77", Limit: 1}
	for range 1000 {
		var p api.Events
		if err := viewer.Call(ctx, api.OpEvents, req, &p); err != nil {
			t.Fatal(err)
		}
		for _, e := range p.Items {
			paged = append(paged, e.Seq)
		}
		if !p.More {
			break
		}
		req.AfterSeq = p.NextSeq
	}
	if len(paged) < len(whole.Items) || paged[0] != whole.Items[0].Seq || paged[len(whole.Items)-1] != whole.Items[len(whole.Items)-1].Seq {
		t.Errorf("paged %v, one page of %d from %d", paged, len(whole.Items), whole.Items[0].Seq)
	}
	if err := viewer.Call(ctx, api.OpEvents, api.EventsRequest{Kind: "nope"}, nil); err == nil || !strings.Contains(err.Error(), "bad request") {
		t.Errorf("bad kind: %v", err)
	}
	ns, err := auth.LoadSigner(sb.Creds(t, auth.RoleNode, "vast-77"))
	if err != nil {
		t.Fatal(err)
	}
	if err := (api.Client{NC: vnc, Sign: ns.Sign}).Call(ctx, api.OpEvents, api.EventsRequest{Kind: "sync"}, nil); err == nil {
		t.Error("a node's signature read the events")
	}
	if _, err := run(t, r.h.url, "", "events", "--kind", "nope"); err == nil || !strings.Contains(err.Error(), "--kind") {
		t.Fatalf("bad kind: %v", err)
	}
}

// Every agent removes orphaned partial uploads (older than
// agent.PartialMaxAge) from its sync_incoming directory, and keeps fresh
// ones and final files.
func TestAgentSweepsOrphanedPartials(t *testing.T) {
	h := startCoordinator(t, coordinator.Config{})
	root := t.TempDir()
	in := filepath.Join(root, "root/ringrift/ai-service/data/sync_incoming/vast-9/games")
	old := filepath.Join(in, "g.db"+meshsync.PartialSuffix)
	fresh := filepath.Join(in, "h.db"+meshsync.PartialSuffix)
	final := filepath.Join(in, "f.db")
	for _, p := range []string{old, fresh, final} {
		writeFile(t, p, 100)
	}
	ago := time.Now().Add(-agent.PartialMaxAge - time.Hour)
	for _, p := range []string{old, final} {
		if err := os.Chtimes(p, ago, ago); err != nil {
			t.Fatal(err)
		}
	}
	dead := closedURL(t)
	det := detect.Options{Env: func(string) string { return "" }, HetznerURL: dead, VultrURL: dead, NebiusURL: dead, Timeout: 100 * time.Millisecond}
	a, err := agent.New(secureAgent(t, agent.Config{NodeID: "hetzner-cpu2", Provider: "hetzner", NATSURLs: []string{h.url}, StateDir: t.TempDir(),
		HeartbeatInterval: 200 * time.Millisecond, Detect: det, Paths: paths.Resolver{Root: root, Home: "/root"}}), testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, a, nil)
	testutil.Eventually(t, 10*time.Second, func() error {
		if _, err := os.Stat(old); !os.IsNotExist(err) {
			return fmt.Errorf("old partial still there (%v)", err)
		}
		return nil
	})
	for _, p := range []string{fresh, final} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s removed: %v", p, err)
		}
	}
}

// TestEventsKindSyncShowsFlushMisses: the final flush's result is read as
// an operator reads it: `meshctl events --kind sync --node` shows the flush
// line with what did not make it and why (here every target is gone when
// the node is told to stop).
func TestEventsKindSyncShowsFlushMisses(t *testing.T) {
	r := startSyncRig(t, "")
	data := filepath.Join(r.srcRoot, "root/ringrift/ai-service")
	writeFile(t, filepath.Join(data, "checkpoints/ckpt-1.pt"), 64<<10)
	testutil.Eventually(t, 30*time.Second, func() error {
		out, err := run(t, r.h.url, "", "events", "--kind", "sync", "--node", "vast-77")
		if err != nil || !strings.Contains(out, "made 1") {
			return fmt.Errorf("no continuous result yet: %v\n%s", err, out)
		}
		return nil
	})
	_ = r.target.Close() // the only target goes away
	writeFile(t, filepath.Join(data, "checkpoints/ckpt-2.pt"), 64<<10)
	r.stopSrc(errors.New("signal:SIGTERM"))
	<-r.srcDone
	var out string
	testutil.Eventually(t, 30*time.Second, func() error {
		var err error
		out, err = run(t, r.h.url, "", "events", "--kind", "sync", "--node", "vast-77")
		if err != nil || !strings.Contains(out, "flush") || !strings.Contains(out, "missed 1,") || !strings.Contains(out, "checkpoints/ckpt-2.pt (64.0 KiB): error: push") {
			return fmt.Errorf("no flush result naming the missed file yet: %v\n%s", err, out)
		}
		return nil
	})
	t.Logf("meshctl events --kind sync --node vast-77:\n%s", out)
}
