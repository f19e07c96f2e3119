package health

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shirou/gopsutil/v4/common"
	"github.com/shirou/gopsutil/v4/cpu"
	"github.com/shirou/gopsutil/v4/disk"
	"github.com/shirou/gopsutil/v4/load"
	"github.com/shirou/gopsutil/v4/mem"
	"github.com/shirou/gopsutil/v4/process"

	"github.com/ringmesh/ringmesh/pkg/events"
)

// Defaults of Options.
const (
	// DefaultTimeout is the deadline of each probe.
	DefaultTimeout = 5 * time.Second
	// DefaultCPUWindow is the shortest window CPUPercent is measured over.
	DefaultCPUWindow = 200 * time.Millisecond
	// MinCPUWindow is the floor of Options.CPUWindow: /proc/stat counts in
	// ticks of 1/USER_HZ = 10 ms, so shorter windows may see no change.
	MinCPUWindow = 20 * time.Millisecond
	// DefaultNvidiaSMI is the GPU probe command, looked up on PATH.
	DefaultNvidiaSMI = "nvidia-smi"
)

// Options configure a Sampler. The zero value is usable: no data paths, no
// watched processes, nvidia-smi from PATH, 5 s per probe.
type Options struct {
	// DiskPaths are the data paths whose filesystems are measured (e.g. the
	// ringrift path and data directories from pkg/paths). Empty: no disks.
	DiskPaths []string

	// NvidiaSMI is the nvidia-smi executable: a name looked up on PATH or an
	// absolute path. Default DefaultNvidiaSMI.
	NvidiaSMI string

	// Exec runs external commands (nvidia-smi). Default: os/exec with the
	// probe's context. Tests inject fixtures here.
	Exec ExecFunc

	// ProcessPatterns maps a watched process name (reported in
	// Sample.Processes) to a regular expression (RE2, regexp package)
	// matched against each process's command line, arguments joined by
	// single spaces; e.g. {"train": `python.*\btrain\.py\b`, "selfplay":
	// `selfplay`}. The agent's own process is never matched. Empty: no
	// process scan.
	ProcessPatterns map[string]string

	// ProcRoot replaces /proc for every procfs read (node_exporter's
	// --path.procfs), e.g. "/host/proc" in a container with the host's /proc
	// mounted, or a fixture tree in tests. Empty: gopsutil's default
	// (HOST_PROC environment variable, else /proc).
	ProcRoot string
	// SysRoot replaces /sys likewise (HOST_SYS, else /sys).
	SysRoot string

	// Timeout is the deadline of each probe. Default DefaultTimeout.
	Timeout time.Duration

	// CPUWindow is the shortest window over which CPUPercent is measured.
	// The first sample reads /proc/stat twice, CPUWindow apart (capped at
	// half the Timeout); later samples use the delta since the previous
	// reading, and a sample taken sooner than CPUWindow after it repeats the
	// previous value. Default DefaultCPUWindow; at least MinCPUWindow.
	CPUWindow time.Duration

	// AgentVersion is copied into every Sample.
	AgentVersion string

	// Now returns the current time. Default time.Now.
	Now func() time.Time
}

// Sampler takes health samples. It is safe for concurrent use.
type Sampler struct {
	opts     Options
	patterns []namedPattern // sorted by name
	selfPID  int32          // excluded from process matching (0: none)

	runner probeRunner

	cpuMu     sync.Mutex
	cpuPrev   cpu.TimesStat
	cpuPrevAt time.Time // monotonic clock reading of cpuPrev
	cpuHave   bool
	cpuLast   *float64

	latest atomic.Pointer[Sample]
}

type namedPattern struct {
	name string
	re   *regexp.Regexp
}

