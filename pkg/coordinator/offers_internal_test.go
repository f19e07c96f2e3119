package coordinator

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/providers"
)

type manyOffers struct{ n int }

func (manyOffers) Name() string                                       { return "vast" }
func (manyOffers) Capabilities() providers.Capabilities               { return providers.Capabilities{} }
func (manyOffers) List(context.Context) ([]providers.Instance, error) { return nil, nil }
func (manyOffers) Get(context.Context, string) (providers.Instance, error) {
	return providers.Instance{}, providers.ErrNotFound
}
func (manyOffers) Start(context.Context, string) error     { return nil }
func (manyOffers) Stop(context.Context, string) error      { return nil }
func (manyOffers) Terminate(context.Context, string) error { return nil }
func (m manyOffers) Offers(context.Context, providers.OfferFilter) ([]providers.Offer, error) {
	out := make([]providers.Offer, m.n)
	for i := range out {
		out[i] = providers.Offer{Provider: "vast", ID: fmt.Sprint(i), GPUModel: "RTX 4090", GPUCount: providers.Ptr(1),
			Price: providers.Price{PerHour: float64(i) / 100, Currency: "USD", Source: "vast:dph_total"}, Region: "Somewhere, US"}
	}
	return out, nil
}

// TestOffersReplyFitsMaxPayload: many offers are cut to the limit and then
// to what fits in the bus's max payload, and the reply says so.
func TestOffersReplyFitsMaxPayload(t *testing.T) {
	reg := providers.NewRegistry()
	reg.Register(manyOffers{n: 5000})
	reg.RegisterUnconfigured("lambda", providers.ErrNotConfigured)
	const max = 64 << 10
	out := collectOffers(context.Background(), reg, api.OffersRequest{}, time.Second, api.MaxOffersLimit, max, time.Now())
	b, _ := json.Marshal(api.Reply{Data: offersJSON(t, out)})
	if len(b) > max {
		t.Fatalf("reply of %d bytes exceeds max payload %d", len(b), max)
	}
	if !out.Truncated || out.Total != 5000 || len(out.Offers) == 0 || len(out.Offers) >= api.MaxOffersLimit {
		t.Errorf("total %d, shown %d, truncated %v", out.Total, len(out.Offers), out.Truncated)
	}
	if out.Offers[0].ID != "0" {
		t.Errorf("cut kept %s first, want the cheapest", out.Offers[0].ID)
	}
	if len(out.Missing) != 1 || out.Missing[0].Provider != "lambda" {
		t.Errorf("missing = %+v, want lambda not configured", out.Missing)
	}
}

func offersJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
