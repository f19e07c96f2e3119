package runpod

import (
	"context"
	"math"
	"net/http"
	"strings"

	"github.com/ringmesh/ringmesh/pkg/providers"
	"github.com/ringmesh/ringmesh/pkg/providers/internal/restapi"
)

var _ providers.Offerer = (*Client)(nil)

// gpuTypesQuery lists GPU types with their per-GPU prices (GraphQL at
// POST /graphql, runpod-python api/queries/gpus.py field names).
const gpuTypesQuery = `query { gpuTypes { id displayName memoryInGb secureCloud communityCloud securePrice communityPrice secureSpotPrice communitySpotPrice } }`

type wireGPUType struct {
	ID                 string   `json:"id"`
	DisplayName        string   `json:"displayName"`
	MemoryInGb         *float64 `json:"memoryInGb"`
	SecureCloud        *bool    `json:"secureCloud"`
	CommunityCloud     *bool    `json:"communityCloud"`
	SecurePrice        *float64 `json:"securePrice"`
	CommunityPrice     *float64 `json:"communityPrice"`
	SecureSpotPrice    *float64 `json:"secureSpotPrice"`
	CommunitySpotPrice *float64 `json:"communitySpotPrice"`
}

// Offers asks GraphQL gpuTypes: one offer per GPU type, cloud (SECURE,
// COMMUNITY, where the type is available there) and kind (on-demand at
// securePrice/communityPrice, spot at secureSpotPrice/communitySpotPrice),
// for max(1, f.MinGPUs) GPUs at count × the per-GPU price. A price that is
// absent, null or 0 means RunPod does not offer the type that way now.
// The ID is the GPU type id ("NVIDIA GeForce RTX 4090") and the region is
// the cloud ("SECURE"/"COMMUNITY"): gpuTypes names no data centre.
func (c *Client) Offers(ctx context.Context, f providers.OfferFilter) ([]providers.Offer, error) {
	resp, err := c.api.Do(ctx, restapi.Request{Op: providers.OpOffers, Method: http.MethodPost, Path: "/graphql",
		Body: map[string]any{"query": gpuTypesQuery}})
	if err != nil {
		return nil, err
	}
	var body struct {
		Data *struct {
			GPUTypes *[]wireGPUType `json:"gpuTypes"`
		} `json:"data"`
		Errors []struct {
			Message string `json:"message"`
		} `json:"errors"`
	}
	if err := c.api.Decode(providers.OpOffers, resp, &body); err != nil {
		return nil, err
	}
	if len(body.Errors) > 0 {
		return nil, c.api.Invalid(providers.OpOffers, resp.Status, "graphql: %s", restapi.Snippet([]byte(body.Errors[0].Message)))
	}
	if body.Data == nil || body.Data.GPUTypes == nil {
		return nil, c.api.Invalid(providers.OpOffers, resp.Status, "field data.gpuTypes: missing or null")
	}
	count := max(1, f.MinGPUs)
	var out []providers.Offer
	for _, g := range *body.Data.GPUTypes {
		id := strings.TrimSpace(g.ID)
		if id == "" {
			continue
		}
		name := g.DisplayName
		if name == "" {
			name = id
		}
		base := providers.Offer{Provider: Name, ID: id, RawGPU: name, GPUModel: providers.NormalizeGPU(name), GPUCount: providers.Ptr(count)}
		if g.MemoryInGb != nil && *g.MemoryInGb > 0 {
			base.GPUMemGiB = providers.Ptr(*g.MemoryInGb)
		}
		for _, v := range []struct {
			cloud   string
			avail   *bool
			price   *float64
			spot    bool
			srcName string
		}{
			{"SECURE", g.SecureCloud, g.SecurePrice, false, "securePrice"},
			{"SECURE", g.SecureCloud, g.SecureSpotPrice, true, "secureSpotPrice"},
			{"COMMUNITY", g.CommunityCloud, g.CommunityPrice, false, "communityPrice"},
			{"COMMUNITY", g.CommunityCloud, g.CommunitySpotPrice, true, "communitySpotPrice"},
		} {
			if v.avail == nil || !*v.avail || v.price == nil || *v.price <= 0 || math.IsInf(*v.price, 0) || math.IsNaN(*v.price) {
				continue
			}
			o := base
			o.Region, o.Interruptible = v.cloud, v.spot
			o.Price = providers.Price{PerHour: *v.price * float64(count), Currency: "USD", Source: "runpod:" + v.srcName}
			out = append(out, o)
		}
	}
	return out, nil
}
