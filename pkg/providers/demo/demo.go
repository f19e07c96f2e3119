// Package demo starts the cloud fakes on loopback, seeded with a few
// instances, for the coordinator's demo mode and for integration tests. No
// real cloud is contacted and no real credential is used.
//
// The seeded instances match DemoInventory (inventory.go) by provider
// instance ID and name: three Hetzner CPU voters, Vast, RunPod, Vultr and
// Nebius GPU nodes, and two Lambda instances of a provider the inventory
// marks retired.
//
// # Adding a cloud
//
// Each cloud has one field in Fakes. To add one: add the field, start its
// fake in StartFakes (append its Close to f.closers right after starting it,
// so a later failure closes it), seed it in a seedXxx function called from
// seed, and add it to Endpoints and Providers. Nothing else in this package
// needs to change.
//
// # Nebius: a fake CLI, not a fake server
//
// Nebius is driven through its `nebius` CLI, so its fake (nebiusfake) is a
// state file plus a program that answers CLI invocations. StartFakes always
// creates the state file in a temporary directory (removed by Close) and
// seeds it, so Fakes.Nebius can be inspected and seeded. The nebius client
// in Providers needs more: a program to run as the CLI. Set
// Options.NebiusCLI to an executable whose main (or TestMain) calls
// RunFakeCLIIfInvoked before anything else:
//
//	func main() {
//		demo.RunFakeCLIIfInvoked() // returns at once unless started as the fake CLI
//		...
//		exe, err := os.Executable()
//		...
//		fakes, err := demo.StartFakes(ctx, demo.Options{NebiusCLI: exe})
//
// (a test does the same in TestMain), or to a binary built from
// pkg/providers/nebius/internal/fakenebius. StartFakes writes a wrapper
// script that runs that program with the state file in its environment and
// checks it with one `compute instance list` call (recorded in the fake's
// Calls). When NebiusCLI is empty or the check fails, Providers leaves nebius
// out, NotConfigured says why, and Registry registers it as not configured
// with that reason. A wrong NebiusCLI cannot recurse: a program started as
// the fake CLI that reaches StartFakes (it did not call RunFakeCLIIfInvoked)
// starts no CLI of its own, and the check kills whatever has not answered
// within 30 s.
package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/time/rate"

	"github.com/ringmesh/ringmesh/pkg/providers"
	"github.com/ringmesh/ringmesh/pkg/providers/hetzner"
	"github.com/ringmesh/ringmesh/pkg/providers/hetzner/hetznerfake"
	"github.com/ringmesh/ringmesh/pkg/providers/internal/fakeapi"
	"github.com/ringmesh/ringmesh/pkg/providers/lambda"
	"github.com/ringmesh/ringmesh/pkg/providers/lambda/lambdafake"
	"github.com/ringmesh/ringmesh/pkg/providers/nebius"
	"github.com/ringmesh/ringmesh/pkg/providers/nebius/nebiusfake"
	"github.com/ringmesh/ringmesh/pkg/providers/runpod"
	"github.com/ringmesh/ringmesh/pkg/providers/runpod/runpodfake"
	"github.com/ringmesh/ringmesh/pkg/providers/vast"
	"github.com/ringmesh/ringmesh/pkg/providers/vast/vastfake"
	"github.com/ringmesh/ringmesh/pkg/providers/vultr"
	"github.com/ringmesh/ringmesh/pkg/providers/vultr/vultrfake"
)

// Options configures StartFakes.
type Options struct {
	// Empty starts the fakes without the seeded instances.
	Empty bool
	// Delay is how long state transitions (boot, start, stop) take in every
	// fake (default 2s; negative means instantly).
	Delay time.Duration
	// Now is the clock of the HTTP fakes (default time.Now). The Nebius fake
	// CLI runs in other processes and always uses the wall clock.
	Now func() time.Time
	// NebiusCLI is the program the fake nebius CLI wrapper runs: one that
	// calls RunFakeCLIIfInvoked first thing (typically os.Executable() of a
	// binary or test binary that does), or a fakenebius binary. Empty: no
	// nebius provider (see the package doc).
	NebiusCLI string
}

