package providers_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/ringmesh/ringmesh/pkg/providers"
)

func TestRegistryGetRegistered(t *testing.T) {
	var r providers.Registry // zero value is usable
	v := newScripted("vast")
	r.Register(v)
	got, err := r.Get("vast")
	if err != nil || got != v {
		t.Fatalf("Get = %v, %v", got, err)
	}
}

func TestRegistryGetUnknownName(t *testing.T) {
	r := providers.NewRegistry()
	_, err := r.Get("aws")
	if !errors.Is(err, providers.ErrUnknownName) || !strings.Contains(err.Error(), `"aws"`) {
		t.Fatalf("err = %v, want ErrUnknownName naming aws", err)
	}
}

func TestRegistryUnconfiguredIsAStateNotACrash(t *testing.T) {
	r := providers.NewRegistry()
	t.Setenv("RINGMESH_TEST_NO_KEY", "")
	_, credErr := providers.ResolveCredential("runpod", providers.CredentialSource{Env: "RINGMESH_TEST_NO_KEY", File: filepath.Join(t.TempDir(), "none")})
	if credErr == nil {
		t.Fatal("expected a credential error")
	}
	r.RegisterUnconfigured("runpod", credErr)
	r.RegisterUnconfigured("nebius", errors.New("no gRPC client available"))

	_, err := r.Get("runpod")
	if !errors.Is(err, providers.ErrNotConfigured) || !strings.Contains(err.Error(), "RINGMESH_TEST_NO_KEY") {
		t.Errorf("Get(runpod) = %v; want ErrNotConfigured with the reason", err)
	}
	_, err = r.Get("nebius")
	if !errors.Is(err, providers.ErrNotConfigured) || !strings.Contains(err.Error(), "no gRPC client") {
		t.Errorf("Get(nebius) = %v; want ErrNotConfigured with the reason", err)
	}
	configured, retired, reason := r.Status("nebius")
	if configured || retired || !strings.Contains(reason, "no gRPC client") {
		t.Errorf("Status(nebius) = %v %v %q", configured, retired, reason)
	}
	if len(r.All()) != 0 {
		t.Errorf("All() must hold configured providers only, got %d", len(r.All()))
	}
}

func TestRegistryNamesAllStatus(t *testing.T) {
	r := providers.NewRegistry()
	r.Register(newScripted("vast"))
	r.Register(providers.Retire(newScripted("lambda")))
	r.RegisterUnconfigured("hetzner", nil)
	r.Register(newScripted("runpod"))

	if got, want := r.Names(), []string{"hetzner", "lambda", "runpod", "vast"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Names() = %v, want %v", got, want)
	}
	var all []string
	for _, p := range r.All() {
		all = append(all, p.Name())
	}
	if want := []string{"lambda", "runpod", "vast"}; !reflect.DeepEqual(all, want) {
		t.Errorf("All() = %v, want %v", all, want)
	}
	check := func(name string, wc, wr bool, wreason string) {
		t.Helper()
		c, rt, reason := r.Status(name)
		if c != wc || rt != wr || !strings.Contains(reason, wreason) {
			t.Errorf("Status(%s) = %v %v %q; want %v %v ~%q", name, c, rt, reason, wc, wr, wreason)
		}
	}
	check("vast", true, false, "")
	check("lambda", true, true, "marked retired in config")
	check("hetzner", false, false, "not configured")
	check("aws", false, false, "unknown provider")

	// Re-registering replaces: hetzner becomes configured.
	r.Register(newScripted("hetzner"))
	check("hetzner", true, false, "")
}

func TestRegistryRejectsNil(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Register(nil) must panic (wiring bug)")
		}
	}()
	providers.NewRegistry().Register(nil)
}

func TestRegistryConcurrentUse(t *testing.T) {
	r := providers.NewRegistry()
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			name := fmt.Sprintf("p%d", i%4)
			for j := 0; j < 200; j++ {
				if j%2 == 0 {
					r.Register(newScripted(name))
				} else {
					r.RegisterUnconfigured(name, errors.New("flip"))
				}
				_, _ = r.Get(name)
				_ = r.Names()
				_ = r.All()
				r.Status(name)
			}
		}(i)
	}
	wg.Wait()
	if got := len(r.Names()); got != 4 {
		t.Errorf("Names() has %d entries, want 4", got)
	}
}

func TestRetiredRefusesMutationsPassesReads(t *testing.T) {
	inner := newScripted("lambda")
	p := providers.Retire(inner)
	ctx := context.Background()
	if p.Name() != "lambda" || p.Capabilities() != inner.Capabilities() {
		t.Error("Name/Capabilities must pass through")
	}
	if _, err := p.List(ctx); err != nil || inner.count(providers.OpList) != 1 {
		t.Errorf("List: %v (calls %d)", err, inner.count(providers.OpList))
	}
	if _, err := p.Get(ctx, "x"); err != nil || inner.count(providers.OpGet) != 1 {
		t.Errorf("Get: %v", err)
	}
	for op, call := range map[string]func() error{
		"start":     func() error { return p.Start(ctx, "x") },
		"stop":      func() error { return p.Stop(ctx, "x") },
		"terminate": func() error { return p.Terminate(ctx, "x") },
	} {
		err := call()
		if !errors.Is(err, providers.ErrRetired) {
			t.Errorf("%s: err = %v, want ErrRetired", op, err)
			continue
		}
		if want := "lambda is retired (marked retired in config): " + op + " refused"; err.Error() != want {
			t.Errorf("%s: message %q, want %q", op, err.Error(), want)
		}
		if inner.count(op) != 0 {
			t.Errorf("%s reached the cloud", op)
		}
	}
	if !providers.IsRetired(p) || providers.IsRetired(inner) {
		t.Error("IsRetired wrong")
	}
	if why, _ := providers.RetiredReason(providers.RetireWithReason(inner, "account closed")); why != "account closed" {
		t.Errorf("reason = %q", why)
	}
}
