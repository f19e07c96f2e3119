package providers

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"time"
)

// OpOffers names the offers call in errors and metrics.
const OpOffers = "offers"

// Offer is one thing a cloud would rent now: a machine shape at a price in
// one region. Fields the cloud's answer does not give stay nil (unknown),
// never 0.
type Offer struct {
	Provider string `json:"provider"`
	// ID is what a launch names: Vast ask id, RunPod GPU type id, Lambda
	// instance type name, Vultr plan id, Hetzner server type name.
	ID       string `json:"id"`
	GPUModel string `json:"gpu_model,omitempty"` // NormalizeGPU of the cloud's name; "" = no GPU or unknown
	RawGPU   string `json:"raw_gpu,omitempty"`   // the cloud's own GPU name
	// GPUCount is the number of GPUs; nil = unknown (0 = a CPU-only offer).
	GPUCount  *int     `json:"gpu_count"`
	GPUMemGiB *float64 `json:"gpu_mem_gib"` // per GPU, GiB
	CPUs      *float64 `json:"cpus"`
	MemoryGiB *float64 `json:"memory_gib"`
	DiskGiB   *float64 `json:"disk_gib"`
	Region    string   `json:"region,omitempty"` // "" = unknown
	// Interruptible: spot/bid (Vast type=bid at min_bid, RunPod spot).
	Interruptible bool `json:"interruptible"`
	// Price is the whole offer per hour in the cloud's currency (unknown when !Price.Known()).
	Price Price `json:"price"`
	// Marketplace: the offer is one host of a marketplace that rates its
	// hosts (Vast); Reliability (0..1) and Verified are those ratings, nil
	// when the answer lacks them. The reliability and verified filters apply
	// to marketplace offers only (a data-centre cloud has no such rating).
	Marketplace bool     `json:"marketplace,omitempty"`
	Reliability *float64 `json:"reliability"`
	Verified    *bool    `json:"verified"`

	// Filled by RankOffers: price per GPU-hour in RankCurrency, and how it
	// was converted ("" when it is the cloud's own currency).
	PerGPUHour   *float64 `json:"per_gpu_hour"`
	RankCurrency string   `json:"rank_currency,omitempty"`
	Conversion   string   `json:"conversion,omitempty"`
}

// OfferFilter selects offers. Zero fields match everything. A filter on a
// field the offer leaves unknown does not match (an unknown figure is not
// known to meet a bound).
type OfferFilter struct {
	GPUModel     string  `json:"gpu_model,omitempty"`       // canonical (NormalizeGPU) model
	MinGPUs      int     `json:"min_gpus,omitempty"`        // GPU count at least
	MaxGPUs      int     `json:"max_gpus,omitempty"`        // GPU count at most
	MinGPUMemGiB float64 `json:"min_gpu_mem_gib,omitempty"` // per GPU
	// MaxPricePerGPUHour is a ceiling in USD per GPU-hour. EUR offers are
	// compared only after conversion with an explicit EURUSD rate.
	MaxPricePerGPUHour float64 `json:"max_price_per_gpu_hour,omitempty"`
	Region             string  `json:"region,omitempty"`
	// Interruptible: nil = both, true = only spot/bid, false = only on-demand.
	Interruptible *bool `json:"interruptible,omitempty"`
	// MinReliability and VerifiedOnly bound marketplace (Vast) offers; a
	// marketplace offer of unknown reliability or verification is excluded
	// when they are set. Other clouds' offers are not affected.
	MinReliability float64 `json:"min_reliability,omitempty"`
	VerifiedOnly   bool    `json:"verified_only,omitempty"`
	// IncludeCPU keeps offers known to have no GPU (Hetzner server types,
	// Vultr CPU plans); they are left out by default.
	IncludeCPU bool `json:"include_cpu,omitempty"`
}

// Validate checks the filter's ranges.
func (f OfferFilter) Validate() error {
	bad := func(x float64) bool { return math.IsNaN(x) || math.IsInf(x, 0) || x < 0 }
	switch {
	case f.MinGPUs < 0 || f.MaxGPUs < 0:
		return errors.New("offers filter: GPU count must not be negative")
	case f.MaxGPUs > 0 && f.MinGPUs > f.MaxGPUs:
		return fmt.Errorf("offers filter: min GPUs %d above max GPUs %d", f.MinGPUs, f.MaxGPUs)
	case bad(f.MinGPUMemGiB):
		return errors.New("offers filter: GPU memory must be a non-negative number")
	case bad(f.MaxPricePerGPUHour):
		return errors.New("offers filter: max price must be a non-negative number")
	case bad(f.MinReliability) || f.MinReliability > 1:
		return errors.New("offers filter: reliability must be within 0..1")
	case len(f.GPUModel) > 64 || len(f.Region) > 64:
		return errors.New("offers filter: GPU model and region are at most 64 characters")
	}
	return nil
}

// WantsInterruptible reports whether offers of that kind can match.
func (f OfferFilter) WantsInterruptible(interruptible bool) bool {
	return f.Interruptible == nil || *f.Interruptible == interruptible
}