// Endpoint is how to reach one fake.
type Endpoint struct {
	BaseURL string // HTTP fakes: the client's base URL or endpoint
	APIKey  string // the fake's key; not a secret
	// CLI is the fake CLI wrapper to use as nebius.Options.Binary (Nebius only).
	CLI string
	// Project is the parent ID to list (Nebius only).
	Project string
}

// Fakes holds the running fakes, one field per cloud.
type Fakes struct {
	Vast    *vastfake.Server
	RunPod  *runpodfake.Server
	Lambda  *lambdafake.Server
	Vultr   *vultrfake.Server
	Hetzner *hetznerfake.Server
	// Nebius is the fake CLI's state. It always exists; the nebius client
	// can use it only when NotConfigured has no "nebius" entry.
	Nebius *nebiusfake.Fake

	nebiusCLI string // wrapper script; "" when unusable
	nebiusErr error  // why the nebius CLI is unusable

	mu      sync.Mutex
	closers []func()
}

// Seeded instance IDs, so tests and the demo can refer to them. They are the
// *_id fields of DemoInventory.
const (
	// VastSeedNode is vast-29129529 of the original README: proxy endpoint
	// root@ssh6.vast.ai:19528.
	VastSeedNode int64 = 29129529
	VastBidNode  int64 = 29129530 // interruptible (bid) RTX 3090
	VastStopped  int64 = 29129531 // stopped RTX 5090
	// VastDuoNode is vast-12345678 of the wide fixture: 2x RTX 4090, proxy
	// endpoint root@ssh0.vast.ai:12345.
	VastDuoNode int64 = 12345678

	RunPodSeedPod = "xedezhzb9la3ye" // runpod-a100-1: running A100 80GB, secure cloud
	RunPodSpotPod = "spot7k2m4q9wzz" // running interruptible RTX 4090, community

	LambdaGH200 = "0920582c7ff041399e34823a0be62549"
	LambdaA10   = "5b1e6c3a9d0f4e2b8c7a6d5e4f3a2b1c"

	// VultrA100 is vultr-a100-20gb: plan vcg-a100-3c-30g-20vram (A100 20 GB vGPU slice).
	VultrA100 = "6f2a9c1e-0000-4000-8000-000000000001"

	// HetznerVoter1..3 are the CPU voters hetzner-cpu1..3 (dedicated ccx33,
	// one per location).
	HetznerVoter1 int64 = 41000001
	HetznerVoter2 int64 = 41000002
	HetznerVoter3 int64 = 41000003

	// NebiusH100 is nebius-h100-1 (gpu-h100-sxm, 1 GPU) in NebiusProject.
	NebiusH100    = "computeinstance-e00example0001"
	NebiusProject = "project-e00demo"
	// NebiusH100PerHour is the configured price of the gpu-h100-sxm platform
	// (USD/hour; the Nebius API has no price field).
	NebiusH100PerHour = 2.95
)

// API keys of the HTTP fakes that accept any key by default; fake values.
const (
	vultrKey   = "demo-vultr-key"
	hetznerKey = "demo-hetzner-token"
)

