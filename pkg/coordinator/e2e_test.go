package coordinator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/internal/testutil"
	"github.com/ringmesh/ringmesh/pkg/agent"
	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/auth"
	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/bus/busserver"
	"github.com/ringmesh/ringmesh/pkg/coordinator"
	"github.com/ringmesh/ringmesh/pkg/detect"
	"github.com/ringmesh/ringmesh/pkg/events"
	"github.com/ringmesh/ringmesh/pkg/health"
	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/meshctl"
	"github.com/ringmesh/ringmesh/pkg/paths"
	"github.com/ringmesh/ringmesh/pkg/registry"
)

func testLog(t testing.TB) zerolog.Logger {
	if os.Getenv("RINGMESH_TEST_LOG") != "" {
		return zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr}).With().Timestamp().Str("test", t.Name()).Logger()
	}
	return zerolog.Nop()
}

// closedURL is a loopback URL nothing listens on: metadata probes fail fast.
func closedURL(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

var fastThresholds = registry.Thresholds{SuspectAfter: 1200 * time.Millisecond, DeadAfter: 2500 * time.Millisecond}

type harness struct {
	t     testing.TB
	coord *coordinator.Coordinator
	stop  func()
	url   string
}

func startCoordinator(t testing.TB, cfg coordinator.Config) *harness {
	t.Helper()
	h, err := launchCoordinator(t, cfg, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// launchCoordinator starts a coordinator and waits for it; safe to call from any goroutine.
func launchCoordinator(t testing.TB, cfg coordinator.Config, wait time.Duration) (*harness, error) {
	if cfg.Name == "" {
		cfg.Name = "hetzner-cpu1"
	}
	if cfg.Thresholds == (registry.Thresholds{}) {
		cfg.Thresholds = fastThresholds
	}
	cfg.TickInterval = 100 * time.Millisecond
	cfg.FlushInterval = 200 * time.Millisecond
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = "127.0.0.1:0"
	}
	if len(cfg.NATSURLs) == 0 && cfg.Embedded.StoreDir == "" {
		cfg.Embedded = busserver.ServerConfig{Port: -1, StoreDir: t.TempDir()}
	}
	// Authenticated and TLS by default, as in production: one issuer per
	// test directory (shared by the voters of a cluster and by restarts).
	var sb *testutil.SecureBus
	if len(cfg.NATSURLs) == 0 && cfg.Auth == nil {
		sb = testutil.SecureBusAt(t, filepath.Join(filepath.Dir(cfg.Embedded.StoreDir), ".auth"))
		cfg.Auth = sb.Issuer
	} else if len(cfg.NATSURLs) > 0 && cfg.Auth == nil {
		if sb = testutil.Lookup(cfg.NATSURLs[0]); sb != nil {
			cfg.Auth = sb.Issuer
			cfg.CredsFile = sb.Creds(t, auth.RoleCoordinator, "coordinator-"+cfg.Name)
			cfg.CAFile = sb.CAFile()
		}
	}
	c, err := coordinator.New(cfg, testLog(t))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	select {
	case <-c.Started():
	case err := <-done:
		cancel()
		return nil, fmt.Errorf("coordinator %s: %w", cfg.Name, err)
	case <-time.After(wait):
		cancel()
		return nil, fmt.Errorf("coordinator %s did not start within %s", cfg.Name, wait)
	}
	h := &harness{t: t, coord: c, url: c.ClientURL()}
	if h.url == "" {
		h.url = cfg.NATSURLs[0]
	} else if sb != nil {
		sb.Register(t, h.url)
	}
	var once sync.Once
	h.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("coordinator run: %v", err)
			}
		})
	}
	t.Cleanup(h.stop)
	return h, nil
}

type fakeNode struct {
	id, provider, instance string
	root                   string // fixture filesystem root
	smi                    string // nvidia-smi output fixture under pkg/health/testdata/nvidia-smi ("" = no GPU)
	creds                  string // node credentials file ("" = issued for the test)
}