// New returns a Sampler. It fails only when a process pattern does not
// compile; the error names the pattern.
func New(opts Options) (*Sampler, error) {
	if opts.NvidiaSMI == "" {
		opts.NvidiaSMI = DefaultNvidiaSMI
	}
	if opts.Exec == nil {
		opts.Exec = runCommand
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.CPUWindow <= 0 {
		opts.CPUWindow = DefaultCPUWindow
	}
	opts.CPUWindow = max(opts.CPUWindow, MinCPUWindow)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	opts.DiskPaths = slices.Clone(opts.DiskPaths)
	s := &Sampler{opts: opts, runner: probeRunner{hung: map[string]int{}}}
	for name, expr := range opts.ProcessPatterns {
		re, err := regexp.Compile(expr)
		if err != nil {
			return nil, fmt.Errorf("health: process pattern %q: %w", name, err)
		}
		s.patterns = append(s.patterns, namedPattern{name: name, re: re})
	}
	slices.SortFunc(s.patterns, func(a, b namedPattern) int { return strings.Compare(a.name, b.name) })
	if opts.ProcRoot == "" {
		s.selfPID = int32(os.Getpid())
	}
	return s, nil
}

// Latest returns the most recent Sample finished by Run, and false when Run
// has not finished one yet. It never blocks on a probe.
func (s *Sampler) Latest() (Sample, bool) {
	p := s.latest.Load()
	if p == nil {
		return Sample{}, false
	}
	return *p, true
}

// Run samples at once and then every interval until ctx ends, storing each
// Sample for Latest and passing it to fn (when not nil) on Run's goroutine;
// fn should return quickly. Each Sample takes at most about Options.Timeout,
// so a tick is skipped rather than queued when sampling is slower than
// interval. Run returns ctx's error.
func (s *Sampler) Run(ctx context.Context, interval time.Duration, fn func(Sample)) error {
	if interval <= 0 {
		return fmt.Errorf("health: run interval must be positive, got %s", interval)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		smp := s.Sample(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.latest.Store(&smp)
		if fn != nil {
			fn(smp)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Sample takes one health sample. All probes run concurrently, each under its
// own deadline of Options.Timeout (and ctx), so Sample returns within about
// that timeout whatever the host does; a probe that fails or times out
// leaves its fields nil and adds an entry to Errors.
func (s *Sampler) Sample(ctx context.Context) Sample {
	smp := Sample{
		Time:         s.opts.Now().UTC(),
		AgentVersion: s.opts.AgentVersion,
		Disks:        make([]Disk, len(s.opts.DiskPaths)),
		GPUs:         []GPU{},
		Processes:    []Process{},
		Errors:       []string{},
	}
	pctx := s.probeContext(ctx)

	// One slot per probe, filled by its goroutine, read after wg.Wait.
	var (
		wg                              sync.WaitGroup
		cpuPct                          *float64
		cpuCount                        *int
		avg                             *load.AvgStat
		vm                              *mem.VirtualMemoryStat
		uptime                          *uint64
		gpu                             *gpuProbeResult
		procs                           []Process
		cpuErr, cntErr, loadErr, memErr error
		upErr, gpuErr, psErr            error
		diskErrs                        = make([]error, len(s.opts.DiskPaths))
		diskStats                       = make([]*disk.UsageStat, len(s.opts.DiskPaths))
		watchProcesses                  = len(s.patterns) > 0
	)
	wg.Go(func() {
		cpuPct, cpuErr = runProbe(pctx, &s.runner, "cpu", s.opts.Timeout, s.cpuPercent)
	})
	wg.Go(func() {
		cpuCount, cntErr = runProbe(pctx, &s.runner, "cpu_count", s.opts.Timeout, func(ctx context.Context) (*int, error) {
			n, err := cpu.CountsWithContext(ctx, true)
			if err != nil {
				return nil, err
			}
			if n <= 0 {
				return nil, errors.New("no CPUs listed")
			}
			return &n, nil
		})
	})
	wg.Go(func() {
		avg, loadErr = runProbe(pctx, &s.runner, "load", s.opts.Timeout, load.AvgWithContext)
	})
	wg.Go(func() {
		vm, memErr = runProbe(pctx, &s.runner, "memory", s.opts.Timeout, mem.VirtualMemoryWithContext)
	})
	wg.Go(func() {
		uptime, upErr = runProbe(pctx, &s.runner, "uptime", s.opts.Timeout, s.uptime)
	})
	for i, path := range s.opts.DiskPaths {
		wg.Go(func() {
			diskStats[i], diskErrs[i] = runProbe(pctx, &s.runner, "disk "+path, s.opts.Timeout, func(ctx context.Context) (*disk.UsageStat, error) {
				return disk.UsageWithContext(ctx, path)
			})
		})
	}
	wg.Go(func() {
		gpu, gpuErr = runProbe(pctx, &s.runner, "gpu", s.opts.Timeout, func(ctx context.Context) (*gpuProbeResult, error) {
			res := probeGPUs(ctx, s.opts.Exec, s.opts.NvidiaSMI)
			if err := ctx.Err(); err != nil {
				return nil, err // killed by the deadline: its output says nothing
			}
			return &res, nil
		})
	})
	if watchProcesses {
		wg.Go(func() {
			procs, psErr = runProbe(pctx, &s.runner, "processes", s.opts.Timeout, s.processes)
		})
	}
	wg.Wait()

	// Assemble in a fixed order so Errors is deterministic.
	fail := func(probe string, err error) {
		smp.Errors = append(smp.Errors, probe+": "+err.Error())
	}
	if cpuErr != nil {
		fail("cpu", cpuErr)
	} else {
		smp.CPUPercent = cpuPct
	}
	if cntErr != nil {
		fail("cpu_count", cntErr)
	} else {
		smp.CPUCount = cpuCount
	}
	if loadErr != nil {
		fail("load", loadErr)
	} else if avg != nil {
		smp.Load1, smp.Load5, smp.Load15 = ptr(avg.Load1), ptr(avg.Load5), ptr(avg.Load15)
	}
	switch {
	case memErr != nil:
		fail("memory", memErr)
	case vm == nil || vm.Total == 0:
		fail("memory", errors.New("MemTotal is 0 or missing"))
	default:
		smp.MemTotalBytes, smp.MemUsedBytes, smp.MemAvailableBytes = ptr(vm.Total), ptr(vm.Used), ptr(vm.Available)
	}
	if upErr != nil {
		fail("uptime", upErr)
	} else {
		smp.UptimeSeconds = uptime
	}
	for i, path := range s.opts.DiskPaths {
		d := Disk{Path: path}
		st := diskStats[i]
		switch {
		case diskErrs[i] != nil:
			d.Error = diskErrs[i].Error()
			fail("disk "+path, diskErrs[i])
		case st == nil:
			d.Error = "no data"
			fail("disk "+path, errors.New(d.Error))
		default:
			d.FSType = st.Fstype
			if st.Total > 0 {
				d.TotalBytes, d.UsedBytes, d.FreeBytes = ptr(st.Total), ptr(st.Used), ptr(st.Free)
				if pct, ok := events.DiskUsedPercent(st.Used, st.Free); ok {
					d.UsedPercent = ptr(pct)
				}
			} else {
				d.Error = "filesystem reports 0 blocks"
				fail("disk "+path, errors.New(d.Error))
			}
		}
		smp.Disks[i] = d
	}
	if gpuErr != nil || gpu == nil {
		if gpuErr == nil {
			gpuErr = errors.New("no result")
		}
		smp.GPUProbe = GPUProbeErrorPrefix + gpuErr.Error()
		fail("gpu", gpuErr)
	} else {
		smp.GPUProbe = gpu.status
		smp.GPUs = gpu.gpus
		if strings.HasPrefix(gpu.status, GPUProbeErrorPrefix) {
			if len(gpu.errs) == 0 {
				fail("gpu", errors.New(strings.TrimPrefix(gpu.status, GPUProbeErrorPrefix)))
			}
			for _, e := range gpu.errs {
				smp.Errors = append(smp.Errors, "gpu: "+e)
			}
		}
	}
	if watchProcesses {
		if psErr != nil {
			fail("processes", psErr)
			for _, p := range s.patterns {
				smp.Processes = append(smp.Processes, Process{Name: p.name})
			}
		} else {
			smp.Processes = procs
		}
	}
	return smp
}

// probeContext carries ProcRoot/SysRoot to gopsutil (common.EnvKey).
func (s *Sampler) probeContext(ctx context.Context) context.Context {
	if s.opts.ProcRoot == "" && s.opts.SysRoot == "" {
		return ctx
	}
	env := common.EnvMap{}
	if s.opts.ProcRoot != "" {
		env[common.HostProcEnvKey] = s.opts.ProcRoot
	}
	if s.opts.SysRoot != "" {
		env[common.HostSysEnvKey] = s.opts.SysRoot
	}
	return context.WithValue(ctx, common.EnvKey, env)
}

// procPath joins parts below the proc root gopsutil would use.
func (s *Sampler) procPath(parts ...string) string {
	root := s.opts.ProcRoot
	if root == "" {
		root = os.Getenv(string(common.HostProcEnvKey))
	}
	if root == "" {
		root = "/proc"
	}
	return filepath.Join(append([]string{root}, parts...)...)
}

// uptime reads the first field of <proc>/uptime (seconds since boot).
func (s *Sampler) uptime(context.Context) (*uint64, error) {
	b, err := os.ReadFile(s.procPath("uptime"))
	if err != nil {
		return nil, err
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return nil, errors.New("empty uptime file")
	}
	sec, err := strconv.ParseFloat(f[0], 64)
	if err != nil || sec < 0 {
		return nil, fmt.Errorf("bad uptime %q", f[0])
	}
	u := uint64(sec)
	return &u, nil
}

// cpuPercent measures busy CPU share since the previous reading; see
// Options.CPUWindow.
func (s *Sampler) cpuPercent(ctx context.Context) (*float64, error) {
	window := min(s.opts.CPUWindow, s.opts.Timeout/2)
	for {
		t, err := readCPUTimes(ctx)
		if err != nil {
			return nil, err
		}
		now := time.Now() // monotonic, whatever Options.Now says
		s.cpuMu.Lock()
		if !s.cpuHave {
			s.cpuPrev, s.cpuPrevAt, s.cpuHave = t, now, true
			s.cpuMu.Unlock()
			if err := sleepCtx(ctx, window); err != nil {
				return nil, err
			}
			continue
		}
		elapsed := now.Sub(s.cpuPrevAt)
		if elapsed < window {
			last := s.cpuLast
			s.cpuMu.Unlock()
			if last != nil {
				v := *last
				return &v, nil
			}
			if err := sleepCtx(ctx, window-elapsed); err != nil {
				return nil, err
			}
			continue
		}
		pct, ok := busyPercent(s.cpuPrev, t)
		s.cpuPrev, s.cpuPrevAt = t, now
		if !ok {
			s.cpuMu.Unlock()
			return nil, errors.New("/proc/stat counters did not advance")
		}
		s.cpuLast = &pct
		s.cpuMu.Unlock()
		v := pct
		return &v, nil
	}
}

func readCPUTimes(ctx context.Context) (cpu.TimesStat, error) {
	ts, err := cpu.TimesWithContext(ctx, false)
	if err != nil {
		return cpu.TimesStat{}, err
	}
	if len(ts) == 0 {
		return cpu.TimesStat{}, errors.New("no cpu line in stat")
	}
	return ts[0], nil
}

// busyPercent is the busy share between two readings, as gopsutil's
// cpu.Percent computes it (guest time is already inside user time on Linux;
// idle and iowait count as not busy). ok is false when no time passed.
func busyPercent(a, b cpu.TimesStat) (float64, bool) {
	// Every field of the reading but guest time (TimesStat.Total less Guest
	// and GuestNice; Total itself is deprecated).
	total := func(t cpu.TimesStat) float64 {
		return t.User + t.System + t.Idle + t.Nice + t.Iowait + t.Irq + t.Softirq + t.Steal
	}
	idle := func(t cpu.TimesStat) float64 { return t.Idle + t.Iowait }
	dt := total(b) - total(a)
	if dt <= 0 {
		return 0, false
	}
	busy := (dt - (idle(b) - idle(a))) / dt * 100
	return min(max(busy, 0), 100), true
}

// processes lists processes and matches their command lines.
func (s *Sampler) processes(ctx context.Context) ([]Process, error) {
	pids, err := process.PidsWithContext(ctx)
	if err != nil {
		return nil, err
	}
	counts := make([]int, len(s.patterns))
	for _, pid := range pids {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if pid == s.selfPID {
			continue
		}
		// A zero Process with only Pid set reads <proc>/<pid>/cmdline;
		// process.NewProcessWithContext would also stat and parse
		// <proc>/<pid>/stat, which the scan does not need.
		p := &process.Process{Pid: pid}
		cmdline, err := p.CmdlineWithContext(ctx)
		if err != nil || cmdline == "" {
			continue // exited meanwhile, or a kernel thread
		}
		for i, np := range s.patterns {
			if np.re.MatchString(cmdline) {
				counts[i]++
			}
		}
	}
	out := make([]Process, len(s.patterns))
	for i, np := range s.patterns {
		out[i] = Process{Name: np.name, Present: ptr(counts[i] > 0), Count: ptr(counts[i])}
	}
	return out, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func ptr[T any](v T) *T { return &v }

// probeRunner runs probes under deadlines and remembers which are hung: a
// probe that missed its deadline and has not returned yet (statfs on a dead
// NFS server, an unkillable nvidia-smi). While one is hung, the same probe
// is not started again, so hung goroutines do not pile up.
type probeRunner struct {
	mu   sync.Mutex
	hung map[string]int // probe name → hung goroutines
}

// ErrProbeHung is returned for a probe whose previous run missed its
// deadline and has still not returned.
var ErrProbeHung = errors.New("previous run still hung after its deadline; not started again")

// runProbe runs f under its own deadline and returns its result, or an error
// when f fails, ctx ends or the deadline passes (f keeps running then, with
// a cancelled context, and its result is dropped).
func runProbe[T any](ctx context.Context, r *probeRunner, name string, timeout time.Duration, f func(context.Context) (T, error)) (T, error) {
	var zero T
	r.mu.Lock()
	if r.hung[name] > 0 {
		r.mu.Unlock()
		return zero, ErrProbeHung
	}
	r.mu.Unlock()

	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	type result struct {
		v   T
		err error
	}
	var (
		done, abandoned bool // guarded by r.mu
	)
	ch := make(chan result, 1)
	go func() {
		v, err := f(pctx)
		r.mu.Lock()
		done = true
		if abandoned {
			r.hung[name]--
			if r.hung[name] <= 0 {
				delete(r.hung, name)
			}
		}
		r.mu.Unlock()
		ch <- result{v, err}
	}()
	finish := func(res result) (T, error) {
		if res.err != nil && ctx.Err() == nil && errors.Is(pctx.Err(), context.DeadlineExceeded) {
			return zero, fmt.Errorf("timed out after %s", timeout)
		}
		return res.v, res.err
	}
	select {
	case res := <-ch:
		return finish(res)
	case <-pctx.Done():
		r.mu.Lock()
		finished := done
		if !finished {
			abandoned = true
			r.hung[name]++
		}
		r.mu.Unlock()
		if finished { // returned just as the deadline passed: use it
			return finish(<-ch)
		}
		if err := ctx.Err(); err != nil {
			return zero, err
		}
		return zero, fmt.Errorf("timed out after %s", timeout)
	}
}

// hungProbes returns the names of probes currently hung (for tests).
func (s *Sampler) hungProbes() []string {
	s.runner.mu.Lock()
	defer s.runner.mu.Unlock()
	var out []string
	for k := range s.runner.hung {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
