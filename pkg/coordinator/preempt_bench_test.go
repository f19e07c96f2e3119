package coordinator_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/ringmesh/ringmesh/internal/testutil"
	"github.com/ringmesh/ringmesh/pkg/agent"
	"github.com/ringmesh/ringmesh/pkg/detect"
	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/paths"
)

// BenchmarkPreemptNotice measures, per SIGTERM of an ephemeral agent with
// sync on: the time to the first byte of the final flush, and the time
// until the coordinator's registry shows the node preempting.
//
//	go test ./pkg/coordinator -run '^$' -bench PreemptNotice -benchtime 10x
func BenchmarkPreemptNotice(b *testing.B) {
	const preemptDeadline = 2 * time.Minute
	// vast-bench is in the inventory: an unknown node is quarantined and
	// never given a sync target.
	r := startSyncRigWith(b, "", "sync_routing: {max_disk_usage_percent: 100, min_free_disk_percent: 0.01, replication_target: 1}\n"+
		"hosts:\n  hetzner-cpu2: {provider: hetzner, $SSH}\n  vast-77: {provider: vast, is_ephemeral: true}\n  vast-bench: {provider: vast, is_ephemeral: true}\n")
	r.stopSrc(errors.New("stop the rig's own source"))
	<-r.srcDone
	var toByte, toRegistry time.Duration
	dead := closedURL(b)
	for i := 0; i < b.N; i++ {
		root := b.TempDir()
		a, err := agent.New(secureAgent(b, agent.Config{NodeID: "vast-bench", Provider: "vast", InstanceID: "9", NATSURLs: []string{r.h.url}, StateDir: b.TempDir(),
			HeartbeatInterval: 200 * time.Millisecond, Paths: paths.Resolver{Root: root, Home: "/root"}, ByeTimeout: time.Second,
			Detect: detect.Options{Env: func(string) string { return "" }, HetznerURL: dead, VultrURL: dead, NebiusURL: dead, Timeout: 50 * time.Millisecond},
			Sync:   &agent.SyncConfig{KeyPath: r.target.ClientKeyPath, Interval: time.Hour, ReplicationTarget: 1, Notice: 5 * time.Second}}), testLog(b))
		if err != nil {
			b.Fatal(err)
		}
		stop, done := runAgent(b, a, nil)
		// Wait until the router gave it its target, then add a file continuous sync has not sent.
		testutil.Eventually(b, 20*time.Second, func() error {
			if rec, _ := r.h.coord.Registry().Get("vast-bench"); rec.State != mesh.StateHealthy {
				return fmt.Errorf("not healthy yet")
			}
			return nil
		})
		testutil.Eventually(b, 20*time.Second, func() error {
			if a.SyncTargets() == 0 {
				return fmt.Errorf("no sync target yet")
			}
			return nil
		})
		writeFile(b, filepath.Join(root, "root/ringrift/ai-service/checkpoints/new.pt"), 4<<20)
		t0 := time.Now()
		stop(errors.New("signal:SIGTERM"))
		// The elapsed time is the measurement; the deadline only ends a
		// notice that was lost, so it is far beyond any slow machine's.
		deadline := t0.Add(preemptDeadline)
		for {
			rec, _ := r.h.coord.Registry().Get("vast-bench")
			if rec.State == mesh.StatePreempting || rec.State == mesh.StatePreempted {
				toRegistry += time.Since(t0)
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("no preempting state in the registry %s after SIGTERM (state %s, cause %q): the notice was lost", preemptDeadline, rec.State, rec.Cause)
			}
			time.Sleep(time.Millisecond)
		}
		<-done
		fr := a.LastFlush()
		if fr == nil || fr.FirstByte.IsZero() {
			b.Fatalf("flush sent nothing: %+v", fr)
		}
		toByte += fr.FirstByte.Sub(t0)
	}
	b.ReportMetric(float64(toByte.Milliseconds())/float64(b.N), "ms-to-first-flush-byte")
	b.ReportMetric(float64(toRegistry.Microseconds())/1000/float64(b.N), "ms-to-registry")
}
