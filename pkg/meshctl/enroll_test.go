package meshctl_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/internal/testutil"
	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/auth"
	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/bus/busserver"
	"github.com/ringmesh/ringmesh/pkg/config"
	"github.com/ringmesh/ringmesh/pkg/coordinator"
	"github.com/ringmesh/ringmesh/pkg/enroll"
	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/meshctl"
	"github.com/ringmesh/ringmesh/pkg/registry"
	"github.com/ringmesh/ringmesh/pkg/supervise"
	"github.com/ringmesh/ringmesh/pkg/sync/sshtest"
)

// Two agent builds of this tree, stamped with different versions, built
// once per test binary (the enrollment tests share them).
var (
	agentOnce sync.Once
	agentBins [2]string
	agentErr  error
	agentDir  string
)

const (
	testVersion1 = "v0.0.0-enrolltest.1"
	testVersion2 = "v0.0.0-enrolltest.2"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if agentDir != "" {
		os.RemoveAll(agentDir)
	}
	os.Exit(code)
}

func agentBinaries(t *testing.T) [2]string {
	t.Helper()
	agentOnce.Do(func() {
		wd, _ := os.Getwd()
		root := enroll.FindSourceTree(wd)
		if root == "" {
			agentErr = errors.New("not in the ringmesh source tree")
			return
		}
		if agentDir, agentErr = os.MkdirTemp("", "ringmesh-enroll-test-"); agentErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		for i, v := range []string{testVersion1, testVersion2} {
			b := &enroll.SourceBuild{Dir: root, Version: v, OutDir: filepath.Join(agentDir, v)}
			if agentBins[i], _, agentErr = b.Binary(ctx, mustGoArch(t)); agentErr != nil {
				return
			}
		}
	})
	if agentErr != nil {
		t.Fatalf("build the agent: %v", agentErr)
	}
	return agentBins
}

func mustGoArch(t *testing.T) string {
	var u syscall.Utsname
	if err := syscall.Uname(&u); err != nil {
		t.Fatal(err)
	}
	var b []byte
	for _, c := range u.Machine {
		if c == 0 {
			break
		}
		b = append(b, byte(c))
	}
	a := enroll.GoArch(string(b))
	if a == "" {
		t.Skipf("no agent build for this machine (%s)", b)
	}
	return a
}

// enrollRig is a real coordinator (embedded NATS with JWT auth and TLS)
// whose inventory holds one node reached over a real OpenSSH sshd on
// loopback; the node's "machine" is the test user's temp directory.
type enrollRig struct {
	t      *testing.T
	sshd   *sshtest.OpenSSH
	sb     *testutil.SecureBus
	url    string
	node   string
	prefix string // the install directory on this machine
	// flagPrefix is what --prefix says (prefix, or ~/DIR of the SSH user).
	flagPrefix string
	known      string
	client     api.Client
}

func startEnrollRig(t *testing.T) *enrollRig {
	t.Helper()
	sshd := sshtest.StartOpenSSH(t)
	p := filepath.Join(sshd.Dir, "ringmesh")
	return startEnrollRigAs(t, sshd, sshd.User, p, p)
}

