package nebius_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ringmesh/ringmesh/pkg/providers"
	"github.com/ringmesh/ringmesh/pkg/providers/nebius"
	"github.com/ringmesh/ringmesh/pkg/providers/nebius/nebiusfake"
)

// TestMain lets this test binary act as the fake nebius CLI: the wrapper
// script written by nebiusfake re-executes it with the state file in the
// environment.
func TestMain(m *testing.M) {
	nebiusfake.RunIfInvoked()
	os.Exit(m.Run())
}

func newFake(t *testing.T, fo nebiusfake.Options, po nebius.Options) (*nebius.Provider, *nebiusfake.Fake) {
	t.Helper()
	dir := t.TempDir()
	fake, err := nebiusfake.New(dir, fo)
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := fake.WriteWrapper(dir, exe)
	if err != nil {
		t.Fatal(err)
	}
	po.Binary = bin
	if po.ProjectID == "" {
		po.ProjectID = "project-e00fake"
	}
	if po.Timeout == 0 {
		po.Timeout = 20 * time.Second
	}
	p, err := nebius.New(po)
	if err != nil {
		t.Fatal(err)
	}
	if p.Mode() != nebius.ModeCLI {
		t.Fatalf("mode = %s", p.Mode())
	}
	return p, fake
}

func count(t *testing.T, f *nebiusfake.Fake, verb string) int {
	t.Helper()
	n, err := f.CountCalls(verb)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestLifecycle(t *testing.T) {
	p, fake := newFake(t, nebiusfake.Options{}, nebius.Options{Prices: map[string]providers.Price{"gpu-h100-sxm": {PerHour: 2.95}}})
	ctx := context.Background()
	ids, err := fake.Seed(nebiusfake.SeedInstance{Name: "nebius-h100-1"})
	if err != nil {
		t.Fatal(err)
	}
	id := ids[0]

	list, err := p.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != id || list[0].State != providers.StateRunning {
		t.Fatalf("list = %+v", list)
	}
	if list[0].Price.PerHour != 2.95 || list[0].Price.Source != "config" || list[0].GPUModel != "H100" {
		t.Errorf("instance = %+v", list[0])
	}
	if ep, ok := list[0].Endpoint(providers.EndpointDirect); !ok || ep.User != "ubuntu" || ep.Port != 22 {
		t.Errorf("endpoint = %+v", ep)
	}

	if err := p.Stop(ctx, id); err != nil {
		t.Fatal(err)
	}
	in, err := p.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if in.State != providers.StateStopped || in.Interrupted {
		t.Fatalf("after stop: %q", in.State)
	}
	if err := p.Stop(ctx, id); err != nil {
		t.Fatal(err)
	}
	if n := count(t, fake, "stop"); n != 1 {
		t.Errorf("stop invocations = %d, want 1", n)
	}

	if err := p.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	if in, _ := p.Get(ctx, id); in.State != providers.StateRunning {
		t.Fatalf("after start: %q", in.State)
	}
	if err := p.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	if n := count(t, fake, "start"); n != 1 {
		t.Errorf("start invocations = %d, want 1", n)
	}

	if err := p.Terminate(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Get(ctx, id); !errors.Is(err, providers.ErrNotFound) {
		t.Fatalf("after terminate: %v", err)
	}
	if err := p.Terminate(ctx, id); err != nil {
		t.Fatalf("second terminate: %v", err)
	}
	if n := count(t, fake, "delete"); n != 1 {
		t.Errorf("delete invocations = %d, want 1", n)
	}
	if list, err := p.List(ctx); err != nil || len(list) != 0 {
		t.Fatalf("list after terminate = %v %v", list, err)
	}
}

func TestDeleteNotFoundIsSuccess(t *testing.T) {
	// The VM vanishes between the provider's get and delete: the CLI's
	// "not found" on delete counts as terminated.
	p, fake := newFake(t, nebiusfake.Options{}, nebius.Options{})
	ids, _ := fake.Seed(nebiusfake.SeedInstance{})
	if err := fake.Inject(nebiusfake.Fault{Kind: nebiusfake.ExitError, Verb: "delete", Count: 1}); err != nil {
		t.Fatal(err)
	}
	if err := p.Terminate(context.Background(), ids[0]); providers.KindOf(err) != providers.KindTransient {
		t.Fatalf("internal error on delete: %v", err)
	}
	if err := fake.Inject(nebiusfake.Fault{Kind: nebiusfake.NotFound, Verb: "delete", Count: 1}); err != nil {
		t.Fatal(err)
	}
	if err := p.Terminate(context.Background(), ids[0]); err != nil {
		t.Fatalf("\"not found\" from delete must count as terminated: %v", err)
	}
	if n := count(t, fake, "delete"); n != 2 {
		t.Errorf("delete invocations = %d, want 2", n)
	}
	if err := p.Terminate(context.Background(), "computeinstance-e00gone"); err != nil {
		t.Fatalf("terminate of an unknown VM: %v", err)
	}
}

func TestPagination(t *testing.T) {
	p, fake := newFake(t, nebiusfake.Options{}, nebius.Options{PageSize: 2})
	var seeds []nebiusfake.SeedInstance
	for i := 0; i < 5; i++ {
		seeds = append(seeds, nebiusfake.SeedInstance{Name: fmt.Sprintf("vm%d", i)})
	}
	if _, err := fake.Seed(seeds...); err != nil {
		t.Fatal(err)
	}
	list, err := p.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 5 {
		t.Fatalf("got %d", len(list))
	}
	for i, in := range list {
		if in.Name != fmt.Sprintf("vm%d", i) {
			t.Errorf("%d = %q", i, in.Name)
		}
	}
	if n := count(t, fake, "list"); n != 3 {
		t.Errorf("list invocations = %d, want 3", n)
	}
}

func TestFaults(t *testing.T) {
	cases := []struct {
		kind nebiusfake.FaultKind
		want providers.ErrorKind
	}{
		{nebiusfake.ExitError, providers.KindTransient},
		{nebiusfake.Unavailable, providers.KindTransient},
		{nebiusfake.Garbage, providers.KindInvalid},
		{nebiusfake.Hang, providers.KindTransient},
		{nebiusfake.AuthError, providers.KindAuth},
		{nebiusfake.RateLimit, providers.KindRateLimited},
	}
	for _, c := range cases {
		t.Run(string(c.kind), func(t *testing.T) {
			// The timeout kills the hung CLI; it must also leave the
			// other calls (a re-exec of the test binary each) room on a
			// busy machine.
			p, fake := newFake(t, nebiusfake.Options{}, nebius.Options{Timeout: 10 * time.Second})
			if _, err := fake.Seed(nebiusfake.SeedInstance{}); err != nil {
				t.Fatal(err)
			}
			if err := fake.Inject(nebiusfake.Fault{Kind: c.kind, Verb: "list", Count: 1}); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			_, err := p.List(context.Background())
			if k := providers.KindOf(err); k != c.want {
				t.Fatalf("kind = %q, want %q (%v)", k, c.want, err)
			}
			if c.kind == nebiusfake.Hang {
				if !strings.Contains(err.Error(), "did not finish") {
					t.Errorf("hang error = %v", err)
				}
				if d := time.Since(start); d > time.Minute {
					t.Errorf("hung CLI was not killed in time: %v", d)
				}
			}
			if _, err := p.List(context.Background()); err != nil {
				t.Fatalf("after fault: %v", err)
			}
		})
	}
}

func TestContextCancelKillsCLI(t *testing.T) {
	p, fake := newFake(t, nebiusfake.Options{}, nebius.Options{})
	if err := fake.Inject(nebiusfake.Fault{Kind: nebiusfake.Hang, Verb: "get", Count: 1}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := p.Get(ctx, "computeinstance-e00x")
	if providers.KindOf(err) != providers.KindTransient || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
}

func TestPreemption(t *testing.T) {
	p, fake := newFake(t, nebiusfake.Options{}, nebius.Options{})
	ids, _ := fake.Seed(nebiusfake.SeedInstance{Preemptible: true, Platform: "gpu-h200-sxm"})
	if err := fake.Preempt(ids[0]); err != nil {
		t.Fatal(err)
	}
	in, err := p.Get(context.Background(), ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if in.State != providers.StatePreempted || !in.Interrupted || !nebius.IsPreemptible(in) {
		t.Fatalf("preempted VM = %+v", in)
	}
	// Stopping a preempted VM sends nothing.
	if err := p.Stop(context.Background(), ids[0]); err != nil {
		t.Fatal(err)
	}
	if n := count(t, fake, "stop"); n != 0 {
		t.Errorf("stop sent to a preempted VM")
	}
	if p.Capabilities().NoticeSeconds != 60 {
		t.Errorf("notice = %d", p.Capabilities().NoticeSeconds)
	}
}

func TestSecretsRedacted(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "nebius")
	script := "#!/bin/sh\necho \"Error: rpc error: code = Unauthenticated desc = bad token $NEBIUS_IAM_TOKEN\" >&2\nexit 1\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	const secret = "v1.SECRET-IAM-TOKEN-123"
	p, err := nebius.New(nebius.Options{Binary: bin, Env: []string{"NEBIUS_IAM_TOKEN=" + secret}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.List(context.Background())
	if providers.KindOf(err) != providers.KindAuth {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), secret) {
		t.Fatalf("secret leaked: %v", err)
	}
}

func TestStaticInventory(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // no nebius CLI on PATH
	p, err := nebius.New(nebius.Options{Static: []nebius.StaticInstance{
		{ID: "computeinstance-e00s1", Name: "nebius-h100-1", PublicIP: "203.0.113.20", GPUModel: "NVIDIA H100 80GB HBM3",
			GPUCount: 1, GPUMemGiB: 80, PerHour: 2.95, State: providers.StateRunning},
		{ID: "computeinstance-e00s2", Name: "nebius-spot", Preemptible: true},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if p.Mode() != nebius.ModeStatic || p.Capabilities().CanStop {
		t.Fatalf("mode = %s caps = %+v", p.Mode(), p.Capabilities())
	}
	list, err := p.List(context.Background())
	if err != nil || len(list) != 2 {
		t.Fatalf("list = %v %v", list, err)
	}
	a := list[0]
	if a.GPUModel != "H100" || a.Price != (providers.Price{PerHour: 2.95, Currency: "USD", Source: "config"}) ||
		a.State != providers.StateRunning || len(a.SSH) != 1 || a.SSH[0].String() != "ubuntu@203.0.113.20:22" {
		t.Errorf("static a = %+v", a)
	}
	b := list[1]
	if b.State != providers.StateUnknown || b.Price.Known() || !nebius.IsPreemptible(b) {
		t.Errorf("static b = %+v", b)
	}
	if _, err := p.Get(context.Background(), "computeinstance-e00nope"); !errors.Is(err, providers.ErrNotFound) {
		t.Errorf("get unknown: %v", err)
	}
	for name, op := range map[string]func(context.Context, string) error{"start": p.Start, "stop": p.Stop, "terminate": p.Terminate} {
		err := op(context.Background(), "computeinstance-e00s1")
		if !errors.Is(err, providers.ErrNotConfigured) || !strings.Contains(err.Error(), "read-only") {
			t.Errorf("%s in config mode: %v", name, err)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	if _, err := nebius.New(nebius.Options{Binary: "/nonexistent/nebius"}); err == nil {
		t.Error("missing explicit binary accepted")
	}
	if _, err := nebius.New(nebius.Options{Static: []nebius.StaticInstance{{Name: "x"}}}); err == nil {
		t.Error("static instance without id accepted")
	}
	if _, err := nebius.New(nebius.Options{Prices: map[string]providers.Price{"x": {PerHour: -1}}}); err == nil {
		t.Error("negative price accepted")
	}
	p, _ := newFake(t, nebiusfake.Options{}, nebius.Options{})
	for _, bad := range []string{"", "--help", "a b"} {
		if _, err := p.Get(context.Background(), bad); providers.KindOf(err) != providers.KindInvalid {
			t.Errorf("Get(%q) = %v", bad, err)
		}
	}
}