// RunFakeCLIIfInvoked makes the calling program act as the fake nebius CLI
// when the demo's wrapper script started it, and exits; otherwise it
// returns at once. Call it first thing in main or TestMain of any program
// passed as Options.NebiusCLI.
func RunFakeCLIIfInvoked() { nebiusfake.RunIfInvoked() }

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
	// The vultr, hetzner and nebius fakes read a zero delay as "use my
	// default": a nanosecond is "instantly" for them.
	tiny := max(delay, time.Nanosecond)
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
	f.Vultr = vultrfake.New(vultrfake.Options{Token: vultrKey, BootDelay: tiny, HaltDelay: tiny, StartDelay: tiny, Now: opts.Now})
	f.closers = append(f.closers, f.Vultr.Close)
	f.Hetzner = hetznerfake.New(hetznerfake.Options{Token: hetznerKey, ActionDelay: tiny, ShutdownDelay: tiny, Now: opts.Now})
	f.closers = append(f.closers, f.Hetzner.Close)

	dir, err := os.MkdirTemp("", "ringmesh-demo-nebius-")
	if err != nil {
		return nil, fmt.Errorf("nebius fake: %w", err)
	}
	f.closers = append(f.closers, func() { _ = os.RemoveAll(dir) })
	if f.Nebius, err = nebiusfake.New(dir, nebiusfake.Options{ProjectID: NebiusProject, StepDelay: tiny}); err != nil {
		return nil, fmt.Errorf("nebius fake: %w", err)
	}

	if !opts.Empty {
		if err := f.seed(); err != nil {
			return nil, err
		}
	}
	if ctx == nil {
		ctx = context.Background()
	}
	f.nebiusCLI, f.nebiusErr = f.setUpNebiusCLI(ctx, dir, opts.NebiusCLI)
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, f.Close)
		f.mu.Lock()
		f.closers = append([]func(){func() { stop() }}, f.closers...)
		f.mu.Unlock()
	}
	ok = true
	return f, nil
}

// setUpNebiusCLI writes the wrapper script for exe and checks that it
// answers as the fake CLI. It returns the wrapper, or why there is none.
func (f *Fakes) setUpNebiusCLI(ctx context.Context, dir, exe string) (string, error) {
	if exe == "" {
		return "", errors.New("demo: no fake nebius CLI: Options.NebiusCLI is empty " +
			"(set it to a program that calls demo.RunFakeCLIIfInvoked first, e.g. os.Executable() of such a binary)")
	}
	if os.Getenv(nebiusfake.EnvState) != "" {
		// This process was started as the fake CLI but did not stop at
		// RunFakeCLIIfInvoked: starting the CLI again would recurse.
		return "", fmt.Errorf("demo: no fake nebius CLI: this process runs with $%s set, so it was started as the fake CLI "+
			"and its main did not call demo.RunFakeCLIIfInvoked first", nebiusfake.EnvState)
	}
	wrapper, err := f.Nebius.WriteWrapper(dir, exe)
	if err != nil {
		return "", fmt.Errorf("demo: fake nebius CLI wrapper: %w", err)
	}
	// A -race test binary takes a while to start on a busy machine.
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(pctx, wrapper, "compute", "instance", "list", "--parent-id", NebiusProject, "--format", "json")
	cmd.WaitDelay = 2 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var list struct {
		Items *[]json.RawMessage `json:"items"`
	}
	if runErr == nil {
		runErr = json.Unmarshal(stdout.Bytes(), &list)
		if runErr == nil && list.Items == nil {
			runErr = errors.New(`no "items" in its answer`)
		}
	}
	if runErr != nil {
		msg := bytes.TrimSpace(stderr.Bytes())
		if len(msg) > 300 {
			msg = msg[:300]
		}
		return "", fmt.Errorf("demo: no fake nebius CLI: %s did not answer `compute instance list` as the fake CLI "+
			"(does its main call demo.RunFakeCLIIfInvoked first?): %v; stderr: %q", exe, runErr, msg)
	}
	return wrapper, nil
}

// Close stops every fake and removes the Nebius state directory; it is safe
// to call more than once.
func (f *Fakes) Close() {
	f.mu.Lock()
	closers := f.closers
	f.closers = nil
	f.mu.Unlock()
	for i := len(closers) - 1; i >= 0; i-- {
		closers[i]()
	}
}

// Endpoints returns how to reach each usable fake, by provider name: base
// URL and key of the HTTP fakes; CLI wrapper and project for Nebius (present
// only when its CLI works).
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
	if f.Vultr != nil {
		out[vultr.Name] = Endpoint{BaseURL: f.Vultr.URL(), APIKey: vultrKey}
	}
	if f.Hetzner != nil {
		out[hetzner.Name] = Endpoint{BaseURL: f.Hetzner.URL(), APIKey: hetznerKey}
	}
	if f.Nebius != nil && f.nebiusCLI != "" {
		out[nebius.Name] = Endpoint{CLI: f.nebiusCLI, Project: NebiusProject}
	}
	return out
}

