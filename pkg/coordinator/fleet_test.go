package coordinator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ringmesh/ringmesh/internal/testutil"
	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/config"
	"github.com/ringmesh/ringmesh/pkg/coordinator"
	"github.com/ringmesh/ringmesh/pkg/cost"
	"github.com/ringmesh/ringmesh/pkg/fleet"
	"github.com/ringmesh/ringmesh/pkg/meshctl"
	"github.com/ringmesh/ringmesh/pkg/providers"
	"github.com/ringmesh/ringmesh/pkg/providers/demo"
	"github.com/ringmesh/ringmesh/pkg/registry"
)

// startFleet runs a coordinator whose providers are the demo fakes of every cloud.
func startFleet(t testing.TB) (*harness, *demo.Fakes, *config.Inventory) {
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
	h := startCoordinator(t, coordinator.Config{Inventory: inv, Fleet: rec, ReconcileInterval: 300 * time.Millisecond, Cost: tracker})
	return h, fakes, inv
}

func run(t testing.TB, url string, stdin string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	root := meshctl.NewRoot(&out, &out)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(meshctlArgs(t, url, append(args, "--nats-url", url)...))
	err := root.Execute()
	return out.String(), err
}

func TestFleetInstancesStatusSSHConfigAndActions(t *testing.T) {
	h, fakes, _ := startFleet(t)
	vastRoot := t.TempDir()
	startAgent(t, []string{h.url}, fakeNode{id: "vast-29129529", provider: "vast", instance: "29129529", root: vastRoot}, "")

	var rep fleet.Report
	testutil.Eventually(t, 15*time.Second, func() error {
		out, err := run(t, h.url, "", "instances", "--json")
		if err != nil {
			return err
		}
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			return err
		}
		ok := 0
		for _, p := range rep.Providers {
			if p.State == "ok" {
				ok++
			}
		}
		if ok < len(rep.Providers) || len(rep.Providers) == 0 {
			return fmt.Errorf("providers not all reconciled: %+v", rep.Providers)
		}
		return nil
	})
	// meshctl instances and meshctl status agree: every instance linked to a
	// node shows that node in status with the same provider and instance ID.
	st := status(t, h.url)
	linked := 0
	for _, iv := range rep.Instances {
		if iv.Node == "" {
			continue
		}
		linked++
		rec, ok := nodeIn(st, iv.Node)
		if !ok {
			t.Errorf("instance %s/%s linked to %s, which status does not list", iv.Provider, iv.ID, iv.Node)
			continue
		}
		if rec.Provider != iv.Provider || rec.InstanceID != iv.ID {
			t.Errorf("%s: status says %s/%s, instances says %s/%s", iv.Node, rec.Provider, rec.InstanceID, iv.Provider, iv.ID)
		}
	}
	providersSeen := map[string]bool{}
	for _, iv := range rep.Instances {
		providersSeen[iv.Provider] = true
	}
	if linked < len(providersSeen) {
		t.Errorf("only %d linked instances over %d providers", linked, len(providersSeen))
	}
	out, err := run(t, h.url, "", "instances")
	if err != nil || !strings.Contains(out, "vast-29129529") || !strings.Contains(out, "ssh6.vast.ai:19528") {
		t.Fatalf("meshctl instances: %v\n%s", err, out)
	}

	// The seed README's SSH config of vast-29129529.
	out, err = run(t, h.url, "", "ssh-config")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "Host vast-29129529\n  HostName ssh6.vast.ai\n  Port 19528\n  User root\n") {
		t.Fatalf("ssh-config for vast-29129529:\n%s", out)
	}
	// The endpoint moves after a restart of the instance: the next reconcile shows it.
	proxyPort, _, err := fakes.Vast.ChangeSSHPort(demo.VastSeedNode)
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		out, err := run(t, h.url, "", "ssh-config")
		if err != nil {
			return err
		}
		if !strings.Contains(out, fmt.Sprintf("Host vast-29129529\n  HostName ssh6.vast.ai\n  Port %d\n", proxyPort)) {
			return fmt.Errorf("new port %d not in:\n%s", proxyPort, out)
		}
		return nil
	})
	out, _ = run(t, h.url, "", "ssh", "vast-29129529", "--print")
	if !strings.Contains(out, fmt.Sprintf("-p %d", proxyPort)) || !strings.Contains(out, "root@ssh6.vast.ai") {
		t.Errorf("meshctl ssh --print: %s", out)
	}

	// Paths.
	out, err = run(t, h.url, "", "paths", "runpod-a100-1")
	if err != nil || !strings.Contains(out, "/workspace/ringrift/ai-service") {
		t.Errorf("paths runpod: %v\n%s", err, out)
	}

	// A retired provider refuses a terminate with a clear message.
	_, err = run(t, h.url, "", "terminate", "lambda-gh200-1", "--yes", "--force")
	if err == nil || !strings.Contains(err.Error(), "retired") {
		t.Fatalf("terminate on retired lambda: %v", err)
	}
	// Safe-to-terminate: the vast node has not reported an RPO.
	_, err = run(t, h.url, "", "terminate", "vast-29129529", "--yes")
	if err == nil || !strings.Contains(err.Error(), "not safe to terminate") {
		t.Fatalf("terminate without RPO: %v", err)
	}
	// Voters are protected.
	_, err = run(t, h.url, "", "stop", "hetzner-cpu1", "--yes")
	if err == nil || !strings.Contains(err.Error(), "voter") {
		t.Fatalf("stop voter: %v", err)
	}
	// Confirmation is required without --yes.
	_, err = run(t, h.url, "nope\n", "stop", "vast-29129529", "--force")
	if err == nil || !strings.Contains(err.Error(), "not confirmed") {
		t.Fatalf("unconfirmed stop: %v", err)
	}
	// A dry run changes nothing at the provider.
	before := len(fakes.Vast.MutatingCalls())
	out, err = run(t, h.url, "", "terminate", "vast-29129529", "--dry-run", "--force")
	if err != nil || !strings.Contains(out, "dry run") {
		t.Fatalf("dry run: %v %s", err, out)
	}
	if after := len(fakes.Vast.MutatingCalls()); after != before {
		t.Fatalf("dry run made %d mutating calls", after-before)
	}
	// A forced stop is applied exactly once.
	out, err = run(t, h.url, "vast-29129529\n", "stop", "vast-29129529", "--force", "--reason", "test")
	if err != nil || !strings.Contains(out, "done") {
		t.Fatalf("stop: %v %s", err, out)
	}
	if after := len(fakes.Vast.MutatingCalls()); after != before+1 {
		t.Fatalf("stop made %d mutating calls, want 1", after-before)
	}
	// Cost: prices are known per instance and grouped per currency.
	var c api.Cost
	testutil.Eventually(t, 10*time.Second, func() error {
		out, err := run(t, h.url, "", "cost", "--json")
		if err != nil {
			return err
		}
		if err := json.Unmarshal([]byte(out), &c); err != nil {
			return err
		}
		if c.BurnRate["USD"] <= 0 || len(c.Current) == 0 {
			return fmt.Errorf("cost: %+v", c.BurnRate)
		}
		return nil
	})
	if out, err := run(t, h.url, "", "cost"); err != nil || !strings.Contains(out, "burn rate") {
		t.Errorf("meshctl cost: %v\n%s", err, out)
	}
}

