package providers_test

import (
	"testing"

	"github.com/ringmesh/ringmesh/pkg/providers"
)

func gpuOffer(provider, id string, gpus int, perHour float64, cur string) providers.Offer {
	return providers.Offer{Provider: provider, ID: id, GPUCount: providers.Ptr(gpus),
		Price: providers.Price{PerHour: perHour, Currency: cur, Source: provider + ":test"}}
}

// TestRankOffersEURKeptUnlessRateGiven: EUR prices stay EUR and rank after
// USD without a rate, cannot pass a USD ceiling, and are converted (with
// the rate named) only when an explicit rate is given.
func TestRankOffersEURKeptUnlessRateGiven(t *testing.T) {
	in := []providers.Offer{
		gpuOffer("eu", "e1", 1, 0.30, "EUR"),
		gpuOffer("us", "u2", 2, 1.00, "USD"), // 0.50 per GPU-hour
		gpuOffer("us", "u1", 1, 0.40, "USD"),
		{Provider: "us", ID: "unpriced", GPUCount: providers.Ptr(1)},
	}
	got, _ := providers.RankOffers(in, providers.OfferFilter{}, 0)
	order := []string{}
	for _, o := range got {
		order = append(order, o.ID)
	}
	if want := "u1,u2,e1,unpriced"; join(order) != want {
		t.Fatalf("order without rate = %s, want %s", join(order), want)
	}
	if e := got[2]; e.RankCurrency != "EUR" || *e.PerGPUHour != 0.30 || e.Conversion != "" {
		t.Errorf("EUR offer without rate = %+v", e)
	}
	got, _ = providers.RankOffers(in, providers.OfferFilter{}, 1.10)
	if got[0].ID != "e1" || got[0].RankCurrency != "USD" || got[0].Conversion == "" || *got[0].PerGPUHour < 0.329 || *got[0].PerGPUHour > 0.331 {
		t.Errorf("with rate 1.10 first = %+v, want e1 at 0.33 USD with its conversion shown", got[0])
	}
	got, incomparable := providers.RankOffers(in, providers.OfferFilter{MaxPricePerGPUHour: 0.45}, 0)
	if len(got) != 1 || got[0].ID != "u1" || incomparable != 2 {
		t.Errorf("ceiling 0.45 without rate = %+v (incomparable %d), want only u1 and 2 incomparable", got, incomparable)
	}
	got, _ = providers.RankOffers(in, providers.OfferFilter{MaxPricePerGPUHour: 0.45}, 1.10)
	if len(got) != 2 || got[0].ID != "e1" || got[1].ID != "u1" {
		t.Errorf("ceiling 0.45 with rate = %+v, want e1, u1", got)
	}
}

func join(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += ","
		}
		out += x
	}
	return out
}

// TestOfferFilterUnknownDoesNotMatch: bounds on a figure the offer does not
// give exclude it; a marketplace bound leaves other clouds alone.
func TestOfferFilterUnknownDoesNotMatch(t *testing.T) {
	o := providers.Offer{Provider: "vast", ID: "1", GPUModel: "H100", Marketplace: true}
	for _, f := range []providers.OfferFilter{{MinGPUs: 1}, {MinGPUMemGiB: 1}, {MinReliability: 0.1}, {VerifiedOnly: true}, {Region: "US"}} {
		if f.Match(o) {
			t.Errorf("%+v matched an offer with unknown figures", f)
		}
	}
	dc := providers.Offer{Provider: "lambda", ID: "x", GPUModel: "H100", GPUCount: providers.Ptr(1)}
	if !(providers.OfferFilter{MinReliability: 0.9, VerifiedOnly: true, GPUModel: "h100 sxm"}).Match(dc) {
		t.Error("marketplace bounds or GPU normalisation excluded a data-centre offer")
	}
	if (providers.OfferFilter{}).Match(providers.Offer{GPUCount: providers.Ptr(0)}) {
		t.Error("CPU-only offer matched without IncludeCPU")
	}
	if err := (providers.OfferFilter{MinGPUs: 4, MaxGPUs: 2}).Validate(); err == nil {
		t.Error("min GPUs above max accepted")
	}
}
