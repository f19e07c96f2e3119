package coordinator_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/ringmesh/ringmesh/internal/testutil"
	"github.com/ringmesh/ringmesh/pkg/agent"
	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/config"
	"github.com/ringmesh/ringmesh/pkg/coordinator"
	"github.com/ringmesh/ringmesh/pkg/detect"
	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/paths"
	"github.com/ringmesh/ringmesh/pkg/sync/sshtest"
)

func writeFile(t testing.TB, path string, size int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(i * 7)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

type syncRig struct {
	h       *harness
	target  *sshtest.Server
	src     *agent.Agent
	srcRoot string
	stopSrc context.CancelCauseFunc
	srcDone chan error
}

// startSyncRig: a coordinator, a persistent Hetzner target whose SSH server
// is an in-process SFTP server (its agent reports that server's host key),
// and an ephemeral Vast source agent with sync on.
func startSyncRig(t testing.TB, secret string) *syncRig {
	t.Helper()
	// The routing thresholds must not depend on how full this machine's disk is.
	return startSyncRigWith(t, secret, "sync_routing: {max_disk_usage_percent: 100, min_free_disk_percent: 0.01, replication_target: 1}\nhosts:\n  hetzner-cpu2: {provider: hetzner, $SSH}\n  vast-77: {provider: vast, is_ephemeral: true}\n")
}

// startSyncRigWith is startSyncRig with the given inventory; "$SSH" in it
// stands for the target's SSH endpoint (ssh_host, ssh_port, ssh_user of the
// in-process server): a target's endpoint comes from the inventory, never
// from what the node reports.
func startSyncRigWith(t testing.TB, secret, inventory string) *syncRig {
	t.Helper()
	srv := sshtest.New(t, sshtest.Options{})
	inventory = strings.ReplaceAll(inventory, "$SSH", fmt.Sprintf("ssh_host: 127.0.0.1, ssh_port: %d, ssh_user: %s, ssh_host_key: %q", srv.Port, srv.User, ssh.FingerprintSHA256(srv.HostKey.Signer.PublicKey())))
	inv, err := config.Parse("sync.yaml", []byte(inventory))
	if err != nil {
		t.Fatal(err)
	}
	h := startCoordinator(t, coordinator.Config{VastWebhookSecret: secret, Inventory: inv})
	pub := filepath.Join(t.TempDir(), "ssh_host_ed25519_key.pub")
	if err := os.WriteFile(pub, srv.HostKey.AuthorizedKey, 0o644); err != nil {
		t.Fatal(err)
	}
	dead := closedURL(t)
	det := detect.Options{Env: func(string) string { return "" }, HetznerURL: dead, VultrURL: dead, NebiusURL: dead, Timeout: 100 * time.Millisecond}
	var tgt *agent.Agent
	tgt, err = agent.New(secureAgent(t, agent.Config{NodeID: "hetzner-cpu2", Provider: "hetzner", InstanceID: "41000002", NATSURLs: []string{h.url}, StateDir: t.TempDir(),
		HeartbeatInterval: 200 * time.Millisecond, Detect: det, Paths: paths.Resolver{Root: t.TempDir(), Home: "/root"}, HostKeyPaths: []string{pub},
		Host: &config.Host{Name: "hetzner-cpu2", Provider: "hetzner", SSHHost: "127.0.0.1", SSHPort: srv.Port, SSHUser: srv.User}}), testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, tgt, nil)

	r := &syncRig{h: h, target: srv, srcRoot: t.TempDir()}
	r.src, err = agent.New(secureAgent(t, agent.Config{NodeID: "vast-77", Provider: "vast", InstanceID: "77", NATSURLs: []string{h.url}, StateDir: t.TempDir(),
		HeartbeatInterval: 200 * time.Millisecond, Detect: det, Paths: paths.Resolver{Root: r.srcRoot, Home: "/root"}, ByeTimeout: 2 * time.Second,
		Sync: &agent.SyncConfig{KeyPath: srv.ClientKeyPath, Interval: 300 * time.Millisecond, ReplicationTarget: 1, Notice: 4 * time.Second}}), testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	r.stopSrc, r.srcDone = runAgent(t, r.src, nil)
	return r
}

func runAgent(t testing.TB, a *agent.Agent, _ any) (context.CancelCauseFunc, chan error) {
	t.Helper()
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan error, 1)
	finished := make(chan struct{})
	go func() { err := a.Run(ctx); close(finished); done <- err }()
	select {
	case <-a.Ready():
	case err := <-done:
		t.Fatal(err)
	case <-time.After(20 * time.Second):
		t.Fatal("agent not ready")
	}
	t.Cleanup(func() {
		cancel(nil)
		select {
		case <-finished:
		case <-time.After(30 * time.Second):
			t.Error("agent did not stop within 30 s")
		}
	})
	return cancel, done
}

func (r *syncRig) remote(t testing.TB, rel string) string {
	return r.target.LocalPath("/root/ringrift/ai-service/data/sync_incoming/vast-77/" + rel)
}

func waitRPOZero(t testing.TB, h *harness, node string, within time.Duration) {
	t.Helper()
	testutil.Eventually(t, within, func() error {
		rec, _ := h.coord.Registry().Get(node)
		if rec.RPO.UnsyncedBytes == nil || *rec.RPO.UnsyncedBytes != 0 {
			return fmt.Errorf("%s RPO %v", node, rec.RPO.UnsyncedBytes)
		}
		return nil
	})
}

// New and changed files of an ephemeral node reach their target within
// seconds; RPO is reported in heartbeats, meshctl rpo and the gate;
// meshctl sync pushes now; SIGTERM publishes preempt, flushes, says bye.
func TestContinuousSyncAndPreemptionFlush(t *testing.T) {
	t0 := time.Now()
	r := startSyncRig(t, "")
	data := filepath.Join(r.srcRoot, "root/ringrift/ai-service")
	writeFile(t, filepath.Join(data, "checkpoints/ckpt-1.pt"), 1<<20)
	writeFile(t, filepath.Join(data, "models/best.bin"), 100<<10)

	for _, rel := range []string{"checkpoints/ckpt-1.pt", "models/best.bin"} {
		testutil.Eventually(t, 30*time.Second, func() error {
			fi, err := os.Stat(r.remote(t, rel))
			if err != nil {
				return err
			}
			if fi.Size() == 0 {
				return fmt.Errorf("%s empty", rel)
			}
			return nil
		})
	}
	waitRPOZero(t, r.h, "vast-77", 15*time.Second)
	t.Logf("initial sync done +%s", time.Since(t0))
	// The gate: RPO zero → safe to terminate.
	nc := mustConnect(t, r.h.url)
	var safe api.Safe
	if err := testutil.APIClient(t, r.h.url, nc).Call(context.Background(), api.OpSafe, api.NodeRequest{Node: "vast-77"}, &safe); err != nil || !safe.Safe {
		t.Fatalf("safe_to_terminate: %+v %v", safe, err)
	}
	// A new file is on the target within seconds.
	written := time.Now()
	writeFile(t, filepath.Join(data, "checkpoints/ckpt-2.pt"), 512<<10)
	testutil.Eventually(t, 15*time.Second, func() error {
		_, err := os.Stat(r.remote(t, "checkpoints/ckpt-2.pt"))
		return err
	})
	t.Logf("new file on its target after %s", time.Since(written).Round(10*time.Millisecond))
	waitRPOZero(t, r.h, "vast-77", 15*time.Second)
	out, err := run(t, r.h.url, "", "rpo")
	if err != nil || !strings.Contains(out, "vast-77") || !strings.Contains(out, "0 B") {
		t.Fatalf("meshctl rpo: %v\n%s", err, out)
	}
	t.Logf("meshctl sync +%s", time.Since(t0))
	out, err = run(t, r.h.url, "", "sync", "vast-77")
	if err != nil || !strings.Contains(out, "vast-77:") {
		t.Fatalf("meshctl sync: %v\n%s", err, out)
	}
	// Termination: a large new file cannot make it in a slowed link.
	r.target.SetWriteDelay(50 * time.Millisecond)
	writeFile(t, filepath.Join(data, "checkpoints/ckpt-3.pt"), 32<<20)
	t.Logf("SIGTERM +%s", time.Since(t0))
	r.stopSrc(errors.New("signal:SIGTERM"))
	select {
	case err := <-r.srcDone:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("agent did not stop")
	}
	t.Logf("agent stopped +%s", time.Since(t0))
	testutil.Eventually(t, 10*time.Second, func() error {
		rec, _ := r.h.coord.Registry().Get("vast-77")
		if rec.State != mesh.StatePreempted {
			return fmt.Errorf("state %s (%s)", rec.State, rec.Cause)
		}
		if rec.LastSync == nil || rec.LastSync.Phase != "flush" {
			return fmt.Errorf("no flush result: %+v", rec.LastSync)
		}
		return nil
	})
	rec, _ := r.h.coord.Registry().Get("vast-77")
	if !strings.Contains(rec.Cause, "bye after preempt") {
		t.Errorf("cause %q", rec.Cause)
	}
	missed := map[string]bool{}
	for _, f := range rec.LastSync.Missed {
		missed[filepath.Base(f.Path)] = true
	}
	if !missed["ckpt-3.pt"] {
		t.Errorf("the result must say ckpt-3.pt did not make it: missed %+v", rec.LastSync.Missed)
	}
	for _, old := range []string{"ckpt-1.pt", "ckpt-2.pt", "best.bin"} {
		if missed[old] {
			t.Errorf("%s was safe before the flush but is reported missed", old)
		}
	}
}

func mustConnect(t testing.TB, url string) *natsConn {
	t.Helper()
	nc, err := natsConnect(t, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// A Vast outbid webhook with a valid HMAC signature marks the node
// preempting; a bad signature or an old timestamp is refused.
func TestVastWebhook(t *testing.T) {
	const secret = "s3cret"
	r := startSyncRig(t, secret)
	testutil.Eventually(t, 10*time.Second, func() error {
		if rec, _ := r.h.coord.Registry().Get("vast-77"); rec.State != mesh.StateHealthy {
			return fmt.Errorf("vast-77: %s", rec.State)
		}
		return nil
	})
	url := "http://" + r.h.coord.HTTPAddr() + "/webhooks/vast"
	post := func(ts, sig, body string) int {
		req, _ := http.NewRequest("POST", url, strings.NewReader(body))
		req.Header.Set("X-Vast-Timestamp", ts)
		req.Header.Set("X-Vast-Signature-256", "sha256="+sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	sign := func(ts, body string) string {
		m := hmac.New(sha256.New, []byte(secret))
		m.Write([]byte(ts + "." + body))
		return hex.EncodeToString(m.Sum(nil))
	}
	body := `{"event_id":"ev-1","user_id":1,"notif_type":"outbid","subject":"Instance 77 outbid","message":"your bid on instance 77 was outbid","timestamp":0}`
	now := strconv.FormatInt(time.Now().Unix(), 10)
	if code := post(now, "00", body); code != http.StatusUnauthorized {
		t.Fatalf("bad signature: HTTP %d", code)
	}
	old := strconv.FormatInt(time.Now().Add(-time.Hour).Unix(), 10)
	if code := post(old, sign(old, body), body); code != http.StatusUnauthorized {
		t.Fatalf("replayed: HTTP %d", code)
	}
	if rec, _ := r.h.coord.Registry().Get("vast-77"); rec.State != mesh.StateHealthy {
		t.Fatalf("refused webhooks changed the state: %s", rec.State)
	}
	if code := post(now, sign(now, body), body); code != http.StatusAccepted {
		t.Fatalf("valid webhook: HTTP %d", code)
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		rec, _ := r.h.coord.Registry().Get("vast-77")
		if rec.State != mesh.StatePreempting || rec.Preempt == nil || rec.Preempt.Source != "vast:webhook" {
			return fmt.Errorf("vast-77: %s %+v", rec.State, rec.Preempt)
		}
		return nil
	})
	// The agent was told to flush: its flush result arrives.
	testutil.Eventually(t, 15*time.Second, func() error {
		rec, _ := r.h.coord.Registry().Get("vast-77")
		if rec.LastSync == nil || rec.LastSync.Phase != "flush" {
			return fmt.Errorf("no flush yet: %+v", rec.LastSync)
		}
		return nil
	})
}
