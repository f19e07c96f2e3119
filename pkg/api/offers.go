package api

import (
	"time"

	"github.com/ringmesh/ringmesh/pkg/providers"
)

// OpOffers lists what the configured clouds would rent now (leader answers
// when the coordinators elect one).
const OpOffers = "offers"

// Offer request bounds.
const (
	DefaultOffersLimit   = 100
	MaxOffersLimit       = 1000
	DefaultOffersTimeout = 10 * time.Second // per cloud
	MaxOffersTimeout     = 25 * time.Second // per cloud; the API handler has 30 s in all
)

// OffersRequest asks OpOffers for the offers matching Filter, ranked by price
// per GPU-hour. EURUSD is an explicit USD-per-EUR rate (0 = none: EUR prices
// stay EUR). TimeoutSeconds bounds each cloud's answer (0 = 10 s, at most
// 25 s). Limit caps the rows (0 = 100, at most 1000); the reply may hold
// fewer when more would not fit in the bus's max payload.
type OffersRequest struct {
	Filter         providers.OfferFilter `json:"filter"`
	EURUSD         float64               `json:"eur_usd,omitempty"`
	TimeoutSeconds float64               `json:"timeout_seconds,omitempty"`
	Limit          int                   `json:"limit,omitempty"`
}

// Offers answers OpOffers. Offers are ranked cheapest per GPU-hour first
// (USD, then EUR when no rate was given, then unknown prices). Missing names
// every configured or known cloud whose offers are absent and why (timed
// out, failed, not configured, no offers API). Total counts the ranked
// offers before the row cap; Truncated says rows were left out.
// Incomparable counts offers dropped by a price ceiling they could not be
// compared with (EUR without a rate, unknown price).
type Offers struct {
	GeneratedAt  time.Time                `json:"generated_at"`
	Offers       []providers.Offer        `json:"offers"`
	Total        int                      `json:"total"`
	Truncated    bool                     `json:"truncated,omitempty"`
	Missing      []providers.MissingCloud `json:"missing,omitempty"`
	Incomparable int                      `json:"incomparable,omitempty"`
	// EURUSD and RateSource echo the conversion used ("" = none).
	EURUSD     float64 `json:"eur_usd,omitempty"`
	RateSource string  `json:"rate_source,omitempty"`
}
