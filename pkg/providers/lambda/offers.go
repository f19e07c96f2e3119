package lambda

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"strings"

	"github.com/ringmesh/ringmesh/pkg/providers"
	"github.com/ringmesh/ringmesh/pkg/providers/internal/restapi"
)

var _ providers.Offerer = (*Client)(nil)

// Offers lists GET /instance-types: one offer per instance type and region
// in regions_with_capacity_available (a type with no region that has
// capacity cannot be rented now and is left out). Prices are
// price_cents_per_hour / 100 USD, on-demand (Lambda has no spot offers).
// The type is read with the same rules as an instance's instance_type.
func (c *Client) Offers(ctx context.Context, f providers.OfferFilter) ([]providers.Offer, error) {
	if !f.WantsInterruptible(false) {
		return nil, nil
	}
	resp, err := c.api.Do(ctx, restapi.Request{Op: providers.OpOffers, Method: http.MethodGet, Path: "/instance-types"})
	if err != nil {
		return nil, err
	}
	var body struct {
		Data *map[string]struct {
			InstanceType json.RawMessage `json:"instance_type"`
			Regions      []struct {
				Name string `json:"name"`
			} `json:"regions_with_capacity_available"`
		} `json:"data"`
	}
	if err := c.api.Decode(providers.OpOffers, resp, &body); err != nil {
		return nil, err
	}
	if body.Data == nil {
		return nil, c.api.Invalid(providers.OpOffers, resp.Status, "field data: missing or null")
	}
	names := make([]string, 0, len(*body.Data))
	for n := range *body.Data {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []providers.Offer
	for _, n := range names {
		e := (*body.Data)[n]
		if len(e.InstanceType) == 0 {
			return nil, c.api.Invalid(providers.OpOffers, resp.Status, "data[%q]: no instance_type", n)
		}
		raw, _ := json.Marshal(map[string]json.RawMessage{"id": json.RawMessage(`"offer"`), "instance_type": e.InstanceType})
		inst, err := c.parseInstance(raw)
		if err != nil {
			return nil, c.api.Invalid(providers.OpOffers, resp.Status, "data[%q]: %v", n, err)
		}
		o := providers.Offer{Provider: Name, ID: n, GPUModel: inst.GPUModel, RawGPU: n, Price: inst.Price}
		if inst.GPUCount > 0 {
			o.GPUCount = providers.Ptr(inst.GPUCount)
		}
		if inst.GPUMemGiB > 0 {
			o.GPUMemGiB = providers.Ptr(inst.GPUMemGiB)
		}
		if inst.CPUs > 0 {
			o.CPUs = providers.Ptr(inst.CPUs)
		}
		if inst.MemoryGiB > 0 {
			o.MemoryGiB = providers.Ptr(inst.MemoryGiB)
		}
		var spec struct {
			Specs *struct {
				StorageGiB *float64 `json:"storage_gib"`
			} `json:"specs"`
		}
		if json.Unmarshal(e.InstanceType, &spec) == nil && spec.Specs != nil && spec.Specs.StorageGiB != nil && *spec.Specs.StorageGiB > 0 {
			o.DiskGiB = spec.Specs.StorageGiB
		}
		for _, r := range e.Regions {
			if r.Name = strings.TrimSpace(r.Name); r.Name == "" {
				continue
			}
			ro := o
			ro.Region = r.Name
			out = append(out, ro)
		}
	}
	return out, nil
}
