package vast

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/ringmesh/ringmesh/pkg/providers"
	"github.com/ringmesh/ringmesh/pkg/providers/internal/restapi"
)

var _ providers.Offerer = (*Client)(nil)

// offersLimit bounds one search (the bundles endpoint takes "limit").
const offersLimit = 200

// wireOffer is one row of POST /api/v0/bundles/ (vastai/data/offer.py).
// Pointers: a field the answer leaves out or null stays unknown.
type wireOffer struct {
	ID           *int64   `json:"id"`
	NumGPUs      *int     `json:"num_gpus"`
	GPUName      *string  `json:"gpu_name"`
	GPURAM       *float64 `json:"gpu_ram"` // MB per GPU
	CPUCores     *float64 `json:"cpu_cores_effective"`
	CPURAM       *float64 `json:"cpu_ram"`    // MB
	DiskSpace    *float64 `json:"disk_space"` // GB
	DphTotal     *float64 `json:"dph_total"`  // USD/h, storage included
	MinBid       *float64 `json:"min_bid"`    // USD/h, interruptible
	Reliability  *float64 `json:"reliability"`
	Verification *string  `json:"verification"`
	Geolocation  *string  `json:"geolocation"`
}

// Offers searches rentable, unrented asks with POST /api/v0/bundles/:
// on-demand (price dph_total) and, when the filter allows interruptible
// offers, type "bid" (price min_bid). GPU count, per-GPU memory,
// verification and reliability are filtered on Vast's side; the rest by
// the caller (providers.OfferFilter.Match).
func (c *Client) Offers(ctx context.Context, f providers.OfferFilter) ([]providers.Offer, error) {
	var out []providers.Offer
	for _, bid := range []bool{false, true} {
		if !f.WantsInterruptible(bid) {
			continue
		}
		body := map[string]any{
			"rentable": map[string]any{"eq": true},
			"rented":   map[string]any{"eq": false},
			"order":    [][]string{{"dph_total", "asc"}},
			"type":     "on-demand",
			"limit":    offersLimit,
		}
		if bid {
			body["type"] = "bid"
		}
		if f.MinGPUs > 0 {
			body["num_gpus"] = map[string]any{"gte": f.MinGPUs}
		}
		if f.MaxGPUs > 0 {
			m, _ := body["num_gpus"].(map[string]any)
			if m == nil {
				m = map[string]any{}
			}
			m["lte"] = f.MaxGPUs
			body["num_gpus"] = m
		}
		if f.MinGPUMemGiB > 0 {
			body["gpu_ram"] = map[string]any{"gte": math.Floor(f.MinGPUMemGiB * 1024)}
		}
		if f.VerifiedOnly {
			body["verified"] = map[string]any{"eq": true}
		}
		if f.MinReliability > 0 {
			body["reliability"] = map[string]any{"gte": f.MinReliability}
		}
		resp, err := c.api.Do(ctx, restapi.Request{Op: providers.OpOffers, Method: http.MethodPost, Path: "/api/v0/bundles/", Body: body})
		if err != nil {
			return nil, err
		}
		var page struct {
			Offers *[]json.RawMessage `json:"offers"`
		}
		if err := c.api.Decode(providers.OpOffers, resp, &page); err != nil {
			return nil, err
		}
		if page.Offers == nil {
			return nil, c.api.Invalid(providers.OpOffers, resp.Status, "response has no \"offers\" array")
		}
		for i, raw := range *page.Offers {
			o, err := parseOffer(raw, bid)
			if err != nil {
				return nil, c.api.Invalid(providers.OpOffers, resp.Status, "offers[%d]: %v", i, err)
			}
			out = append(out, o)
		}
	}
	return out, nil
}

func parseOffer(raw []byte, bid bool) (providers.Offer, error) {
	var w wireOffer
	if err := json.Unmarshal(raw, &w); err != nil {
		return providers.Offer{}, fmt.Errorf("%s", restapi.DescribeJSONError(err, raw))
	}
	if w.ID == nil {
		return providers.Offer{}, fmt.Errorf("no id")
	}
	o := providers.Offer{Provider: Name, ID: strconv.FormatInt(*w.ID, 10), GPUCount: w.NumGPUs, CPUs: w.CPUCores,
		DiskGiB: w.DiskSpace, Reliability: w.Reliability, Interruptible: bid, Marketplace: true}
	if w.GPUName != nil {
		o.RawGPU = strings.TrimSpace(*w.GPUName)
		o.GPUModel = providers.NormalizeGPU(o.RawGPU)
	}
	if w.GPURAM != nil {
		o.GPUMemGiB = providers.Ptr(*w.GPURAM / 1024)
	}
	if w.CPURAM != nil {
		o.MemoryGiB = providers.Ptr(*w.CPURAM / 1024)
	}
	if w.Verification != nil {
		o.Verified = providers.Ptr(*w.Verification == "verified")
	}
	if w.Geolocation != nil {
		o.Region = strings.TrimSpace(*w.Geolocation)
	}
	price, src := w.DphTotal, "vast:dph_total"
	if bid {
		price, src = w.MinBid, "vast:min_bid"
	}
	if price != nil && *price >= 0 && !math.IsInf(*price, 0) && !math.IsNaN(*price) {
		o.Price = providers.Price{PerHour: *price, Currency: "USD", Source: src}
	}
	return o, nil
}
