package synctarget

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/ringmesh/ringmesh/internal/testutil"
	"github.com/ringmesh/ringmesh/pkg/auth"
	meshsync "github.com/ringmesh/ringmesh/pkg/sync"
	"github.com/ringmesh/ringmesh/pkg/sync/sshtest"
)

func TestRenderDropIn(t *testing.T) {
	l := Layout{}.WithDefaults()
	if err := l.Validate(); err != nil {
		t.Fatal(err)
	}
	got := RenderDropIn(l)
	for _, want := range []string{
		"Match User ringmesh-sync\n",
		"    ChrootDirectory /srv/ringmesh-sync\n",
		"    AllowTcpForwarding no\n",
		"    X11Forwarding no\n",
		"    PermitTTY no\n",
		"    AuthorizedKeysFile none\n",
		"    TrustedUserCAKeys /etc/ssh/ringmesh-sync/user_ca.pub\n",
		"    RevokedKeys /etc/ssh/ringmesh-sync/revoked.krl\n",
		"    PasswordAuthentication no\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("drop-in lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "ForceCommand") {
		t.Errorf("drop-in sets ForceCommand, which would override the certificate's force-command (the node):\n%s", got)
	}
	if !strings.HasSuffix(got, "Match all\n") {
		t.Errorf("drop-in must end the Match block with \"Match all\":\n%s", got)
	}
	if l.RemoteDir() != "/incoming" || l.IncomingDir() != "/srv/ringmesh-sync/incoming" {
		t.Errorf("remote dir %s, incoming %s", l.RemoteDir(), l.IncomingDir())
	}
}

func TestLayoutValidate(t *testing.T) {
	for _, l := range []Layout{
		{Account: "root"},
		{Account: "-oProxyCommand"},
		{Account: "a b"},
		{ChrootDir: "relative"},
		{ChrootDir: "/srv/../etc"},
		{ChrootDir: "/"},
		{ChrootDir: "/srv/x;rm"},
		{Incoming: "a/b"},
		{Incoming: ".."},
		{ConfDir: "/srv/ringmesh-sync/conf"}, // inside the chroot
	} {
		if err := l.WithDefaults().Validate(); err == nil {
			t.Errorf("%+v accepted", l)
		}
	}
}

