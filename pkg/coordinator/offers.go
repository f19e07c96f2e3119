package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/providers"
)

// apiOffers answers api.OpOffers: every configured cloud is asked in
// parallel under its own timeout; the matching offers are ranked and capped
// to the request's limit and to what fits in the max payload.
func (c *Coordinator) apiOffers(ctx context.Context, req []byte) (any, error) {
	var r api.OffersRequest
	if len(req) > 0 {
		if err := json.Unmarshal(req, &r); err != nil {
			return nil, fmt.Errorf("bad request: %w", err)
		}
	}
	if err := r.Filter.Validate(); err != nil {
		return nil, fmt.Errorf("bad request: %w", err)
	}
	if math.IsNaN(r.EURUSD) || math.IsInf(r.EURUSD, 0) || r.EURUSD < 0 || r.EURUSD > 100 {
		return nil, fmt.Errorf("bad request: eur_usd %v is not a rate (USD per EUR, 0 < rate <= 100)", r.EURUSD)
	}
	if math.IsNaN(r.TimeoutSeconds) || r.TimeoutSeconds < 0 {
		return nil, errors.New("bad request: timeout_seconds must be >= 0")
	}
	if c.cfg.Fleet == nil {
		return nil, errors.New("no providers configured on this coordinator")
	}
	timeout := api.DefaultOffersTimeout
	if r.TimeoutSeconds > 0 {
		timeout = min(time.Duration(r.TimeoutSeconds*float64(time.Second)), api.MaxOffersTimeout)
	}
	limit := r.Limit
	if limit <= 0 {
		limit = api.DefaultOffersLimit
	}
	limit = min(limit, api.MaxOffersLimit)
	return collectOffers(ctx, c.cfg.Fleet.Providers(), r, timeout, limit, c.maxPayload(), c.cfg.Now()), nil
}

// collectOffers builds the reply (see apiOffers).
func collectOffers(ctx context.Context, reg *providers.Registry, r api.OffersRequest, timeout time.Duration, limit, maxPayload int, now time.Time) api.Offers {
	offers, missing := providers.CollectOffers(ctx, reg.All(), r.Filter, timeout)
	for _, name := range reg.Names() {
		if configured, _, reason := reg.Status(name); !configured {
			missing = append(missing, providers.MissingCloud{Provider: name, Reason: "not configured: " + reason})
		}
	}
	ranked, incomparable := providers.RankOffers(offers, r.Filter, r.EURUSD)
	out := api.Offers{GeneratedAt: now.UTC(), Offers: ranked, Total: len(ranked), Missing: missing, Incomparable: incomparable}
	if r.EURUSD > 0 {
		out.EURUSD, out.RateSource = r.EURUSD, "explicit rate given with the request (--eur-usd)"
	}
	if len(out.Offers) > limit {
		out.Offers, out.Truncated = out.Offers[:limit], true
	}
	// Leave room for the Reply envelope; cut rows until the data fits.
	budget := maxPayload - 1024
	for len(out.Offers) > 0 {
		b, err := json.Marshal(out)
		if err != nil || len(b) <= budget {
			break
		}
		keep := len(out.Offers) * budget / len(b)
		if keep >= len(out.Offers) {
			keep = len(out.Offers) - 1
		}
		out.Offers, out.Truncated = out.Offers[:max(keep, 0)], true
	}
	return out
}
