package coordinator_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ringmesh/ringmesh/internal/testutil"
	"github.com/ringmesh/ringmesh/pkg/agent"
	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/coordinator"
	"github.com/ringmesh/ringmesh/pkg/detect"
	"github.com/ringmesh/ringmesh/pkg/events"
	"github.com/ringmesh/ringmesh/pkg/gossip"
	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/paths"
	"github.com/ringmesh/ringmesh/pkg/registry"
)

func gossipConfig(seeds ...string) *gossip.Config {
	return &gossip.Config{BindAddr: "127.0.0.1", Profile: "local", Dev: true, ClusterLabel: "test", Seeds: seeds, RejoinInterval: time.Second}
}

func startGossipAgent(t testing.TB, url, seed string, n fakeNode) *agent.Agent {
	t.Helper()
	dead := closedURL(t)
	a, err := agent.New(secureAgent(t, agent.Config{
		NodeID: n.id, Provider: n.provider, InstanceID: n.instance, NATSURLs: []string{url}, StateDir: t.TempDir(),
		HeartbeatInterval: 200 * time.Millisecond, Version: "test-1", ByeTimeout: time.Second,
		Detect: detect.Options{Env: func(string) string { return "" }, HetznerURL: dead, VultrURL: dead, NebiusURL: dead, Timeout: 100 * time.Millisecond},
		Paths:  paths.Resolver{Root: t.TempDir(), Home: "/root"},
		Gossip: gossipConfig(seed),
	}), testLog(t).With().Str("agent", n.id).Logger())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	ctx, cancel := contextWithCancel()
	go func() { done <- a.Run(ctx) }()
	select {
	case <-a.Ready():
	case err := <-done:
		t.Fatal(err)
	case <-time.After(20 * time.Second):
		t.Fatal("agent not ready")
	}
	t.Cleanup(func() { cancel(); <-done })
	return a
}

// Kill an agent (no bye) → suspect, then dead once gossip fails it too; cut
// only its bus connection → bus-partitioned while gossip says alive; a
// preempt notice → preempted, not failed.
func TestGossipFusion(t *testing.T) {
	h := startCoordinator(t, coordinator.Config{
		Gossip:     gossipConfig(),
		Thresholds: registry.Thresholds{SuspectAfter: 1200 * time.Millisecond, DeadAfter: 3 * time.Second, PreemptGrace: 500 * time.Millisecond},
	})
	seed := h.coord.Gossip().Addr()

	killed := startGossipAgent(t, h.url, seed, fakeNode{id: "vast-killed", provider: "vast", instance: "1"})
	proxy, err := testutil.NewProxy(h.url)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	cut := startGossipAgent(t, proxy.Serve(t, h.url), seed, fakeNode{id: "runpod-cut", provider: "runpod", instance: "p1"})
	preempted := startGossipAgent(t, h.url, seed, fakeNode{id: "vast-preempted", provider: "vast", instance: "2"})
	for _, id := range []string{"vast-killed", "runpod-cut", "vast-preempted"} {
		id := id
		testutil.Eventually(t, 15*time.Second, func() error {
			rec, ok := h.coord.Registry().Get(id)
			if !ok || rec.State != mesh.StateHealthy || rec.Gossip.State != "alive" {
				return fmt.Errorf("%s: %s, gossip %q", id, rec.State, rec.Gossip.State)
			}
			return nil
		})
	}
	// meshctl members lists them with their metadata.
	out, err := run(t, h.url, "", "members")
	if err != nil || !strings.Contains(out, "runpod-cut") || !strings.Contains(out, "agent") {
		t.Fatalf("members: %v\n%s", err, out)
	}

	// 1. Crash: heartbeats stop and the gossip member vanishes without leaving.
	killed.PauseHeartbeats(true)
	if err := killed.Gossip().Close(); err != nil {
		t.Fatal(err)
	}
	// 2. Bus partition: only the NATS connection is cut; gossip continues.
	proxy.Cut()
	// 3. Preemption notice, then the node goes silent and vanishes.
	if err := preempted.Publish(bus.KindPreempt, events.Preempt{Source: "signal:SIGTERM", Deadline: time.Now().Add(time.Second), NoticeSeconds: 1}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, func() error {
		if rec, _ := h.coord.Registry().Get("vast-preempted"); rec.State != mesh.StatePreempting {
			return fmt.Errorf("vast-preempted: %s", rec.State)
		}
		return nil
	})
	preempted.PauseHeartbeats(true)
	_ = preempted.Gossip().Close()

	testutil.Eventually(t, 30*time.Second, func() error {
		rec, _ := h.coord.Registry().Get("vast-killed")
		if rec.State != mesh.StateDead || rec.Gossip.State != "failed" {
			return fmt.Errorf("vast-killed: %s (%s), gossip %q", rec.State, rec.Cause, rec.Gossip.State)
		}
		return nil
	})
	testutil.Eventually(t, 15*time.Second, func() error {
		rec, _ := h.coord.Registry().Get("runpod-cut")
		if rec.State != mesh.StateBusPartitioned || rec.Gossip.State != "alive" {
			return fmt.Errorf("runpod-cut: %s (%s), gossip %q", rec.State, rec.Cause, rec.Gossip.State)
		}
		return nil
	})
	testutil.Eventually(t, 30*time.Second, func() error {
		rec, _ := h.coord.Registry().Get("vast-preempted")
		if rec.State != mesh.StatePreempted {
			return fmt.Errorf("vast-preempted: %s (%s)", rec.State, rec.Cause)
		}
		return nil
	})
	// The partitioned node is not declared dead while gossip sees it: hold for a while.
	hold := time.Now().Add(2 * time.Second)
	for time.Now().Before(hold) {
		if rec, _ := h.coord.Registry().Get("runpod-cut"); rec.State == mesh.StateDead {
			t.Fatalf("runpod-cut declared dead while gossip sees it alive: %s", rec.Cause)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Heal: its outbox drains and it is healthy again.
	proxy.Heal()
	testutil.Eventually(t, 20*time.Second, func() error {
		rec, _ := h.coord.Registry().Get("runpod-cut")
		if rec.State != mesh.StateHealthy {
			return fmt.Errorf("runpod-cut after heal: %s", rec.State)
		}
		if n, _ := cut.Outbox(); n > 1 {
			return fmt.Errorf("outbox still holds %d", n)
		}
		return nil
	})
	// meshctl status shows the gossip view next to the bus view.
	out, err = run(t, h.url, "", "status")
	if err != nil || !strings.Contains(out, "GOSSIP") || !strings.Contains(out, "failed") {
		t.Fatalf("status:\n%s", out)
	}
}
