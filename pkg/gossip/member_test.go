package gossip

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/internal/testutil"
)

// cluster3 starts a, then b and c seeded with a, and waits until all see 3.
func cluster3(t *testing.T) (a, b, c *tnode) {
	t.Helper()
	a = start(t, testConfig("a"))
	b = start(t, testConfig("b", a.Addr()))
	c = start(t, testConfig("c", a.Addr()))
	testutil.Eventually(t, 10*time.Second, func() error { return allSee([]*tnode{a, b, c}, 3, "a", "b", "c") })
	return a, b, c
}

func TestJoinThreeMembers(t *testing.T) {
	t.Parallel()
	a, b, c := cluster3(t)
	for _, n := range []*tnode{a, b, c} {
		ms := n.Members()
		if len(ms) != 3 {
			t.Fatalf("%s: Members() = %v", n.cfg.NodeName, ms)
		}
		for i, want := range []string{"a", "b", "c"} {
			mi := ms[i]
			if mi.Name != want || mi.State != StateAlive || mi.Meta.Role != "agent" || mi.Meta.Provider != "local" || mi.Meta.Version != MetaVersion {
				t.Errorf("%s: member %d = %+v", n.cfg.NodeName, i, mi)
			}
			if !strings.HasPrefix(mi.Addr, "127.0.0.1:") {
				t.Errorf("%s: addr %q", n.cfg.NodeName, mi.Addr)
			}
		}
		if ln := n.LocalNode(); ln.Name != n.cfg.NodeName || ln.Addr != n.Addr() || ln.State != StateAlive {
			t.Errorf("LocalNode() = %+v", ln)
		}
	}
	testutil.Eventually(t, 5*time.Second, func() error {
		for _, name := range []string{"b", "c"} {
			if err := a.ev.has(EventJoin, name); err != nil {
				return err
			}
		}
		return nil
	})
	if got := a.counter("ringmesh_gossip_members", "state", "alive"); got != 3 {
		t.Errorf("members{alive} = %v, want 3", got)
	}
	if got := b.counter("ringmesh_gossip_joins_total", "result", "ok"); got < 1 {
		t.Errorf("joins_total{ok} on b = %v", got)
	}
}

func TestGracefulLeaveIsLeave(t *testing.T) {
	t.Parallel()
	a, b, c := cluster3(t)
	if err := c.leave(); err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
	for _, n := range []*tnode{a, b} {
		testutil.Eventually(t, 10*time.Second, func() error {
			if err := n.ev.has(EventLeave, "c"); err != nil {
				return err
			}
			return n.sees(StateLeft, "c")
		})
		if k := n.ev.count(EventFail, "c"); k != 0 {
			t.Errorf("%s saw %d fail events for c: %s", n.cfg.NodeName, k, n.ev.summary())
		}
		if got := n.NumMembers(); got != 2 {
			t.Errorf("%s: NumMembers = %d after leave", n.cfg.NodeName, got)
		}
	}
	// The leaver's own stream ends with its Leave and is closed.
	if err := c.ev.has(EventLeave, "c"); err != nil {
		t.Error(err)
	}
	select {
	case <-c.ev.done:
	case <-time.After(30 * time.Second):
		t.Error("Events channel not closed after Run returned")
	}
}

