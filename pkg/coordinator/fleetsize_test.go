package coordinator_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ringmesh/ringmesh/internal/testutil"
	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/config"
	"github.com/ringmesh/ringmesh/pkg/coordinator"
	"github.com/ringmesh/ringmesh/pkg/providers/demo"
	"github.com/ringmesh/ringmesh/pkg/providers/vast/vastfake"
)

func fleetPolicyInventory(inv *config.Inventory) {
	inv.Budget = config.Budget{}
	inv.Policies.FleetSize = config.FleetSizePolicy{Mode: config.PolicyEnforce, Backoff: time.Minute,
		Kinds: []config.FleetKind{{Name: "r4090", Count: 1, GPU: "RTX 4090", GPUCount: 1, Providers: []string{"vast"}, MaxPrice: 0.40, Kind: "spot"}}}
}

// vastByLabel waits for the one fake Vast instance labelled node and returns its ID.
func vastByLabel(t *testing.T, fakes *demo.Fakes, node string) int64 {
	t.Helper()
	var id int64
	testutil.Eventually(t, 30*time.Second, func() error {
		n := 0
		for _, in := range fakes.Vast.All() {
			if in.Label != nil && *in.Label == node {
				id, n = in.ID, n+1
			}
		}
		if n != 1 {
			return fmt.Errorf("%d instances labelled %s (creates %d)", n, node, fakes.Vast.Creates())
		}
		return nil
	})
	return id
}

func waitLaunchHealthy(t *testing.T, h *harness, reqID string) {
	t.Helper()
	testutil.Eventually(t, 30*time.Second, func() error {
		st, err := launchStatus(t, h, reqID)
		if err != nil {
			return err
		}
		if st.Stage != api.LaunchStageHealthy {
			return &stageErr{st}
		}
		return nil
	})
}

// TestFleetSizeReplacesAPreemptedNodeOnce: with count 1 the policy
// launches the kind's cheapest spot offer; once that node is healthy and
// then preempted, it launches exactly one replacement (the booting one is
// not replaced again), and nothing more once the replacement is healthy.
func TestFleetSizeReplacesAPreemptedNodeOnce(t *testing.T) {
	h, fakes := startLaunchFleetWith(t, fleetPolicyInventory, func(cfg *coordinator.Config) { cfg.PolicyInterval = 100 * time.Millisecond })

	first := vastByLabel(t, fakes, "r4090-0")
	_, stopFirst := startAgent(t, []string{h.url}, fakeNode{id: "r4090-0", provider: "vast", instance: strconv.FormatInt(first, 10), root: t.TempDir()}, "")
	waitLaunchHealthy(t, h, "policy-fleet-r4090-0")
	if n := fakes.Vast.Creates(); n != 1 {
		t.Fatalf("creates = %d with one healthy node of the kind, want 1", n)
	}

	// The cheap ask is rented now; another host offers a 4090.
	bid := 0.22
	fakes.Vast.AddOffer(vastfake.Offer{ID: 7101, NumGPUs: 1, GPUName: "RTX 4090", DphTotal: &bid, MinBid: &bid, Verification: "verified", Verified: true, Rentable: true})
	if err := fakes.Vast.Preempt(first); err != nil {
		t.Fatal(err)
	}
	stopFirst()
	second := vastByLabel(t, fakes, "r4090-1")
	_, _ = startAgent(t, []string{h.url}, fakeNode{id: "r4090-1", provider: "vast", instance: strconv.FormatInt(second, 10), root: t.TempDir()}, "")
	waitLaunchHealthy(t, h, "policy-fleet-r4090-1")

	// Many reconciles (and policy runs) later: still one replacement.
	for range 6 {
		select {
		case <-h.coord.Reconciled():
		case <-time.After(30 * time.Second):
			t.Fatal("no reconcile")
		}
	}
	if n := fakes.Vast.Creates(); n != 2 {
		t.Fatalf("creates = %d, want 2 (the first node and one replacement)", n)
	}
	out, err := run(t, h.url, "", "audit", "--kind", "policy", "--json")
	if err != nil {
		t.Fatal(err)
	}
	if c := strings.Count(out, `"result": "created vast instance`); c != 2 || !strings.Contains(out, `"policy": "fleet_size"`) {
		t.Errorf("%d fleet_size launches audited, want 2:\n%s", c, out)
	}
}

