package meshctl_test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ringmesh/ringmesh/internal/testutil"
	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/supervise"
	"github.com/ringmesh/ringmesh/pkg/sync/sshtest"
)

// TestEnrollOwnAccountOverRealSSH enrolls a "node" that is a local account
// of its own (its own home, not root, no sudo) over a real sshd, as a user
// renting a box with a non-root login would: the agent goes into ~/ringmesh
// (--prefix ~/ringmesh), its files belong to the account with mode 0600,
// the agent runs as the account under the supervisor and reports healthy
// under the node's own identity; enrolling again changes nothing; revoke
// stops it over SSH.
func TestEnrollOwnAccountOverRealSSH(t *testing.T) {
	if sshtest.FindSSHD() == "" {
		t.Skipf("sshd not installed (looked for %s and sshd on PATH); install openssh-server to run this test", sshtest.SSHDPath)
	}
	if os.Geteuid() != 0 {
		t.Skip("creating the node's account needs root (CI runs as root)")
	}
	for _, c := range []string{"useradd", "userdel", "pkill"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Skipf("%s not installed: %v", c, err)
		}
	}
	bins := agentBinaries(t)
	var rnd [3]byte
	_, _ = rand.Read(rnd[:])
	acct := "rmnode" + hex.EncodeToString(rnd[:])
	// -p '*': no password, but not locked (sshd without PAM refuses a
	// locked account even for keys).
	if out, err := exec.Command("useradd", "--create-home", "--shell", "/bin/sh", "-p", "*", acct).CombinedOutput(); err != nil {
		t.Fatalf("useradd: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		_ = exec.Command("pkill", "-KILL", "-u", acct).Run()
		testutil.EventuallyTrue(t, 30*time.Second, "the account's processes gone", func() bool {
			return exec.Command("pgrep", "-u", acct).Run() != nil
		})
		if out, err := exec.Command("userdel", "--remove", acct).CombinedOutput(); err != nil {
			t.Logf("userdel %s: %v\n%s", acct, err, out)
		}
	})
	u, err := user.Lookup(acct)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	// The test sshd reads one authorized_keys for the test user; the
	// account gets the same client key in its own ~/.ssh.
	sshd := sshtest.StartOpenSSHWith(t, sshtest.OpenSSHOptions{AllowUsers: []string{acct},
		Extra: "Match User " + acct + "\n    AuthorizedKeysFile .ssh/authorized_keys\nMatch all\n"})
	dotSSH := filepath.Join(u.HomeDir, ".ssh")
	if err := os.MkdirAll(dotSSH, 0o700); err != nil {
		t.Fatal(err)
	}
	ak := filepath.Join(dotSSH, "authorized_keys")
	if err := os.WriteFile(ak, sshd.ClientKey.AuthorizedKey, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dotSSH, ak} {
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	r := startEnrollRigAs(t, sshd, acct, filepath.Join(u.HomeDir, "ringmesh"), "~/ringmesh")

	out, err := r.enroll(bins[0], "--accept-host-key", sshd.Fingerprint(), "--mode", "supervisor")
	if err != nil || !strings.Contains(out, r.node+": enrolled ("+testVersion1) {
		t.Fatalf("enroll as %s: err %v, output:\n%s\nsshd log:\n%s", acct, err, out, sshd.Log())
	}
	rec := r.record()
	if rec.AgentVersion != testVersion1 || (rec.State != mesh.StateHealthy && rec.State != mesh.StateDegraded) {
		t.Fatalf("after enroll the coordinator has %s %s %q", rec.Node, rec.State, rec.AgentVersion)
	}
	for _, f := range []string{"etc/node.creds", "etc/ca.pem", "etc/agent.conf", "bin/ringmesh-agent"} {
		fi, err := os.Stat(filepath.Join(r.prefix, f))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if int(st.Uid) != uid {
			t.Errorf("%s is owned by uid %d, want the account's %d", f, st.Uid, uid)
		}
		if strings.HasPrefix(f, "etc/") && fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	pid, ok := supervise.LivePid(filepath.Join(r.prefix, "run", "agent.pid"))
	if !ok {
		t.Fatal("no live agent pid")
	}
	if got := procUID(t, pid); got != uid {
		t.Fatalf("the agent (pid %d) runs as uid %d, want the account's %d", pid, got, uid)
	}

	out, err = r.enroll(bins[0], "--mode", "supervisor")
	if err != nil || !strings.Contains(out, r.node+": already current") {
		t.Fatalf("second enroll: err %v, output:\n%s", err, out)
	}

	supPid, ok := supervise.LivePid(filepath.Join(r.prefix, "run", "supervise.pid"))
	if !ok {
		t.Fatal("no live supervisor")
	}
	out, err = r.meshctl("revoke", r.node, "--prefix", r.flagPrefix, "--known-hosts", r.known)
	if err != nil || !strings.Contains(out, "revoked "+r.node) || !strings.Contains(out, "stopped "+r.node+"'s agent over SSH (") {
		t.Fatalf("revoke: err %v, output:\n%s", err, out)
	}
	testutil.EventuallyTrue(t, 30*time.Second, "supervisor gone after revoke", func() bool { return syscall.Kill(supPid, 0) != nil })
}

// procUID is the real uid of process pid (/proc/<pid>/status).
func procUID(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, ln := range strings.Split(string(b), "\n") {
		if f := strings.Fields(ln); len(f) >= 2 && f[0] == "Uid:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	t.Fatalf("no Uid line in /proc/%d/status", pid)
	return -1
}
