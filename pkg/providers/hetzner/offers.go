package hetzner

import (
	"context"

	"github.com/ringmesh/ringmesh/pkg/providers"
)

var _ providers.Offerer = (*Provider)(nil)

// Offers lists GET /v1/server_types (hcloud-go ServerType.All): one offer
// per server type and location it has a price for, at the gross hourly
// price in EUR (the same reading as an instance's price). Hetzner Cloud
// server types carry no GPUs, so every offer is a CPU offer (GPUCount 0);
// deprecated types are left out. Hetzner has no spot servers.
func (p *Provider) Offers(ctx context.Context, f providers.OfferFilter) ([]providers.Offer, error) {
	if !f.WantsInterruptible(false) {
		return nil, nil
	}
	types, err := p.client.ServerType.All(ctx)
	if err != nil {
		return nil, classify(ctx, providers.OpOffers, err, nil)
	}
	var out []providers.Offer
	for _, st := range types {
		if st == nil || st.IsDeprecated() {
			continue
		}
		o := providers.Offer{Provider: Name, ID: st.Name, GPUCount: providers.Ptr(0)}
		if st.Cores > 0 {
			o.CPUs = providers.Ptr(float64(st.Cores))
		}
		if st.Memory > 0 {
			o.MemoryGiB = providers.Ptr(float64(st.Memory))
		}
		if st.Disk > 0 {
			o.DiskGiB = providers.Ptr(float64(st.Disk))
		}
		for _, pr := range st.Pricings {
			if pr.Location == nil || pr.Location.Name == "" {
				continue
			}
			lo := o
			lo.Region = pr.Location.Name
			lo.Price = hourlyPrice(st, pr.Location)
			out = append(out, lo)
		}
	}
	return out, nil
}
