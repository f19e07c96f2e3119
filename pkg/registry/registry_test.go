package registry

import (
	"strings"
	"testing"
	"time"

	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/events"
	"github.com/ringmesh/ringmesh/pkg/mesh"
)

var t0 = time.Date(2026, 11, 29, 14, 0, 0, 0, time.UTC)

type feeder struct {
	t   *testing.T
	r   *Registry
	seq uint64
}

func (f *feeder) send(node, kind string, body any, at time.Time) Result {
	f.t.Helper()
	f.seq++
	env, err := bus.NewEnvelope(kind, bus.MessageID(node, "b1", f.seq), node, at, body)
	if err != nil {
		f.t.Fatal(err)
	}
	res, err := f.r.Apply(env, kind, at)
	if err != nil {
		f.t.Fatal(err)
	}
	return res
}

func state(t *testing.T, r *Registry, node string, want mesh.NodeState) {
	t.Helper()
	rec, ok := r.Get(node)
	if !ok || rec.State != want {
		t.Fatalf("%s: state %q (cause %q), want %q", node, rec.State, rec.Cause, want)
	}
}

func TestLifecycleAndLiveness(t *testing.T) {
	r := New(Thresholds{SuspectAfter: 15 * time.Second, DeadAfter: 45 * time.Second})
	f := &feeder{t: t, r: r}
	f.send("vast-1", bus.KindHello, events.Hello{Provider: "vast", AgentVersion: "v1", Boot: "b1", HeartbeatIntervalSeconds: 5}, t0)
	state(t, r, "vast-1", mesh.StateJoining)
	f.send("vast-1", bus.KindHeartbeat, events.Heartbeat{Status: "healthy", IntervalSeconds: 5}, t0.Add(time.Second))
	state(t, r, "vast-1", mesh.StateHealthy)
	f.send("vast-1", bus.KindHeartbeat, events.Heartbeat{Status: "degraded", Reasons: []string{"disk / 93% used"}, IntervalSeconds: 5}, t0.Add(6*time.Second))
	state(t, r, "vast-1", mesh.StateDegraded)

	if trs := r.Tick(t0.Add(20 * time.Second)); len(trs) != 0 {
		t.Fatalf("14 s of silence must not be suspect yet: %v", trs)
	}
	trs := r.Tick(t0.Add(22 * time.Second))
	if len(trs) != 1 || trs[0].To != mesh.StateSuspect || trs[0].Cause == "" {
		t.Fatalf("want suspect with a cause, got %+v", trs)
	}
	trs = r.Tick(t0.Add(52 * time.Second))
	if len(trs) != 1 || trs[0].To != mesh.StateDead {
		t.Fatalf("want dead, got %+v", trs)
	}
	res := f.send("vast-1", bus.KindHeartbeat, events.Heartbeat{Status: "healthy", IntervalSeconds: 5}, t0.Add(60*time.Second))
	if len(res.Transitions) != 1 || res.Transitions[0].To != mesh.StateHealthy {
		t.Fatalf("resume: %+v", res)
	}
}

func TestDuplicatesIgnored(t *testing.T) {
	r := New(Thresholds{})
	env, _ := bus.NewEnvelope("hello", bus.MessageID("n1", "b1", 1), "n1", t0, events.Hello{Provider: "local"})
	if res, _ := r.Apply(env, "hello", t0); res.Duplicate {
		t.Fatal("first is not a duplicate")
	}
	if res, _ := r.Apply(env, "hello", t0); !res.Duplicate {
		t.Fatal("same id twice must be a duplicate")
	}
	env2, _ := bus.NewEnvelope("hello", bus.MessageID("n1", "b2", 1), "n1", t0, events.Hello{Provider: "local"})
	if res, _ := r.Apply(env2, "hello", t0); res.Duplicate {
		t.Fatal("a new boot restarts sequences")
	}
	bad, _ := bus.NewEnvelope("hello", bus.MessageID("n2", "b1", 1), "n1", t0, events.Hello{})
	if _, err := r.Apply(bad, "hello", t0); err == nil {
		t.Fatal("id of another node must be rejected")
	}
}