// flipLeader is a leader lease the test moves by hand: a holds it while
// aLeads is true, b otherwise.
type flipLeader struct {
	aLeads *atomic.Bool
	me     string // "a" or "b"
}

func (f flipLeader) IsLeader() bool { return f.aLeads.Load() == (f.me == "a") }

func (f flipLeader) Leader() (string, uint64, bool) {
	if f.aLeads.Load() {
		return "coord-a", 1, true
	}
	return "coord-b", 2, true
}

// fleetPair starts coordinators A and B over the same fakes with the
// fleet-size policy on and a leader lease the test moves (A leads first);
// the Vast create is applied but its answer held for hold. modB changes B's config.
func fleetPair(t *testing.T, hold time.Duration, modB func(*coordinator.Config)) (a, b *harness, fakes *demo.Fakes, aLeads *atomic.Bool) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	fakes, err := demo.StartFakes(ctx, demo.Options{Delay: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fakes.Close)
	fakes.Vast.Inject(vastfake.Fault{Kind: vastfake.Timeout, Method: "PUT", Path: "/api/v0/asks/", AfterApply: true, Delay: hold})
	aLeads = new(atomic.Bool)
	aLeads.Store(true)
	mk := func(name string) coordinator.Config {
		inv, err := config.Parse("demo.yaml", []byte(demo.DemoInventory))
		if err != nil {
			t.Fatal(err)
		}
		fleetPolicyInventory(inv)
		cfg := launchConfig(t, fakes, inv)
		cfg.Name, cfg.PolicyInterval, cfg.Leadership = "coord-"+name, 100*time.Millisecond, flipLeader{aLeads: aLeads, me: name}
		return cfg
	}
	a = startCoordinator(t, mk("a"))
	cfgB := mk("b")
	cfgB.NATSURLs = []string{a.url}
	if modB != nil {
		modB(&cfgB)
	}
	b = startCoordinator(t, cfgB)

	// A's create reached the cloud; its answer is held. Leadership moves to B.
	testutil.Eventually(t, 30*time.Second, func() error {
		if n := fakes.Vast.Creates(); n != 1 {
			return fmt.Errorf("creates = %d", n)
		}
		return nil
	})
	aLeads.Store(false)
	return a, b, fakes, aLeads
}

// waitInstanceOnly waits until h's launch record of the policy's first
// launch names an instance, lets six more reconciles (and policy runs) go
// by, and checks the kind has exactly that one instance.
func waitInstanceOnly(t *testing.T, h *harness, fakes *demo.Fakes, within time.Duration) api.LaunchStatus {
	t.Helper()
	var st api.LaunchStatus
	testutil.Eventually(t, within, func() error {
		var err error
		st, err = launchStatus(t, h, "policy-fleet-r4090-0")
		if err != nil {
			return err
		}
		if st.InstanceID == "" {
			return &stageErr{st}
		}
		return nil
	})
	for range 6 {
		select {
		case <-h.coord.Reconciled():
		case <-time.After(30 * time.Second):
			t.Fatal("no reconcile")
		}
	}
	if n := fakes.Vast.Creates(); n != 1 {
		t.Fatalf("creates = %d across the leader change, want 1", n)
	}
	if id := vastByLabel(t, fakes, "r4090-0"); strconv.FormatInt(id, 10) != st.InstanceID {
		t.Fatalf("launch record names instance %s, the fake holds %d", st.InstanceID, id)
	}
	return st
}

