package health

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestSampleRealHost samples this machine. Where nvidia-smi is not installed
// (CI, CPU nodes) the GPU list must be [] with "nvidia-smi not found" and no
// error; where it is, the probe must succeed.
func TestSampleRealHost(t *testing.T) {
	// A child with a unique command line to find, and this test binary
	// (the "agent") which must never match itself.
	sleepArg := fmt.Sprintf("%d.%06d", 30+os.Getpid()%60, time.Now().Nanosecond()/1000)
	child := exec.Command("sleep", sleepArg)
	if err := child.Start(); err != nil {
		t.Skipf("cannot start sleep: %v", err)
	}
	t.Cleanup(func() { _ = child.Process.Kill(); _ = child.Wait() })
	s, err := New(Options{
		DiskPaths: []string{"/"},
		ProcessPatterns: map[string]string{
			"child":   `^sleep ` + regexp.QuoteMeta(sleepArg) + `$`,
			"self":    `^` + regexp.QuoteMeta(strings.Join(os.Args, " ")) + `$`,
			"nothing": `^no-such-process-[0-9a-f]{32}$`,
		},
		AgentVersion: "v0.0.0-test",
	})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	smp := s.Sample(context.Background())
	t.Logf("first sample took %s", time.Since(start))
	if smp.CPUPercent == nil || *smp.CPUPercent < 0 || *smp.CPUPercent > 100 {
		t.Errorf("cpu_percent = %v", smp.CPUPercent)
	}
	if smp.CPUCount == nil || *smp.CPUCount < 1 {
		t.Errorf("cpu_count = %v", smp.CPUCount)
	}
	if smp.Load1 == nil || smp.Load5 == nil || smp.Load15 == nil {
		t.Errorf("load = %v %v %v", smp.Load1, smp.Load5, smp.Load15)
	}
	if smp.MemTotalBytes == nil || *smp.MemTotalBytes == 0 || smp.MemAvailableBytes == nil || smp.MemUsedBytes == nil {
		t.Errorf("memory = %v %v %v", smp.MemTotalBytes, smp.MemUsedBytes, smp.MemAvailableBytes)
	} else if *smp.MemAvailableBytes > *smp.MemTotalBytes {
		t.Errorf("available %d > total %d", *smp.MemAvailableBytes, *smp.MemTotalBytes)
	}
	if smp.UptimeSeconds == nil || *smp.UptimeSeconds == 0 {
		t.Errorf("uptime = %v", smp.UptimeSeconds)
	}
	if len(smp.Disks) != 1 {
		t.Fatalf("disks = %+v", smp.Disks)
	}
	d := smp.Disks[0]
	if d.Path != "/" || d.Error != "" || d.TotalBytes == nil || *d.TotalBytes == 0 || d.FreeBytes == nil ||
		d.UsedPercent == nil || *d.UsedPercent < 0 || *d.UsedPercent > 100 || d.FSType == "" {
		t.Errorf("disk / = %s", mustJSON(t, d))
	}
	if _, err := exec.LookPath("nvidia-smi"); err != nil {
		if smp.GPUProbe != GPUProbeNotFound || smp.GPUs == nil || len(smp.GPUs) != 0 {
			t.Errorf("no nvidia-smi: gpu_probe %q gpus %#v", smp.GPUProbe, smp.GPUs)
		}
	} else {
		t.Logf("nvidia-smi present: gpu_probe %q, %d GPUs", smp.GPUProbe, len(smp.GPUs))
		if smp.GPUProbe != GPUProbeOK && smp.GPUProbe != GPUProbeNoGPU {
			t.Errorf("gpu_probe %q", smp.GPUProbe)
		}
		for _, g := range smp.GPUs {
			if g.Name == "" || g.UUID == "" || g.MemoryTotalBytes == nil {
				t.Errorf("gpu %s", mustJSON(t, g))
			}
		}
	}
	// The test binary is the agent's own process: excluded.
	wantProcs := []Process{
		{Name: "child", Present: ptr(true), Count: ptr(1)},
		{Name: "nothing", Present: ptr(false), Count: ptr(0)},
		{Name: "self", Present: ptr(false), Count: ptr(0)},
	}
	if got := mustJSON(t, smp.Processes); got != mustJSON(t, wantProcs) {
		t.Errorf("processes = %s", got)
	}
	if len(smp.Errors) != 0 {
		t.Errorf("errors = %q", smp.Errors)
	}
	if smp.AgentVersion != "v0.0.0-test" || smp.Time.IsZero() || smp.Time.Location() != time.UTC {
		t.Errorf("version %q time %v", smp.AgentVersion, smp.Time)
	}
	t.Logf("sample: %s", mustJSON(t, smp))

	// A second sample right away reuses the CPU window instead of waiting.
	start = time.Now()
	smp2 := s.Sample(context.Background())
	if smp2.CPUPercent == nil {
		t.Errorf("second cpu_percent unknown")
	}
	t.Logf("second sample took %s", time.Since(start))
}

