package nebius

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/ringmesh/ringmesh/pkg/providers"
)

var _ providers.Offerer = (*Provider)(nil)

// Wire shape of "nebius compute platform list --format json":
// nebius.compute.v1.ListPlatformsResponse {items: [Platform], next_page_token}
// (nebius/api compute/v1/platform_service.proto, platform.proto). Only the
// fields an offer reads.
type wirePlatformList struct {
	Items         []wirePlatform `json:"items"`
	NextPageToken string         `json:"next_page_token"`
}

type wirePlatform struct {
	Metadata struct {
		Name string `json:"name"` // the platform, e.g. gpu-h100-sxm
	} `json:"metadata"`
	Spec struct {
		Presets []struct {
			Name      string `json:"name"`
			Resources struct {
				VCPUCount       int `json:"vcpu_count"`
				MemoryGibibytes int `json:"memory_gibibytes"`
				GPUCount        int `json:"gpu_count"`
			} `json:"resources"`
		} `json:"presets"`
		// GPUMemoryGibibytes is deprecated since 2026-02-10 for
		// GPUMemoryGigabytes (platform.proto); either may be present.
		GPUMemoryGibibytes int `json:"gpu_memory_gibibytes"`
		GPUMemoryGigabytes int `json:"gpu_memory_gigabytes"`
	} `json:"spec"`
	Status struct {
		AllowedForPreemptibles bool `json:"allowed_for_preemptibles"`
	} `json:"status"`
}

// UnmarshalJSON: see wireInstance.UnmarshalJSON (camelCase or snake_case names).
func (w *wirePlatformList) UnmarshalJSON(b []byte) error {
	type plain wirePlatformList
	return decodeProto(b, (*plain)(w))
}

// Offers lists the project's platforms,
//
//	nebius compute platform list --parent-id <project> [--page-token T] --format json
//
// (all pages), one offer per preset with ID OfferID(platform, preset), and a
// second, interruptible one where status.allowed_for_preemptibles is true.
// Shapes come from the preset (resources.gpu_count, vcpu_count,
// memory_gibibytes); GPU memory per GPU from spec.gpu_memory_gibibytes, else
// the NVIDIA data sheet of a known GPU (as for instances), else
// spec.gpu_memory_gigabytes converted (x 10^9 / 2^30). The Nebius API carries
// no price: an on-demand offer has the Options.Prices price of
// "platform/preset" or the platform (Source "config"), a preemptible one an
// unknown price (Nebius bills preemptible VMs at another rate, and the
// configured prices are the on-demand ones). The region is the project's,
// which the answer does not name, so it stays unknown. A project that lists
// no platform is an error (such a project cannot launch, and an empty
// answer would read as "no capacity"); so is config mode (no CLI).
func (p *Provider) Offers(ctx context.Context, f providers.OfferFilter) ([]providers.Offer, error) {
	op := providers.OpOffers
	if p.mode == ModeStatic {
		return nil, &providers.Error{Provider: Name, Op: op, Kind: providers.KindInvalid, Code: "no_cli",
			Err: fmt.Errorf("nebius offers need the nebius CLI (not installed; the inventory comes from config): %w", providers.ErrNotConfigured)}
	}
	if !projectRe.MatchString(p.project) {
		return nil, &providers.Error{Provider: Name, Op: op, Kind: providers.KindInvalid,
			Err: fmt.Errorf("nebius offers need the project ID (providers.nebius.project, project-…), got %q", p.project)}
	}
	var platforms []wirePlatform
	token := ""
	seen := map[string]bool{}
	for {
		args := []string{"compute", "platform", "list", "--parent-id", p.project}
		if p.pageSize > 0 {
			args = append(args, "--page-size", strconv.Itoa(p.pageSize))
		}
		if token != "" {
			args = append(args, "--page-token", token)
		}
		stdout, err := p.run(ctx, op, p.timeout, args...)
		if err != nil {
			return nil, err
		}
		var page wirePlatformList
		if err := decode(stdout, &page); err != nil {
			return nil, p.invalidOp(op, err)
		}
		platforms = append(platforms, page.Items...)
		if page.NextPageToken == "" {
			break
		}
		if seen[page.NextPageToken] {
			return nil, p.invalidOp(op, fmt.Errorf("page token %q repeats", page.NextPageToken))
		}
		seen[page.NextPageToken] = true
		token = page.NextPageToken
	}
	if len(platforms) == 0 {
		return nil, p.invalidOp(op, errors.New("the project lists no compute platform"))
	}
	var out []providers.Offer
	for _, pl := range platforms {
		name := pl.Metadata.Name
		if !nameRe.MatchString(name) {
			return nil, p.invalidOp(op, fmt.Errorf("platform name %q is not a platform name", name))
		}
		model := platformGPU(name)
		var mem *float64
		switch {
		case model == "":
		case pl.Spec.GPUMemoryGibibytes > 0:
			mem = providers.Ptr(float64(pl.Spec.GPUMemoryGibibytes))
		case gpuMemGiB[model] > 0:
			mem = providers.Ptr(gpuMemGiB[model])
		case pl.Spec.GPUMemoryGigabytes > 0:
			mem = providers.Ptr(float64(pl.Spec.GPUMemoryGigabytes) * 1e9 / (1 << 30))
		}
		for _, pr := range pl.Spec.Presets {
			if !nameRe.MatchString(pr.Name) {
				return nil, p.invalidOp(op, fmt.Errorf("platform %s: preset name %q is not a preset name", name, pr.Name))
			}
			o := providers.Offer{Provider: Name, ID: OfferID(name, pr.Name), GPUModel: model, GPUCount: providers.Ptr(pr.Resources.GPUCount)}
			if model != "" {
				o.RawGPU, o.GPUMemGiB = name, mem
			} else {
				o.GPUCount = providers.Ptr(0)
			}
			if pr.Resources.VCPUCount > 0 {
				o.CPUs = providers.Ptr(float64(pr.Resources.VCPUCount))
			}
			if pr.Resources.MemoryGibibytes > 0 {
				o.MemoryGiB = providers.Ptr(float64(pr.Resources.MemoryGibibytes))
			}
			if f.WantsInterruptible(false) {
				od := o
				od.Price = p.priceFor("", "", name, pr.Name)
				out = append(out, od)
			}
			if pl.Status.AllowedForPreemptibles && f.WantsInterruptible(true) {
				sp := o
				sp.Interruptible = true
				out = append(out, sp)
			}
		}
	}
	return out, nil
}

func (p *Provider) invalidOp(op string, err error) error {
	return &providers.Error{Provider: Name, Op: op, Kind: providers.KindInvalid, Err: err}
}