// Gossip alive + bus silent → bus-partitioned, not dead; gossip failed +
// bus silent → dead; a preempt notice → preempted, never dead.
func TestSignalFusion(t *testing.T) {
	r := New(Thresholds{SuspectAfter: 15 * time.Second, DeadAfter: 45 * time.Second})
	f := &feeder{t: t, r: r}
	for _, n := range []string{"a", "b", "c"} {
		f.send(n, bus.KindHello, events.Hello{Provider: "vast"}, t0)
		f.send(n, bus.KindHeartbeat, events.Heartbeat{Status: "healthy", IntervalSeconds: 5}, t0)
		r.ApplyGossip(events.Gossip{Voter: "v1", Type: "join", Member: n}, t0)
	}
	f.send("c", bus.KindPreempt, events.Preempt{Source: "signal:SIGTERM", Deadline: t0.Add(15 * time.Second), NoticeSeconds: 15}, t0.Add(time.Second))
	state(t, r, "c", mesh.StatePreempting)

	r.Tick(t0.Add(16 * time.Second))
	state(t, r, "a", mesh.StateSuspect)
	state(t, r, "b", mesh.StateSuspect)
	// b's machine is gone: gossip fails it too → dead at once.
	trs := r.ApplyGossip(events.Gossip{Voter: "v1", Type: "fail", Member: "b"}, t0.Add(20*time.Second))
	if len(trs) != 1 || trs[0].To != mesh.StateDead {
		t.Fatalf("gossip fail of a silent node: %+v", trs)
	}
	r.Tick(t0.Add(50 * time.Second))
	state(t, r, "a", mesh.StateBusPartitioned) // gossip still sees a
	state(t, r, "c", mesh.StatePreempted)      // deadline passed, no bye: preempted, not dead
	rec, _ := r.Get("a")
	if rec.Gossip.State != "alive" {
		t.Fatalf("gossip view = %+v", rec.Gossip)
	}
	// bye after a preempt notice is preempted too.
	f.send("d", bus.KindHello, events.Hello{Provider: "vast"}, t0)
	f.send("d", bus.KindPreempt, events.Preempt{Source: "vast:webhook", Deadline: t0.Add(time.Minute)}, t0)
	f.send("d", bus.KindBye, events.Bye{Reason: "flushed"}, t0.Add(time.Second))
	state(t, r, "d", mesh.StatePreempted)
	// a plain bye is left.
	f.send("e", bus.KindHello, events.Hello{Provider: "local"}, t0)
	f.send("e", bus.KindBye, events.Bye{Reason: "agent stopped"}, t0)
	state(t, r, "e", mesh.StateLeft)
}

func TestThresholdValidation(t *testing.T) {
	if err := (Thresholds{SuspectAfter: 10 * time.Second, DeadAfter: 5 * time.Second}).Validate(); err == nil {
		t.Fatal("dead before suspect must be rejected")
	}
}

