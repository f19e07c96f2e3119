package coordinator_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ringmesh/ringmesh/internal/testutil"
	"github.com/ringmesh/ringmesh/pkg/auth"
	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/bus/busserver"
	"github.com/ringmesh/ringmesh/pkg/config"
	"github.com/ringmesh/ringmesh/pkg/coordinator"
	"github.com/ringmesh/ringmesh/pkg/events"
	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/paths"
	"github.com/ringmesh/ringmesh/pkg/registry"
)

// attacker is a nats.go client publishing what it likes within what the
// bus lets its identity publish.
type attacker struct {
	t  testing.TB
	nc *nats.Conn
	js jetstream.JetStream
}

// newAttacker is a compromised node: it holds its OWN node credentials
// (issued for node), so the bus lets it publish only on
// mesh.v1.evt.<node>.>; everything it sends there is still untrusted.
func newAttacker(t testing.TB, url, node string) *attacker {
	t.Helper()
	sb := testutil.Lookup(url)
	if sb == nil {
		t.Fatalf("no issuer registered for %s", url)
	}
	nc, err := sb.Connect(t, []string{url}, auth.RoleNode, node)
	if err != nil {
		t.Fatal(err)
	}
	return attackerOn(t, nc)
}

// newPermissionBypassAttacker connects with a coordinator-role identity,
// which may publish anything: it simulates a failure of the bus permission
// layer, to test the coordinator's own checks behind it (defence in depth).
func newPermissionBypassAttacker(t testing.TB, url string) *attacker {
	t.Helper()
	nc, err := testutil.Dial(t, url)
	if err != nil {
		t.Fatal(err)
	}
	return attackerOn(t, nc)
}

func attackerOn(t testing.TB, nc *nats.Conn) *attacker {
	t.Helper()
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return &attacker{t: t, nc: nc, js: js}
}

func (a *attacker) publishRaw(subj string, data []byte) {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := a.js.Publish(ctx, subj, data); err != nil {
		a.t.Fatalf("publish %s: %v", subj, err)
	}
}

func (a *attacker) publish(node, kind string, seq uint64, body any) {
	a.t.Helper()
	env, err := bus.NewEnvelope(kind, bus.MessageID(node, "evil", seq), node, time.Now(), body)
	if err != nil {
		a.t.Fatal(err)
	}
	b, _ := json.Marshal(env)
	subj, err := bus.EventSubject(node, kind)
	if err != nil {
		a.t.Fatal(err)
	}
	a.publishRaw(subj, b)
}

func hello(host, user, fp string) events.Hello {
	return events.Hello{AgentVersion: "v1", Boot: "evil", Provider: "vast", Paths: paths.For("vast", "", nil), HeartbeatIntervalSeconds: 5,
		SSH: []events.Endpoint{{Kind: "direct", Host: host, Port: 22, User: user}}, HostKeyFingerprint: fp}
}

func deadLetterWith(t testing.TB, url, subject, reason string) events.DeadLetter {
	t.Helper()
	nc, err := natsConnect(t, url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var hit events.DeadLetter
	testutil.Eventually(t, 15*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		dl, err := testutil.APIClient(t, url, nc).DeadLetters(ctx, 100)
		if err != nil {
			return err
		}
		for _, d := range dl.Items {
			if d.Subject == subject && strings.Contains(d.Reason, reason) {
				hit = d
				return nil
			}
		}
		return fmt.Errorf("no dead letter on %s mentioning %q among %d", subject, reason, len(dl.Items))
	})
	return hit
}

