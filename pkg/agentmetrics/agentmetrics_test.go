package agentmetrics_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/internal/promcheck"
	"github.com/ringmesh/ringmesh/pkg/agentmetrics"
	"github.com/ringmesh/ringmesh/pkg/events"
	"github.com/ringmesh/ringmesh/pkg/health"
)

type fakeSource struct {
	hb     *events.Heartbeat
	n      int
	nbytes int64
}

func (f fakeSource) LatestHeartbeat() (events.Heartbeat, bool) {
	if f.hb == nil {
		return events.Heartbeat{}, false
	}
	return *f.hb, true
}
func (f fakeSource) Outbox() (int, int64) { return f.n, f.nbytes }

// sample takes a real health sample whose nvidia-smi answers with the fixture.
func sample(t *testing.T, fixture string, disks ...string) health.Sample {
	t.Helper()
	out, err := os.ReadFile(filepath.Join("..", "health", "testdata", "nvidia-smi", fixture))
	if err != nil {
		t.Fatal(err)
	}
	var runErr error
	if filepath.Ext(fixture) == ".txt" {
		runErr = errors.New("exit status 9")
	}
	s, err := health.New(health.Options{DiskPaths: disks, Exec: func(context.Context, string, ...string) ([]byte, error) {
		return out, runErr
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return s.Sample(ctx)
}

func scrape(t *testing.T, src agentmetrics.Source) (map[string]float64, []byte) {
	t.Helper()
	reg, err := agentmetrics.NewRegistry(agentmetrics.NewCollector(src, "vast-1", "v0.3.0"))
	if err != nil {
		t.Fatal(err)
	}
	if probs, err := testutil.GatherAndLint(reg); err != nil || len(probs) > 0 {
		t.Fatalf("promlint: %v %+v", err, probs)
	}
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	body := promcheck.Scrape(t, srv.URL)
	return promcheck.Samples(body), body
}

func TestScrapeMixedGPUsOmitsUnknown(t *testing.T) {
	dir := t.TempDir()
	s := sample(t, "mixed_na.csv", dir, "/proc/../bad path")
	b, f, age := int64(1<<20), 3, 42.5
	got, body := scrape(t, fakeSource{hb: &events.Heartbeat{Health: s, RPO: events.RPO{UnsyncedBytes: &b, UnsyncedFiles: &f, OldestUnsyncedSeconds: &age}}, n: 2, nbytes: 900})

	g0 := `{gpu="0",model="NVIDIA GeForce RTX 4090",uuid="GPU-4e1a9b3c-0d2f-4c6e-8a1b-9c0d1e2f3a4b"}`
	g1 := `{gpu="1",model="NVIDIA A100-SXM4-80GB",uuid="GPU-5f2b0c4d-1e3a-4d7f-9b2c-0d1e2f3a4b5c"}`
	g2 := `{gpu="2",model="NVIDIA GeForce RTX 3090",uuid="GPU-6a3c1d5e-2f4b-4e8a-8c3d-1e2f3a4b5c6d"}`
	want := map[string]float64{
		"ringmesh_agent_gpu_utilization_percent" + g0:          100,
		"ringmesh_agent_gpu_memory_total_bytes" + g0:           24564 << 20,
		"ringmesh_agent_gpu_memory_used_bytes" + g0:            22871 << 20,
		"ringmesh_agent_gpu_temperature_celsius" + g0:          71,
		"ringmesh_agent_gpu_power_watts" + g0:                  443.12,
		"ringmesh_agent_gpu_ecc_uncorrected_errors_total" + g1: 0,
		"ringmesh_agent_gpu_power_watts" + g1:                  61.32,
		"ringmesh_agent_gpu_memory_used_bytes" + g2:            0,
		"ringmesh_agent_gpu_probe_ok":                          1,
		"ringmesh_agent_rpo_unsynced_bytes":                    1 << 20,
		"ringmesh_agent_rpo_unsynced_files":                    3,
		"ringmesh_agent_rpo_oldest_unsynced_seconds":           42.5,
		"ringmesh_agent_outbox_messages":                       2,
		"ringmesh_agent_outbox_bytes":                          900,
		`ringmesh_agent_info{node="vast-1",version="v0.3.0"}`:  1,
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	// Unknown values ([N/A], [Not Supported], empty) are absent, never 0.
	for _, k := range []string{
		"ringmesh_agent_gpu_utilization_percent" + g1,
		"ringmesh_agent_gpu_utilization_percent" + g2,
		"ringmesh_agent_gpu_temperature_celsius" + g2,
		"ringmesh_agent_gpu_power_watts" + g2,
		"ringmesh_agent_gpu_ecc_uncorrected_errors_total" + g0,
		"ringmesh_agent_gpu_ecc_uncorrected_errors_total" + g2,
		"ringmesh_agent_gpu_xid_errors_total" + g0,
	} {
		if v, ok := got[k]; ok {
			t.Errorf("%s = %v exported; unknown values must be absent", k, v)
		}
	}
	// The measurable data path is there; the one failing the pattern is not.
	n := 0
	for k := range got {
		if len(k) > len("ringmesh_agent_filesystem_size_bytes") && k[:len("ringmesh_agent_filesystem_size_bytes")] == "ringmesh_agent_filesystem_size_bytes" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d filesystem_size series, want 1 (for %s):\n%s", n, dir, body)
	}
	t.Run("promtool", func(t *testing.T) { promcheck.CheckMetrics(t, body) })
}

func TestScrapeH100x8(t *testing.T) {
	got, _ := scrape(t, fakeSource{hb: &events.Heartbeat{Health: sample(t, "h100x8.csv")}})
	n := 0
	for k := range got {
		if len(k) > 38 && k[:38] == "ringmesh_agent_gpu_utilization_percent" {
			n++
		}
	}
	if n != 8 {
		t.Fatalf("%d GPU utilisation series, want 8", n)
	}
	if _, ok := got["ringmesh_agent_rpo_unsynced_bytes"]; ok {
		t.Fatal("RPO not measured (sync off) must be absent, not 0")
	}
}

func TestScrapeDriverFailure(t *testing.T) {
	got, body := scrape(t, fakeSource{hb: &events.Heartbeat{Health: sample(t, "driver_failure.txt")}})
	if got["ringmesh_agent_gpu_probe_ok"] != 0 {
		t.Fatalf("probe_ok = %v, want 0", got["ringmesh_agent_gpu_probe_ok"])
	}
	for k := range got {
		if len(k) > 19 && k[:19] == "ringmesh_agent_gpu_" && k != "ringmesh_agent_gpu_probe_ok" {
			t.Fatalf("GPU series %s exported although nvidia-smi failed:\n%s", k, body)
		}
	}
}

func TestScrapeBeforeFirstSample(t *testing.T) {
	got, _ := scrape(t, fakeSource{n: 5, nbytes: 10})
	if got["ringmesh_agent_outbox_messages"] != 5 {
		t.Fatalf("outbox = %v", got["ringmesh_agent_outbox_messages"])
	}
	if _, ok := got["ringmesh_agent_gpu_probe_ok"]; ok {
		t.Fatal("no sample yet: GPU probe state is unknown")
	}
}

func TestLabelsAreValidated(t *testing.T) {
	u := 50.0
	hb := events.Heartbeat{Health: health.Sample{GPUProbe: health.GPUProbeOK, GPUs: []health.GPU{
		{Index: 0, Name: "evil\"} 1\nringmesh_fake 1", UUID: "GPU-$(reboot)", UtilizationPercent: &u},
		{Index: 0, Name: "duplicate index", UtilizationPercent: &u},
	}}}
	got, body := scrape(t, fakeSource{hb: &hb})
	if got[`ringmesh_agent_gpu_utilization_percent{gpu="0",model="",uuid=""}`] != 50 {
		t.Fatalf("bad labels not blanked:\n%s", body)
	}
	if len(promcheck.Names(body)) == 0 || promcheck.Names(body)["ringmesh_fake"] {
		t.Fatalf("injected series:\n%s", body)
	}
}

func TestServerServesAndStops(t *testing.T) {
	reg, err := agentmetrics.NewRegistry(agentmetrics.NewCollector(fakeSource{}, "n1", "dev"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := agentmetrics.Listen("127.0.0.1:0", reg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	body := promcheck.Scrape(t, "http://"+s.Addr()+"/metrics")
	if promcheck.Samples(body)[`ringmesh_agent_info{node="n1",version="dev"}`] != 1 {
		t.Fatalf("scrape:\n%s", body)
	}
	if _, err := agentmetrics.Listen(s.Addr(), reg, zerolog.Nop()); err == nil {
		t.Fatal("a taken port must be an error at start")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}
