package health

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// fixture reads testdata/nvidia-smi/<name>.
func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "nvidia-smi", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fakeExec answers nvidia-smi with fixed output and error, and checks the
// arguments the probe passes.
func fakeExec(t testing.TB, out []byte, err error) ExecFunc {
	return func(ctx context.Context, name string, args ...string) ([]byte, error) {
		if name != "nvidia-smi" {
			t.Errorf("exec name = %q, want nvidia-smi", name)
		}
		if !slices.Equal(args, nvidiaSMIArgs) {
			t.Errorf("exec args = %q", args)
		}
		return out, err
	}
}

func gpuOnlySampler(t testing.TB, exec ExecFunc) *Sampler {
	t.Helper()
	s, err := New(Options{Exec: exec, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestNvidiaSMIArgs(t *testing.T) {
	want := []string{
		"--query-gpu=index,name,uuid,utilization.gpu,memory.total,memory.used,temperature.gpu,power.draw,ecc.errors.uncorrected.volatile.total",
		"--format=csv,noheader,nounits",
	}
	if !slices.Equal(nvidiaSMIArgs, want) {
		t.Fatalf("args = %q, want %q", nvidiaSMIArgs, want)
	}
}

func TestProbeGPUsOneH100(t *testing.T) {
	r := probeGPUs(context.Background(), fakeExec(t, fixture(t, "h100x1.csv"), nil), "nvidia-smi")
	if r.status != GPUProbeOK || len(r.errs) != 0 {
		t.Fatalf("status %q errs %q", r.status, r.errs)
	}
	if len(r.gpus) != 1 {
		t.Fatalf("gpus = %d, want 1", len(r.gpus))
	}
	g := r.gpus[0]
	if g.Index != 0 || g.Name != "NVIDIA H100 80GB HBM3" || g.UUID != "GPU-2f6a3c9e-7b1d-4e52-9a0f-3c8d1e6b5a47" {
		t.Errorf("identity = %+v", g)
	}
	checkF(t, "util", g.UtilizationPercent, 87)
	checkU(t, "mem total", g.MemoryTotalBytes, 81559*mib)
	checkU(t, "mem used", g.MemoryUsedBytes, 61237*mib)
	checkF(t, "temp", g.TemperatureC, 58)
	checkF(t, "power", g.PowerWatts, 512.47)
	checkU(t, "ecc", g.ECCErrorsUncorrected, 0)
	if g.XIDErrors != nil {
		t.Errorf("xid = %v, want nil (not obtainable from nvidia-smi)", *g.XIDErrors)
	}
}

func TestProbeGPUsEightH100(t *testing.T) {
	r := probeGPUs(context.Background(), fakeExec(t, fixture(t, "h100x8.csv"), nil), "nvidia-smi")
	if r.status != GPUProbeOK {
		t.Fatalf("status %q errs %q", r.status, r.errs)
	}
	if len(r.gpus) != 8 {
		t.Fatalf("gpus = %d, want 8", len(r.gpus))
	}
	for i, g := range r.gpus {
		if g.Index != i {
			t.Errorf("gpu %d index %d", i, g.Index)
		}
		if g.UtilizationPercent == nil || g.MemoryTotalBytes == nil || g.TemperatureC == nil || g.PowerWatts == nil || g.ECCErrorsUncorrected == nil {
			t.Errorf("gpu %d has unknown fields: %+v", i, g)
		}
	}
	checkF(t, "gpu4 util", r.gpus[4].UtilizationPercent, 0) // idle is a measured 0, not unknown
	checkU(t, "gpu4 ecc", r.gpus[4].ECCErrorsUncorrected, 2)
	checkF(t, "gpu5 temp", r.gpus[5].TemperatureC, 92)

	st, reasons := State(Sample{GPUProbe: r.status, GPUs: r.gpus, CPUPercent: ptr(50.0), Load1: ptr(1.0),
		MemTotalBytes: ptr[uint64](100), MemAvailableBytes: ptr[uint64](50)}, Thresholds{})
	if st != StatusDegraded {
		t.Fatalf("state %q", st)
	}
	want := []string{"gpu 4 uncorrected ECC errors 2", "gpu 5 temperature 92 C >= 90 C"}
	if !slices.Equal(reasons, want) {
		t.Errorf("reasons = %q, want %q", reasons, want)
	}
}

func TestProbeGPUsUnknownFields(t *testing.T) {
	r := probeGPUs(context.Background(), fakeExec(t, fixture(t, "mixed_na.csv"), nil), "nvidia-smi")
	if r.status != GPUProbeOK || len(r.errs) != 0 {
		t.Fatalf("status %q errs %q", r.status, r.errs)
	}
	if len(r.gpus) != 3 {
		t.Fatalf("gpus = %d", len(r.gpus))
	}
	rtx, a100, r3090 := r.gpus[0], r.gpus[1], r.gpus[2]
	checkF(t, "4090 power", rtx.PowerWatts, 443.12)
	if rtx.ECCErrorsUncorrected != nil {
		t.Errorf("4090 ecc [N/A] parsed as %d", *rtx.ECCErrorsUncorrected)
	}
	if a100.UtilizationPercent != nil {
		t.Errorf("A100 util [N/A] parsed as %v", *a100.UtilizationPercent)
	}
	checkU(t, "A100 ecc", a100.ECCErrorsUncorrected, 0)
	checkU(t, "A100 mem used", a100.MemoryUsedBytes, 37*mib)
	if r3090.UtilizationPercent != nil || r3090.TemperatureC != nil || r3090.PowerWatts != nil || r3090.ECCErrorsUncorrected != nil {
		t.Errorf("3090 unknowns parsed: %+v", r3090)
	}
	checkU(t, "3090 mem used", r3090.MemoryUsedBytes, 0) // a measured 0 MiB stays 0

	_, reasons := State(Sample{GPUProbe: r.status, GPUs: r.gpus, CPUPercent: ptr(1.0), Load1: ptr(1.0),
		MemTotalBytes: ptr[uint64](100), MemAvailableBytes: ptr[uint64](50)}, Thresholds{})
	if !slices.Equal(reasons, []string{"unknown: gpu 2 temperature"}) {
		t.Errorf("reasons = %q", reasons)
	}
}

func TestProbeGPUsDriverFailure(t *testing.T) {
	s := gpuOnlySampler(t, fakeExec(t, fixture(t, "driver_failure.txt"), errors.New("exit status 9")))
	smp := s.Sample(context.Background())
	want := "error: NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. " +
		"Make sure that the latest NVIDIA driver is installed and running. (exit status 9)"
	if smp.GPUProbe != want {
		t.Errorf("gpu_probe = %q\nwant        %q", smp.GPUProbe, want)
	}
	if smp.GPUs == nil || len(smp.GPUs) != 0 {
		t.Errorf("gpus = %#v, want empty non-nil", smp.GPUs)
	}
	if !hasErrorPrefix(smp.Errors, "gpu: NVIDIA-SMI has failed") {
		t.Errorf("errors = %q", smp.Errors)
	}
	st, reasons := State(Sample{GPUProbe: smp.GPUProbe, GPUs: smp.GPUs, CPUPercent: ptr(1.0), Load1: ptr(1.0),
		MemTotalBytes: ptr[uint64](100), MemAvailableBytes: ptr[uint64](50)}, Thresholds{})
	if st != StatusHealthy || !slices.Equal(reasons, []string{"unknown: gpus (" + want + ")"}) {
		t.Errorf("driver failure alone must not degrade, only be unknown: %q %q", st, reasons)
	}
}

func TestProbeGPUsNoDevices(t *testing.T) {
	for _, err := range []error{errors.New("exit status 6"), nil} {
		r := probeGPUs(context.Background(), fakeExec(t, fixture(t, "no_devices.txt"), err), "nvidia-smi")
		if r.status != GPUProbeNoGPU || len(r.gpus) != 0 || r.gpus == nil {
			t.Errorf("err %v: status %q gpus %#v", err, r.status, r.gpus)
		}
	}
	r := probeGPUs(context.Background(), fakeExec(t, nil, nil), "nvidia-smi")
	if r.status != GPUProbeNoGPU {
		t.Errorf("empty output: status %q", r.status)
	}
}

func TestProbeGPUsMalformed(t *testing.T) {
	r := probeGPUs(context.Background(), fakeExec(t, fixture(t, "malformed.csv"), nil), "nvidia-smi")
	if !strings.HasPrefix(r.status, GPUProbeErrorPrefix+"nvidia-smi: unexpected row") {
		t.Errorf("status %q", r.status)
	}
	if len(r.gpus) != 2 {
		t.Fatalf("gpus = %d, want the 2 parsable rows", len(r.gpus))
	}
	if r.gpus[1].Index != 2 || r.gpus[1].TemperatureC != nil {
		t.Errorf("gpu 2 = %+v, want temperature unknown", r.gpus[1])
	}
	checkF(t, "gpu 2 power", r.gpus[1].PowerWatts, 58.20)
	if len(r.errs) != 2 || !strings.Contains(r.errs[1], `gpu 2 temperature.gpu: unparsable "hot"`) {
		t.Errorf("errs = %q", r.errs)
	}
}

func TestProbeGPUsNotFound(t *testing.T) {
	// Injected: an error that wraps exec.ErrNotFound, as os/exec reports it.
	notFound := &exec.Error{Name: "nvidia-smi", Err: exec.ErrNotFound}
	s := gpuOnlySampler(t, fakeExec(t, nil, notFound))
	smp := s.Sample(context.Background())
	if smp.GPUProbe != GPUProbeNotFound || len(smp.GPUs) != 0 || smp.GPUs == nil {
		t.Errorf("gpu_probe %q gpus %#v", smp.GPUProbe, smp.GPUs)
	}
	if hasErrorPrefix(smp.Errors, "gpu") {
		t.Errorf("missing nvidia-smi must not be an error: %q", smp.Errors)
	}

	// Real os/exec: a name not on PATH, and an absolute path that does not exist.
	for _, smi := range []string{"nvidia-smi-not-installed-here", filepath.Join(t.TempDir(), "nvidia-smi")} {
		r := probeGPUs(context.Background(), runCommand, smi)
		if r.status != GPUProbeNotFound {
			t.Errorf("%s: status %q", smi, r.status)
		}
	}
}

func TestRunCommandFailureCarriesStderr(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skipf("runCommand is tested with sh -c, and sh is not on PATH (%v); run where a POSIX sh is", err)
	}
	out, err := runCommand(context.Background(), sh, "-c", "echo partial; echo 'boom happened' >&2; exit 9")
	if err == nil || !strings.Contains(err.Error(), "exit status 9: boom happened") {
		t.Errorf("err = %v", err)
	}
	if string(out) != "partial\n" {
		t.Errorf("out = %q", out)
	}
	// A command that outlives its context is killed: the error says so
	// (however long a busy machine took to deliver the kill). Were it not
	// killed, sleep would exit 0 and err be nil.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = runCommand(ctx, sh, "-c", "sleep 120")
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("err = %v, want the command killed", err)
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("err = %v (%v), want killed by SIGKILL", err, ee.ProcessState)
	}
}

func TestGPUProbeTimeoutAndHung(t *testing.T) {
	release := make(chan struct{})
	var calls atomic.Int32
	blocking := func(ctx context.Context, name string, args ...string) ([]byte, error) {
		calls.Add(1)
		<-release // ignores ctx, like an nvidia-smi stuck in the kernel
		return fixture(t, "h100x1.csv"), nil
	}
	s, err := New(Options{Exec: blocking, Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// The command never returns by itself: Sample returning at all (and
	// reporting the timeout and the hung probe below) is what counts; a
	// minute is slack for a busy machine.
	start := time.Now()
	smp := s.Sample(context.Background())
	if d := time.Since(start); d > time.Minute {
		t.Errorf("Sample took %s with a 100ms timeout", d)
	}
	if smp.GPUProbe != "error: timed out after 100ms" || len(smp.GPUs) != 0 {
		t.Errorf("gpu_probe %q gpus %v", smp.GPUProbe, smp.GPUs)
	}
	if !slices.Contains(smp.Errors, "gpu: timed out after 100ms") {
		t.Errorf("errors = %q", smp.Errors)
	}
	if got := s.hungProbes(); !slices.Equal(got, []string{"gpu"}) {
		t.Errorf("hung = %q", got)
	}

	// While it is hung, the probe is not started again.
	smp = s.Sample(context.Background())
	if !strings.Contains(smp.GPUProbe, "still hung") || calls.Load() != 1 {
		t.Errorf("second sample: gpu_probe %q, calls %d", smp.GPUProbe, calls.Load())
	}

	close(release)
	deadline := time.Now().Add(30 * time.Second)
	for len(s.hungProbes()) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("probe never released")
		}
		time.Sleep(5 * time.Millisecond)
	}
	smp = s.Sample(context.Background())
	if smp.GPUProbe != GPUProbeOK || len(smp.GPUs) != 1 || calls.Load() != 2 {
		t.Errorf("after release: gpu_probe %q gpus %d calls %d", smp.GPUProbe, len(smp.GPUs), calls.Load())
	}
}

func checkF(t *testing.T, what string, got *float64, want float64) {
	t.Helper()
	if got == nil {
		t.Errorf("%s = nil, want %v", what, want)
	} else if *got != want {
		t.Errorf("%s = %v, want %v", what, *got, want)
	}
}

func checkU(t *testing.T, what string, got *uint64, want uint64) {
	t.Helper()
	if got == nil {
		t.Errorf("%s = nil, want %v", what, want)
	} else if *got != want {
		t.Errorf("%s = %v, want %v", what, *got, want)
	}
}

func hasErrorPrefix(errs []string, prefix string) bool {
	return slices.ContainsFunc(errs, func(e string) bool { return strings.HasPrefix(e, prefix) })
}