// TestRenderedConfigPassesSSHD runs `sshd -t -f` on a configuration that
// includes the rendered drop-in (works as any user when sshd is installed).
func TestRenderedConfigPassesSSHD(t *testing.T) {
	sshd := sshtest.FindSSHD()
	if sshd == "" {
		t.Skip("sshd not installed; install openssh-server")
	}
	dir := t.TempDir()
	l := Layout{ConfDir: filepath.Join(dir, "conf"), DropIn: filepath.Join(dir, "d", "ringmesh-sync.conf")}.WithDefaults()
	ca, _ := sshtest.NewKeyPair()
	host, _ := sshtest.NewKeyPair()
	for p, b := range map[string][]byte{
		l.DropIn: []byte(RenderDropIn(l)), l.CAFile(): ca.AuthorizedKey, l.KRLFile(): nil,
		filepath.Join(dir, "hostkey"): host.PrivatePEM,
	} {
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(cfg, []byte("HostKey "+filepath.Join(dir, "hostkey")+"\nUsePAM no\nPidFile "+filepath.Join(dir, "pid")+
		"\nInclude "+filepath.Join(dir, "d", "*.conf")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sshd, "-t", "-f", cfg).CombinedOutput()
	if err != nil && os.Geteuid() != 0 && strings.Contains(string(out), "privilege separation") {
		t.Skipf("sshd -t needs its privilege separation directory, which only root can create: %s", out)
	}
	if err != nil {
		t.Fatalf("sshd -t refused the rendered drop-in: %v\n%s", err, out)
	}
	out, err = exec.Command(sshd, "-T", "-f", cfg, "-C", "user=ringmesh-sync,host=x,addr=127.0.0.1").CombinedOutput()
	if err != nil {
		t.Fatalf("sshd -T: %v\n%s", err, out)
	}
	for _, kv := range effective(l) {
		if !strings.Contains(string(out), "\n"+kv[0]+" "+kv[1]+"\n") {
			t.Errorf("sshd -T for ringmesh-sync lacks %q", kv[0]+" "+kv[1])
		}
	}
	// Other users are not affected.
	out, _ = exec.Command(sshd, "-T", "-f", cfg, "-C", "user=alice,host=x,addr=127.0.0.1").CombinedOutput()
	if strings.Contains(string(out), "chrootdirectory "+l.ChrootDir) {
		t.Error("the Match block leaks to other users")
	}
}

type env struct {
	o      *sshtest.OpenSSH
	l      Layout
	admin  Admin
	iss    *auth.Issuer
	caPub  ssh.PublicKey
	parent string
	// bin gives the agent binary setup installs as the SFTP server.
	bin func(context.Context, string) (string, error)
}

// rootEnv starts a root sshd whose configuration includes the drop-in
// directory, with a fresh account name; it skips when not root.
func rootEnv(t *testing.T) *env {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("ChrootDirectory works only when sshd runs as root, and setup creates an account: run as root (CI does) to test the chrooted sync target")
	}
	for _, c := range []string{"useradd", "userdel", "ssh-keygen"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Skipf("%s not installed: %v", c, err)
		}
	}
	var rnd [3]byte
	_, _ = rand.Read(rnd[:])
	acct := "rmsync" + hex.EncodeToString(rnd[:])
	// The chroot's every parent must be root-owned and not group/world
	// writable, so not under /tmp.
	parent, err := os.MkdirTemp("/var/lib", "ringmesh-synctarget-test-")
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
	if err := os.MkdirAll(filepath.Join(conf, "cron.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	l := Layout{Account: acct, ChrootDir: filepath.Join(parent, "chroot"), ConfDir: filepath.Join(parent, "ringmesh-sync"),
		PartialSweep: filepath.Join(conf, "cron.d", "ringmesh-sync-partials"),
		DropIn:       filepath.Join(conf, "sshd_config.d", "ringmesh-sync.conf"), SSHDConfig: o.ConfigPath, SSHD: sshtest.FindSSHD(),
		Reload: "kill -HUP " + strconv.Itoa(o.Pid())}.WithDefaults()
	iss, err := auth.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	caPub, err := iss.EnsureSSHCA()
	if err != nil {
		t.Fatal(err)
	}
	return &env{o: o, l: l, iss: iss, caPub: caPub, parent: parent, bin: testutil.AgentBinaryFor(t),
		admin: Admin{Node: "hetzner-cpu1", Host: o.Host, Port: o.Port, User: o.User, Signers: []ssh.Signer{o.ClientKey.Signer}}}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// agentCert is a node's own key with a certificate for the account.
func (e *env) agentCert(t *testing.T, node, principal string, now time.Time, validity time.Duration) ssh.Signer {
	t.Helper()
	k, err := sshtest.NewKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := e.iss.SignSyncCert(auth.SyncCertRequest{Node: node, Key: k.Signer.PublicKey(), Principal: principal, Now: now, Validity: validity})
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewCertSigner(cert, k.Signer)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (e *env) dialSync(signer ssh.Signer) (*ssh.Client, error) {
	return ssh.Dial("tcp", net.JoinHostPort(e.o.Host, strconv.Itoa(e.o.Port)), &ssh.ClientConfig{
		User: e.l.Account, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.FixedHostKey(e.o.HostKey.Signer.PublicKey()), Timeout: 10 * time.Second})
}

func TestSetupChrootedTarget(t *testing.T) {
	e := rootEnv(t)
	ctx := ctxT(t)

	// The host key must be confirmed; a wrong one is refused.
	_, key, err := DialAdmin(ctx, e.admin)
	var ue *UnconfirmedHostKeyError
	if !errors.As(err, &ue) || ssh.FingerprintSHA256(key) != e.o.Fingerprint() || !strings.Contains(err.Error(), e.o.Fingerprint()) {
		t.Fatalf("no fingerprint: %v (want the presented key shown)", err)
	}
	bad := e.admin
	bad.Fingerprint = "SHA256:" + strings.Repeat("A", 43)
	if _, _, err := DialAdmin(ctx, bad); !errors.Is(err, ErrHostKeyMismatch) {
		t.Fatalf("wrong fingerprint: %v", err)
	}
	e.admin.Fingerprint = e.o.Fingerprint()
	client, key, err := DialAdmin(ctx, e.admin)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	run := SSHRunner{Client: client}

	// A host holding a voter's secrets is refused unless AllowVoter.
	secret := filepath.Join(t.TempDir(), "coordinator.env")
	if err := os.WriteFile(secret, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	saved := VoterSecrets
	VoterSecrets = []string{secret}
	_, err = Setup(ctx, run, Options{Layout: e.l, CA: e.caPub, Binary: e.bin, DryRun: true})
	VoterSecrets = saved
	if err == nil || !strings.Contains(err.Error(), "--allow-voter") || !strings.Contains(err.Error(), secret) {
		t.Fatalf("host with voter secrets: %v", err)
	}

	dry, err := Setup(ctx, run, Options{Layout: e.l, CA: e.caPub, Binary: e.bin, DryRun: true})
	if err != nil {
		t.Fatalf("dry run: %v", err)
	}
	if !dry.Changed() || !strings.HasPrefix(dry.Changes[1].Action, "would ") {
		t.Fatalf("dry run %+v", dry)
	}
	if _, err := os.Stat(e.l.DropIn); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("dry run wrote the drop-in: %v", err)
	}

	rep, err := Setup(ctx, run, Options{Layout: e.l, CA: e.caPub, Binary: e.bin})
	if err != nil {
		t.Fatalf("setup: %v\n%s", err, e.o.Log())
	}
	if !rep.Changed() || rep.Changes[len(rep.Changes)-1].Action != "reloaded" {
		t.Fatalf("first setup %+v", rep)
	}
	again, err := Setup(ctx, run, Options{Layout: e.l, CA: e.caPub, Binary: e.bin})
	if err != nil {
		t.Fatal(err)
	}
	if again.Changed() {
		t.Fatalf("second setup changed something: %+v", again)
	}
	st, err := os.Stat(e.l.ChrootDir)
	if err != nil || st.Mode().Perm() != 0o755 {
		t.Fatalf("chroot %v %v", st, err)
	}

	// A node syncs into the chroot with its certificate, verifying the pin.
	pin := ssh.FingerprintSHA256(key)
	node := e.agentCert(t, "vast-1", e.l.Account, time.Now(), time.Hour)
	local := filepath.Join(t.TempDir(), "ckpt.pt")
	data := make([]byte, 9<<20+3) // over ExecHashMinSize: exec gets the SFTP server, read-back verifies
	_, _ = rand.Read(data)
	if err := os.WriteFile(local, data, 0o600); err != nil {
		t.Fatal(err)
	}
	target := meshsync.Target{NodeID: "hetzner-cpu1", Endpoint: meshsync.Endpoint{Host: e.o.Host, Port: e.o.Port, User: e.l.Account},
		Signer: node, HostKey: meshsync.HostKeyConfig{Fingerprint: pin}, RemoteDir: e.l.RemoteDir()}
	testutil.Eventually(t, time.Minute, func() error { // sshd re-executes itself on SIGHUP
		tr := meshsync.NewSFTPTransport(meshsync.SFTPOptions{})
		defer tr.Close()
		if _, err := tr.Push(ctx, meshsync.LocalFile{Path: local, RemoteName: "vast-1/checkpoint/ckpt.pt"}, target); err != nil {
			return fmt.Errorf("sync into the chroot: %w", err)
		}
		return nil
	})
	got, err := os.ReadFile(filepath.Join(e.l.IncomingDir(), "vast-1/checkpoint/ckpt.pt"))
	if err != nil || string(got) != string(data) {
		t.Fatalf("copy on the target: %d bytes, %v", len(got), err)
	}

	// The partial-sweep cron file is in place; its command removes day-old
	// partial uploads and nothing else (run here as cron would).
	cron, err := os.ReadFile(e.l.PartialSweep)
	if err != nil || string(cron) != RenderPartialSweep(e.l) {
		t.Fatalf("partial-sweep cron file: %v\n%s", err, cron)
	}
	old := time.Now().Add(-25 * time.Hour)
	inc := e.l.IncomingDir()
	files := map[string]time.Time{"vast-1/a.pt.partial": old, "vast-1/fresh.pt.partial": time.Now(), "vast-1/.rsync-partial/b": old,
		"vast-1/final.pt": old}
	for rel, mt := range files {
		p := filepath.Join(inc, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
	}
	var line string
	for _, l := range strings.Split(string(cron), "\n") {
		if strings.HasPrefix(l, "17 * * * * root ") {
			line = strings.TrimPrefix(l, "17 * * * * root ")
		}
	}
	if out, err := exec.Command("sh", "-c", line).CombinedOutput(); line == "" || err != nil {
		t.Fatalf("sweep command %q: %v\n%s", line, err, out)
	}
	for rel, wantGone := range map[string]bool{"vast-1/a.pt.partial": true, "vast-1/.rsync-partial/b": true, "vast-1/fresh.pt.partial": false, "vast-1/final.pt": false,
		"vast-1/checkpoint/ckpt.pt": false} {
		_, err := os.Stat(filepath.Join(inc, rel))
		if gone := errors.Is(err, os.ErrNotExist); gone != wantGone {
			t.Errorf("%s: gone %v after the sweep, want %v", rel, gone, wantGone)
		}
	}

	t.Run("nothing outside the chroot", func(t *testing.T) {
		c, err := e.dialSync(node)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		sc, err := sftp.NewClient(c)
		if err != nil {
			t.Fatal(err)
		}
		defer sc.Close()
		if wd, _ := sc.Getwd(); wd != "/" {
			t.Logf("sftp starts in %q", wd)
		}
		_ = sc.Symlink("/", "/incoming/root-link")
		_ = sc.Symlink("../../../../../..", "/incoming/up-link")
		_ = sc.Symlink(e.parent, "/incoming/host-link")
		for _, p := range []string{
			"/escape", "../escape", "../../../../escape", "/incoming/../escape", "/incoming/../../../escape",
			e.parent + "/escape", "/etc/passwd", "/incoming/root-link/escape", "/incoming/up-link/escape",
			"/incoming/up-link/" + strings.TrimPrefix(e.parent, "/") + "/escape", "/incoming/host-link/escape",
		} {
			f, err := sc.Create(p)
			if err == nil {
				_, _ = f.Write([]byte("x"))
				f.Close()
			}
			if err == nil && !strings.HasPrefix(p, "/incoming/") {
				t.Errorf("created %q", p)
			}
			_ = sc.Mkdir(p + "-dir")
		}
		for _, p := range []string{filepath.Join(e.parent, "escape"), filepath.Join(e.l.ChrootDir, "escape"), "/escape",
			filepath.Join(e.parent, "escape-dir"), filepath.Join(e.l.ChrootDir, "etc")} {
			if _, err := os.Lstat(p); err == nil {
				t.Errorf("%s was written outside the incoming directory", p)
			}
		}
		if b, _ := os.ReadFile("/etc/passwd"); strings.Contains(string(b), "x\n") && len(b) < 3 {
			t.Error("/etc/passwd overwritten")
		}
		// Inside the chroot, "/" holds only the incoming directory.
		ents, err := sc.ReadDir("/")
		if err != nil || len(ents) != 1 || ents[0].Name() != e.l.Incoming {
			t.Errorf("chroot root lists %v (%v), want only %s", ents, err, e.l.Incoming)
		}
	})

	t.Run("each node only its own directory", func(t *testing.T) {
		// vast-2 syncs into its own directory with the same transport.
		other := e.agentCert(t, "vast-2", e.l.Account, time.Now(), time.Hour)
		t2 := target
		t2.Signer = other
		tr := meshsync.NewSFTPTransport(meshsync.SFTPOptions{})
		defer tr.Close()
		if _, err := tr.Push(ctx, meshsync.LocalFile{Path: local, RemoteName: "vast-2/checkpoint/ckpt.pt"}, t2); err != nil {
			t.Fatalf("vast-2 syncs into its own directory: %v", err)
		}
		if _, err := tr.Push(ctx, meshsync.LocalFile{Path: local, RemoteName: "vast-1/checkpoint/other.pt"}, t2); err == nil {
			t.Fatal("vast-2 pushed a file into vast-1's directory")
		}
		c, err := e.dialSync(other)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		sc, err := sftp.NewClient(c)
		if err != nil {
			t.Fatal(err)
		}
		defer sc.Close()
		victim := "/incoming/vast-1/checkpoint/ckpt.pt"
		for _, p := range []string{victim, "/incoming/vast-2/../vast-1/checkpoint/ckpt.pt", "/incoming/./vast-1/checkpoint/ckpt.pt",
			"incoming/vast-1/checkpoint/ckpt.pt", "/incoming/vast-1"} {
			if _, err := sc.Stat(p); err == nil {
				t.Errorf("vast-2 stats %q", p)
			}
			if f, err := sc.Open(p); err == nil {
				f.Close()
				t.Errorf("vast-2 opens %q", p)
			}
			if f, err := sc.OpenFile(p, os.O_WRONLY|os.O_TRUNC); err == nil {
				f.Close()
				t.Errorf("vast-2 opens %q for writing", p)
			}
			if err := sc.Remove(p); err == nil {
				t.Errorf("vast-2 removes %q", p)
			}
		}
		if err := sc.Link(victim, "/incoming/vast-2/stolen"); err == nil {
			t.Error("vast-2 hard-links vast-1's copy")
		}
		if err := sc.PosixRename(victim, "/incoming/vast-2/moved"); err == nil {
			t.Error("vast-2 moves vast-1's copy")
		}
		if ents, err := sc.ReadDir("/incoming"); err != nil || len(ents) != 1 || ents[0].Name() != "vast-2" {
			t.Errorf("vast-2 lists /incoming as %v (%v), want only its own directory", ents, err)
		}
		got, err := os.ReadFile(filepath.Join(e.l.IncomingDir(), "vast-1/checkpoint/ckpt.pt"))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("vast-1's copy after vast-2's attempts: %d bytes, %v", len(got), err)
		}
		if got, err := os.ReadFile(filepath.Join(e.l.IncomingDir(), "vast-2/checkpoint/ckpt.pt")); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("vast-2's own copy: %d bytes, %v", len(got), err)
		}
	})

	t.Run("no shell, no pty, no forwarding", func(t *testing.T) {
		c, err := e.dialSync(node)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		out, _ := s.CombinedOutput("id; touch /incoming/shell-was-here")
		s.Close()
		if strings.Contains(string(out), "uid=") {
			t.Errorf("a shell command ran: %q", out)
		}
		if _, err := os.Stat(filepath.Join(e.l.IncomingDir(), "shell-was-here")); err == nil {
			t.Error("a shell command ran (file created)")
		}
		s, err = c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		if err := s.RequestPty("xterm", 24, 80, ssh.TerminalModes{}); err == nil {
			t.Error("pty granted")
		}
		s.Close()
		if conn, err := c.Dial("tcp", net.JoinHostPort(e.o.Host, strconv.Itoa(e.o.Port))); err == nil {
			conn.Close()
			t.Error("TCP forwarding granted")
		}
	})

	t.Run("refused credentials", func(t *testing.T) {
		other, err := auth.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := other.EnsureSSHCA(); err != nil {
			t.Fatal(err)
		}
		k, _ := sshtest.NewKeyPair()
		foreign, err := other.SignSyncCert(auth.SyncCertRequest{Node: "vast-1", Key: k.Signer.PublicKey(), Principal: e.l.Account})
		if err != nil {
			t.Fatal(err)
		}
		foreignSigner, _ := ssh.NewCertSigner(foreign, k.Signer)
		for name, s := range map[string]ssh.Signer{
			"wrong principal": e.agentCert(t, "vast-1", "someone-else", time.Now(), time.Hour),
			"expired":         e.agentCert(t, "vast-1", e.l.Account, time.Now().Add(-3*time.Hour), time.Hour),
			"plain key":       k.Signer,
			"other CA":        foreignSigner,
			"admin key":       e.o.ClientKey.Signer,
		} {
			if c, err := e.dialSync(s); err == nil {
				c.Close()
				t.Errorf("%s: login as %s accepted", name, e.l.Account)
			}
		}
	})

	t.Run("revoke", func(t *testing.T) {
		changed, err := RevokeNode(ctx, run, e.l, "vast-1")
		if err != nil || !changed {
			t.Fatalf("revoke: %v %v", changed, err)
		}
		if c, err := e.dialSync(node); err == nil {
			c.Close()
			t.Fatal("revoked node still logs in")
		}
		// A certificate for a new key of the revoked node ID is refused too;
		// another node is not affected.
		if c, err := e.dialSync(e.agentCert(t, "vast-1", e.l.Account, time.Now(), time.Hour)); err == nil {
			c.Close()
			t.Fatal("new certificate of a revoked key ID accepted")
		}
		c, err := e.dialSync(e.agentCert(t, "vast-2", e.l.Account, time.Now(), time.Hour))
		if err != nil {
			t.Fatalf("another node after a revocation: %v", err)
		}
		c.Close()
		if changed, err := RevokeNode(ctx, run, e.l, "vast-1"); err != nil || changed {
			t.Fatalf("second revoke: %v %v", changed, err)
		}
		rep, err := Setup(ctx, run, Options{Layout: e.l, CA: e.caPub, Binary: e.bin})
		if err != nil || rep.Changed() {
			t.Fatalf("setup after revoke: %+v %v", rep, err)
		}
		if b, _ := os.ReadFile(e.l.RevokedIDsFile()); string(b) != "id: vast-1\n" {
			t.Fatalf("revoked_ids %q", b)
		}
	})
}