// A host-key fingerprint with a newline (Host * / ProxyCommand injection)
// is refused at the boundary and never reaches meshctl ssh-config.
func TestAttackFingerprintInjectionNotInSSHConfig(t *testing.T) {
	h := startCoordinator(t, coordinator.Config{})
	// Two compromised nodes, each sending on its own subject with its own credentials.
	evil := "SHA256:" + strings.Repeat("A", 43) + "\nHost *\n  ProxyCommand touch /tmp/ringmesh-pwned"
	newAttacker(t, h.url, "vast-evil").publish("vast-evil", bus.KindHello, 1, hello("10.0.0.1", "root", evil))
	newAttacker(t, h.url, "vast-evil2").publish("vast-evil2", bus.KindHello, 1, hello("10.0.0.1 -oProxyCommand=x", "root", ""))
	deadLetterWith(t, h.url, "mesh.v1.evt.vast-evil.hello", "host_key_fingerprint")
	deadLetterWith(t, h.url, "mesh.v1.evt.vast-evil2.hello", "/body/ssh/0/host")
	out, err := run(t, h.url, "", "ssh-config")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "ProxyCommand") || strings.Contains(out, "Host *") || strings.Contains(out, "vast-evil") {
		t.Fatalf("injected text reached ssh-config:\n%s", out)
	}
	if _, ok := h.coord.Registry().Get("vast-evil"); ok {
		t.Fatal("a refused hello created a record")
	}
}

// Two ~800 kB heartbeats (3,000 GPUs, 1e308 %) go to the DLQ with a reason;
// meshctl status and rpo still answer, also after a restart.
func TestAttackHugeHeartbeatRejectedStatusWorks(t *testing.T) {
	store := t.TempDir()
	h := startCoordinator(t, coordinator.Config{Embedded: busserver.ServerConfig{Port: -1, StoreDir: store}})
	a := newAttacker(t, h.url, "vast-big") // a compromised node, on its own subjects
	a.publish("vast-big", bus.KindHello, 1, hello("10.0.0.9", "root", ""))
	var gpus []string
	for i := 0; i < 3000; i++ {
		gpus = append(gpus, fmt.Sprintf(`{"index":%d,"name":"NVIDIA H100 80GB HBM3 %s","uuid":"GPU-%d","utilization_percent":1e308}`, i, strings.Repeat("x", 150), i))
	}
	body := `{"status":"healthy","interval_seconds":5,"bus_connected":true,"rpo":{"unsynced_bytes":null,"unsynced_files":null,"oldest_unsynced_seconds":null},` +
		`"health":{"time":"` + time.Now().UTC().Format(time.RFC3339) + `","agent_version":"x","cpu_percent":1e308,"gpu_probe":"ok","disks":[],"processes":[],"errors":[],"gpus":[` + strings.Join(gpus, ",") + `]}}`
	for seq := 2; seq <= 3; seq++ {
		raw := fmt.Sprintf(`{"schema":"mesh.v1.heartbeat","id":"vast-big:evil:%d","node":"vast-big","ts":%q,"body":%s}`, seq, time.Now().UTC().Format(time.RFC3339Nano), body)
		if len(raw) < 700_000 {
			t.Fatalf("heartbeat only %d bytes", len(raw))
		}
		a.publishRaw("mesh.v1.evt.vast-big.heartbeat", []byte(raw))
	}
	deadLetterWith(t, h.url, "mesh.v1.evt.vast-big.heartbeat", "exceeds the")
	// The same values in a small heartbeat are out of range.
	small := `{"schema":"mesh.v1.heartbeat","id":"vast-big:evil:4","node":"vast-big","ts":"` + time.Now().UTC().Format(time.RFC3339Nano) + `","body":{"status":"healthy","interval_seconds":5,"bus_connected":true,"rpo":{"unsynced_bytes":null,"unsynced_files":null,"oldest_unsynced_seconds":null},"health":{"time":"` + time.Now().UTC().Format(time.RFC3339) + `","agent_version":"x","cpu_percent":1e308,"gpu_probe":"ok","disks":[],"processes":[],"errors":[],"gpus":[]}}}`
	a.publishRaw("mesh.v1.evt.vast-big.heartbeat", []byte(small))
	deadLetterWith(t, h.url, "mesh.v1.evt.vast-big.heartbeat", "/body/health/cpu_percent")
	// The stored giants are listed by size (a reply holding them would not fit).
	if out, err := run(t, h.url, "", "events", "--kind", "heartbeat", "--node", "vast-big"); err != nil || strings.Count(out, "too large to show") != 2 {
		t.Fatalf("meshctl events --kind heartbeat: %v\n%.2000s", err, out)
	}
	for _, cmd := range []string{"status", "rpo"} {
		if out, err := run(t, h.url, "", cmd); err != nil || !strings.Contains(out, "vast-big") {
			t.Fatalf("meshctl %s: %v\n%s", cmd, err, out)
		}
	}
	h.stop()
	h2 := startCoordinator(t, coordinator.Config{Embedded: busserver.ServerConfig{Port: -1, StoreDir: store}})
	if out, err := run(t, h2.url, "", "status"); err != nil || !strings.Contains(out, "vast-big") {
		t.Fatalf("meshctl status after restart: %v\n%s", err, out)
	}
}

