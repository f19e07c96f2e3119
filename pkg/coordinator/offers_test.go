package coordinator_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/providers/lambda/lambdafake"
)

// TestMeshctlOffersAcrossCloudsWithOneTimingOut: meshctl offers through the
// coordinator API merges every cloud's offers; Lambda hangs, so the table
// names it missing (timed out) and the other clouds still show, ranked.
func TestMeshctlOffersAcrossCloudsWithOneTimingOut(t *testing.T) {
	h, fakes, _ := startFleet(t)
	fakes.Lambda.Inject(lambdafake.Fault{Kind: lambdafake.Timeout, Path: "/instance-types", Count: -1})

	out, err := run(t, h.url, "", "offers", "--cloud-timeout", "5s", "--timeout", "1s") // --timeout grows to cover the clouds
	if err != nil {
		t.Fatalf("meshctl offers: %v\n%s", err, out)
	}
	for _, want := range []string{"missing: lambda: timed out", "vast ", "runpod ", "vultr ", "vcg-a100-1c-6g-4vram", "vast:min_bid"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "gpu_8x_h100_sxm5") {
		t.Errorf("offers of the timed-out cloud shown:\n%s", out)
	}

	out, err = run(t, h.url, "", "offers", "--json", "--gpu", "RTX 4090", "--max-price", "0.40", "--cloud-timeout", "5s", "--timeout", "20s")
	if err != nil {
		t.Fatalf("meshctl offers --json: %v\n%s", err, out)
	}
	var res api.Offers
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(res.Offers) == 0 || res.Total != len(res.Offers) {
		t.Fatalf("offers = %+v", res)
	}
	for i, o := range res.Offers {
		if o.GPUModel != "RTX 4090" || o.PerGPUHour == nil || *o.PerGPUHour > 0.40 || o.RankCurrency != "USD" {
			t.Errorf("offers[%d] = %+v breaks --gpu/--max-price", i, o)
		}
		if i > 0 && *o.PerGPUHour < *res.Offers[i-1].PerGPUHour {
			t.Errorf("offers[%d] not ranked by price per GPU-hour", i)
		}
	}
	missingLambda := false
	for _, m := range res.Missing {
		missingLambda = missingLambda || m.Provider == "lambda"
	}
	if !missingLambda {
		t.Errorf("missing = %+v, want lambda", res.Missing)
	}

	if out, err := run(t, h.url, "", "offers", "--gpu", "RTX 4090\n; rm"); err == nil {
		t.Errorf("a --gpu with a newline was accepted:\n%s", out)
	}
}
