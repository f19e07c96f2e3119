package demo_test

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/pkg/providers"
	"github.com/ringmesh/ringmesh/pkg/providers/demo"
	"github.com/ringmesh/ringmesh/pkg/providers/internal/providertest"
	"github.com/ringmesh/ringmesh/pkg/providers/vast/vastfake"
)

func TestStartFakesSeedsEveryCloud(t *testing.T) {
	f, err := demo.StartFakes(context.Background(), demo.Options{Delay: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	eps := f.Endpoints()
	for _, name := range []string{"vast", "runpod", "lambda"} {
		if eps[name].BaseURL == "" || eps[name].APIKey == "" {
			t.Errorf("endpoint of %s missing: %+v", name, eps[name])
		}
	}
	ps, err := f.Providers(zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	reg := providers.NewRegistry()
	for _, p := range ps {
		reg.Register(p)
	}
	if got := reg.Names(); len(got) != 3 {
		t.Fatalf("names %v", got)
	}
	wantCounts := map[string]int{"vast": 3, "runpod": 2, "lambda": 2}
	for _, p := range reg.All() {
		list, err := p.List(context.Background())
		if err != nil {
			t.Fatalf("%s: %v", p.Name(), err)
		}
		if len(list) != wantCounts[p.Name()] {
			t.Errorf("%s: %d instances, want %d", p.Name(), len(list), wantCounts[p.Name()])
		}
		for _, in := range list {
			if in.Provider != p.Name() || !in.Price.Known() || in.GPUModel == "" {
				t.Errorf("%s: seeded instance incomplete: %+v", p.Name(), in)
			}
		}
	}
	vast, _ := reg.Get("vast")
	seed, err := vast.Get(context.Background(), strconv.FormatInt(demo.VastSeedNode, 10))
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := seed.Endpoint(providers.EndpointProxy); p.String() != "root@ssh6.vast.ai:19528" {
		t.Errorf("seed node proxy = %v", p)
	}
	bid, _ := vast.Get(context.Background(), strconv.FormatInt(demo.VastBidNode, 10))
	if !bid.Interruptible || bid.State != providers.StateRunning {
		t.Errorf("bid node %+v", bid)
	}

	// More instances can be seeded through the fake's own API.
	id := f.Vast.Add(vastfake.SeedInstance(0, "extra"))
	if _, err := vast.Get(context.Background(), strconv.FormatInt(id, 10)); err != nil {
		t.Errorf("added instance: %v", err)
	}
}

func TestStartFakesEmptyAndStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	f, err := demo.StartFakes(ctx, demo.Options{Empty: true})
	if err != nil {
		t.Fatal(err)
	}
	ps, err := f.Providers(zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if list, err := p.List(context.Background()); err != nil || len(list) != 0 {
			t.Errorf("%s: %v %v", p.Name(), list, err)
		}
	}
	url := f.Endpoints()["vast"].BaseURL
	cancel()
	providertest.Eventually(t, 5*time.Second, func() (bool, string) {
		resp, err := http.Get(url + "/api/v0/instances/")
		if err != nil {
			return true, ""
		}
		resp.Body.Close()
		return false, "vast fake still answering after ctx was cancelled"
	})
	f.Close() // idempotent
}