// Invented nodes: node credentials issued for IDs the inventory does not
// know (each a real identity, as a leaked or mis-issued credential would
// be), each saying hello on its own subject: quarantined, bounded, drops
// counted, never routed.
func TestAttackInventedNodesQuarantinedAndBounded(t *testing.T) {
	h := startCoordinator(t, coordinator.Config{})
	sb := testutil.Lookup(h.url)
	if sb == nil {
		t.Fatal("no issuer for the coordinator's bus")
	}
	const n = registry.DefaultMaxQuarantined + 144
	ids := make(chan int)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range ids {
				errs <- sayHelloAs(t, sb, h.url, fmt.Sprintf("invented-%d", i))
			}
		}()
	}
	for i := 0; i < n; i++ {
		ids <- i
	}
	close(ids)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 60*time.Second, func() error {
		if got := metricValue(t, h, "ringmesh_events_dropped_total{reason=\"quarantine_full\"}"); got < n-registry.DefaultMaxQuarantined {
			return fmt.Errorf("dropped %v", got)
		}
		return nil
	})
	if q := h.coord.Registry().Quarantined(); q != registry.DefaultMaxQuarantined {
		t.Fatalf("quarantined %d, want the cap %d", q, registry.DefaultMaxQuarantined)
	}
	if got := len(h.coord.Registry().Snapshot()); got > registry.DefaultMaxQuarantined+1 {
		t.Fatalf("registry grew to %d records", got)
	}
	st := status(t, h.url)
	rec, ok := nodeIn(st, "invented-0")
	if !ok || !rec.Quarantined || st.Quarantined != registry.DefaultMaxQuarantined {
		t.Fatalf("invented-0 = %+v (quarantined %d)", rec, st.Quarantined)
	}
	out, err := run(t, h.url, "", "status")
	if err != nil || !strings.Contains(out, "quarantined") {
		t.Fatalf("meshctl status does not show the quarantine: %v\n%.2000s", err, out)
	}
	if _, err := run(t, h.url, "", "sync", "invented-0"); err == nil {
		t.Fatal("meshctl sync to a quarantined node was accepted")
	}
}

// sayHelloAs connects with node credentials issued for node and publishes
// one hello on its own subject.
func sayHelloAs(t testing.TB, sb *testutil.SecureBus, url, node string) error {
	nc, err := sb.Connect(t, []string{url}, auth.RoleNode, node)
	if err != nil {
		return fmt.Errorf("%s: %w", node, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	env, _ := bus.NewEnvelope(bus.KindHello, bus.MessageID(node, "evil", 1), node, time.Now(), hello("10.0.0.2", "root", ""))
	b, _ := json.Marshal(env)
	subj, _ := bus.EventSubject(node, bus.KindHello)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := js.Publish(ctx, subj, b); err != nil {
		return fmt.Errorf("%s: publish %s: %w", node, subj, err)
	}
	return nil
}

func metricValue(t testing.TB, h *harness, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + h.coord.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, series+" ") {
			v, _ := strconv.ParseFloat(strings.TrimPrefix(line, series+" "), 64)
			return v
		}
	}
	return 0
}

