package demo

import (
	"github.com/ringmesh/ringmesh/pkg/providers/lambda/lambdafake"
	"github.com/ringmesh/ringmesh/pkg/providers/runpod/runpodfake"
	"github.com/ringmesh/ringmesh/pkg/providers/vast/vastfake"
)

// Seeded offers (fake values in the documented shapes). Vultr serves
// vultrfake.DefaultPlans and Hetzner hetznerfake.ServerTypes (CPU only).
const (
	VastOffer4090     int64 = 7001 // 1x RTX 4090, verified, reliability 0.995, $0.35/h, min bid $0.20
	VastOffer4090Duo  int64 = 7002 // 2x RTX 4090, unverified, $0.80/h
	VastOfferH100Bare int64 = 7003 // 1x H100 SXM, no gpu_ram / reliability / min_bid in the answer
)

func (f *Fakes) seedOffers() {
	p := func(v float64) *float64 { return &v }
	f.Vast.AddOffer(vastfake.Offer{ID: VastOffer4090, NumGPUs: 1, GPUName: "RTX 4090", GPURAM: p(24564), CPUCoresEffective: p(16),
		CPURAM: p(64000), DiskSpace: p(200), DphTotal: p(0.35), MinBid: p(0.20), Reliability: p(0.995), Verification: "verified",
		Verified: true, Geolocation: "Texas, US", DirectPortCount: 10, Rentable: true})
	f.Vast.AddOffer(vastfake.Offer{ID: VastOffer4090Duo, NumGPUs: 2, GPUName: "RTX 4090", GPURAM: p(24564), DphTotal: p(0.80),
		MinBid: p(0.50), Reliability: p(0.93), Verification: "unverified", Geolocation: "Germany, DE", Rentable: true})
	f.Vast.AddOffer(vastfake.Offer{ID: VastOfferH100Bare, NumGPUs: 1, GPUName: "H100 SXM", DphTotal: p(2.10),
		Verification: "verified", Verified: true, Rentable: true})
	f.Vast.AddOffer(vastfake.Offer{ID: 7004, NumGPUs: 1, GPUName: "RTX 3090", GPURAM: p(24576), DphTotal: p(0.15),
		Verification: "verified", Verified: true, Rentable: true, Rented: true}) // rented: never offered

	f.RunPod.AddGPUType(runpodfake.GPUType{ID: "NVIDIA GeForce RTX 4090", DisplayName: "RTX 4090", MemoryInGb: p(24),
		SecureCloud: true, CommunityCloud: true, SecurePrice: p(0.69), CommunityPrice: p(0.34), CommunitySpotPrice: p(0.20)})
	f.RunPod.AddGPUType(runpodfake.GPUType{ID: "NVIDIA H100 80GB HBM3", DisplayName: "H100 SXM", MemoryInGb: p(80),
		SecureCloud: true, SecurePrice: p(2.99), SecureSpotPrice: p(1.99)})

	f.Lambda.AddInstanceType(lambdafake.TypeOffer{InstanceType: lambdafake.InstanceType{Name: "gpu_1x_h100_pcie",
		Description: "1x H100 (80 GB PCIe)", GPUDescription: "H100 (80 GB PCIe)", PriceCentsPerHour: 249,
		Specs: lambdafake.Specs{VCPUs: 26, MemoryGiB: 200, StorageGiB: 1024, GPUs: 1}},
		Regions: []lambdafake.Region{{Name: "us-west-1", Description: "California, USA"}}})
	f.Lambda.AddInstanceType(lambdafake.TypeOffer{InstanceType: lambdafake.InstanceType{Name: "gpu_8x_h100_sxm5",
		Description: "8x H100 (80 GB SXM5)", GPUDescription: "H100 (80 GB SXM5)", PriceCentsPerHour: 2392,
		Specs: lambdafake.Specs{VCPUs: 208, MemoryGiB: 1800, StorageGiB: 22528, GPUs: 8}},
		Regions: []lambdafake.Region{{Name: "us-east-1", Description: "Virginia, USA"}}})
	f.Lambda.AddInstanceType(lambdafake.TypeOffer{InstanceType: lambdafake.InstanceType{Name: "gpu_1x_a10",
		Description: "1x A10 (24 GB PCIe)", GPUDescription: "A10 (24 GB PCIe)", PriceCentsPerHour: 75,
		Specs: lambdafake.Specs{VCPUs: 30, MemoryGiB: 200, StorageGiB: 1400, GPUs: 1}}}) // no capacity anywhere
}
