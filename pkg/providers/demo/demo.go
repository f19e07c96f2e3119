// Package demo starts the cloud fakes on loopback, seeded with a few
// instances, for the coordinator's demo mode and for integration tests. No
// real cloud is contacted and no real credential is used.
//
// # Adding a cloud
//
// Each cloud has one field in Fakes. To add one (vultr, hetzner, nebius):
// add the field, start its fake in StartFakes (append its Close to f.closers
// right after starting it, so a later failure closes it), seed it in a
// seedXxx function called from StartFakes, and add it to Endpoints and
// Providers. Nothing else in this package needs to change.
package demo

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/time/rate"

	"github.com/ringmesh/ringmesh/pkg/providers"
	"github.com/ringmesh/ringmesh/pkg/providers/lambda"
	"github.com/ringmesh/ringmesh/pkg/providers/lambda/lambdafake"
	"github.com/ringmesh/ringmesh/pkg/providers/runpod"
	"github.com/ringmesh/ringmesh/pkg/providers/runpod/runpodfake"
	"github.com/ringmesh/ringmesh/pkg/providers/vast"
	"github.com/ringmesh/ringmesh/pkg/providers/vast/vastfake"
)

// Options configures StartFakes.
type Options struct {
	// Empty starts the fakes without the seeded instances.
	Empty bool
	// Delay is how long state transitions (boot, start, stop) take in every
	// fake (default 2s; negative means instantly).
	Delay time.Duration
	// Now is the fakes' clock (default time.Now).
	Now func() time.Time
}

// Endpoint is how to reach one fake.
type Endpoint struct {
	BaseURL string
	APIKey  string // the fake's key; not a secret
}

// Fakes holds the running fakes, one field per cloud.
type Fakes struct {
	Vast   *vastfake.Server
	RunPod *runpodfake.Server
	Lambda *lambdafake.Server
	// Vultr, Hetzner, Nebius: added by their owners (see the package doc).

	mu      sync.Mutex
	closers []func()
}

// Seeded instance IDs, so tests and the demo can refer to them.
const (
	// VastSeedNode is vast-29129529 of the original README: proxy endpoint
	// root@ssh6.vast.ai:19528.
	VastSeedNode int64 = 29129529
	VastBidNode  int64 = 29129530 // interruptible (bid) RTX 3090
	VastStopped  int64 = 29129531 // stopped RTX 5090

	RunPodSeedPod = "xedezhzb9la3ye" // running RTX 4090, secure cloud
	RunPodSpotPod = "spot7k2m4q9wzz" // running interruptible RTX 4090, community

	LambdaGH200 = "0920582c7ff041399e34823a0be62549"
	LambdaA10   = "5b1e6c3a9d0f4e2b8c7a6d5e4f3a2b1c"
)

// StartFakes starts every fake on 127.0.0.1 and seeds it (unless
// opts.Empty). The fakes stop when ctx is done or Close is called.
func StartFakes(ctx context.Context, opts Options) (*Fakes, error) {
	delay := opts.Delay
	switch {
	case delay == 0:
		delay = 2 * time.Second
	case delay < 0:
		delay = 0
	}
	f := &Fakes{}
	ok := false
	defer func() {
		if !ok {
			f.Close()
		}
	}()

	f.Vast = vastfake.New(vastfake.Options{BootDelay: delay, StartDelay: delay, StopDelay: delay, Now: opts.Now})
	f.closers = append(f.closers, f.Vast.Close)
	f.RunPod = runpodfake.New(runpodfake.Options{BootDelay: delay, StartDelay: delay, StopDelay: delay, Now: opts.Now})
	f.closers = append(f.closers, f.RunPod.Close)
	f.Lambda = lambdafake.New(lambdafake.Options{BootDelay: delay, TerminateDelay: delay, Now: opts.Now})
	f.closers = append(f.closers, f.Lambda.Close)

	if !opts.Empty {
		if err := f.seed(); err != nil {
			return nil, err
		}
	}
	if ctx != nil {
		stop := context.AfterFunc(ctx, f.Close)
		f.mu.Lock()
		f.closers = append([]func(){func() { stop() }}, f.closers...)
		f.mu.Unlock()
	}
	ok = true
	return f, nil
}

// Close stops every fake; it is safe to call more than once.
func (f *Fakes) Close() {
	f.mu.Lock()
	closers := f.closers
	f.closers = nil
	f.mu.Unlock()
	for i := len(closers) - 1; i >= 0; i-- {
		closers[i]()
	}
}