// A forged hello for the coordinator's own node does not rewrite its
// provider, endpoints or pinned host key; gossip counts only from voters on
// their own subject.
func TestAttackForgedHelloAndGossip(t *testing.T) {
	inv, err := config.Parse("inv.yaml", []byte("hosts:\n  hetzner-cpu1: {provider: hetzner, ssh_host: 203.0.113.1, role: coordinator}\n  vast-5: {provider: vast}\n"))
	if err != nil {
		t.Fatal(err)
	}
	h := startCoordinator(t, coordinator.Config{Name: "hetzner-cpu1", Inventory: inv})
	// A hello for a voter's node and gossip on voters' subjects cannot come
	// from a node's credentials (the bus refuses them; pkg/auth's attack
	// matrix proves it): a coordinator-role connection simulates a failure
	// of that permission layer, to test the coordinator's own checks.
	a := newPermissionBypassAttacker(t, h.url)
	real := "SHA256:" + strings.Repeat("R", 43)
	a.publish("hetzner-cpu1", bus.KindHello, 1, events.Hello{AgentVersion: "v1", Boot: "evil", Provider: "hetzner", Paths: paths.For("hetzner", "", nil), HeartbeatIntervalSeconds: 5, HostKeyFingerprint: real})
	forged := hello("198.51.100.66", "root", "SHA256:"+strings.Repeat("F", 43))
	a.publish("hetzner-cpu1", bus.KindHello, 2, forged)
	testutil.Eventually(t, 10*time.Second, func() error {
		rec, _ := h.coord.Registry().Get("hetzner-cpu1")
		if rec.HostKeyConflict == "" {
			return fmt.Errorf("second hello not applied yet: %+v", rec)
		}
		return nil
	})
	rec, _ := h.coord.Registry().Get("hetzner-cpu1")
	if rec.Provider != "hetzner" || rec.HostKey != real || len(rec.SSH) != 0 || rec.Quarantined {
		t.Fatalf("forged hello rewrote the coordinator's record: %+v", rec)
	}
	out, _ := run(t, h.url, "", "ssh-config")
	if strings.Contains(out, "198.51.100.66") || !strings.Contains(out, "HostName 203.0.113.1") || !strings.Contains(out, "StrictHostKeyChecking yes") {
		t.Fatalf("ssh-config:\n%s", out)
	}
	// Gossip from a voter that does not exist, and a voter's name on another's subject.
	g := func(voter, subjVoter, member string) {
		env, _ := bus.NewEnvelope("gossip", "gossip:"+voter+":"+member+":fail:1", subjVoter, time.Now(), events.Gossip{Voter: voter, Type: "fail", Member: member})
		b, _ := json.Marshal(env)
		a.publishRaw("mesh.v1.gossip."+subjVoter, b)
	}
	g("ghost-voter", "ghost-voter", "vast-5")
	g("hetzner-cpu1", "vast-5", "vast-5")
	deadLetterWith(t, h.url, "mesh.v1.gossip.ghost-voter", "not a configured voter")
	deadLetterWith(t, h.url, "mesh.v1.gossip.vast-5", "own subject")
	if rec, _ := h.coord.Registry().Get("vast-5"); rec.Gossip.State != "" {
		t.Fatalf("forged gossip applied: %+v", rec.Gossip)
	}
}