// procFixture builds a procfs tree with the files the probes read.
func procFixture(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{
		"stat": "cpu  1000 0 500 8000 100 0 0 0 0 0\n" +
			"cpu0 500 0 250 4000 50 0 0 0 0 0\ncpu1 500 0 250 4000 50 0 0 0 0 0\n" +
			"intr 0\nctxt 0\nbtime 1764400000\nprocesses 10\nprocs_running 1\nprocs_blocked 0\n",
		"cpuinfo": "processor\t: 0\nmodel name\t: Fake CPU\n\nprocessor\t: 1\nmodel name\t: Fake CPU\n\n",
		"loadavg": "0.52 0.58 0.59 1/389 12345\n",
		"meminfo": "MemTotal:       16384000 kB\nMemFree:         1024000 kB\nMemAvailable:     512000 kB\n" +
			"Buffers:           10000 kB\nCached:           200000 kB\nSwapTotal:             0 kB\nSwapFree:              0 kB\n",
		"uptime":          "12345.67 20000.00\n",
		"1/cmdline":       "/sbin/init\x00splash\x00",
		"17/cmdline":      "", // kernel thread
		"4242/cmdline":    "python\x00scripts/train.py\x00--board\x00hex8\x00",
		"4343/cmdline":    "python\x00scripts/selfplay.py\x00--games\x00100\x00",
		"4344/cmdline":    "python\x00scripts/selfplay.py\x00--games\x00100\x00",
		"notapid/cmdline": "train",
	}
	for name, body := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestSampleInjectedProcRoot(t *testing.T) {
	root := procFixture(t)
	s, err := New(Options{
		ProcRoot:        root,
		SysRoot:         t.TempDir(),
		ProcessPatterns: map[string]string{"train": `\btrain\.py\b`, "selfplay": `selfplay`, "gmp": `gumbel`},
		Exec:            fakeExec(t, nil, &exec.Error{Name: "nvidia-smi", Err: exec.ErrNotFound}),
		CPUWindow:       10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	smp := s.Sample(context.Background())

	// /proc/stat did not move: CPU is unknown, not 0.
	if smp.CPUPercent != nil {
		t.Errorf("cpu_percent = %v from frozen counters, want unknown", *smp.CPUPercent)
	}
	if !hasErrorPrefix(smp.Errors, "cpu: /proc/stat counters did not advance") {
		t.Errorf("errors = %q", smp.Errors)
	}
	if smp.CPUCount == nil || *smp.CPUCount != 2 {
		t.Errorf("cpu_count = %v", smp.CPUCount)
	}
	checkF(t, "load1", smp.Load1, 0.52)
	checkF(t, "load15", smp.Load15, 0.59)
	checkU(t, "mem total", smp.MemTotalBytes, 16384000*1024)
	checkU(t, "mem available", smp.MemAvailableBytes, 512000*1024)
	checkU(t, "uptime", smp.UptimeSeconds, 12345)
	want := []Process{
		{Name: "gmp", Present: ptr(false), Count: ptr(0)},
		{Name: "selfplay", Present: ptr(true), Count: ptr(2)},
		{Name: "train", Present: ptr(true), Count: ptr(1)},
	}
	if got := mustJSON(t, smp.Processes); got != mustJSON(t, want) {
		t.Errorf("processes = %s", got)
	}

	// Counters advance: 300 busy of 1000 total ticks → 30 %.
	stat := "cpu  1200 0 600 8600 200 0 0 0 0 0\n"
	if err := os.WriteFile(filepath.Join(root, "stat"), []byte(stat), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(MinCPUWindow + 5*time.Millisecond) // past CPUWindow
	smp = s.Sample(context.Background())
	checkF(t, "cpu_percent", smp.CPUPercent, 30)

	// Memory available 512000/16384000 = 3.1 % < 5 %: degraded.
	st, reasons := State(smp, Thresholds{})
	if st != StatusDegraded || !slices.Contains(reasons, "memory available 3.1% < 5%") {
		t.Errorf("state %q reasons %q", st, reasons)
	}

	// Process listing fails (proc root gone): every watched process unknown, never "absent".
	if err := os.RemoveAll(root); err != nil {
		t.Fatal(err)
	}
	smp = s.Sample(context.Background())
	for _, p := range smp.Processes {
		if p.Present != nil || p.Count != nil {
			t.Errorf("process %s = %s, want unknown", p.Name, mustJSON(t, p))
		}
	}
	if smp.MemTotalBytes != nil || smp.UptimeSeconds != nil || smp.CPUPercent != nil {
		t.Errorf("mem %v uptime %v cpu %v: want unknown", smp.MemTotalBytes, smp.UptimeSeconds, smp.CPUPercent)
	}
	for _, probe := range []string{"cpu: ", "memory: ", "uptime: ", "processes: "} {
		if !hasErrorPrefix(smp.Errors, probe) {
			t.Errorf("no %q error in %q", probe, smp.Errors)
		}
	}
	st, reasons = State(smp, Thresholds{})
	if st != StatusHealthy {
		t.Errorf("unmeasured values made the node %q: %q", st, reasons)
	}
	for _, u := range []string{"unknown: cpu", "unknown: memory", "unknown: process train"} {
		if !slices.Contains(reasons, u) {
			t.Errorf("reasons %q lack %q", reasons, u)
		}
	}
}

func TestSampleDiskErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "gone")
	s, err := New(Options{DiskPaths: []string{missing, "/"}, Exec: fakeExec(t, nil, exec.ErrNotFound)})
	if err != nil {
		t.Fatal(err)
	}
	smp := s.Sample(context.Background())
	if len(smp.Disks) != 2 || smp.Disks[0].Path != missing || smp.Disks[1].Path != "/" {
		t.Fatalf("disks = %s", mustJSON(t, smp.Disks))
	}
	d := smp.Disks[0]
	if d.Error == "" || d.TotalBytes != nil || d.UsedPercent != nil || d.FreeBytes != nil {
		t.Errorf("missing path = %s", mustJSON(t, d))
	}
	if !hasErrorPrefix(smp.Errors, "disk "+missing+": ") {
		t.Errorf("errors = %q", smp.Errors)
	}
	if smp.Disks[1].UsedPercent == nil {
		t.Errorf("/ = %s", mustJSON(t, smp.Disks[1]))
	}
}

func TestSampleJSONShape(t *testing.T) {
	s, err := New(Options{Exec: fakeExec(t, nil, exec.ErrNotFound), ProcRoot: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	smp := s.Sample(context.Background()) // empty proc root: nearly everything unknown
	b, err := json.Marshal(smp)
	if err != nil {
		t.Fatal(err)
	}
	js := string(b)
	for _, frag := range []string{`"gpus":[]`, `"disks":[]`, `"processes":[]`, `"cpu_percent":null`,
		`"mem_total_bytes":null`, `"uptime_seconds":null`, `"gpu_probe":"nvidia-smi not found"`} {
		if !strings.Contains(js, frag) {
			t.Errorf("JSON lacks %s: %s", frag, js)
		}
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(b, &keys); err != nil {
		t.Fatal(err)
	}
	want := []string{"agent_version", "cpu_count", "cpu_percent", "disks", "errors", "gpu_probe", "gpus",
		"load1", "load15", "load5", "mem_available_bytes", "mem_total_bytes", "mem_used_bytes", "processes",
		"time", "uptime_seconds"}
	var got []string
	for k := range keys {
		got = append(got, k)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("keys = %q\nwant   %q", got, want)
	}

	// Round trip keeps unknown as unknown.
	var back Sample
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.CPUPercent != nil || back.MemTotalBytes != nil {
		t.Errorf("round trip invented values: %+v", back)
	}

	g := GPU{Index: 3}
	b, _ = json.Marshal(g)
	if string(b) != `{"index":3,"name":"","uuid":"","utilization_percent":null,"memory_total_bytes":null,`+
		`"memory_used_bytes":null,"temperature_c":null,"power_watts":null,"ecc_errors_uncorrected":null,"xid_errors":null}` {
		t.Errorf("gpu JSON = %s", b)
	}
	d := Disk{Path: "/data"}
	b, _ = json.Marshal(d)
	if string(b) != `{"path":"/data","total_bytes":null,"used_bytes":null,"free_bytes":null,"used_percent":null,"fs_type":"","error":""}` {
		t.Errorf("disk JSON = %s", b)
	}
}

func TestSampleHonoursContext(t *testing.T) {
	blocking := func(ctx context.Context, name string, args ...string) ([]byte, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	s, err := New(Options{Exec: blocking, Timeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	// Only ctx can end the wait (the probe timeout is an hour); a minute is
	// slack for a busy machine.
	start := time.Now()
	smp := s.Sample(ctx)
	if d := time.Since(start); d > time.Minute {
		t.Errorf("Sample took %s after ctx ended", d)
	}
	if !strings.HasPrefix(smp.GPUProbe, GPUProbeErrorPrefix) {
		t.Errorf("gpu_probe %q", smp.GPUProbe)
	}
}

func TestRunAndLatest(t *testing.T) {
	s, err := New(Options{Exec: fakeExec(t, fixture(t, "h100x1.csv"), nil), CPUWindow: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Latest(); ok {
		t.Fatal("Latest before Run")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		mu  sync.Mutex
		got []Sample
	)
	done := make(chan error, 1)
	go func() {
		done <- s.Run(ctx, 10*time.Millisecond, func(smp Sample) {
			mu.Lock()
			got = append(got, smp)
			n := len(got)
			mu.Unlock()
			if n == 3 {
				cancel()
			}
		})
	}()
	select {
	case err := <-done:
		if err != context.Canceled {
			t.Errorf("Run = %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not stop")
	}
	latest, ok := s.Latest()
	if !ok || latest.GPUProbe != GPUProbeOK || len(latest.GPUs) != 1 {
		t.Errorf("Latest = %v %+v", ok, latest)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 3 || !latest.Time.Equal(got[2].Time) {
		t.Errorf("callbacks %d, latest %v", len(got), latest.Time)
	}
	if err := s.Run(context.Background(), 0, nil); err == nil {
		t.Error("Run with 0 interval accepted")
	}
}

func TestSampleConcurrent(t *testing.T) {
	s, err := New(Options{
		DiskPaths:       []string{"/"},
		ProcessPatterns: map[string]string{"train": `train`},
		Exec:            fakeExec(t, fixture(t, "h100x8.csv"), nil),
		CPUWindow:       5 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 3 {
				smp := s.Sample(context.Background())
				if len(smp.GPUs) != 8 || smp.CPUPercent == nil {
					t.Errorf("gpus %d cpu %v errors %q", len(smp.GPUs), smp.CPUPercent, smp.Errors)
				}
			}
		})
	}
	wg.Wait()
}

func TestNewRejectsBadPattern(t *testing.T) {
	_, err := New(Options{ProcessPatterns: map[string]string{"train": `([`}})
	if err == nil || !strings.Contains(err.Error(), `process pattern "train"`) {
		t.Errorf("err = %v", err)
	}
}

func TestStateThresholds(t *testing.T) {
	base := func() Sample {
		return Sample{
			CPUPercent: ptr(10.0), Load1: ptr(0.1),
			MemTotalBytes: ptr[uint64](1000), MemAvailableBytes: ptr[uint64](500),
			Disks:    []Disk{{Path: "/data", UsedPercent: ptr(50.0)}},
			GPUProbe: GPUProbeNotFound, GPUs: []GPU{},
		}
	}
	cases := []struct {
		name    string
		mod     func(*Sample)
		th      Thresholds
		status  string
		reasons []string
	}{
		{"healthy", func(*Sample) {}, Thresholds{}, StatusHealthy, nil},
		{"disk at threshold", func(s *Sample) { s.Disks[0].UsedPercent = ptr(90.0) }, Thresholds{}, StatusDegraded, []string{"disk /data 90% used"}},
		{"disk 93", func(s *Sample) { s.Disks[0].UsedPercent = ptr(93.2) }, Thresholds{}, StatusDegraded, []string{"disk /data 93% used"}},
		{"disk 93 custom threshold", func(s *Sample) { s.Disks[0].UsedPercent = ptr(93.2) }, Thresholds{DiskUsedPercent: 95}, StatusHealthy, nil},
		{"disk unknown", func(s *Sample) { s.Disks[0].UsedPercent = nil }, Thresholds{}, StatusHealthy, []string{"unknown: disk /data"}},
		{"memory low", func(s *Sample) { s.MemAvailableBytes = ptr[uint64](49) }, Thresholds{}, StatusDegraded, []string{"memory available 4.9% < 5%"}},
		{"memory at 5%", func(s *Sample) { s.MemAvailableBytes = ptr[uint64](50) }, Thresholds{}, StatusHealthy, nil},
		{"memory unknown", func(s *Sample) { s.MemAvailableBytes = nil }, Thresholds{}, StatusHealthy, []string{"unknown: memory"}},
		{"gpu hot", func(s *Sample) {
			s.GPUProbe, s.GPUs = GPUProbeOK, []GPU{{Index: 1, TemperatureC: ptr(90.0)}}
		}, Thresholds{}, StatusDegraded, []string{"gpu 1 temperature 90 C >= 90 C"}},
		{"gpu ecc within custom max", func(s *Sample) {
			s.GPUProbe, s.GPUs = GPUProbeOK, []GPU{{Index: 0, TemperatureC: ptr(40.0), ECCErrorsUncorrected: ptr[uint64](1)}}
		}, Thresholds{MaxECCUncorrected: 1}, StatusHealthy, nil},
		{"gpu xid", func(s *Sample) {
			s.GPUProbe, s.GPUs = GPUProbeOK, []GPU{{Index: 0, TemperatureC: ptr(40.0), XIDErrors: ptr[uint64](3)}}
		}, Thresholds{}, StatusDegraded, []string{"gpu 0 Xid errors 3"}},
		{"gpu probe failed", func(s *Sample) { s.GPUProbe = "error: timed out after 5s" }, Thresholds{}, StatusHealthy,
			[]string{"unknown: gpus (error: timed out after 5s)"}},
		{"cpu and process unknown, disk full", func(s *Sample) {
			s.CPUPercent = nil
			s.Disks[0].UsedPercent = ptr(99.0)
			s.Processes = []Process{{Name: "train"}, {Name: "selfplay", Present: ptr(false), Count: ptr(0)}}
		}, Thresholds{}, StatusDegraded, []string{"disk /data 99% used", "unknown: cpu", "unknown: process train"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := base()
			c.mod(&s)
			st, reasons := State(s, c.th)
			if st != c.status || !slices.Equal(reasons, c.reasons) {
				t.Errorf("State = %q %q, want %q %q", st, reasons, c.status, c.reasons)
			}
		})
	}
	if (Thresholds{}).withDefaults() != DefaultThresholds() {
		t.Error("zero Thresholds differ from defaults")
	}
}

// BenchmarkSample measures one full sample of this host: CPU (delta since
// the previous sample), load, memory, uptime, disk "/", a process scan with
// two patterns, and nvidia-smi output for 8 GPUs from a fixture (or the real
// nvidia-smi, which on a host without it measures the "not found" path).
//
//	go test -run '^$' -bench BenchmarkSample -benchmem ./pkg/health/
func BenchmarkSample(b *testing.B) {
	out := fixture(b, "h100x8.csv")
	for _, bc := range []struct {
		name string
		exec ExecFunc
	}{
		{"fixture-8gpu", func(context.Context, string, ...string) ([]byte, error) { return out, nil }},
		{"real-nvidia-smi", nil},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s, err := New(Options{
				DiskPaths:       []string{"/"},
				ProcessPatterns: map[string]string{"train": `\btrain\.py\b`, "selfplay": `selfplay`},
				Exec:            bc.exec,
			})
			if err != nil {
				b.Fatal(err)
			}
			s.Sample(context.Background()) // prime the CPU window
			b.ReportAllocs()
			for b.Loop() {
				smp := s.Sample(context.Background())
				if len(smp.Errors) != 0 {
					b.Fatalf("errors: %q", smp.Errors)
				}
			}
		})
	}
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