// Shell completion of a NODE argument (`meshctl __complete`, what the
// bash/zsh scripts of `meshctl completion` call) offers the coordinator's
// node IDs with the typed prefix, and no file names.
func TestCompletionOffersNodeIDs(t *testing.T) {
	h, _, _ := startFleet(t)
	complete := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		root := meshctl.NewRoot(&out, &out)
		// Flags first: cobra completes the last argument.
		root.SetArgs(append(append([]string{"__complete", "--nats-url", h.url}, testutil.Lookup(h.url).MeshctlArgs(t)...), args...))
		if err := root.Execute(); err != nil {
			t.Fatalf("__complete %v: %v\n%s", args, err, out.String())
		}
		return out.String()
	}
	out := complete("sync", "vast-2912")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 4 || lines[0] != "vast-29129529" || lines[1] != "vast-29129530" || lines[2] != "vast-29129531" || lines[3] != ":4" {
		t.Fatalf("completion of sync vast-2912:\n%s", out)
	}
	if out := complete("ssh", "hetzner-"); !strings.Contains(out, "hetzner-cpu1\n") || strings.Contains(out, "vast-") {
		t.Fatalf("completion of ssh hetzner-:\n%s", out)
	}
}

// `meshctl status NODE` shows one node's detail: state and cause, trust,
// agent, its GPUs from the last health sample, RPO; --json gives only
// that node's record; an unknown node is an error naming it.
func TestMeshctlStatusNodeDetail(t *testing.T) {
	h, _, _ := startFleet(t)
	startAgent(t, []string{h.url}, fakeNode{id: "vast-29129529", provider: "vast", instance: "29129529", root: t.TempDir(), smi: "h100x1.csv"}, "")
	var out string
	testutil.Eventually(t, 30*time.Second, func() error {
		var err error
		out, err = run(t, h.url, "", "status", "vast-29129529")
		if err != nil || !strings.HasPrefix(out, "vast-29129529  healthy") || !strings.Contains(out, "H100") {
			return fmt.Errorf("status vast-29129529: %v\n%s", err, out)
		}
		return nil
	})
	t.Logf("meshctl status vast-29129529:\n%s", out)
	for _, want := range []string{"trust", "configured (inventory)", "instance 29129529", "at risk (RPO)", "GPU  NAME", "UTIL"} {
		if !strings.Contains(out, want) {
			t.Errorf("node detail lacks %q:\n%s", want, out)
		}
	}
	js, err := run(t, h.url, "", "status", "vast-29129529", "--json")
	var recs []registry.Record
	if err != nil || json.Unmarshal([]byte(js), &recs) != nil || len(recs) != 1 || recs[0].Node != "vast-29129529" {
		t.Fatalf("status NODE --json: %v\n%s", err, js)
	}
	if out, err := run(t, h.url, "", "status", "vast-29129529", "nope-1"); err == nil || !strings.Contains(err.Error(), "not known to the coordinator: nope-1") {
		t.Fatalf("unknown node: %v\n%s", err, out)
	}
	if _, err := run(t, h.url, "", "status", "vast-29129529", "--watch"); err == nil {
		t.Fatal("status NODE --watch accepted")
	}
}