func startAgent(t testing.TB, urls []string, n fakeNode, stateDir string) (*agent.Agent, func()) {
	t.Helper()
	if stateDir == "" {
		stateDir = t.TempDir()
	}
	dead := closedURL(t)
	var smi health.ExecFunc
	if n.smi != "" {
		out, err := os.ReadFile(filepath.Join("..", "health", "testdata", "nvidia-smi", n.smi))
		if err != nil {
			t.Fatal(err)
		}
		smi = func(context.Context, string, ...string) ([]byte, error) { return out, nil }
	}
	a, err := agent.New(secureAgent(t, agent.Config{
		NodeID: n.id, Provider: n.provider, InstanceID: n.instance, NATSURLs: urls, StateDir: stateDir,
		HeartbeatInterval: 200 * time.Millisecond, Version: "test-1",
		Detect:     detect.Options{Env: func(string) string { return "" }, HetznerURL: dead, VultrURL: dead, NebiusURL: dead, Timeout: 100 * time.Millisecond},
		Paths:      paths.Resolver{Root: n.root, Home: "/root"},
		ByeTimeout: 2 * time.Second,
		HealthExec: smi,
		CredsFile:  n.creds,
	}), testLog(t).With().Str("agent", n.id).Logger())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	select {
	case <-a.Ready():
	case err := <-done:
		t.Fatalf("agent %s: %v", n.id, err)
	case <-time.After(20 * time.Second):
		t.Fatalf("agent %s not ready", n.id)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("agent %s: %v", n.id, err)
			}
		})
	}
	t.Cleanup(stop)
	return a, stop
}

// secureAgent gives cfg the node credentials and CA of its server's issuer, if it has one.
func secureAgent(t testing.TB, cfg agent.Config) agent.Config {
	if sb := testutil.Lookup(cfg.NATSURLs[0]); sb != nil {
		if cfg.CredsFile == "" {
			cfg.CredsFile = sb.Creds(t, auth.RoleNode, cfg.NodeID)
		}
		cfg.CAFile = sb.CAFile()
	}
	return cfg
}

// meshctlArgs appends the admin operator's credentials when url's server has an issuer.
func meshctlArgs(t testing.TB, url string, args ...string) []string {
	if sb := testutil.Lookup(url); sb != nil {
		args = append(args, sb.MeshctlArgs(t)...)
	}
	return args
}

func status(t testing.TB, url string) api.Status {
	t.Helper()
	nc, err := natsConnect(t, url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := testutil.APIClient(t, url, nc).Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func nodeIn(st api.Status, id string) (registry.Record, bool) {
	for _, n := range st.Nodes {
		if n.Node == id {
			return n, true
		}
	}
	return registry.Record{}, false
}

func waitState(t testing.TB, url, node string, want mesh.NodeState, within time.Duration) registry.Record {
	t.Helper()
	var rec registry.Record
	testutil.Eventually(t, within, func() error {
		var ok bool
		rec, ok = nodeIn(status(t, url), node)
		if !ok {
			return fmt.Errorf("%s not listed", node)
		}
		if rec.State != want {
			return fmt.Errorf("%s is %s (%s), want %s", node, rec.State, rec.Cause, want)
		}
		return nil
	})
	return rec
}

func vastFixture(t testing.TB) string {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "workspace/ringrift/ai-service"), 0o755); err != nil {
		t.Fatal(err)
	}
	return root
}

