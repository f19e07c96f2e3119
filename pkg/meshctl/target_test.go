package meshctl

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ringmesh/ringmesh/internal/testutil"
	"github.com/ringmesh/ringmesh/pkg/auth"
	"github.com/ringmesh/ringmesh/pkg/sync/sshtest"
	"github.com/ringmesh/ringmesh/pkg/synctarget"
)

func runMeshctl(args ...string) (string, error) {
	var out, errOut bytes.Buffer
	root := NewRoot(&out, &errOut)
	root.SetArgs(args)
	err := root.Execute()
	return out.String() + errOut.String(), err
}

// meshctl target setup: voters and ephemeral hosts are refused, an
// unconfirmed host key is shown and refused; as root, a full setup against a
// real sshd, then "unchanged", the record with the pinned key, and revoke.
func TestTargetSetupCommand(t *testing.T) {
	o := sshtest.StartOpenSSH(t)
	store := t.TempDir()
	if _, err := auth.Open(store); err != nil {
		t.Fatal(err)
	}
	inv := filepath.Join(t.TempDir(), "hosts.yaml")
	ep := fmt.Sprintf("ssh_host: 127.0.0.1, ssh_port: %d, ssh_user: %s, ssh_key: %s", o.Port, o.User, o.ClientKeyPath)
	if err := os.WriteFile(inv, []byte("p2p_voters: [hetzner-cpu1]\nhosts:\n  hetzner-cpu1: {provider: hetzner, "+ep+"}\n  hetzner-store: {provider: hetzner, "+ep+
		"}\n  vast-1: {provider: vast, "+ep+"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"target", "--store", store, "setup", "--inventory", inv}
	if out, err := runMeshctl(append(base, "hetzner-cpu1")...); err == nil || !strings.Contains(err.Error(), "--allow-voter") {
		t.Fatalf("voter: %v %s", err, out)
	}
	if _, err := runMeshctl(append(base, "vast-1")...); err == nil || !strings.Contains(err.Error(), "ephemeral") {
		t.Fatalf("ephemeral host: %v", err)
	}
	if _, err := runMeshctl(append(base, "nope")...); err == nil || !strings.Contains(err.Error(), "not a host") {
		t.Fatalf("unknown host: %v", err)
	}
	_, err := runMeshctl(append(base, "hetzner-store")...)
	if err == nil || !strings.Contains(err.Error(), "--fingerprint "+o.Fingerprint()) {
		t.Fatalf("unconfirmed host key: %v", err)
	}
	if _, err := os.Stat(filepath.Join(store, "ssh-ca.key")); err == nil {
		t.Fatal("the SSH CA was created although nothing was set up")
	}

	if os.Geteuid() != 0 {
		t.Skip("the rest sets up a chrooted account on a root sshd: run as root (CI does)")
	}
	var rnd [3]byte
	_, _ = rand.Read(rnd[:])
	acct := "rmsync" + hex.EncodeToString(rnd[:])
	parent, err := os.MkdirTemp("/var/lib", "ringmesh-meshctl-target-")
	if err != nil {
		t.Fatal(err)
	}
	// The sync account reads the principals file below it (as sshd does
	// for AuthorizedPrincipalsFile): searchable, as /etc/ssh is.
	if err := os.Chmod(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = exec.Command("userdel", acct).Run()
		_ = os.RemoveAll(parent)
	})
	conf := t.TempDir()
	r := sshtest.StartOpenSSHWith(t, sshtest.OpenSSHOptions{AllowUsers: []string{acct}, Extra: "Include " + filepath.Join(conf, "d", "*.conf") + "\n"})
	flags := []string{"--host", r.Host, "--port", strconv.Itoa(r.Port), "--user", r.User, "--identity", r.ClientKeyPath, "--fingerprint", r.Fingerprint(),
		"--account", acct, "--chroot", filepath.Join(parent, "chroot"), "--conf-dir", filepath.Join(parent, "ringmesh-sync"),
		"--drop-in", filepath.Join(conf, "d", "ringmesh-sync.conf"), "--partial-sweep", "none", "--agent-binary", testutil.AgentBinary(t), "--sshd-config", r.ConfigPath, "--reload-command", "kill -HUP " + strconv.Itoa(r.Pid()), "hetzner-store"}
	out, err := runMeshctl(append(append(base, "--dry-run"), flags...)...)
	if err != nil || !strings.Contains(out, "would create  account "+acct) || !strings.Contains(out, "ChrootDirectory ") ||
		!strings.Contains(out, "/ringmesh/ringmesh-sync-sftp") || strings.Contains(out, "ForceCommand") {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	out, err = runMeshctl(append(base, flags...)...)
	if err != nil || !strings.Contains(out, "hetzner-store: set up") || !strings.Contains(out, "reloaded") {
		t.Fatalf("setup: %v\n%s", err, out)
	}
	// sshd re-executes itself on SIGHUP: poll until it listens again.
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		out, err = runMeshctl(append(base, flags...)...)
		if err == nil || !strings.Contains(err.Error(), "connection refused") || time.Now().After(deadline) {
			break
		}
	}
	if err != nil || !strings.Contains(out, "hetzner-store: unchanged") {
		t.Fatalf("second setup: %v\n%s", err, out)
	}
	recs, err := synctarget.LoadRecords(store)
	if err != nil || recs["hetzner-store"].Fingerprint != r.Fingerprint() || recs["hetzner-store"].RemoteDir != "/incoming" || recs["hetzner-store"].Account != acct {
		t.Fatalf("record %+v %v", recs, err)
	}
	out, err = runMeshctl("target", "--store", store, "revoke", "vast-1")
	if err != nil || !strings.Contains(out, "hetzner-store now refuses vast-1") {
		t.Fatalf("revoke: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(filepath.Join(parent, "ringmesh-sync", "revoked_ids")); string(b) != "id: vast-1\n" {
		t.Fatalf("revoked_ids %q", b)
	}
}
