package coordinator_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ringmesh/ringmesh/pkg/agent"
	"github.com/ringmesh/ringmesh/pkg/config"
	"github.com/ringmesh/ringmesh/pkg/coordinator"
	"github.com/ringmesh/ringmesh/pkg/cost"
	"github.com/ringmesh/ringmesh/pkg/detect"
	"github.com/ringmesh/ringmesh/pkg/fleet"
	"github.com/ringmesh/ringmesh/pkg/paths"
	"github.com/ringmesh/ringmesh/pkg/providers"
	"github.com/ringmesh/ringmesh/pkg/providers/demo"
	"github.com/ringmesh/ringmesh/pkg/sync/sshtest"
)

// TestIdlePolicyActsOnlyOnMeasuredIdleSyncedNodes runs the idle policy
// (enforce, stop, 2 s window) against the demo clouds with three real
// agents whose nvidia-smi is faked: one idle with nothing unsynced, one
// whose utilisation nvidia-smi cannot report, one idle but holding data no
// target has. Only the first is stopped, through the provider; the second
// is never judged idle; the third is refused by the safe-to-terminate
// gate, and the refusal is audited.
// policyRig runs a coordinator over the demo clouds with the policies mod
// sets (checked every 200 ms) and returns it, the fakes, and a function
// that starts a real agent for a demo node whose nvidia-smi reports util
// (percent, or "[N/A]") and which holds one unsynced file when files.
func policyRig(t *testing.T, mod func(*config.Inventory)) (*harness, *demo.Fakes, func(node, instance, util string, files bool)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	fakes, err := demo.StartFakes(ctx, demo.Options{Delay: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fakes.Close)
	inv, err := config.Parse("demo.yaml", []byte(demo.DemoInventory))
	if err != nil {
		t.Fatal(err)
	}
	mod(inv)
	list, err := fakes.Providers(testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	reg := providers.NewRegistry()
	pol := providers.DefaultPolicy()
	pol.BaseDelay = 10 * time.Millisecond
	for _, p := range list {
		reg.Register(fleet.Wrap(p, inv, testLog(t), fleet.BuildOptions{Policy: &pol}))
	}
	tracker := cost.New(cost.Options{})
	rec := fleet.NewReconciler(reg, inv, tracker, testLog(t), nil)
	h := startCoordinator(t, coordinator.Config{Inventory: inv, Fleet: rec, ReconcileInterval: 300 * time.Millisecond, Cost: tracker, PolicyInterval: 200 * time.Millisecond})

	key := sshtest.New(t, sshtest.Options{}).ClientKeyPath // a key to configure sync with; no target is reachable
	dead := closedURL(t)
	det := detect.Options{Env: func(string) string { return "" }, HetznerURL: dead, VultrURL: dead, NebiusURL: dead, Timeout: 100 * time.Millisecond}
	smi := func(util string) func(context.Context, string, ...string) ([]byte, error) {
		line := "0, NVIDIA GeForce RTX 4090, GPU-2f6a3c9e-7b1d-4e52-9a0f-3c8d1e6b5a47, " + util + ", 24564, 512, 38, 31.20, [N/A]\n"
		return func(context.Context, string, ...string) ([]byte, error) { return []byte(line), nil }
	}
	start := func(node, instance, util string, files bool) {
		root := t.TempDir()
		if files {
			p := filepath.Join(root, "root/ringrift/ai-service/checkpoints/ckpt-1.pt")
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, make([]byte, 64<<10), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		a, err := agent.New(secureAgent(t, agent.Config{NodeID: node, Provider: "vast", InstanceID: instance, NATSURLs: []string{h.url}, StateDir: t.TempDir(),
			HeartbeatInterval: 200 * time.Millisecond, Version: "test-1", Detect: det, Paths: paths.Resolver{Root: root, Home: "/root"},
			ByeTimeout: 2 * time.Second, HealthExec: smi(util),
			Sync: &agent.SyncConfig{KeyPath: key, Interval: 300 * time.Millisecond, ReplicationTarget: 1, Notice: 4 * time.Second}}), testLog(t).With().Str("agent", node).Logger())
		if err != nil {
			t.Fatal(err)
		}
		runAgent(t, a, nil)
	}
	return h, fakes, start
}

func TestIdlePolicyActsOnlyOnMeasuredIdleSyncedNodes(t *testing.T) {
	h, fakes, start := policyRig(t, func(inv *config.Inventory) {
		inv.Policies.Idle = config.IdlePolicy{Mode: config.PolicyEnforce, Action: "stop", MaxGPUUtilPercent: 5, Window: 2 * time.Second}
	})
	start("vast-12345678", fmt.Sprint(demo.VastDuoNode), "0", false) // idle, nothing unsynced
	start("vast-29129529", "29129529", "[N/A]", false)               // utilisation not measured
	start("vast-29129530", "29129530", "1", true)                    // idle, but data exists only on it

	stopsOf := func(id string) int { return vastCallsFor(fakes, id) }
	// Audit reads make a consumer each: poll them once a second only.
	deadline := time.Now().Add(90 * time.Second)
	for {
		var why error
		if n := stopsOf(fmt.Sprint(demo.VastDuoNode)); n == 0 {
			why = fmt.Errorf("idle synced node not stopped yet")
		} else if out, err := run(t, h.url, "", "audit", "--kind", "policy", "--node", "vast-29129530", "--since", "1h", "--json"); err != nil || !strings.Contains(out, "refused") || !strings.Contains(out, "exist only on the node") {
			why = fmt.Errorf("no audited refusal for the node with unsynced data yet: %v\n%s", err, out)
		}
		if why == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(why)
		}
		time.Sleep(time.Second)
	}
	if n := stopsOf(fmt.Sprint(demo.VastDuoNode)); n != 1 {
		t.Errorf("idle node: %d provider calls, want exactly 1", n)
	}
	for _, id := range []string{"29129529", "29129530"} {
		if n := stopsOf(id); n != 0 {
			t.Errorf("instance %s: %d mutating provider calls, want none", id, n)
		}
	}
	out, err := run(t, h.url, "", "audit", "--kind", "policy", "--node", "vast-29129529", "--since", "1h")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "vast-29129529") {
		t.Errorf("the node whose utilisation is unknown was judged idle:\n%s", out)
	}
	out, _ = run(t, h.url, "", "audit", "--kind", "policy", "--node", "vast-12345678", "--since", "1h")
	t.Logf("policy audit of the stopped node:\n%s", out)
}

// vastCallsFor counts the Vast fake's mutating calls on instance id.
func vastCallsFor(fakes *demo.Fakes, id string) int {
	n := 0
	for _, c := range fakes.Vast.MutatingCalls() {
		if strings.Contains(c.Path, "/"+id) {
			n++
		}
	}
	return n
}

// TestBudgetPolicyStopsUntilUnderTheCap: with a Vast cap today's
// projection crosses at once, the budget policy (enforce) stops the synced
// Vast node through the provider, once; Vast nodes without an agent are
// refused by the safe-to-terminate gate (their RPO is unknown) and audited;
// nodes of other clouds are not touched.
func TestBudgetPolicyStopsUntilUnderTheCap(t *testing.T) {
	h, fakes, start := policyRig(t, func(inv *config.Inventory) {
		inv.Budget = config.Budget{Providers: map[string]map[string]float64{"vast": {"USD": 0.01}}}
		inv.Policies.Budget = config.BudgetPolicy{Mode: config.PolicyEnforce}
	})
	start("vast-12345678", fmt.Sprint(demo.VastDuoNode), "80", false) // busy, synced
	deadline := time.Now().Add(90 * time.Second)
	for {
		var why error
		if n := vastCallsFor(fakes, fmt.Sprint(demo.VastDuoNode)); n == 0 {
			why = fmt.Errorf("the synced Vast node was not stopped yet")
		} else if out, err := run(t, h.url, "", "audit", "--kind", "policy", "--since", "1h", "--json"); err != nil || !strings.Contains(out, "policy:budget") || !strings.Contains(out, "projected") || !strings.Contains(out, "refused") {
			why = fmt.Errorf("no audited budget decisions yet: %v\n%.3000s", err, out)
		}
		if why == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(why)
		}
		time.Sleep(time.Second)
	}
	if n := vastCallsFor(fakes, fmt.Sprint(demo.VastDuoNode)); n != 1 {
		t.Errorf("the synced Vast node: %d provider calls, want 1", n)
	}
	for _, c := range fakes.RunPod.MutatingCalls() {
		t.Errorf("RunPod touched by a Vast cap: %+v", c)
	}
}