// Match reports whether o passes every bound except the price ceiling
// (which needs the conversion rate; see RankOffers).
func (f OfferFilter) Match(o Offer) bool {
	if !f.IncludeCPU && o.GPUCount != nil && *o.GPUCount == 0 {
		return false
	}
	if f.GPUModel != "" && !strings.EqualFold(o.GPUModel, NormalizeGPU(f.GPUModel)) {
		return false
	}
	if f.MinGPUs > 0 && (o.GPUCount == nil || *o.GPUCount < f.MinGPUs) {
		return false
	}
	if f.MaxGPUs > 0 && (o.GPUCount == nil || *o.GPUCount > f.MaxGPUs) {
		return false
	}
	if f.MinGPUMemGiB > 0 && (o.GPUMemGiB == nil || *o.GPUMemGiB < f.MinGPUMemGiB) {
		return false
	}
	if f.Region != "" && !strings.EqualFold(o.Region, f.Region) {
		return false
	}
	if !f.WantsInterruptible(o.Interruptible) {
		return false
	}
	if !o.Marketplace {
		return true
	}
	if f.MinReliability > 0 && (o.Reliability == nil || *o.Reliability < f.MinReliability) {
		return false
	}
	if f.VerifiedOnly && (o.Verified == nil || !*o.Verified) {
		return false
	}
	return true
}

// Offerer is the optional capability of a Provider that can say what it
// would rent now. Offers returns the offers matching f (a client may filter
// on the cloud's side where its API can, and must filter the rest itself).
type Offerer interface {
	Offers(ctx context.Context, f OfferFilter) ([]Offer, error)
}

// OffererOf finds the Offerer behind p, looking through wrappers
// (Resilient, Retire). Offers are reads, so a retired cloud still shows them.
func OffererOf(p Provider) (Offerer, bool) {
	for p != nil {
		if o, ok := p.(Offerer); ok {
			return o, true
		}
		u, ok := p.(Unwrapper)
		if !ok {
			break
		}
		p = u.Unwrap()
	}
	return nil, false
}

// MissingCloud is a configured cloud whose offers are not in the answer, and why.
type MissingCloud struct {
	Provider string `json:"provider"`
	Reason   string `json:"reason"`
}

// CollectOffers asks every provider for offers in parallel, each under its
// own timeout, and returns the matching offers (unranked) and the clouds
// that timed out, failed or cannot list offers. One slow or broken cloud
// never hides the others.
func CollectOffers(ctx context.Context, provs []Provider, f OfferFilter, timeout time.Duration) ([]Offer, []MissingCloud) {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	type result struct {
		name   string
		offers []Offer
		err    error
	}
	res := make([]result, len(provs))
	var wg sync.WaitGroup
	for i, p := range provs {
		res[i].name = p.Name()
		o, ok := OffererOf(p)
		if !ok {
			res[i].err = fmt.Errorf("%w: no offers API in this client", ErrUnsupported)
			continue
		}
		wg.Add(1)
		go func(i int, o Offerer) {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			offers, err := o.Offers(pctx, f)
			switch {
			case ctx.Err() != nil: // the whole request ended first
				err = fmt.Errorf("not answered before the request ended: %w", ctx.Err())
			case pctx.Err() != nil: // this cloud's own deadline fired
				err = fmt.Errorf("timed out after %s", timeout)
			}
			res[i].offers, res[i].err = offers, err
		}(i, o)
	}
	wg.Wait()
	var all []Offer
	var missing []MissingCloud
	for _, r := range res {
		if r.err != nil {
			missing = append(missing, MissingCloud{Provider: r.name, Reason: r.err.Error()})
			continue
		}
		for _, o := range r.offers {
			if o.Provider == "" {
				o.Provider = r.name
			}
			if f.Match(o) {
				all = append(all, o)
			}
		}
	}
	sort.Slice(missing, func(i, j int) bool { return missing[i].Provider < missing[j].Provider })
	return all, missing
}

// RankOffers fills PerGPUHour, RankCurrency and Conversion, drops offers
// above f.MaxPricePerGPUHour (USD), and sorts cheapest per GPU-hour first.
// eurUSD is an explicit USD-per-EUR rate (0 = none): EUR prices are kept as
// EUR without it, rank after every USD offer, and cannot pass a price
// ceiling. Offers of unknown price or GPU count rank last; they are dropped
// when a ceiling is set. It returns the kept offers and how many were dropped
// because their price could not be compared with the ceiling.
func RankOffers(offers []Offer, f OfferFilter, eurUSD float64) (kept []Offer, incomparable int) {
	for _, o := range offers {
		o.PerGPUHour, o.RankCurrency, o.Conversion = nil, "", ""
		if o.Price.Known() && o.GPUCount != nil && *o.GPUCount > 0 {
			v := o.Price.PerHour / float64(*o.GPUCount)
			cur := o.Price.Currency
			if cur == "EUR" && eurUSD > 0 {
				v *= eurUSD
				cur = "USD"
				o.Conversion = fmt.Sprintf("EUR x %g (explicit rate)", eurUSD)
			}
			o.PerGPUHour, o.RankCurrency = &v, cur
		}
		if f.MaxPricePerGPUHour > 0 {
			if o.PerGPUHour == nil || o.RankCurrency != "USD" {
				incomparable++
				continue
			}
			if *o.PerGPUHour > f.MaxPricePerGPUHour {
				continue
			}
		}
		kept = append(kept, o)
	}
	tier := func(o Offer) int {
		switch {
		case o.PerGPUHour == nil:
			return 2
		case o.RankCurrency == "USD":
			return 0
		}
		return 1
	}
	sort.SliceStable(kept, func(i, j int) bool {
		a, b := kept[i], kept[j]
		if ta, tb := tier(a), tier(b); ta != tb {
			return ta < tb
		}
		if a.PerGPUHour != nil && *a.PerGPUHour != *b.PerGPUHour {
			return *a.PerGPUHour < *b.PerGPUHour
		}
		if a.Provider != b.Provider {
			return a.Provider < b.Provider
		}
		if a.ID != b.ID {
			return a.ID < b.ID
		}
		return a.Region < b.Region
	})
	return kept, incomparable
}

// Ptr returns a pointer to v (for the optional Offer fields).
func Ptr[T any](v T) *T { return &v }
