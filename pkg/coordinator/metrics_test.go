package coordinator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"go.yaml.in/yaml/v3"

	"github.com/ringmesh/ringmesh/internal/promcheck"
	"github.com/ringmesh/ringmesh/internal/testutil"
	"github.com/ringmesh/ringmesh/pkg/agentmetrics"
	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/config"
	"github.com/ringmesh/ringmesh/pkg/coordinator"
	"github.com/ringmesh/ringmesh/pkg/cost"
	"github.com/ringmesh/ringmesh/pkg/events"
	"github.com/ringmesh/ringmesh/pkg/fleet"
	"github.com/ringmesh/ringmesh/pkg/health"
	"github.com/ringmesh/ringmesh/pkg/paths"
	"github.com/ringmesh/ringmesh/pkg/providers"
	"github.com/ringmesh/ringmesh/pkg/providers/demo"
)

// liveScrapes starts a coordinator over the demo provider fakes (elected,
// with cost tracking and provider metrics), a real agent, and a node whose
// heartbeat carries GPUs and an RPO, then returns a scrape of the
// coordinator's /metrics and of that agent's /metrics once every
// value-dependent family is present.
func liveScrapes(t *testing.T) (coord, agent []byte) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	fakes, err := demo.StartFakes(ctx, demo.Options{Delay: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fakes.Close)
	inv, err := config.Parse("demo.yaml", []byte(demo.DemoInventory))
	if err != nil {
		t.Fatal(err)
	}
	list, err := fakes.Providers(testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	provs := providers.NewRegistry()
	for _, p := range list {
		provs.Register(fleet.Wrap(p, inv, testLog(t), fleet.BuildOptions{Registerer: reg}))
	}
	tracker := cost.New(cost.Options{})
	rec := fleet.NewReconciler(provs, inv, tracker, testLog(t), nil)
	h := startCoordinator(t, coordinator.Config{Inventory: inv, Fleet: rec, ReconcileInterval: 300 * time.Millisecond,
		Cost: tracker, Registry: reg, Elect: true})

	a, _ := startAgent(t, []string{h.url}, fakeNode{id: "vast-29129529", provider: "vast", instance: "29129529", root: t.TempDir(), smi: "h100x1.csv"}, "")
	areg, err := agentmetrics.NewRegistry(agentmetrics.NewCollector(a, "vast-29129529", "test-1"))
	if err != nil {
		t.Fatal(err)
	}
	ms, err := agentmetrics.Listen("127.0.0.1:0", areg, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	mctx, stopMetrics := context.WithCancel(context.Background())
	mdone := make(chan error, 1)
	go func() { mdone <- ms.Run(mctx) }()
	t.Cleanup(func() { stopMetrics(); <-mdone })

	publishGPUHeartbeat(t, h.url, "runpod-abc123")

	coordURL := "http://" + h.coord.HTTPAddr() + "/metrics"
	need := []string{"ringmesh_node_gpu_utilization_percent", "ringmesh_node_rpo_unsynced_bytes", "ringmesh_node_rpo_oldest_unsynced_seconds",
		"ringmesh_cost_accrued_total", "ringmesh_instance_price_per_hour", "ringmesh_provider_calls_total", "ringmesh_leader_is_leader",
		"ringmesh_coordinator_quorum", "ringmesh_nodes", "ringmesh_node_up", "ringmesh_node_sync_failing", "ringmesh_node_state", "ringmesh_node_info"}
	testutil.Eventually(t, 30*time.Second, func() error {
		coord = promcheck.Scrape(t, coordURL)
		names := promcheck.Names(coord)
		for _, n := range need {
			if !names[n] {
				return fmt.Errorf("coordinator scrape lacks %s yet", n)
			}
		}
		return nil
	})
	agent = promcheck.Scrape(t, "http://"+ms.Addr()+"/metrics")
	return coord, agent
}

// publishGPUHeartbeat sends hello and a heartbeat for node with two GPUs
// and a measured RPO, as an agent with sync on would.
func publishGPUHeartbeat(t *testing.T, url, node string) {
	t.Helper()
	nc, err := nodeConnect(t, url, node)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pub := func(kind string, seq uint64, body any) {
		env, err := bus.NewEnvelope(kind, bus.MessageID(node, "b1", seq), node, time.Now(), body)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(env)
		if _, err := js.Publish(ctx, "mesh.v1.evt."+node+"."+kind, b); err != nil {
			t.Fatal(err)
		}
	}
	pub("hello", 1, events.Hello{AgentVersion: "x", Boot: "b1", Hostname: "h", Provider: "runpod", ProviderSource: "config",
		Paths: paths.For("runpod", "", nil), HeartbeatIntervalSeconds: 5, GoVersion: "go1.26", OS: "linux", Arch: "amd64"})
	u, cpu := 87.0, 4
	ub, uf, age := int64(5<<20), 2, 300.0
	s := health.Sample{Time: time.Now().UTC(), AgentVersion: "x", CPUCount: &cpu, GPUProbe: health.GPUProbeOK,
		GPUs: []health.GPU{{Index: 0, Name: "NVIDIA H100 80GB HBM3", UUID: "GPU-1", UtilizationPercent: &u}}, Disks: []health.Disk{}, Processes: []health.Process{}, Errors: []string{}}
	pub("heartbeat", 2, events.Heartbeat{Status: "healthy", Health: s, IntervalSeconds: 5, BusConnected: true,
		RPO: events.RPO{UnsyncedBytes: &ub, UnsyncedFiles: &uf, OldestUnsyncedSeconds: &age}})
	pub("sync", 3, events.Sync{Phase: "result", Trigger: "continuous", Error: "ssh: connect to runpod target: connection refused",
		RPO: events.RPO{UnsyncedBytes: &ub, UnsyncedFiles: &uf, OldestUnsyncedSeconds: &age}})
}

var labelNameRe = regexp.MustCompile(`[{,]([a-zA-Z_][a-zA-Z0-9_]*)="`)

// The coordinator's and the agent's metrics pass promlint and promtool, and
// no series carries a label Prometheus itself attaches (instance, job).
func TestMetricsPassPromtool(t *testing.T) {
	coord, agent := liveScrapes(t)
	for name, body := range map[string][]byte{"coordinator": coord, "agent": agent} {
		for _, line := range strings.Split(string(body), "\n") {
			if strings.HasPrefix(line, "#") {
				continue
			}
			for _, m := range labelNameRe.FindAllStringSubmatch(line, -1) {
				if m[1] == "instance" || m[1] == "job" {
					t.Errorf("%s: series %q has a label %q of our own (Prometheus sets it per target)", name, line, m[1])
				}
			}
		}
		// promlint is the linter promtool check metrics runs; it needs no install.
		probs, err := promlint.New(bytes.NewReader(body)).Lint()
		if err != nil || len(probs) > 0 {
			t.Errorf("%s: promlint: %v %+v", name, err, probs)
		}
		t.Run(name, func(t *testing.T) { promcheck.CheckMetrics(t, body) })
	}
}

var ringmeshName = regexp.MustCompile(`\bringmesh_[a-z0-9_]+`)

// baseName maps a histogram's or summary's series back to its family.
func baseName(n string) string {
	for _, s := range []string{"_bucket", "_count", "_sum"} {
		n = strings.TrimSuffix(n, s)
	}
	return n
}

// The alert rules and the Grafana dashboard in deploy/ use only metric
// names that the binaries export (a renamed metric silently breaks an
// alert: the expression is then empty and never fires).
func TestDeployReferencesExportedMetrics(t *testing.T) {
	coord, agent := liveScrapes(t)
	exported := promcheck.Names(coord)
	for n := range promcheck.Names(agent) {
		exported[n] = true
	}
	root := filepath.Join("..", "..", "deploy")
	files, _ := filepath.Glob(filepath.Join(root, "prometheus", "*.yml"))
	files = append(files, filepath.Join(root, "grafana", "ringmesh.json"))
	seen := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var exprs []string
		switch {
		case strings.HasSuffix(f, ".json"):
			var d struct {
				Panels []struct {
					Title   string `json:"title"`
					Targets []struct {
						Expr string `json:"expr"`
					} `json:"targets"`
				} `json:"panels"`
			}
			if err := json.Unmarshal(b, &d); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			for _, p := range d.Panels {
				for _, tg := range p.Targets {
					exprs = append(exprs, tg.Expr)
				}
			}
		default:
			var r struct {
				Groups []struct {
					Rules []struct {
						Alert  string `yaml:"alert"`
						Record string `yaml:"record"`
						Expr   string `yaml:"expr"`
					} `yaml:"rules"`
				} `yaml:"groups"`
			}
			if err := yaml.Unmarshal(b, &r); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			for _, g := range r.Groups {
				for _, rl := range g.Rules {
					exprs = append(exprs, rl.Expr)
					if rl.Record != "" {
						exported[rl.Record] = true
					}
				}
			}
		}
		if strings.HasSuffix(f, ".json") {
			t.Run("promql", func(t *testing.T) { checkPromQL(t, exprs) })
		}
		var missing []string
		for _, e := range exprs {
			for _, n := range ringmeshName.FindAllString(e, -1) {
				seen++
				if !exported[n] && !exported[baseName(n)] {
					missing = append(missing, n)
				}
			}
		}
		sort.Strings(missing)
		if len(missing) > 0 {
			t.Errorf("%s references metrics no binary exports: %v", f, missing)
		}
	}
	if seen < 10 {
		t.Fatalf("only %d metric references found in %v: parser broken?", seen, files)
	}
}

// checkPromQL has promtool parse exprs (as recording rules in a temporary
// rules file): a dashboard query with a syntax error shows nothing.
func checkPromQL(t *testing.T, exprs []string) {
	p := promcheck.Promtool(t)
	var b strings.Builder
	b.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for i, e := range exprs {
		q, _ := json.Marshal(e)
		fmt.Fprintf(&b, "      - record: dashboard:panel_%d\n        expr: %s\n", i, q)
	}
	f := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(f, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(p, "check", "rules", f).CombinedOutput(); err != nil {
		t.Fatalf("dashboard queries do not parse: %v\n%s", err, out)
	}
}