func TestCrashIsFail(t *testing.T) {
	t.Parallel()
	a, b, c := cluster3(t)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*tnode{a, b} {
		testutil.Eventually(t, 20*time.Second, func() error {
			if err := n.ev.has(EventFail, "c"); err != nil {
				return err
			}
			return n.sees(StateDead, "c")
		})
		if k := n.ev.count(EventLeave, "c"); k != 0 {
			t.Errorf("%s saw a leave for a crashed node: %s", n.cfg.NodeName, n.ev.summary())
		}
	}
	if got := a.counter("ringmesh_gossip_members", "state", "dead"); got != 1 {
		t.Errorf("members{dead} = %v, want 1", got)
	}
	if got := a.counter("ringmesh_gossip_events_total", "type", "fail"); got < 1 {
		t.Errorf("events_total{fail} = %v", got)
	}
	// Run returned nil after Close.
	select {
	case err := <-c.runErr:
		c.runErr <- err
		if err != nil {
			t.Errorf("Run after Close = %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("Run did not return after Close")
	}
}

// twoPlusIntruder starts a healthy pair a, b and then an intruder x built
// from cfg, seeded with a. It checks that the pair is undisturbed and that
// the intruder stays alone, and returns them.
func twoPlusIntruder(t *testing.T, mutate func(*Config)) (a, b, x *tnode) {
	t.Helper()
	a = start(t, testConfig("a"))
	b = start(t, testConfig("b", a.Addr()))
	testutil.Eventually(t, 10*time.Second, func() error { return allSee([]*tnode{a, b}, 2, "a", "b") })
	cfg := testConfig("x", a.Addr())
	mutate(&cfg)
	x = start(t, cfg)
	return a, b, x
}

func checkUndisturbed(t *testing.T, a, b, x *tnode) {
	t.Helper()
	// Several rejoin attempts of the intruder have happened by now.
	if err := allSee([]*tnode{a, b}, 2, "a", "b"); err != nil {
		t.Error(err)
	}
	for _, n := range []*tnode{a, b} {
		if _, ok := n.Member.Member("x"); ok {
			t.Errorf("%s knows the intruder: %v", n.cfg.NodeName, n.Members())
		}
	}
	if got := x.NumMembers(); got != 1 {
		t.Errorf("intruder sees %d members", got)
	}
}

func TestKeyMismatchRejected(t *testing.T) {
	t.Parallel()
	a, b, x := twoPlusIntruder(t, func(c *Config) { c.Keys = [][]byte{[]byte("fedcba9876543210")} })
	testutil.Eventually(t, 10*time.Second, func() error {
		if v := a.counter("ringmesh_gossip_rejected_total", "reason", "key"); v < 2 {
			return fmt.Errorf("rejected_total{key} = %v, want >= 2 (initial join and a rejoin)", v)
		}
		return nil
	})
	checkUndisturbed(t, a, b, x)
	if v := a.counter("ringmesh_gossip_rejected_total", "reason", "label"); v != 0 {
		t.Errorf("rejected_total{label} = %v", v)
	}
	// The intruder's own join error says why.
	_, err := x.Join(context.Background(), a.Addr())
	if err == nil || !strings.Contains(err.Error(), "keys differ") {
		t.Errorf("intruder Join error = %v, want a key hint", err)
	}
}

func TestLabelMismatchRejected(t *testing.T) {
	t.Parallel()
	a, b, x := twoPlusIntruder(t, func(c *Config) { c.ClusterLabel = "other-cluster" })
	testutil.Eventually(t, 10*time.Second, func() error {
		if v := a.counter("ringmesh_gossip_rejected_total", "reason", "label"); v < 2 {
			return fmt.Errorf("rejected_total{label} = %v, want >= 2", v)
		}
		return nil
	})
	checkUndisturbed(t, a, b, x)
	if v := a.counter("ringmesh_gossip_rejected_total", "reason", "key"); v != 0 {
		t.Errorf("rejected_total{key} = %v", v)
	}
}

func TestNameConflictRejected(t *testing.T) {
	t.Parallel()
	a := start(t, testConfig("a"))
	b := start(t, testConfig("b", a.Addr()))
	testutil.Eventually(t, 10*time.Second, func() error { return allSee([]*tnode{a, b}, 2, "a", "b") })
	bAddr := b.Addr()
	// A second "b" at another port while the first is alive.
	_ = start(t, testConfig("b", a.Addr()))
	testutil.Eventually(t, 10*time.Second, func() error {
		if v := a.counter("ringmesh_gossip_rejected_total", "reason", "conflict"); v < 1 {
			return fmt.Errorf("rejected_total{conflict} = %v", v)
		}
		return nil
	})
	mi, ok := a.Member.Member("b")
	if !ok || mi.Addr != bAddr || mi.State != StateAlive {
		t.Errorf("a's view of b = %+v, want alive at %s", mi, bAddr)
	}
}

func TestUpdateMetaPropagates(t *testing.T) {
	t.Parallel()
	a := start(t, testConfig("a"))
	b := start(t, testConfig("b", a.Addr()))
	testutil.Eventually(t, 10*time.Second, func() error { return allSee([]*tnode{a, b}, 2, "a", "b") })

	want := Meta{Role: "coordinator", Provider: "hetzner", AgentVersion: "1.2.3"}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.UpdateMeta(ctx, want); err != nil {
		t.Fatalf("UpdateMeta: %v", err)
	}
	want.Version = MetaVersion
	testutil.Eventually(t, 5*time.Second, func() error {
		if err := a.ev.has(EventUpdate, "b"); err != nil {
			return err
		}
		if mi, _ := a.Member.Member("b"); mi.Meta != want {
			return fmt.Errorf("a sees b meta %+v", mi.Meta)
		}
		return nil
	})
	if got := b.LocalNode().Meta; got != want {
		t.Errorf("LocalNode().Meta = %+v", got)
	}

	big := Meta{AgentVersion: strings.Repeat("x", 600)}
	err := b.UpdateMeta(ctx, big)
	if !errors.Is(err, ErrMetaTooLarge) || !strings.Contains(err.Error(), "limit 512") {
		t.Errorf("UpdateMeta(big) = %v", err)
	}
	if got := b.LocalNode().Meta; got != want {
		t.Errorf("meta changed by a failed update: %+v", got)
	}
}

func TestNewRejectsOversizedMeta(t *testing.T) {
	t.Parallel()
	cfg := testConfig("a")
	cfg.Meta.AgentVersion = strings.Repeat("v", 520)
	_, err := New(cfg, zerolog.Nop(), nil)
	if err == nil || !strings.Contains(err.Error(), "gossip: node meta is ") || !strings.Contains(err.Error(), "bytes, limit 512") {
		t.Fatalf("New = %v", err)
	}
}

func TestCloseAndRunLifecycle(t *testing.T) {
	t.Parallel()
	m, err := New(testConfig("solo"), testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Run(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Run after Close = %v, want ErrClosed", err)
	}
	if err := m.UpdateMeta(context.Background(), Meta{Role: "x"}); !errors.Is(err, ErrClosed) {
		t.Errorf("UpdateMeta after Close = %v", err)
	}
	// The join event for ourselves was queued, then the channel closed.
	var got []Event
	for ev := range m.Events() {
		got = append(got, ev)
	}
	if len(got) != 1 || got[0].Type != EventJoin || got[0].Node != "solo" {
		t.Errorf("events = %+v", got)
	}
}

func TestPartitionAndHeal(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped with -short: partition detection takes up to ~10 s")
	}
	t.Parallel()
	p := NewPartition()
	names := []string{"a", "b", "c", "d"}
	nodes := make([]*tnode, 0, len(names))
	var seed string
	for _, name := range names {
		tr, err := p.NewTransport("127.0.0.1", 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		cfg := testConfig(name)
		if seed != "" {
			cfg.Seeds = []string{seed}
		}
		cfg.Transport = tr
		// Probe twice as often as the local profile: suspicion timeouts
		// become 1.5 s (enough confirmations) to 9 s (none).
		cfg.Tune = func(mc *memberlist.Config) { mc.ProbeInterval = 500 * time.Millisecond }
		n := start(t, cfg)
		if n.Addr() != tr.Addr() {
			t.Fatalf("member addr %s != transport addr %s", n.Addr(), tr.Addr())
		}
		if seed == "" {
			seed = n.Addr()
		}
		nodes = append(nodes, n)
	}
	testutil.Eventually(t, 10*time.Second, func() error { return allSee(nodes, 4, names...) })

	a, b, c, d := nodes[0], nodes[1], nodes[2], nodes[3]
	p.Block([]string{a.Addr(), b.Addr()}, []string{c.Addr(), d.Addr()})
	if !p.Blocked(a.Addr(), d.Addr()) || !p.Blocked(d.Addr(), a.Addr()) || p.Blocked(a.Addr(), b.Addr()) {
		t.Fatal("Block did not set up the expected cuts")
	}
	testutil.Eventually(t, 25*time.Second, func() error {
		for _, side := range [][]*tnode{{a, b}, {c, d}} {
			for _, n := range side {
				others := []string{"c", "d"}
				if n == c || n == d {
					others = []string{"a", "b"}
				}
				if err := n.sees(StateDead, others...); err != nil {
					return err
				}
				for _, o := range others {
					if err := n.ev.has(EventFail, o); err != nil {
						return err
					}
				}
				if got := n.NumMembers(); got != 2 {
					return fmt.Errorf("%s: NumMembers = %d during partition", n.cfg.NodeName, got)
				}
			}
		}
		return nil
	})
	if p.Dropped() == 0 {
		t.Error("partition dropped nothing")
	}

	healed := time.Now()
	p.Heal()
	// Within a few rejoin intervals (1 s here) the halves merge again.
	testutil.Eventually(t, 15*time.Second, func() error { return allSee(nodes, 4, names...) })
	t.Logf("merged %s after heal", time.Since(healed).Round(time.Millisecond))
	for _, n := range []*tnode{a, b} {
		for _, o := range []string{"c", "d"} {
			if n.ev.count(EventJoin, o) < 2 {
				t.Errorf("%s: want a second join event for %s: %s", n.cfg.NodeName, o, n.ev.summary())
			}
		}
	}
}

func TestEventsDropOldestWhenFull(t *testing.T) {
	t.Parallel()
	cfg := testConfig("solo")
	cfg.EventBuffer = 2
	reg := prometheus.NewRegistry()
	m, err := New(cfg, testLogger(t), reg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	// Queue: join(solo). Add three more without reading.
	for i := range 3 {
		m.nodeAlive(EventJoin, &memberlist.Node{Name: fmt.Sprintf("n%d", i), Addr: []byte{127, 0, 0, 1}, Port: uint16(1000 + i)})
	}
	var got []string
	for range 2 {
		ev := <-m.Events()
		got = append(got, ev.Node)
	}
	if strings.Join(got, ",") != "n1,n2" {
		t.Errorf("kept %v, want the two newest (n1,n2)", got)
	}
	if v := metricValue(t, reg, "ringmesh_gossip_events_dropped_total"); v != 2 {
		t.Errorf("dropped = %v, want 2", v)
	}
}

func TestLateLeaveIntentTurnsFailIntoLeave(t *testing.T) {
	t.Parallel()
	m, err := New(testConfig("solo"), testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	n := &memberlist.Node{Name: "p", Addr: []byte{127, 0, 0, 1}, Port: 1}
	m.nodeAlive(EventJoin, n)
	m.nodeGone(n) // no intent yet: a failure
	if mi, _ := m.Member("p"); mi.State != StateDead {
		t.Fatalf("state = %s", mi.State)
	}
	name, id, ok := decodeIntent(encodeIntent("p", 42))
	if !ok || name != "p" || id != 42 {
		t.Fatalf("intent round trip: %q %d %v", name, id, ok)
	}
	m.leaveIntent(name, id)
	m.leaveIntent(name, id) // duplicate: ignored
	if mi, _ := m.Member("p"); mi.State != StateLeft {
		t.Fatalf("state after late intent = %s", mi.State)
	}
	var types []EventType
	for len(m.Events()) > 0 {
		ev := <-m.Events()
		if ev.Node == "p" {
			types = append(types, ev.Type)
		}
	}
	if fmt.Sprint(types) != "[join fail leave]" {
		t.Errorf("events for p = %v", types)
	}

	// Intent first, then the dead message: a Leave; a later rejoin clears it.
	q := &memberlist.Node{Name: "q", Addr: []byte{127, 0, 0, 1}, Port: 2}
	m.nodeAlive(EventJoin, q)
	m.leaveIntent("q", 7)
	m.nodeGone(q)
	if mi, _ := m.Member("q"); mi.State != StateLeft {
		t.Errorf("q state = %s, want left", mi.State)
	}
	m.leaveIntent("q", 8)
	m.nodeAlive(EventJoin, q) // came back: intent forgotten
	m.nodeGone(q)
	if mi, _ := m.Member("q"); mi.State != StateDead {
		t.Errorf("q state after rejoin+failure = %s, want dead", mi.State)
	}
	if _, _, ok := decodeIntent([]byte{1, 2, 3}); ok {
		t.Error("garbage decoded as an intent")
	}
}