// One process: embedded server + coordinator + three agents with fake
// identities. status lists all three healthy with providers and paths;
// stopping one agent's heartbeats makes it suspect, then dead.
func TestEndToEndStatusAndLiveness(t *testing.T) {
	h := startCoordinator(t, coordinator.Config{})
	nodes := []fakeNode{
		{id: "vast-29129529", provider: "vast", instance: "29129529", root: vastFixture(t)},
		{id: "runpod-a100-1", provider: "runpod", instance: "xedezhzb9la3ye", root: t.TempDir()},
		{id: "hetzner-cpu2", provider: "hetzner", instance: "41000002", root: t.TempDir()},
	}
	agents := map[string]*agent.Agent{}
	for _, n := range nodes {
		agents[n.id], _ = startAgent(t, []string{h.url}, n, "")
	}
	wantPath := map[string]string{
		"vast-29129529": "/workspace/ringrift/ai-service", // detected on the node
		"runpod-a100-1": "/workspace/ringrift/ai-service",
		"hetzner-cpu2":  "/root/ringrift/ai-service",
	}
	for _, n := range nodes {
		rec := waitState(t, h.url, n.id, mesh.StateHealthy, 10*time.Second)
		if rec.Provider != n.provider || rec.InstanceID != n.instance || rec.AgentVersion != "test-1" {
			t.Errorf("%s: provider %q instance %q version %q", n.id, rec.Provider, rec.InstanceID, rec.AgentVersion)
		}
		if rec.Paths == nil || rec.Paths.Ringrift != wantPath[n.id] {
			t.Errorf("%s: paths %+v, want %s", n.id, rec.Paths, wantPath[n.id])
		}
		if rec.Health == nil || rec.Health.CPUCount == nil || len(rec.Health.Disks) == 0 {
			t.Errorf("%s: no real health sample: %+v", n.id, rec.Health)
		}
	}

	// meshctl status (the real command) shows the table.
	var out bytes.Buffer
	root := meshctl.NewRoot(&out, &out)
	root.SetArgs(meshctlArgs(t, h.url, "status", "--nats-url", h.url))
	if err := root.Execute(); err != nil {
		t.Fatalf("meshctl status: %v\n%s", err, out.String())
	}
	for _, n := range nodes {
		if !strings.Contains(out.String(), n.id) || !strings.Contains(out.String(), n.provider) {
			t.Errorf("meshctl status lacks %s:\n%s", n.id, out.String())
		}
	}
	if !strings.Contains(out.String(), "healthy") {
		t.Errorf("no healthy row:\n%s", out.String())
	}

	// The HTTP side: readiness, metrics and the status page.
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": "ready", "/metrics": "ringmesh_node_up", "/": "vast-29129529"} {
		resp, err := http.Get("http://" + h.coord.HTTPAddr() + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %d, body lacks %q", path, resp.StatusCode, want)
		}
	}

	// Silence one agent: suspect after 1.2 s, dead after 2.5 s.
	// The suspect state lasts 1.3 s: a poll that a busy machine delays can
	// miss it, so the poll accepts dead too, and the audited transitions
	// below prove that suspect came first.
	silenced := time.Now()
	agents["runpod-a100-1"].PauseHeartbeats(true)
	var rec registry.Record
	testutil.Eventually(t, 30*time.Second, func() error {
		rec, _ = nodeIn(status(t, h.url), "runpod-a100-1")
		if rec.State != mesh.StateSuspect && rec.State != mesh.StateDead {
			return fmt.Errorf("runpod-a100-1 is %s (%s), want suspect", rec.State, rec.Cause)
		}
		return nil
	})
	if !strings.Contains(rec.Cause, "no heartbeat") {
		t.Errorf("%s cause = %q", rec.State, rec.Cause)
	}
	waitState(t, h.url, "runpod-a100-1", mesh.StateDead, 30*time.Second)
	// The last heartbeat may have left up to one interval (200 ms) before the pause.
	if el := time.Since(silenced); el < fastThresholds.DeadAfter-200*time.Millisecond {
		t.Errorf("dead %s after the pause, before the %s threshold", el, fastThresholds.DeadAfter)
	}
	for _, other := range []string{"vast-29129529", "hetzner-cpu2"} {
		waitState(t, h.url, other, mesh.StateHealthy, 30*time.Second) // at once, unless a busy machine delayed a heartbeat
	}
	// It comes back when heartbeats resume.
	agents["runpod-a100-1"].PauseHeartbeats(false)
	rec = waitState(t, h.url, "runpod-a100-1", mesh.StateHealthy, 30*time.Second)
	if !strings.Contains(rec.Cause, "resumed") {
		t.Errorf("resume cause = %q", rec.Cause)
	}
	// Every transition is in the audit stream with its cause.
	audits := auditTransitions(t, h.url, "runpod-a100-1")
	want := []string{"joining", "healthy", "suspect", "dead", "healthy"}
	if fmt.Sprint(audits) != fmt.Sprint(want) {
		t.Errorf("audited transitions %v, want %v", audits, want)
	}
}