// Gossip suspicion moves a node ahead of its heartbeat timeouts: suspect
// seconds after the crash, dead when gossip reports it failed; a node gossip
// still sees is bus-partitioned, never dead; a heartbeat clears a false
// suspicion. All times are given, no wall clock.
func TestGossipSuspicionBeforeHeartbeatTimeout(t *testing.T) {
	r := New(Thresholds{SuspectAfter: 15 * time.Second, DeadAfter: 45 * time.Second})
	f := &feeder{t: t, r: r}
	hb := events.Heartbeat{Status: "healthy", IntervalSeconds: 5}
	gossip := func(voter, typ, node string, at time.Time) []Transition {
		return r.ApplyGossip(events.Gossip{Voter: voter, Type: typ, Member: node, Addr: "10.0.0.9:7946"}, at)
	}
	for _, n := range []string{"vast-1", "vast-2", "vast-3"} {
		f.send(n, bus.KindHello, events.Hello{Provider: "vast", AgentVersion: "v1", Boot: "b1", HeartbeatIntervalSeconds: 5}, t0)
		f.send(n, bus.KindHeartbeat, hb, t0.Add(time.Second))
		gossip("voter-a", "join", n, t0.Add(time.Second))
		gossip("voter-b", "join", n, t0.Add(time.Second))
		state(t, r, n, mesh.StateHealthy)
	}

	// vast-1 crashes at t0+2s (last heartbeat t0+1s). Gossip suspects it at
	// t0+4s: not yet overdue (1.5 × 5 s), so nothing yet; once overdue
	// (t0+9s, 6 s before SuspectAfter would), Tick makes it suspect.
	if trs := gossip("voter-a", "suspect", "vast-1", t0.Add(4*time.Second)); len(trs) != 0 {
		t.Fatalf("voter-b still sees vast-1 alive, so the merged view is alive: %+v", trs)
	}
	if trs := gossip("voter-b", "suspect", "vast-1", t0.Add(4*time.Second)); len(trs) != 0 {
		t.Fatalf("heartbeat not overdue yet: %+v", trs)
	}
	if rec, _ := r.Get("vast-1"); rec.Gossip.State != "suspect" {
		t.Fatalf("merged gossip view %q, want suspect", rec.Gossip.State)
	}
	if trs := r.Tick(t0.Add(8 * time.Second)); len(trs) != 0 {
		t.Fatalf("7 s of silence is not overdue: %+v", trs)
	}
	trs := r.Tick(t0.Add(9 * time.Second))
	if len(trs) != 1 || trs[0].Node != "vast-1" || trs[0].To != mesh.StateSuspect || !strings.Contains(trs[0].Cause, "gossip: voter-b suspects it") {
		t.Fatalf("want vast-1 suspect from gossip, got %+v", trs)
	}
	gossip("voter-a", "fail", "vast-1", t0.Add(10*time.Second))
	trs = gossip("voter-b", "fail", "vast-1", t0.Add(10*time.Second))
	if len(trs) != 1 || trs[0].To != mesh.StateDead {
		t.Fatalf("suspect and failed by gossip must be dead at once (not after DeadAfter): %+v", trs)
	}

	// vast-2: gossip reports it failed while its heartbeats flow (gossip
	// partitioned, bus fine): never suspect; heartbeats keep it healthy.
	for _, v := range []string{"voter-a", "voter-b"} {
		if trs := gossip(v, "fail", "vast-2", t0.Add(4*time.Second)); len(trs) != 0 {
			t.Fatalf("a heartbeating node made suspect by gossip: %+v", trs)
		}
	}
	for s := 6; s <= 40; s += 5 {
		f.send("vast-2", bus.KindHeartbeat, hb, t0.Add(time.Duration(s)*time.Second))
		for _, tr := range r.Tick(t0.Add(time.Duration(s+4) * time.Second)) {
			if tr.Node == "vast-2" {
				t.Fatalf("vast-2 moved while heartbeating: %+v", tr)
			}
		}
	}
	state(t, r, "vast-2", mesh.StateHealthy)
	gossip("voter-a", "alive", "vast-2", t0.Add(41*time.Second))
	if rec, _ := r.Get("vast-2"); rec.Gossip.State != "alive" {
		t.Fatalf("merged gossip view %q after alive, want alive", rec.Gossip.State)
	}

	// vast-3 loses the bus but not gossip: heartbeats time out, gossip sees
	// it alive, so it is bus-partitioned, not dead.
	for _, tr := range r.Tick(t0.Add(20 * time.Second)) {
		if tr.Node == "vast-3" && tr.To != mesh.StateSuspect {
			t.Fatalf("vast-3 at 19 s of silence: %+v", tr)
		}
	}
	state(t, r, "vast-3", mesh.StateSuspect)
	r.Tick(t0.Add(50 * time.Second))
	state(t, r, "vast-3", mesh.StateBusPartitioned)
	state(t, r, "vast-1", mesh.StateDead)

	// Unknown gossip types change nothing.
	if trs := gossip("voter-a", "teleport", "vast-2", t0.Add(51*time.Second)); len(trs) != 0 {
		t.Fatalf("unknown type: %+v", trs)
	}
}