// NotConfigured names the clouds whose fake runs but that Providers leaves
// out, with the reason (today only nebius, when its fake CLI is unusable).
func (f *Fakes) NotConfigured() map[string]error {
	out := map[string]error{}
	if f.Nebius != nil && f.nebiusCLI == "" {
		reason := f.nebiusErr
		if reason == nil {
			reason = errors.New("demo: no fake nebius CLI")
		}
		out[nebius.Name] = fmt.Errorf("%w: %w", providers.ErrNotConfigured, reason)
	}
	return out
}

// Providers returns real clients pointed at the fakes (not wrapped in
// Resilient or Retire: the caller composes those as in production). The
// Lambda client gets an unlimited rate limiter. Hetzner gets a voter guard
// protecting hetzner-cpu1..3 (by ID and name; replace the set with
// Guard().Set). Nebius is included only when its fake CLI works (see
// NotConfigured and Registry).
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
	if f.Vultr != nil {
		c, err := vultr.New(vultr.Options{BaseURL: f.Vultr.URL(), APIKey: vultrKey, Logger: &log})
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if f.Hetzner != nil {
		guard := hetzner.NewVoterGuard("hetzner-cpu1", "hetzner-cpu2", "hetzner-cpu3",
			fmt.Sprint(HetznerVoter1), fmt.Sprint(HetznerVoter2), fmt.Sprint(HetznerVoter3))
		c, err := hetzner.New(hetzner.Options{Endpoint: f.Hetzner.URL(), Token: hetznerKey, Guard: guard,
			PollInterval: 50 * time.Millisecond, Logger: &log})
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if f.Nebius != nil && f.nebiusCLI != "" {
		c, err := nebius.New(nebius.Options{Binary: f.nebiusCLI, ProjectID: NebiusProject, Timeout: 30 * time.Second,
			Prices: map[string]providers.Price{"gpu-h100-sxm": {PerHour: NebiusH100PerHour, Currency: "USD"}}, Logger: &log})
		if err != nil {
			return nil, err
		}
		if c.Mode() != nebius.ModeCLI {
			return nil, fmt.Errorf("demo: nebius client is in %s mode, want %s", c.Mode(), nebius.ModeCLI)
		}
		out = append(out, c)
	}
	return out, nil
}

// Registry returns a registry holding Providers, with every cloud of
// NotConfigured registered as not configured with its reason.
func (f *Fakes) Registry(log zerolog.Logger) (*providers.Registry, error) {
	ps, err := f.Providers(log)
	if err != nil {
		return nil, err
	}
	reg := providers.NewRegistry()
	for _, p := range ps {
		reg.Register(p)
	}
	for name, why := range f.NotConfigured() {
		reg.RegisterUnconfigured(name, why)
	}
	return reg, nil
}

func (f *Fakes) seed() error {
	if err := seedVast(f.Vast); err != nil {
		return fmt.Errorf("seeding vast fake: %w", err)
	}
	seedRunPod(f.RunPod)
	seedLambda(f.Lambda)
	seedVultr(f.Vultr)
	seedHetzner(f.Hetzner)
	if err := seedNebius(f.Nebius); err != nil {
		return fmt.Errorf("seeding nebius fake: %w", err)
	}
	f.seedOffers()
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
	st.Costs = &vastfake.Costs{TotalHour: 0.87, DiskHour: 0.0125, DiscountedTotalPerHour: 0.87} // stopped: the disk still bills
	st.SSHHost, st.SSHPort = "ssh4.vast.ai", 31450
	st.PublicIPAddr, st.DirectSSHPort = "198.51.100.31", 40222
	s.Add(st)

	d := vastfake.SeedInstance(VastDuoNode, "vast-12345678")
	d.GPUName, d.NumGPUs, d.GPURAM, d.GPUTotalRAM = "RTX 4090", 2, 24564, 49128
	d.DphBase, d.DphTotal = 0.58, 0.6042
	d.SSHHost, d.SSHPort, d.SSHIdx = "ssh0.vast.ai", 12345, "0"
	d.PublicIPAddr, d.DirectSSHPort = "198.51.100.78", 40322
	s.Add(d)
	if got := s.Len(); got != 4 {
		return fmt.Errorf("expected 4 seeded instances, have %d", got)
	}
	return nil
}

func seedRunPod(s *runpodfake.Server) {
	a100 := runpodfake.SeedPod(RunPodSeedPod, "runpod-a100-1")
	a100.GPU = &runpodfake.GPU{ID: "NVIDIA A100 80GB PCIe", Count: 1}
	a100.RatePerHour, a100.PublicIP, a100.SSHPort = 1.64, "203.0.113.50", 22041
	s.Add(a100)
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

func seedVultr(s *vultrfake.Server) {
	s.Seed(vultrfake.Instance{
		ID: VultrA100, Label: "vultr-a100-20gb", Hostname: "vultr-a100-20gb",
		Plan: "vcg-a100-3c-30g-20vram", Region: "ewr", MainIP: "192.0.2.30",
		OS: "Ubuntu 22.04 LTS x64", OSID: 1743, Status: "active",
		DateCreated: "2026-11-20T08:00:00+00:00",
	})
}

func seedHetzner(s *hetznerfake.Server) {
	created := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
	s.Seed(
		hetznerfake.SeedServer{ID: HetznerVoter1, Name: "hetzner-cpu1", ServerType: "ccx33", Location: "fsn1", IPv4: "203.0.113.10",
			Labels: map[string]string{"role": "voter"}, Created: created},
		hetznerfake.SeedServer{ID: HetznerVoter2, Name: "hetzner-cpu2", ServerType: "ccx33", Location: "nbg1", IPv4: "203.0.113.11",
			Labels: map[string]string{"role": "voter"}, Created: created},
		hetznerfake.SeedServer{ID: HetznerVoter3, Name: "hetzner-cpu3", ServerType: "ccx33", Location: "hel1", IPv4: "203.0.113.12",
			Labels: map[string]string{"role": "voter"}, Created: created},
	)
}

func seedNebius(f *nebiusfake.Fake) error {
	_, err := f.Seed(nebiusfake.SeedInstance{ID: NebiusH100, Name: "nebius-h100-1",
		Platform: "gpu-h100-sxm", Preset: "1gpu-16vcpu-200gb", PublicIP: "203.0.113.90"})
	return err
}

// Fault, FaultKind and Call are the fault-injection types that every HTTP
// cloud fake shares (the one harness in pkg/providers/internal/fakeapi):
// vastfake.Fault, runpodfake.Fault, lambdafake.Fault, vultrfake.Fault and
// hetznerfake.Fault are all this type.
type (
	Fault     = fakeapi.Fault
	FaultKind = fakeapi.FaultKind
	Call      = fakeapi.Call
)

// FaultTarget is what each HTTP cloud fake offers through the shared
// harness: fault injection (with the same vocabulary: rate_limit,
// server_error, timeout, malformed, auth_error) and the call log.
type FaultTarget interface {
	Inject(Fault)
	ClearFaults()
	Calls() []Call
	MutatingCalls() []Call
	CountCalls(method, pattern string) int
	ResetCalls()
}

// NamedFake is one HTTP cloud fake and its provider name.
type NamedFake struct {
	Name string
	FaultTarget
}

// HTTPFakes returns the HTTP cloud fakes in a fixed order (vast, runpod,
// lambda, vultr, hetzner). Nebius's fake is a CLI with its own state file
// and is not among them.
func (f *Fakes) HTTPFakes() []NamedFake {
	return []NamedFake{
		{Name: "vast", FaultTarget: f.Vast},
		{Name: "runpod", FaultTarget: f.RunPod},
		{Name: "lambda", FaultTarget: f.Lambda},
		{Name: "vultr", FaultTarget: f.Vultr},
		{Name: "hetzner", FaultTarget: f.Hetzner},
	}
}