func auditTransitions(t testing.TB, url, node string) []string {
	t.Helper()
	nc, err := natsConnect(t, url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, bus.StreamAudit, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for {
		m, err := cons.Next(jetstream.FetchMaxWait(300 * time.Millisecond))
		if err != nil {
			return out
		}
		var env bus.Envelope
		var a events.Audit
		if json.Unmarshal(m.Data(), &env) != nil || json.Unmarshal(env.Body, &a) != nil {
			t.Fatalf("bad audit message %s", m.Data())
		}
		if a.Node == node && a.Kind == "transition" {
			if a.Cause == "" {
				t.Errorf("audit without cause: %+v", a)
			}
			out = append(out, a.To)
		}
	}
}

// A coordinator restarted on the same store directory restores the registry.
func TestCoordinatorRestartRestoresRegistry(t *testing.T) {
	store := t.TempDir()
	h := startCoordinator(t, coordinator.Config{Embedded: busserver.ServerConfig{Port: -1, StoreDir: store}})
	_, stopA := startAgent(t, []string{h.url}, fakeNode{id: "vast-1", provider: "vast", instance: "1", root: t.TempDir()}, "")
	_, _ = startAgent(t, []string{h.url}, fakeNode{id: "hetzner-cpu1", provider: "hetzner", instance: "41", root: t.TempDir()}, "")
	waitState(t, h.url, "vast-1", mesh.StateHealthy, 10*time.Second)
	waitState(t, h.url, "hetzner-cpu1", mesh.StateHealthy, 10*time.Second)
	stopA() // bye → left, persisted before the restart
	waitState(t, h.url, "vast-1", mesh.StateLeft, 5*time.Second)
	port := h.coord.Registry() // keep reference for comparison
	before := port.Snapshot()
	h.stop()

	h2 := startCoordinator(t, coordinator.Config{Embedded: busserver.ServerConfig{Port: -1, StoreDir: store}})
	// Right after start, before any agent could have spoken to it:
	rec, ok := h2.coord.Registry().Get("vast-1")
	if !ok || rec.State != mesh.StateLeft || rec.Provider != "vast" || rec.InstanceID != "1" {
		t.Fatalf("restored vast-1 = %+v (ok=%v)", rec, ok)
	}
	rec, ok = h2.coord.Registry().Get("hetzner-cpu1")
	if !ok || rec.Provider != "hetzner" || rec.Paths == nil || rec.Paths.Ringrift != "/root/ringrift/ai-service" {
		t.Fatalf("restored hetzner-cpu1 = %+v", rec)
	}
	if len(h2.coord.Registry().Snapshot()) != len(before) {
		t.Fatalf("restored %d records, had %d", len(h2.coord.Registry().Snapshot()), len(before))
	}
}

func contextWithCancel() (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}

type natsConn = nats.Conn

// natsConnect connects as a coordinator-role test user when url's server has an issuer.
func natsConnect(t testing.TB, url string) (*nats.Conn, error) { return testutil.Dial(t, url) }

// nodeConnect connects as node id with that node's own credentials (when
// url's server has an issuer): it may publish only mesh.v1.evt.<id>.>.
func nodeConnect(t testing.TB, url, id string) (*nats.Conn, error) {
	t.Helper()
	if sb := testutil.Lookup(url); sb != nil {
		return sb.Connect(t, []string{url}, auth.RoleNode, id)
	}
	return nats.Connect(url)
}