// Endpoints returns base URL and key of each fake, by provider name.
func (f *Fakes) Endpoints() map[string]Endpoint {
	out := map[string]Endpoint{}
	if f.Vast != nil {
		out[vast.Name] = Endpoint{BaseURL: f.Vast.URL(), APIKey: f.Vast.APIKey()}
	}
	if f.RunPod != nil {
		out[runpod.Name] = Endpoint{BaseURL: f.RunPod.URL(), APIKey: f.RunPod.APIKey()}
	}
	if f.Lambda != nil {
		out[lambda.Name] = Endpoint{BaseURL: f.Lambda.URL(), APIKey: f.Lambda.APIKey()}
	}
	return out
}

// Providers returns real clients pointed at the fakes (not wrapped in
// Resilient or Retire: the caller composes those as in production). The
// Lambda client gets an unlimited rate limiter.
func (f *Fakes) Providers(log zerolog.Logger) ([]providers.Provider, error) {
	var out []providers.Provider
	if f.Vast != nil {
		c, err := vast.New(vast.Options{BaseURL: f.Vast.URL(), APIKey: f.Vast.APIKey(), Log: log})
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if f.RunPod != nil {
		c, err := runpod.New(runpod.Options{BaseURL: f.RunPod.URL(), APIKey: f.RunPod.APIKey(), Log: log})
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if f.Lambda != nil {
		c, err := lambda.New(lambda.Options{BaseURL: f.Lambda.URL(), APIKey: f.Lambda.APIKey(), Log: log,
			Limiter: rate.NewLimiter(rate.Inf, 1)})
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func (f *Fakes) seed() error {
	if err := seedVast(f.Vast); err != nil {
		return fmt.Errorf("seeding vast fake: %w", err)
	}
	seedRunPod(f.RunPod)
	seedLambda(f.Lambda)
	return nil
}

func seedVast(s *vastfake.Server) error {
	n := vastfake.SeedInstance(VastSeedNode, "vast-29129529")
	n.SSHHost, n.SSHPort, n.SSHIdx = "ssh6.vast.ai", 19528, "6"
	n.GPUName, n.DphTotal, n.DphBase = "RTX 5090", 0.95, 0.93
	n.PublicIPAddr, n.DirectSSHPort = "198.51.100.29", 41022
	s.Add(n)

	b := vastfake.SeedInstance(VastBidNode, "vast-29129530")
	b.GPUName, b.GPURAM, b.GPUTotalRAM = "RTX 3090", 24576, 24576
	b.IsBid, b.DphTotal, b.MinBid = true, 0.18, 0.12
	b.SSHHost, b.SSHPort = "ssh2.vast.ai", 23110
	b.PublicIPAddr, b.DirectSSHPort = "198.51.100.30", 40122
	s.Add(b)

	st := vastfake.SeedInstance(VastStopped, "vast-29129531")
	stopped := "stopped"
	st.ActualStatus, st.IntendedStatus, st.CurState, st.NextState = &stopped, "stopped", "stopped", "stopped"
	st.GPUName, st.GPURAM, st.GPUTotalRAM, st.DphTotal = "RTX 5090", 32607, 32607, 0.87
	st.SSHHost, st.SSHPort = "ssh4.vast.ai", 31450
	st.PublicIPAddr, st.DirectSSHPort = "198.51.100.31", 40222
	s.Add(st)
	if got := s.Len(); got != 3 {
		return fmt.Errorf("expected 3 seeded instances, have %d", got)
	}
	return nil
}

func seedRunPod(s *runpodfake.Server) {
	s.Add(runpodfake.SeedPod(RunPodSeedPod, "runpod-h100-1"))
	spot := runpodfake.SeedPod(RunPodSpotPod, "runpod-spot-1")
	spot.Interruptible, spot.Cloud, spot.RatePerHour = true, "COMMUNITY", 0.34
	spot.PublicIP, spot.SSHPort = "203.0.113.78", 34512
	s.Add(spot)
}

func seedLambda(s *lambdafake.Server) {
	s.Add(lambdafake.SeedInstance(LambdaGH200, "lambda-gh200-1", "198.51.100.2"))
	a10 := lambdafake.SeedInstance(LambdaA10, "lambda-a10-1", "198.51.100.3")
	a10.InstanceType = lambdafake.InstanceType{Name: "gpu_1x_a10", Description: "1x A10 (24 GB PCIe)", GPUDescription: "A10 (24 GB PCIe)",
		PriceCentsPerHour: 86, Specs: lambdafake.Specs{VCPUs: 30, MemoryGiB: 200, StorageGiB: 1400, GPUs: 1}}
	a10.Region = lambdafake.Region{Name: "us-west-1", Description: "California, USA"}
	s.Add(a10)
}