// The Vast webhook: oversize 413, far timestamps and replays refused, a
// signed event ID required.
func TestAttackVastWebhook(t *testing.T) {
	const secret = "s3cret"
	h := startCoordinator(t, coordinator.Config{VastWebhookSecret: secret})
	url := "http://" + h.coord.HTTPAddr() + "/webhooks/vast"
	post := func(ts, body string, hdr map[string]string) int {
		m := hmac.New(sha256.New, []byte(secret))
		m.Write([]byte(ts + "." + body))
		req, _ := http.NewRequest("POST", url, strings.NewReader(body))
		req.Header.Set("X-Vast-Timestamp", ts)
		req.Header.Set("X-Vast-Signature-256", "sha256="+hex.EncodeToString(m.Sum(nil)))
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	now := strconv.FormatInt(time.Now().Unix(), 10)
	ev := func(id string) string {
		return `{"event_id":"` + id + `","notif_type":"billing","subject":"s","message":"m"}`
	}
	big := `{"event_id":"big","notif_type":"billing","message":"` + strings.Repeat("x", 70<<10) + `"}`
	cases := []struct {
		name, ts, body string
		hdr            map[string]string
		want           int
	}{
		{"oversize", now, big, nil, http.StatusRequestEntityTooLarge},
		{"292 years ahead", "9223372036", ev("far"), nil, http.StatusUnauthorized},
		{"far past", "-9223372036", ev("past"), nil, http.StatusUnauthorized},
		{"huge", "99999999999999999999", ev("huge"), nil, http.StatusUnauthorized},
		{"no event id", now, `{"notif_type":"billing"}`, map[string]string{"X-Vast-Event-Id": "unsigned"}, http.StatusBadRequest},
		{"header disagrees", now, ev("e1"), map[string]string{"X-Vast-Event-Id": "other"}, http.StatusBadRequest},
		{"first", now, ev("e2"), nil, http.StatusNoContent},
		{"replay", now, ev("e2"), nil, http.StatusConflict},
	}
	for _, c := range cases {
		if got := post(c.ts, c.body, c.hdr); got != c.want {
			t.Errorf("%s: HTTP %d, want %d", c.name, got, c.want)
		}
	}
}

// With a token file, the status page and /api/status need the token; the
// probes and /metrics do not.
func TestHTTPTokenGuardsStatusAndAPI(t *testing.T) {
	tokFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokFile, []byte("0123456789abcdef-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := startCoordinator(t, coordinator.Config{HTTPTokenFile: tokFile})
	get := func(path, tok string) int {
		req, _ := http.NewRequest("GET", "http://"+h.coord.HTTPAddr()+path, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		path, tok string
		want      int
	}{
		{"/", "", 401}, {"/api/status", "", 401}, {"/api/status", "wrong", 401},
		{"/", "0123456789abcdef-token", 200}, {"/api/status", "0123456789abcdef-token", 200},
		{"/healthz", "", 200}, {"/metrics", "", 200},
	} {
		if got := get(c.path, c.tok); got != c.want {
			t.Errorf("GET %s (token %q): %d, want %d", c.path, c.tok, got, c.want)
		}
	}
	_ = mesh.StateHealthy
}

// TestAttackReceiptsBeforeRoutingNotTaken: a node the router never gave a
// target (no routing has happened for it) reports a sync result whose
// receipts name a persistent node and an RPO of zero. The receipts cannot
// be checked, so the RPO is not taken: the node's RPO stays unknown and
// the safe-to-terminate gate does not open; the same node's own heartbeat
// figure still counts.
func TestAttackReceiptsBeforeRoutingNotTaken(t *testing.T) {
	inv, err := config.Parse("inv.yaml", []byte("hosts:\n  hetzner-cpu1: {provider: hetzner, ssh_host: 203.0.113.1, role: coordinator}\n  hetzner-cpu2: {provider: hetzner, ssh_host: 203.0.113.2}\n  vast-5: {provider: vast, is_ephemeral: true}\n"))
	if err != nil {
		t.Fatal(err)
	}
	h := startCoordinator(t, coordinator.Config{Name: "hetzner-cpu1", Inventory: inv})
	a := newAttacker(t, h.url, "vast-5")
	a.publish("vast-5", bus.KindHello, 1, hello("198.51.100.5", "root", ""))
	zero, none := int64(0), 0
	a.publish("vast-5", bus.KindSync, 2, events.Sync{Phase: "result", Trigger: "continuous", BytesSent: 1 << 20, BytesTotal: 1 << 20,
		Made: []events.FileRef{{Path: "ckpt/a.pt", Size: 1 << 20, Targets: []string{"hetzner-cpu2"}}},
		RPO:  events.RPO{UnsyncedBytes: &zero, UnsyncedFiles: &none}})
	testutil.Eventually(t, 10*time.Second, func() error {
		if rec, _ := h.coord.Registry().Get("vast-5"); rec.LastSync == nil {
			return errors.New("sync result not applied yet")
		}
		return nil
	})
	if rec, _ := h.coord.Registry().Get("vast-5"); rec.RPO.UnsyncedBytes != nil {
		t.Fatalf("RPO taken from receipts nobody routed: %d unsynced bytes", *rec.RPO.UnsyncedBytes)
	}
}