// startEnrollRigAs is startEnrollRig with the node reached as user over
// sshd and installed in prefix (flagPrefix on the command line).
func startEnrollRigAs(t *testing.T, sshd *sshtest.OpenSSH, user, prefix, flagPrefix string) *enrollRig {
	t.Helper()
	r := &enrollRig{t: t, sshd: sshd, node: "runpod-enroll1", prefix: prefix, flagPrefix: flagPrefix,
		known: filepath.Join(t.TempDir(), "ringmesh_known_hosts")}
	invPath := filepath.Join(t.TempDir(), "hosts.yaml")
	inv := fmt.Sprintf("auto_sync:\n  data_classes:\n    checkpoints: [\"**/*.pt\"]\nhosts:\n  %s:\n    provider: runpod\n    ssh_host: 127.0.0.1\n    ssh_port: %d\n    ssh_user: %s\n    ssh_key: %s\n    is_ephemeral: true\n",
		r.node, sshd.Port, user, sshd.ClientKeyPath)
	if err := os.WriteFile(invPath, []byte(inv), 0o600); err != nil {
		t.Fatal(err)
	}
	loaded, err := config.LoadFile(invPath)
	if err != nil {
		t.Fatal(err)
	}
	r.sb = testutil.NewSecureBus(t)
	c, err := coordinator.New(coordinator.Config{
		Name: "hetzner-cpu1", Inventory: loaded, Auth: r.sb.Issuer, HTTPAddr: "127.0.0.1:0",
		Embedded:     busserver.ServerConfig{Port: -1, StoreDir: t.TempDir()},
		Thresholds:   registry.Thresholds{SuspectAfter: 20 * time.Second, DeadAfter: 40 * time.Second},
		TickInterval: 200 * time.Millisecond, FlushInterval: 200 * time.Millisecond,
	}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("coordinator: %v", err)
		}
	})
	select {
	case <-c.Started():
	case err := <-done:
		t.Fatalf("coordinator: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("coordinator did not start")
	}
	r.url = c.ClientURL()
	nc, err := r.sb.Connect(t, []string{r.url}, auth.RoleAdmin, "test-admin")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	r.client = r.sb.Client(t, nc)
	// Whatever happens, no agent or supervisor outlives the test.
	t.Cleanup(func() {
		for _, f := range []string{"supervise.pid", "agent.pid"} {
			if pid, ok := supervise.LivePid(filepath.Join(r.prefix, "run", f)); ok {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	return r
}

// meshctl runs one meshctl command line against the rig.
func (r *enrollRig) meshctl(args ...string) (string, error) {
	var out bytes.Buffer
	root := meshctl.NewRoot(&out, &out)
	root.SetIn(strings.NewReader(""))
	root.SetArgs(append(append(r.sb.MeshctlArgs(r.t), "--nats-url", r.url, "--timeout", "30s"), args...))
	err := root.Execute()
	return out.String(), err
}

func (r *enrollRig) enroll(bin string, extra ...string) (string, error) {
	mode := enroll.ModeAuto
	if b, _ := os.ReadFile("/proc/1/comm"); strings.TrimSpace(string(b)) == "systemd" {
		mode = enroll.ModeSupervisor // the container path is what this test covers
	}
	// The two test builds are stamped with versions of their own, not the
	// coordinator's ("dev" in a test binary): the skew is what this test is about.
	args := []string{"enroll", r.node, "--prefix", r.flagPrefix, "--agent-binary", bin, "--known-hosts", r.known,
		"--mode", mode, "--metrics-listen", "", "--deadline", "2m", "--allow-version-skew"}
	return r.meshctl(append(args, extra...)...)
}

func (r *enrollRig) record() registry.Record {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := r.client.StatusAll(ctx)
	if err != nil {
		r.t.Fatal(err)
	}
	for _, n := range st.Nodes {
		if n.Node == r.node {
			return n
		}
	}
	return registry.Record{}
}

func mode(t *testing.T, p string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// The whole life of an enrolled node, against a real sshd and a real
// coordinator: a changed host key stops enrollment before anything is
// written; enroll (healthy under its own identity, files 0600); enroll
// again (already current); a new version (upgraded, state directory
// kept); the agent killed (the supervisor restarts it); SIGTERM to the
// supervisor (a container stop: the agent announces the preemption,
// flushes and is not restarted); enroll again (current but stopped:
// started); forget refused while live; revoke (the agent is stopped over
// SSH and the bus refuses its credential); forget (the configured node's
// record starts afresh); enroll again (a new credential replaces the
// revoked one).
func TestEnrollLifecycleOverRealSSH(t *testing.T) {
	if sshtest.FindSSHD() == "" {
		t.Skipf("sshd not installed (looked for %s and sshd on PATH); install openssh-server to run this test", sshtest.SSHDPath)
	}
	bins := agentBinaries(t)
	r := startEnrollRig(t)

	// Only a node the coordinator trusts gets a credential; a name without
	// an endpoint is reported, not guessed.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	err := r.client.Call(ctx, api.OpEnroll, api.EnrollRequest{Node: "stranger-1"}, nil)
	cancel()
	if err == nil || !strings.Contains(err.Error(), "not known to the coordinator") {
		t.Fatalf("enroll credential for an unknown node: %v", err)
	}
	if out, err := r.meshctl("enroll", "stranger-1", "--known-hosts", r.known); err == nil || !strings.Contains(out, "stranger-1: failed: no SSH endpoint known") {
		t.Fatalf("enroll of an unknown node: err %v, output:\n%s", err, out)
	}

	// A pinned key that is not the server's: stop, write nothing.
	other, err := sshtest.NewKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(r.known, []byte(r.node+" "+string(other.AuthorizedKey)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := r.enroll(bins[0])
	if err == nil || !strings.Contains(out, r.node+": failed: host key changed") || !strings.Contains(out, "nothing done") {
		t.Fatalf("enroll with a changed host key: err %v, output:\n%s", err, out)
	}
	if _, err := os.Stat(r.prefix); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the prefix exists after a refused host key: %v", err)
	}
	// Not pinned, no TTY, no --accept-host-key: refused with the fingerprint to check.
	if err := os.Remove(r.known); err != nil {
		t.Fatal(err)
	}
	out, err = r.enroll(bins[0])
	if err == nil || !strings.Contains(out, "host key not trusted") || !strings.Contains(out, r.sshd.Fingerprint()) {
		t.Fatalf("enroll with an unconfirmed host key: err %v, output:\n%s", err, out)
	}

	// An agent of another version than the coordinator's is refused
	// without --allow-version-skew, before anything is installed.
	out, err = r.meshctl("enroll", r.node, "--prefix", r.prefix, "--agent-binary", bins[0], "--known-hosts", r.known,
		"--metrics-listen", "", "--deadline", "2m", "--accept-host-key", r.sshd.Fingerprint())
	if err == nil || !strings.Contains(out, "the agent binary is version "+testVersion1+", the coordinator runs") {
		t.Fatalf("enroll of an agent of another version: err %v, output:\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(r.prefix, "bin", "ringmesh-agent")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("an agent was installed after the version refusal: %v", err)
	}

	// Enroll.
	out, err = r.enroll(bins[0], "--accept-host-key", r.sshd.Fingerprint())
	if err != nil || !strings.Contains(out, r.node+": enrolled ("+testVersion1) {
		t.Fatalf("enroll: err %v, output:\n%s", err, out)
	}
	rec := r.record()
	if rec.AgentVersion != testVersion1 || (rec.State != mesh.StateHealthy && rec.State != mesh.StateDegraded) {
		t.Fatalf("after enroll the coordinator has %s %s %q", rec.Node, rec.State, rec.AgentVersion)
	}
	users, err := r.sb.Issuer.Users()
	if err != nil {
		t.Fatal(err)
	}
	issued := 0
	for _, u := range users {
		if u.Name == r.node && u.Role == auth.RoleNode {
			issued++
		}
	}
	if issued != 1 {
		t.Fatalf("%d node credentials issued for %s, want 1", issued, r.node)
	}
	for _, f := range []string{"etc/node.creds", "etc/ca.pem", "etc/agent.conf"} {
		if m := mode(t, filepath.Join(r.prefix, f)); m != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, m)
		}
	}
	// The coordinator's inventory settings reached the node (it has no inventory), and the agent took them.
	if conf, err := os.ReadFile(filepath.Join(r.prefix, "etc/agent.conf")); err != nil ||
		!strings.Contains(string(conf), "data-class=checkpoints=**/*.pt\n") || !strings.Contains(string(conf), "replication-target=2\n") {
		t.Errorf("agent.conf without the inventory's sync settings: %v\n%s", err, conf)
	}
	if m := mode(t, filepath.Join(r.prefix, "etc")); m != 0o700 {
		t.Errorf("etc/ has mode %v, want 0700", m)
	}
	kh, err := os.ReadFile(r.known)
	if err != nil || !strings.HasPrefix(string(kh), r.node+" ssh-ed25519 ") {
		t.Fatalf("host key not pinned under the node ID: %q %v", kh, err)
	}

	// Again: nothing changes.
	boot := rec.Boot
	out, err = r.enroll(bins[0])
	if err != nil || !strings.Contains(out, r.node+": already current") {
		t.Fatalf("second enroll: err %v, output:\n%s", err, out)
	}
	if b := r.record().Boot; b != boot {
		t.Fatalf("already current, yet the agent restarted (boot %s -> %s)", boot, b)
	}

	// Upgrade in place, keeping the state directory (outbox).
	marker := filepath.Join(r.prefix, "var", "kept-marker")
	if err := os.WriteFile(marker, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = r.enroll(bins[1])
	if err != nil || !strings.Contains(out, r.node+": upgraded ("+testVersion2+", was "+testVersion1) {
		t.Fatalf("upgrade: err %v, output:\n%s", err, out)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("the state directory was not kept: %v", err)
	}
	if _, err := os.Stat(filepath.Join(r.prefix, "var", "outbox.db")); err != nil {
		t.Fatalf("outbox: %v", err)
	}
	if rec = r.record(); rec.AgentVersion != testVersion2 {
		t.Fatalf("after upgrade the coordinator has version %q", rec.AgentVersion)
	}

	// Kill the agent: the supervisor starts it again and it says hello anew.
	agentPid := filepath.Join(r.prefix, "run", "agent.pid")
	pid, ok := supervise.LivePid(agentPid)
	if !ok {
		t.Fatal("no live agent pid")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	boot = rec.Boot
	testutil.Eventually(t, 90*time.Second, func() error {
		p, ok := supervise.LivePid(agentPid)
		if !ok || p == pid {
			return fmt.Errorf("agent not restarted (pid file %d, live %v)", p, ok)
		}
		if rec := r.record(); rec.Boot == boot || (rec.State != mesh.StateHealthy && rec.State != mesh.StateDegraded) {
			return fmt.Errorf("coordinator has boot %s state %s", rec.Boot, rec.State)
		}
		return nil
	})

	// A container stop as the supervisor sees it: SIGTERM. It reaches the
	// agent, which announces the preemption and flushes (sync is on for
	// an ephemeral node), says bye and is not restarted.
	supPid, ok := supervise.LivePid(filepath.Join(r.prefix, "run", "supervise.pid"))
	if !ok {
		t.Fatal("no live supervisor")
	}
	if err := syscall.Kill(supPid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 90*time.Second, func() error {
		rec := r.record()
		if rec.Preempt == nil || rec.Preempt.Source != "signal:SIGTERM" || rec.State != mesh.StatePreempted {
			return fmt.Errorf("coordinator has %s, preempt %+v", rec.State, rec.Preempt)
		}
		if rec.LastSync == nil || rec.LastSync.Phase != "flush" {
			return fmt.Errorf("no flush result yet: %+v", rec.LastSync)
		}
		if _, ok := supervise.LivePid(filepath.Join(r.prefix, "run", "supervise.pid")); ok {
			return errors.New("supervisor still running")
		}
		return nil
	})
	// Enrolling again finds it current but stopped, and starts it.
	out, err = r.enroll(bins[1])
	if err != nil || !strings.Contains(out, r.node+": already current") || !strings.Contains(out, "was not running; started") {
		t.Fatalf("enroll of a stopped current agent: err %v, output:\n%s", err, out)
	}

	// Forget refuses a live node.
	if out, err := r.meshctl("forget", r.node); err == nil || !strings.Contains(err.Error(), "refusing to forget") {
		t.Fatalf("forget of a live node: err %v, output:\n%s", err, out)
	}

	// Revoke: the agent is stopped over SSH and its credential refused.
	supPid, ok = supervise.LivePid(filepath.Join(r.prefix, "run", "supervise.pid"))
	if !ok {
		t.Fatal("no live supervisor")
	}
	out, err = r.meshctl("revoke", r.node, "--prefix", r.prefix, "--known-hosts", r.known)
	if err != nil || !strings.Contains(out, "revoked "+r.node) || !strings.Contains(out, "stopped "+r.node+"'s agent over SSH (") {
		t.Fatalf("revoke: err %v, output:\n%s", err, out)
	}
	if err := syscall.Kill(supPid, 0); err == nil {
		t.Fatalf("supervisor %d still running after revoke", supPid)
	}
	opts, err := bus.ConnConfig{CredsFile: filepath.Join(r.prefix, "etc", "node.creds"), CAFile: filepath.Join(r.prefix, "etc", "ca.pem")}.Options()
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(r.url, append(opts, nats.Timeout(5*time.Second))...)
	if err == nil {
		nc.Close()
		t.Fatal("the bus accepted the revoked node credential")
	}
	if !strings.Contains(strings.ToLower(err.Error()), "authoriz") && !strings.Contains(strings.ToLower(err.Error()), "revoked") {
		t.Fatalf("revoked credential refused with an unexpected error: %v", err)
	}

	// Forget: the revoked node's record goes; it is in the inventory, so
	// it starts afresh (unknown, no boot), as after a restart.
	out, err = r.meshctl("forget", r.node)
	if err != nil || !strings.Contains(out, "forgot "+r.node) || !strings.Contains(out, "still in the inventory") {
		t.Fatalf("forget: err %v, output:\n%s", err, out)
	}
	if rec := r.record(); rec.State != mesh.StateUnknown || rec.Boot != "" || rec.AgentVersion != "" {
		t.Fatalf("forgotten node's record: state %s boot %q version %q", rec.State, rec.Boot, rec.AgentVersion)
	}

	// Enrolling the revoked node again replaces its credential.
	out, err = r.enroll(bins[1])
	if err != nil || !strings.Contains(out, r.node+": enrolled ("+testVersion2) || !strings.Contains(out, "credential was revoked") {
		t.Fatalf("re-enroll after revoke: err %v, output:\n%s", err, out)
	}
	if rec := r.record(); rec.State != mesh.StateHealthy && rec.State != mesh.StateDegraded {
		t.Fatalf("re-enrolled node is %s", rec.State)
	}
	if users, err = r.sb.Issuer.Users(); err != nil {
		t.Fatal(err)
	}
	live := 0
	for _, u := range users {
		if u.Name == r.node && u.RevokedAt.IsZero() {
			live++
		}
	}
	if live != 1 {
		t.Fatalf("%d unrevoked credentials of %s after re-enrolling, want 1", live, r.node)
	}
}
