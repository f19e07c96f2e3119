package nebius_test

import (
	"context"
	"errors"
	"testing"

	"github.com/ringmesh/ringmesh/pkg/providers"
	"github.com/ringmesh/ringmesh/pkg/providers/nebius"
	"github.com/ringmesh/ringmesh/pkg/providers/nebius/nebiusfake"
)

func seedPlatforms(t *testing.T, f *nebiusfake.Fake) {
	t.Helper()
	err := f.SeedPlatforms(
		nebiusfake.Platform{Metadata: nebiusfake.PlatformMetadata{Name: "gpu-h100-sxm"},
			Spec: nebiusfake.PlatformSpec{HumanReadableName: "NVIDIA H100 NVLink", Presets: []nebiusfake.Preset{
				{Name: "1gpu-16vcpu-200gb", Resources: nebiusfake.PresetResources{VCPUCount: 16, MemoryGibibytes: 200, GPUCount: 1}},
				{Name: "8gpu-128vcpu-1600gb", Resources: nebiusfake.PresetResources{VCPUCount: 128, MemoryGibibytes: 1600, GPUCount: 8}},
			}},
			Status: nebiusfake.PlatformStatus{AllowedForPreemptibles: true}},
		nebiusfake.Platform{Metadata: nebiusfake.PlatformMetadata{Name: "gpu-b200-sxm"},
			Spec: nebiusfake.PlatformSpec{GPUMemoryGigabytes: 180, Presets: []nebiusfake.Preset{
				{Name: "8gpu-160vcpu-1792gb", Resources: nebiusfake.PresetResources{VCPUCount: 160, MemoryGibibytes: 1792, GPUCount: 8}},
			}}},
		nebiusfake.Platform{Metadata: nebiusfake.PlatformMetadata{Name: "cpu-d3"},
			Spec: nebiusfake.PlatformSpec{Presets: []nebiusfake.Preset{
				{Name: "4vcpu-16gb", Resources: nebiusfake.PresetResources{VCPUCount: 4, MemoryGibibytes: 16}},
			}}},
	)
	if err != nil {
		t.Fatal(err)
	}
}

func offerByID(offers []providers.Offer, id string, spot bool) (providers.Offer, bool) {
	for _, o := range offers {
		if o.ID == id && o.Interruptible == spot {
			return o, true
		}
	}
	return providers.Offer{}, false
}

func TestOffersFromPlatformList(t *testing.T) {
	o := launchOptions()
	o.PageSize = 1 // every platform on its own page
	o.Prices = map[string]providers.Price{"gpu-h100-sxm/1gpu-16vcpu-200gb": {PerHour: 2.95}}
	p, fake := newFake(t, nebiusfake.Options{}, o)
	seedPlatforms(t, fake)
	offers, err := p.Offers(context.Background(), providers.OfferFilter{})
	if err != nil {
		t.Fatal(err)
	}
	// 2 H100 presets x (on-demand, preemptible) + 1 B200 + 1 CPU preset.
	if len(offers) != 6 {
		t.Fatalf("offers = %d: %+v", len(offers), offers)
	}
	h1, ok := offerByID(offers, "gpu-h100-sxm:1gpu-16vcpu-200gb", false)
	if !ok || h1.GPUModel != "H100" || *h1.GPUCount != 1 || *h1.CPUs != 16 || *h1.MemoryGiB != 200 || *h1.GPUMemGiB != 80 ||
		h1.Price.PerHour != 2.95 || h1.Price.Source != "config" || h1.Region != "" {
		t.Errorf("H100 on-demand = %+v", h1)
	}
	if spot, ok := offerByID(offers, "gpu-h100-sxm:1gpu-16vcpu-200gb", true); !ok || spot.Price.Known() {
		t.Errorf("H100 preemptible = %+v (its price is not the on-demand one)", spot)
	}
	if h8, ok := offerByID(offers, "gpu-h100-sxm:8gpu-128vcpu-1600gb", false); !ok || *h8.GPUCount != 8 || h8.Price.Known() {
		t.Errorf("H100 x8 = %+v", h8)
	}
	if _, ok := offerByID(offers, "gpu-b200-sxm:8gpu-160vcpu-1792gb", true); ok {
		t.Error("B200 offered preemptible although the platform does not allow it")
	}
	if b, ok := offerByID(offers, "gpu-b200-sxm:8gpu-160vcpu-1792gb", false); !ok || b.GPUMemGiB == nil || *b.GPUMemGiB < 167.6 || *b.GPUMemGiB > 167.7 {
		t.Errorf("B200 = %+v (180 GB = 167.64 GiB)", b)
	}
	if c, ok := offerByID(offers, "cpu-d3:4vcpu-16gb", false); !ok || *c.GPUCount != 0 || c.GPUModel != "" {
		t.Errorf("CPU offer = %+v", c)
	}
	if n := count(t, fake, "platform-list"); n != 3 {
		t.Errorf("platform list pages = %d, want 3", n)
	}

	// Only the preemptible ones when asked for.
	spot := true
	only, err := p.Offers(context.Background(), providers.OfferFilter{Interruptible: &spot})
	if err != nil || len(only) != 2 || !only[0].Interruptible || !only[1].Interruptible {
		t.Fatalf("preemptible offers = %+v %v", only, err)
	}

	// An offer launches as it is.
	in, err := resilient(p).Launch(context.Background(), providers.LaunchRequest{RequestID: "nb-offer", Node: "nebius-h100-9", Offer: h1,
		StartupScript: "#!/bin/sh\ntrue\n"})
	if err != nil || in.Price != h1.Price || in.Labels[nebius.LabelPreset] != "1gpu-16vcpu-200gb" {
		t.Fatalf("launch of the offer = %+v %v", in, err)
	}
}

func TestOffersRefusals(t *testing.T) {
	p, _ := newFake(t, nebiusfake.Options{}, launchOptions())
	if _, err := p.Offers(context.Background(), providers.OfferFilter{}); providers.KindOf(err) != providers.KindInvalid {
		t.Errorf("a project without platforms: %v", err)
	}
	p, fake := newFake(t, nebiusfake.Options{}, nebius.Options{ProjectID: "project-e00other"})
	seedPlatforms(t, fake)
	if _, err := p.Offers(context.Background(), providers.OfferFilter{}); providers.KindOf(err) != providers.KindAuth {
		t.Errorf("another project: %v", err)
	}
	t.Setenv("PATH", t.TempDir())
	static, err := nebius.New(nebius.Options{ProjectID: "project-e00fake"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := static.Offers(context.Background(), providers.OfferFilter{}); !errors.Is(err, providers.ErrNotConfigured) {
		t.Errorf("config mode: %v", err)
	}
}
