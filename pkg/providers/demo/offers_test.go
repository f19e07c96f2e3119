package demo_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/pkg/providers"
	"github.com/ringmesh/ringmesh/pkg/providers/demo"
	"github.com/ringmesh/ringmesh/pkg/providers/lambda/lambdafake"
	"github.com/ringmesh/ringmesh/pkg/providers/runpod/runpodfake"
	"github.com/ringmesh/ringmesh/pkg/providers/vast/vastfake"
)

func offersOf(t *testing.T, f *demo.Fakes, flt providers.OfferFilter, timeout time.Duration) ([]providers.Offer, []providers.MissingCloud) {
	t.Helper()
	ps, err := f.Providers(zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	offers, missing := providers.CollectOffers(context.Background(), ps, flt, timeout)
	ranked, _ := providers.RankOffers(offers, flt, 0)
	return ranked, missing
}

func find(offers []providers.Offer, provider, id string) (providers.Offer, bool) {
	for _, o := range offers {
		if o.Provider == provider && o.ID == id {
			return o, true
		}
	}
	return providers.Offer{}, false
}

// TestOffersMergeAndRankAcrossClouds: every cloud with an offers API shows
// in one list ranked by USD per GPU-hour; nebius (its demo project lists no
// platforms, so its offers call fails) is listed
// missing; a rented Vast ask and a Lambda type without capacity are not
// offered; Hetzner's CPU-only types appear only when asked for.
func TestOffersMergeAndRankAcrossClouds(t *testing.T) {
	f := startWithCLI(t, context.Background(), demo.Options{Delay: -1})
	offers, missing := offersOf(t, f, providers.OfferFilter{}, 20*time.Second)
	seen := map[string]int{}
	for i, o := range offers {
		seen[o.Provider]++
		if i > 0 && offers[i-1].PerGPUHour != nil && o.PerGPUHour != nil && *o.PerGPUHour < *offers[i-1].PerGPUHour {
			t.Fatalf("offers[%d] %s/%s at %v ranks after a dearer one %v", i, o.Provider, o.ID, *o.PerGPUHour, *offers[i-1].PerGPUHour)
		}
	}
	for _, p := range []string{"vast", "runpod", "lambda", "vultr"} {
		if seen[p] == 0 {
			t.Errorf("no offers from %s: %v", p, seen)
		}
	}
	if seen["hetzner"] != 0 {
		t.Errorf("hetzner CPU offers shown without IncludeCPU")
	}
	if len(missing) != 1 || missing[0].Provider != "nebius" {
		t.Errorf("missing = %+v, want only nebius", missing)
	}
	if first := offers[0]; first.Provider != "vultr" || first.ID != "vcg-a100-1c-6g-4vram" || *first.PerGPUHour != 0.123 {
		t.Errorf("cheapest = %s/%s %v, want vultr vcg-a100-1c-6g-4vram at 0.123", first.Provider, first.ID, first.PerGPUHour)
	}
	if _, ok := find(offers, "vast", "7004"); ok {
		t.Error("a rented Vast ask is offered")
	}
	if _, ok := find(offers, "lambda", "gpu_1x_a10"); ok {
		t.Error("a Lambda type with no region with capacity is offered")
	}
	l8, ok := find(offers, "lambda", "gpu_8x_h100_sxm5")
	if !ok || *l8.GPUCount != 8 || *l8.PerGPUHour != 23.92/8 || l8.Region != "us-east-1" || l8.Price.Source != "lambda:price_cents_per_hour" {
		t.Errorf("lambda 8x H100 = %+v", l8)
	}
	bid, ok := find(offers, "vast", "7001")
	if !ok {
		t.Fatal("vast 7001 missing")
	}
	var vastOD, vastBid bool
	for _, o := range offers {
		if o.Provider == "vast" && o.ID == "7001" {
			vastOD = vastOD || (!o.Interruptible && o.Price.PerHour == 0.35 && o.Price.Source == "vast:dph_total")
			vastBid = vastBid || (o.Interruptible && o.Price.PerHour == 0.20 && o.Price.Source == "vast:min_bid")
		}
	}
	if !vastOD || !vastBid || bid.Verified == nil || !*bid.Verified || *bid.Reliability != 0.995 || *bid.GPUMemGiB < 23.9 {
		t.Errorf("vast 7001 on-demand %v bid %v: %+v", vastOD, vastBid, bid)
	}

	withCPU, _ := offersOf(t, f, providers.OfferFilter{IncludeCPU: true}, 20*time.Second)
	h, ok := find(withCPU, "hetzner", "ccx33")
	if !ok || h.Price.Currency != "EUR" || h.PerGPUHour != nil || *h.GPUCount != 0 {
		t.Errorf("hetzner ccx33 with IncludeCPU = %+v (found %v)", h, ok)
	}
}

// TestOffersUnknownStaysUnknown: a Vast ask without gpu_ram, reliability
// and min_bid keeps them nil (JSON null), is not matched by bounds on
// them, and has no interruptible offer priced at 0.
func TestOffersUnknownStaysUnknown(t *testing.T) {
	f := startWithCLI(t, context.Background(), demo.Options{Delay: -1})
	offers, _ := offersOf(t, f, providers.OfferFilter{GPUModel: "H100"}, 20*time.Second)
	var od, bid *providers.Offer
	for i, o := range offers {
		if o.Provider == "vast" && o.ID == "7003" {
			if o.Interruptible {
				bid = &offers[i]
			} else {
				od = &offers[i]
			}
		}
	}
	if od == nil || od.GPUMemGiB != nil || od.Reliability != nil || od.CPUs != nil {
		t.Fatalf("vast 7003 on-demand = %+v, want unknown memory, reliability and CPUs", od)
	}
	b, _ := json.Marshal(od)
	if !strings.Contains(string(b), `"gpu_mem_gib":null`) || !strings.Contains(string(b), `"cpus":null`) {
		t.Errorf("unknown fields not null in JSON: %s", b)
	}
	if bid == nil || bid.Price.Known() || bid.PerGPUHour != nil {
		t.Errorf("vast 7003 bid = %+v, want unknown price (no min_bid)", bid)
	}
	if offers[len(offers)-1].PerGPUHour != nil {
		t.Errorf("unknown price does not rank last: %+v", offers[len(offers)-1])
	}
	for _, flt := range []providers.OfferFilter{{GPUModel: "H100", MinGPUMemGiB: 40}, {GPUModel: "H100", MinReliability: 0.5}} {
		got, _ := offersOf(t, f, flt, 20*time.Second)
		if _, ok := find(got, "vast", "7003"); ok {
			t.Errorf("filter %+v matched an offer whose figure is unknown", flt)
		}
		if _, ok := find(got, "lambda", "gpu_8x_h100_sxm5"); !ok {
			t.Errorf("filter %+v hid a data-centre offer (reliability bounds marketplace hosts only)", flt)
		}
	}
	ver, _ := offersOf(t, f, providers.OfferFilter{VerifiedOnly: true, MinReliability: 0.99, GPUModel: "RTX 4090"}, 20*time.Second)
	for _, o := range ver {
		if o.Provider == "vast" && o.ID != "7001" {
			t.Errorf("verified/reliability filter let through vast %s", o.ID)
		}
	}
	if _, ok := find(ver, "vast", "7001"); !ok {
		t.Error("verified reliable vast 7001 filtered out")
	}
}

// TestOffersCloudTimesOut: Lambda's /instance-types hangs; Lambda is listed
// missing with a timeout and every other cloud still shows.
func TestOffersCloudTimesOut(t *testing.T) {
	f := startWithCLI(t, context.Background(), demo.Options{Delay: -1})
	f.Lambda.Inject(lambdafake.Fault{Kind: lambdafake.Timeout, Path: "/instance-types", Count: -1})
	offers, missing := offersOf(t, f, providers.OfferFilter{}, 5*time.Second)
	var lambdaMissing bool
	for _, m := range missing {
		if m.Provider == "lambda" && strings.Contains(m.Reason, "timed out") {
			lambdaMissing = true
		}
	}
	if !lambdaMissing {
		t.Fatalf("missing = %+v, want lambda timed out", missing)
	}
	seen := map[string]bool{}
	for _, o := range offers {
		seen[o.Provider] = true
	}
	if seen["lambda"] || !seen["vast"] || !seen["runpod"] || !seen["vultr"] {
		t.Errorf("providers shown = %v, want vast, runpod, vultr and not lambda", seen)
	}
}

// TestOffersCloudAnswersBadly: a GraphQL error from RunPod (HTTP 200 with
// "errors") and a Vast answer without "offers" list those clouds missing
// with the reason; the others still show.
func TestOffersCloudAnswersBadly(t *testing.T) {
	f := startWithCLI(t, context.Background(), demo.Options{Delay: -1})
	f.RunPod.Inject(runpodfake.Fault{Kind: runpodfake.Malformed, Path: "/graphql", Count: -1, Body: `{"errors":[{"message":"boom"}]}`})
	f.Vast.Inject(vastfake.Fault{Kind: vastfake.Malformed, Path: "/api/v0/bundles/", Count: -1, Body: `{"success": true}`})
	offers, missing := offersOf(t, f, providers.OfferFilter{}, 20*time.Second)
	reasons := map[string]string{}
	for _, m := range missing {
		reasons[m.Provider] = m.Reason
	}
	if !strings.Contains(reasons["runpod"], "graphql: boom") || !strings.Contains(reasons["vast"], `no "offers" array`) {
		t.Errorf("missing = %v", reasons)
	}
	seen := map[string]bool{}
	for _, o := range offers {
		seen[o.Provider] = true
	}
	if seen["runpod"] || seen["vast"] || !seen["lambda"] || !seen["vultr"] {
		t.Errorf("providers shown = %v", seen)
	}
}
