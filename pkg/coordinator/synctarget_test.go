package coordinator_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/ringmesh/ringmesh/internal/testutil"
	"github.com/ringmesh/ringmesh/pkg/agent"
	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/auth"
	"github.com/ringmesh/ringmesh/pkg/config"
	"github.com/ringmesh/ringmesh/pkg/coordinator"
	"github.com/ringmesh/ringmesh/pkg/detect"
	"github.com/ringmesh/ringmesh/pkg/paths"
	"github.com/ringmesh/ringmesh/pkg/sync/sshtest"
	"github.com/ringmesh/ringmesh/pkg/synctarget"
)

// A target set up with synctarget (meshctl target setup) on a real, root
// sshd: the coordinator sends the source agent the sync account, /incoming
// and the host key pinned at setup, with a certificate for the agent's own
// key; the agent's data lands in the chroot, owned by the sync account. The
// agent has no shared key at all.
func TestSyncIntoSetUpTarget(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("ChrootDirectory works only when sshd runs as root, and setup creates an account: run as root (CI does)")
	}
	for _, c := range []string{"useradd", "userdel", "ssh-keygen"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Skipf("%s not installed: %v", c, err)
		}
	}
	var rnd [3]byte
	_, _ = rand.Read(rnd[:])
	acct := "rmsync" + hex.EncodeToString(rnd[:])
	parent, err := os.MkdirTemp("/var/lib", "ringmesh-coord-synctarget-")
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
	o := sshtest.StartOpenSSHWith(t, sshtest.OpenSSHOptions{AllowUsers: []string{acct}, Extra: "Include " + filepath.Join(conf, "sshd_config.d", "*.conf") + "\n"})
	l := synctarget.Layout{Account: acct, ChrootDir: filepath.Join(parent, "chroot"), ConfDir: filepath.Join(parent, "ringmesh-sync"), PartialSweep: "none",
		DropIn: filepath.Join(conf, "sshd_config.d", "ringmesh-sync.conf"), SSHDConfig: o.ConfigPath, SSHD: sshtest.FindSSHD(),
		Reload: "kill -HUP " + strconv.Itoa(o.Pid())}.WithDefaults()

	inv, err := config.Parse("sync.yaml", []byte(fmt.Sprintf("sync_routing: {max_disk_usage_percent: 100, min_free_disk_percent: 0.01, replication_target: 1}\n"+
		"hosts:\n  hetzner-cpu2: {provider: hetzner, ssh_host: 127.0.0.1, ssh_port: %d, ssh_user: %s}\n  vast-77: {provider: vast, is_ephemeral: true}\n", o.Port, o.User)))
	if err != nil {
		t.Fatal(err)
	}
	h := startCoordinator(t, coordinator.Config{Inventory: inv})
	iss := testutil.Lookup(h.url).Issuer
	ca, err := iss.EnsureSSHCA()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	client, hostKey, err := synctarget.DialAdmin(ctx, synctarget.Admin{Node: "hetzner-cpu2", Host: o.Host, Port: o.Port, User: o.User,
		Signers: []ssh.Signer{o.ClientKey.Signer}, Fingerprint: o.Fingerprint()})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if _, err := synctarget.Setup(ctx, synctarget.SSHRunner{Client: client}, synctarget.Options{Layout: l, CA: ca, Binary: testutil.AgentBinaryFor(t)}); err != nil {
		t.Fatalf("setup: %v\n%s", err, o.Log())
	}
	if err := synctarget.SaveRecord(iss.Dir(), synctarget.Record{Node: "hetzner-cpu2", Addr: "127.0.0.1:" + strconv.Itoa(o.Port), AdminUser: o.User,
		Account: l.Account, RemoteDir: l.RemoteDir(), ChrootDir: l.ChrootDir, ConfDir: l.ConfDir,
		HostKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(hostKey))), Fingerprint: ssh.FingerprintSHA256(hostKey),
		CAFingerprint: ssh.FingerprintSHA256(ca), SetupAt: time.Now()}); err != nil {
		t.Fatal(err)
	}

	pub := filepath.Join(t.TempDir(), "ssh_host_ed25519_key.pub")
	if err := os.WriteFile(pub, o.HostKey.AuthorizedKey, 0o644); err != nil {
		t.Fatal(err)
	}
	dead := closedURL(t)
	det := detect.Options{Env: func(string) string { return "" }, HetznerURL: dead, VultrURL: dead, NebiusURL: dead, Timeout: 100 * time.Millisecond}
	tgt, err := agent.New(secureAgent(t, agent.Config{NodeID: "hetzner-cpu2", Provider: "hetzner", InstanceID: "41000002", NATSURLs: []string{h.url}, StateDir: t.TempDir(),
		HeartbeatInterval: 200 * time.Millisecond, Detect: det, Paths: paths.Resolver{Root: t.TempDir(), Home: "/root"}, HostKeyPaths: []string{pub},
		Host: inv.Hosts["hetzner-cpu2"]}), testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, tgt, nil)
	srcRoot := t.TempDir()
	src, err := agent.New(secureAgent(t, agent.Config{NodeID: "vast-77", Provider: "vast", InstanceID: "77", NATSURLs: []string{h.url}, StateDir: t.TempDir(),
		HeartbeatInterval: 200 * time.Millisecond, Detect: det, Paths: paths.Resolver{Root: srcRoot, Home: "/root"}, ByeTimeout: 2 * time.Second,
		Sync: &agent.SyncConfig{Interval: 300 * time.Millisecond, ReplicationTarget: 1, Notice: 4 * time.Second}}), testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, src, nil)
	writeFile(t, filepath.Join(srcRoot, "root/ringrift/ai-service/checkpoints/ckpt-1.pt"), 300<<10)

	remote := filepath.Join(l.IncomingDir(), "vast-77/checkpoints/ckpt-1.pt")
	testutil.Eventually(t, 60*time.Second, func() error {
		fi, err := os.Stat(remote)
		if err != nil {
			rec, _ := h.coord.Registry().Get("vast-77")
			return fmt.Errorf("%v (sync key reported: %t)", err, rec.SyncKey != "")
		}
		if fi.Size() != 300<<10 {
			return fmt.Errorf("size %d", fi.Size())
		}
		return nil
	})
	waitRPOZero(t, h, "vast-77", 30*time.Second)
	fi, _ := os.Stat(remote)
	u, err := user.Lookup(acct)
	if err != nil {
		t.Fatal(err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok || strconv.Itoa(int(st.Uid)) != u.Uid {
		t.Fatalf("copy owned by uid %v, want the sync account %s (%s)", fi.Sys(), acct, u.Uid)
	}
	if !strings.Contains(o.Log(), "ID vast-77 (serial") {
		t.Errorf("sshd did not log a certificate with key ID vast-77:\n%s", o.Log())
	}

	// Revoking vast-77 takes its sync credential back on the target at
	// once: the coordinator sends the target's agent (root here) a
	// sync_revoke, which puts vast-77 in the target's KRL; a certificate
	// signed just before the revocation is refused by sshd from then on.
	k, err := sshtest.NewKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := iss.SignSyncCert(auth.SyncCertRequest{Node: "vast-77", Key: k.Signer.PublicKey(), Principal: acct})
	if err != nil {
		t.Fatal(err)
	}
	certSigner, err := ssh.NewCertSigner(cert, k.Signer)
	if err != nil {
		t.Fatal(err)
	}
	login := func() error {
		c, err := ssh.Dial("tcp", net.JoinHostPort(o.Host, strconv.Itoa(o.Port)), &ssh.ClientConfig{User: acct,
			Auth: []ssh.AuthMethod{ssh.PublicKeys(certSigner)}, HostKeyCallback: ssh.FixedHostKey(o.HostKey.Signer.PublicKey()), Timeout: 10 * time.Second})
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := login(); err != nil {
		t.Fatalf("vast-77's certificate before the revocation: %v", err)
	}
	nc, err := testutil.Lookup(h.url).Connect(t, []string{h.url}, auth.RoleAdmin, "test-admin")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx2, cancel2 := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel2()
	if err := testutil.Lookup(h.url).Client(t, nc).Call(ctx2, api.OpRevoke, api.RevokeRequest{Name: "vast-77"}, nil); err != nil {
		t.Fatalf("revoke vast-77: %v", err)
	}
	testutil.Eventually(t, 60*time.Second, func() error {
		b, _ := os.ReadFile(l.RevokedIDsFile())
		if !strings.Contains(string(b), "id: vast-77\n") {
			return fmt.Errorf("revoked_ids on the target: %q", b)
		}
		return nil
	})
	if err := login(); err == nil {
		t.Fatal("the target still accepts vast-77's certificate after the revocation")
	}
}
