package demo_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/pkg/config"
	"github.com/ringmesh/ringmesh/pkg/providers"
	"github.com/ringmesh/ringmesh/pkg/providers/demo"
	"github.com/ringmesh/ringmesh/pkg/providers/hetzner"
	"github.com/ringmesh/ringmesh/pkg/providers/internal/providertest"
	"github.com/ringmesh/ringmesh/pkg/providers/vast/vastfake"
)

// TestMain lets this test binary act as the fake nebius CLI (the package
// doc's recipe for any program passed as Options.NebiusCLI).
func TestMain(m *testing.M) {
	demo.RunFakeCLIIfInvoked()
	os.Exit(m.Run())
}

var allClouds = []string{"hetzner", "lambda", "nebius", "runpod", "vast", "vultr"}

// startWithCLI starts seeded fakes whose nebius CLI is this test binary.
func startWithCLI(t *testing.T, ctx context.Context, opts demo.Options) *demo.Fakes {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	opts.NebiusCLI = exe
	f, err := demo.StartFakes(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	if nc := f.NotConfigured(); len(nc) != 0 {
		t.Fatalf("not configured: %v", nc)
	}
	return f
}

func registry(t *testing.T, f *demo.Fakes) *providers.Registry {
	t.Helper()
	reg, err := f.Registry(zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

func get(t *testing.T, reg *providers.Registry, name, id string) providers.Instance {
	t.Helper()
	p, err := reg.Get(name)
	if err != nil {
		t.Fatal(err)
	}
	in, err := p.Get(context.Background(), id)
	if err != nil {
		t.Fatalf("%s %s: %v", name, id, err)
	}
	return in
}

func TestStartFakesSeedsEveryCloud(t *testing.T) {
	f := startWithCLI(t, context.Background(), demo.Options{Delay: -1})
	eps := f.Endpoints()
	for _, name := range allClouds {
		ep, ok := eps[name]
		switch {
		case !ok:
			t.Errorf("no endpoint for %s", name)
		case name == "nebius" && (ep.CLI == "" || ep.Project != demo.NebiusProject):
			t.Errorf("nebius endpoint %+v", ep)
		case name != "nebius" && (ep.BaseURL == "" || ep.APIKey == ""):
			t.Errorf("endpoint of %s missing: %+v", name, ep)
		}
	}
	reg := registry(t, f)
	if got := reg.Names(); !slices.Equal(got, allClouds) {
		t.Fatalf("names %v, want %v", got, allClouds)
	}
	wantCounts := map[string]int{"vast": 4, "runpod": 2, "lambda": 2, "vultr": 1, "hetzner": 3, "nebius": 1}
	for _, p := range reg.All() {
		list, err := p.List(context.Background())
		if err != nil {
			t.Fatalf("%s: %v", p.Name(), err)
		}
		if len(list) != wantCounts[p.Name()] {
			t.Errorf("%s: %d instances, want %d", p.Name(), len(list), wantCounts[p.Name()])
		}
		for _, in := range list {
			cpuOnly := p.Name() == "hetzner"
			if in.Provider != p.Name() || in.Name == "" || !in.Price.Known() || len(in.SSH) == 0 ||
				(in.GPUModel == "") != cpuOnly {
				t.Errorf("%s: seeded instance incomplete: %+v", p.Name(), in)
			}
		}
	}

	// Seed facts.
	seed := get(t, reg, "vast", strconv.FormatInt(demo.VastSeedNode, 10))
	if p, _ := seed.Endpoint(providers.EndpointProxy); p.String() != "root@ssh6.vast.ai:19528" {
		t.Errorf("seed node proxy = %v", p)
	}
	duo := get(t, reg, "vast", strconv.FormatInt(demo.VastDuoNode, 10))
	if p, _ := duo.Endpoint(providers.EndpointProxy); p.String() != "root@ssh0.vast.ai:12345" || duo.GPUModel != "RTX 4090" || duo.GPUCount != 2 {
		t.Errorf("vast-12345678 = %+v", duo)
	}
	if bid := get(t, reg, "vast", strconv.FormatInt(demo.VastBidNode, 10)); !bid.Interruptible || bid.State != providers.StateRunning {
		t.Errorf("bid node %+v", bid)
	}
	if st := get(t, reg, "vast", strconv.FormatInt(demo.VastStopped, 10)); st.State != providers.StateStopped {
		t.Errorf("stopped node %+v", st)
	}
	if pod := get(t, reg, "runpod", demo.RunPodSeedPod); pod.Name != "runpod-a100-1" || pod.GPUModel != "A100" || pod.State != providers.StateRunning {
		t.Errorf("runpod seed pod %+v", pod)
	}
	if v := get(t, reg, "vultr", demo.VultrA100); v.Name != "vultr-a100-20gb" || v.GPUModel != "A100" || v.GPUMemGiB != 20 ||
		v.State != providers.StateRunning || v.PublicIP != "192.0.2.30" {
		t.Errorf("vultr A100 %+v", v)
	}
	if n := get(t, reg, "nebius", demo.NebiusH100); n.Name != "nebius-h100-1" || n.GPUModel != "H100" || n.GPUCount != 1 ||
		n.State != providers.StateRunning || n.Price.PerHour != demo.NebiusH100PerHour || n.PublicIP != "203.0.113.90" {
		t.Errorf("nebius H100 %+v", n)
	}
	hz, _ := reg.Get("hetzner")
	for i, id := range []int64{demo.HetznerVoter1, demo.HetznerVoter2, demo.HetznerVoter3} {
		in := get(t, reg, "hetzner", strconv.FormatInt(id, 10))
		if want := fmt.Sprintf("hetzner-cpu%d", i+1); in.Name != want || in.State != providers.StateRunning {
			t.Errorf("voter %d = %+v, want name %s, running", id, in, want)
		}
		// The voters are guarded: automation cannot stop them.
		if err := hz.Stop(context.Background(), strconv.FormatInt(id, 10)); !errors.Is(err, hetzner.ErrProtected) {
			t.Errorf("stop voter %d: %v, want ErrProtected", id, err)
		}
	}

	// More instances can be seeded through the fake's own API.
	vast, _ := reg.Get("vast")
	id := f.Vast.Add(vastfake.SeedInstance(0, "extra"))
	if _, err := vast.Get(context.Background(), strconv.FormatInt(id, 10)); err != nil {
		t.Errorf("added instance: %v", err)
	}
}

func TestDemoInventoryMatchesSeeds(t *testing.T) {
	inv, err := config.Parse("demo.DemoInventory", []byte(demo.DemoInventory))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range inv.Warnings {
		t.Errorf("warning: %s", w)
	}
	if want := []string{"hetzner-cpu1", "hetzner-cpu2", "hetzner-cpu3"}; !slices.Equal(inv.Voters, want) {
		t.Errorf("voters %v, want %v", inv.Voters, want)
	}
	if !inv.ProviderRetired("lambda") || inv.Providers["nebius"].Project != demo.NebiusProject {
		t.Errorf("providers: %+v", inv.Providers)
	}

	f := startWithCLI(t, context.Background(), demo.Options{Delay: -1})
	reg := registry(t, f)
	seeded := map[string]bool{} // provider/id of every seeded instance
	for _, p := range reg.All() {
		list, err := p.List(context.Background())
		if err != nil {
			t.Fatalf("%s: %v", p.Name(), err)
		}
		for _, in := range list {
			seeded[p.Name()+"/"+in.ID] = true
		}
	}
	for _, name := range inv.Names() {
		h := inv.Hosts[name]
		id := h.InstanceID()
		if id == "" {
			t.Errorf("host %s has no %s instance ID", name, h.Provider)
			continue
		}
		delete(seeded, h.Provider+"/"+id)
		p, err := reg.Get(h.Provider)
		if err != nil {
			t.Errorf("host %s: %v", name, err)
			continue
		}
		in, err := p.Get(context.Background(), id)
		if err != nil {
			t.Errorf("host %s: no seeded instance: %v", name, err)
			continue
		}
		if in.Name != name {
			t.Errorf("host %s: instance %s is named %q", name, id, in.Name)
		}
		host, port, user := h.SSHEndpoint()
		want := providers.SSHEndpoint{Host: host, Port: port, User: user}.String()
		var have []string
		for _, e := range in.SSH {
			have = append(have, e.String())
		}
		if !slices.Contains(have, want) {
			t.Errorf("host %s: inventory SSH %s is none of the instance's %v", name, want, have)
		}
		if h.Ephemeral() != (in.Interruptible || h.Provider == "vast") {
			t.Errorf("host %s: ephemeral %v, instance interruptible %v", name, h.Ephemeral(), in.Interruptible)
		}
	}
	for k := range seeded {
		t.Errorf("seeded instance %s is not in DemoInventory", k)
	}
}

func TestNebiusNotConfiguredWithoutCLI(t *testing.T) {
	f, err := demo.StartFakes(context.Background(), demo.Options{Delay: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ps, err := f.Providers(zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 5 {
		t.Errorf("%d providers, want 5 (no nebius)", len(ps))
	}
	if _, ok := f.Endpoints()["nebius"]; ok {
		t.Error("nebius endpoint without a CLI")
	}
	reg := registry(t, f)
	if got := reg.Names(); !slices.Equal(got, allClouds) {
		t.Errorf("names %v", got)
	}
	configured, _, reason := reg.Status("nebius")
	if configured || !strings.Contains(reason, "NebiusCLI") {
		t.Errorf("nebius status: configured %v, reason %q", configured, reason)
	}
	if _, err := reg.Get("nebius"); !errors.Is(err, providers.ErrNotConfigured) {
		t.Errorf("Get(nebius) = %v", err)
	}
	// The fake's state is there all the same.
	if _, ok, err := f.Nebius.Instance(demo.NebiusH100); !ok || err != nil {
		t.Errorf("nebius seed: %v %v", ok, err)
	}
}

func TestNebiusCLIThatIsNotTheFake(t *testing.T) {
	bin, err := exec.LookPath("true")
	if err != nil {
		t.Skip("exec.LookPath: no true(1) on PATH")
	}
	f, err := demo.StartFakes(context.Background(), demo.Options{Delay: -1, Empty: true, NebiusCLI: bin})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	why := f.NotConfigured()["nebius"]
	if !errors.Is(why, providers.ErrNotConfigured) || !strings.Contains(why.Error(), "RunFakeCLIIfInvoked") {
		t.Errorf("reason = %v", why)
	}
}

func TestStartFakesEmptyAndStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	f := startWithCLI(t, ctx, demo.Options{Empty: true})
	ps, err := f.Providers(zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 6 {
		t.Errorf("%d providers, want 6", len(ps))
	}
	for _, p := range ps {
		if list, err := p.List(context.Background()); err != nil || len(list) != 0 {
			t.Errorf("%s: %v %v", p.Name(), list, err)
		}
	}
	url := f.Endpoints()["vast"].BaseURL
	nebiusDir := filepath.Dir(f.Nebius.StatePath())
	cancel()
	providertest.Eventually(t, 5*time.Second, func() (bool, string) {
		resp, err := http.Get(url + "/api/v0/instances/")
		if err != nil {
			return true, ""
		}
		resp.Body.Close()
		return false, "vast fake still answering after ctx was cancelled"
	})
	providertest.Eventually(t, 5*time.Second, func() (bool, string) {
		_, err := os.Stat(nebiusDir)
		return errors.Is(err, os.ErrNotExist), fmt.Sprintf("nebius state dir %s still there: %v", nebiusDir, err)
	})
	f.Close() // idempotent
}

// The five HTTP fakes share one fault/call harness: the same fault value,
// injected through one interface, makes every cloud's list fail the same
// way, and the call log of each shows the calls.
func TestHTTPFakesShareOneHarness(t *testing.T) {
	ctx := context.Background()
	f, err := demo.StartFakes(ctx, demo.Options{Delay: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	list, err := f.Providers(zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]providers.Provider{}
	for _, p := range list {
		byName[p.Name()] = p
	}
	fakes := f.HTTPFakes()
	if len(fakes) != 5 {
		t.Fatalf("%d HTTP fakes, want 5", len(fakes))
	}
	for _, nf := range fakes {
		p := byName[nf.Name]
		if p == nil {
			t.Fatalf("no provider for fake %s", nf.Name)
		}
		nf.ResetCalls()
		nf.Inject(demo.Fault{Kind: "auth_error", Count: -1})
		if _, err := p.List(ctx); providers.KindOf(err) != providers.KindAuth {
			t.Errorf("%s: list with an auth_error fault: %v", nf.Name, err)
		}
		nf.ClearFaults()
		if _, err := p.List(ctx); err != nil {
			t.Errorf("%s: list after ClearFaults: %v", nf.Name, err)
		}
		calls := nf.Calls()
		if len(calls) < 2 || calls[0].Fault != "auth_error" || calls[len(calls)-1].Fault != "" {
			t.Errorf("%s: call log %+v", nf.Name, calls)
		}
		if n := len(nf.MutatingCalls()); n != 0 {
			t.Errorf("%s: %d mutating calls from two lists", nf.Name, n)
		}
	}
}