// TestFleetSizeLeaderChangeMidLaunchCreatesOne: coordinator A starts the
// policy's launch, the create is applied but its answer held; leadership
// moves to B, whose policy repeats the same request ID (policy, generation):
// it waits for A's outcome instead of creating, and the kind ends with one
// instance.
func TestFleetSizeLeaderChangeMidLaunchCreatesOne(t *testing.T) {
	_, b, fakes, _ := fleetPair(t, 2*time.Second, nil)
	waitInstanceOnly(t, b, fakes, 30*time.Second)
}

// TestFleetSizeStaleClaimAdoptedFromTheCloud: A's claim outlives
// LaunchClaimStale with no outcome (as when A died in the create call).
// B's policy then looks for the request ID at the cloud before choosing an
// offer (the only matching offer is the one A rented, so choosing first
// would find none) and records A's instance as the launch's, long before
// A's held answer (25 s) could have: one instance, adopted by B, audited.
func TestFleetSizeStaleClaimAdoptedFromTheCloud(t *testing.T) {
	_, b, fakes, _ := fleetPair(t, 25*time.Second, func(cfg *coordinator.Config) { cfg.LaunchClaimStale = 500 * time.Millisecond })
	waitInstanceOnly(t, b, fakes, 20*time.Second)
	out, err := run(t, b.url, "", "audit", "--kind", "provider_call", "--json")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, `"result": "found: instance of an earlier call (claimed by coord-a)"`) {
		t.Fatalf("no audit of B adopting A's instance:\n%s", out)
	}
}

// TestNewLeaderKeepsAdmissionsOfThePrevious: the leader A launches a node
// (admitted by name before it ever speaks); leadership moves to B, which
// has not reconciled since (its listing does not name the instance yet).
// When the node's agent speaks, B treats it as admitted, not quarantined:
// B took over A's admissions from the stored launch record.
func TestNewLeaderKeepsAdmissionsOfThePrevious(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	fakes, err := demo.StartFakes(ctx, demo.Options{Delay: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fakes.Close)
	var aLeads atomic.Bool
	aLeads.Store(true)
	mk := func(name string) coordinator.Config {
		inv, err := config.Parse("demo.yaml", []byte(demo.DemoInventory))
		if err != nil {
			t.Fatal(err)
		}
		inv.Budget = config.Budget{}
		cfg := launchConfig(t, fakes, inv)
		cfg.Name, cfg.Leadership = "coord-"+name, flipLeader{aLeads: &aLeads, me: name}
		return cfg
	}
	a := startCoordinator(t, mk("a"))
	cfgB := mk("b")
	cfgB.NATSURLs, cfgB.ReconcileInterval = []string{a.url}, time.Hour
	b := startCoordinator(t, cfgB)

	out, err := run(t, a.url, "", "launch", "--offer", "7001", "--provider", "vast", "--kind", "on-demand", "--name", "vast-handover-1",
		"--request-id", "handover-1", "--yes", "--wait", "0")
	if err != nil || !strings.Contains(out, "created vast instance") {
		t.Fatalf("launch through A: %v\n%s", err, out)
	}
	id := vastByLabel(t, fakes, "vast-handover-1")
	aLeads.Store(false)
	startAgent(t, []string{a.url}, fakeNode{id: "vast-handover-1", provider: "vast", instance: strconv.FormatInt(id, 10), root: t.TempDir()}, "")
	testutil.Eventually(t, 30*time.Second, func() error {
		rec, ok := b.coord.Registry().Get("vast-handover-1")
		if !ok || rec.LastSeen.IsZero() {
			return fmt.Errorf("B has not heard the node yet")
		}
		if rec.Quarantined || !strings.HasPrefix(rec.Admitted, "launch:vast/") {
			return fmt.Errorf("on the new leader the launched node is quarantined %v, admitted %q", rec.Quarantined, rec.Admitted)
		}
		return nil
	})
}
