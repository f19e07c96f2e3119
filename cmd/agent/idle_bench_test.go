package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/pkg/bus/busserver"
)

// BenchmarkAgentIdle builds the real agent binary, runs it against an
// embedded JetStream server at a 5 s heartbeat, and reports its resident
// memory and CPU use while idle (after a warm-up). The window is
// $RINGMESH_IDLE_SECONDS (default 60).
//
//	go test ./cmd/agent -run '^$' -bench AgentIdle -benchtime 1x
func BenchmarkAgentIdle(b *testing.B) {
	window := 60 * time.Second
	if s := os.Getenv("RINGMESH_IDLE_SECONDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			b.Fatalf("RINGMESH_IDLE_SECONDS: %v", err)
		}
		window = time.Duration(n) * time.Second
	}
	dir := b.TempDir()
	bin := filepath.Join(dir, "agent")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	srv, err := busserver.StartServer(busserver.ServerConfig{Name: "idle", Port: -1, StoreDir: filepath.Join(dir, "nats")}, zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Stop()
	for i := 0; i < b.N; i++ {
		cmd := exec.Command(bin, "--node", "idle-1", "--dev", "--nats-url", srv.ClientURL(), "--state-dir", filepath.Join(dir, "state"),
			"--heartbeat", "5s", "--log-level", "warn")
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		time.Sleep(5 * time.Second) // warm-up: hello, first samples
		cpu0 := cpuTicks(b, cmd.Process.Pid)
		t0 := time.Now()
		time.Sleep(window)
		cpu1 := cpuTicks(b, cmd.Process.Pid)
		el := time.Since(t0)
		rss := rssKiB(b, cmd.Process.Pid)
		anon, file := statusKiB(b, cmd.Process.Pid, "RssAnon:"), statusKiB(b, cmd.Process.Pid, "RssFile:")
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		const hz = 100 // USER_HZ on Linux
		cpuPct := float64(cpu1-cpu0) / hz / el.Seconds() * 100
		b.ReportMetric(float64(rss)/1024, "rss-MiB")
		// Anonymous (heap, stacks, runtime) and file-backed (the binary's pages) parts of it.
		b.ReportMetric(float64(anon)/1024, "anon-MiB")
		b.ReportMetric(float64(file)/1024, "file-MiB")
		b.ReportMetric(cpuPct, "cpu-%")
		b.ReportMetric(el.Seconds(), "window-s")
	}
}

func cpuTicks(b *testing.B, pid int) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	u, _ := strconv.ParseInt(f[11], 10, 64) // utime (field 14)
	s, _ := strconv.ParseInt(f[12], 10, 64) // stime (field 15)
	return u + s
}

func rssKiB(b *testing.B, pid int) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			n, _ := strconv.ParseInt(strings.Fields(l)[1], 10, 64)
			return n
		}
	}
	b.Fatal("no VmRSS")
	return 0
}

// statusKiB reads one kB field of /proc/<pid>/status (RssAnon:, RssFile:); 0 when absent.
func statusKiB(b *testing.B, pid int, field string) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(l, field) {
			n, _ := strconv.ParseInt(strings.Fields(l)[1], 10, 64)
			return n
		}
	}
	return 0
}
