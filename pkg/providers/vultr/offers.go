package vultr

import (
	"context"
	"sort"
	"strings"

	"github.com/ringmesh/ringmesh/pkg/providers"
)

var _ providers.Offerer = (*Provider)(nil)

// Offers reads the plan catalogue fresh (GET /v2/plans, every page): one
// offer per plan and location in its "locations". Price: hourly_cost, else
// monthly_cost/730 (USD); GPU facts from gpu_type/gpu_vram_gb/gpu_count or
// the plan ID, the same reading as instances (gpuInfo). Vultr has no spot
// plans. A plan with no GPU has GPUCount 0 (a CPU offer).
func (p *Provider) Offers(ctx context.Context, f providers.OfferFilter) ([]providers.Offer, error) {
	if !f.WantsInterruptible(false) {
		return nil, nil
	}
	plans, err := p.fetchPlans(ctx)
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(plans))
	for id := range plans {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var out []providers.Offer
	for _, id := range ids {
		pl := plans[id]
		model, count, mem := gpuInfo(id, &pl)
		o := providers.Offer{Provider: Name, ID: id, GPUModel: model, RawGPU: pl.GPUType, GPUCount: providers.Ptr(count), Price: pl.price()}
		if mem > 0 {
			o.GPUMemGiB = providers.Ptr(mem)
		}
		if pl.VCPUCount > 0 {
			o.CPUs = providers.Ptr(float64(pl.VCPUCount))
		}
		if pl.RAM > 0 {
			o.MemoryGiB = providers.Ptr(float64(pl.RAM) / 1024)
		}
		if pl.Disk > 0 {
			o.DiskGiB = providers.Ptr(float64(pl.Disk))
		}
		for _, loc := range pl.Locations {
			if loc = strings.TrimSpace(loc); loc != "" {
				lo := o
				lo.Region = loc
				out = append(out, lo)
			}
		}
	}
	return out, nil
}
