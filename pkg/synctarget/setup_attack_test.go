package synctarget

// Attacks on a set-up sync target through a real root sshd, as a hostile
// node holding its own valid certificate would try them (docs/security.md,
// "Sync targets"). Each asserts the claim: what it tries must fail.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/ringmesh/ringmesh/internal/testutil"
	"github.com/ringmesh/ringmesh/pkg/auth"
	"github.com/ringmesh/ringmesh/pkg/sync/sshtest"
)

// rootEnvWith is rootEnv with extra lines in sshd_config before the
// drop-in's Include.
func rootEnvWith(t *testing.T, extra string) *env {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (ChrootDirectory, useradd)")
	}
	for _, c := range []string{"useradd", "userdel", "ssh-keygen"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Skipf("%s not installed: %v", c, err)
		}
	}
	var rnd [3]byte
	_, _ = rand.Read(rnd[:])
	acct := "rmsync" + hex.EncodeToString(rnd[:])
	parent, err := os.MkdirTemp("/var/lib", "ringmesh-synctarget-attack-")
	if err != nil {
		t.Fatal(err)
	}
	// The sync account reads the principals file below it (as sshd does
	// for AuthorizedPrincipalsFile): searchable, as /etc/ssh is.
	if err := os.Chmod(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// The account's session processes outlive sshd for a moment
		// (userdel refuses while they run).
		_ = testutil.Poll(10*time.Second, 50*time.Millisecond, func() error { return exec.Command("userdel", acct).Run() })
		_ = os.RemoveAll(parent)
	})
	conf := t.TempDir()
	o := sshtest.StartOpenSSHWith(t, sshtest.OpenSSHOptions{AllowUsers: []string{acct}, Extra: extra + "Include " + filepath.Join(conf, "sshd_config.d", "*.conf") + "\n"})
	l := Layout{Account: acct, ChrootDir: filepath.Join(parent, "chroot"), ConfDir: filepath.Join(parent, "ringmesh-sync"), PartialSweep: "none",
		DropIn: filepath.Join(conf, "sshd_config.d", "ringmesh-sync.conf"), SSHDConfig: o.ConfigPath, SSHD: sshtest.FindSSHD(),
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

// attackTarget sets up a target and waits until node vast-1 logs in; it
// returns the env with vast-1's copy (victimData) in place.
func attackTarget(t *testing.T, extra string) *env {
	t.Helper()
	e := rootEnvWith(t, extra)
	ctx := ctxT(t)
	e.admin.Fingerprint = e.o.Fingerprint()
	client, _, err := DialAdmin(ctx, e.admin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	if _, err := Setup(ctx, SSHRunner{Client: client}, Options{Layout: e.l, CA: e.caPub, Binary: e.bin}); err != nil {
		t.Fatalf("setup: %v\n%s", err, e.o.Log())
	}
	v1 := e.agentCert(t, "vast-1", e.l.Account, time.Now(), time.Hour)
	testutil.Eventually(t, time.Minute, func() error { // sshd re-executes itself on SIGHUP
		c, err := e.dialSync(v1)
		if err != nil {
			return err
		}
		defer c.Close()
		sc, err := sftp.NewClient(c)
		if err != nil {
			return err
		}
		defer sc.Close()
		if err := sc.MkdirAll("/incoming/vast-1/games"); err != nil {
			return err
		}
		return sftpPut(sc, "/incoming/vast-1/games/a.db", []byte(victimData))
	})
	return e
}

const victimData = "VICTIM-SECRET vast-1 database, version 1"

func sftpPut(sc *sftp.Client, p string, b []byte) error {
	f, err := sc.Create(p)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// signRaw signs a certificate for key as the CA in the issuer store, with
// the given critical options (what SignSyncCert would not sign).
func (e *env) signRaw(t *testing.T, node string, critical map[string]string, principals ...string) ssh.Signer {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.iss.Dir(), "ssh-ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	ca, err := ssh.ParsePrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	k, err := sshtest.NewKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	cert := &ssh.Certificate{Key: k.Signer.PublicKey(), Serial: 7, CertType: ssh.UserCert, KeyId: node, ValidPrincipals: principals,
		ValidAfter: uint64(now.Add(-time.Minute).Unix()), ValidBefore: uint64(now.Add(time.Hour).Unix()),
		Permissions: ssh.Permissions{CriticalOptions: critical, Extensions: map[string]string{}}}
	if err := cert.SignCert(rand.Reader, ca); err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewCertSigner(cert, k.Signer)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (e *env) sftpAs(t *testing.T, s ssh.Signer) (*sftp.Client, error) {
	t.Helper()
	c, err := e.dialSync(s)
	if err != nil {
		return nil, err
	}
	sess, err := c.NewSession()
	if err != nil {
		c.Close()
		return nil, err
	}
	stderr := &lockedBuf{}
	sess.Stderr = stderr
	w, _ := sess.StdinPipe()
	r, _ := sess.StdoutPipe()
	if err := sess.RequestSubsystem("sftp"); err != nil {
		c.Close()
		return nil, err
	}
	sc, err := sftp.NewClientPipe(r, w)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("%w (server said %q)", err, strings.TrimSpace(stderr.String()))
	}
	t.Cleanup(func() { sc.Close(); c.Close() })
	return sc, nil
}

// result runs one session request with a deadline and returns its exit
// status (-1: none), stdout and stderr.
func sessionResult(t *testing.T, c *ssh.Client, start func(*ssh.Session) error, env map[string]string) (int, string, string, []string) {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var refusedEnv []string
	for k, v := range env {
		if err := s.Setenv(k, v); err != nil {
			refusedEnv = append(refusedEnv, k)
		}
	}
	stdout, stderr := &lockedBuf{}, &lockedBuf{}
	s.Stdout, s.Stderr = stdout, stderr
	s.Stdin = strings.NewReader("")
	if err := start(s); err != nil {
		return -2, "", err.Error(), refusedEnv
	}
	done := make(chan error, 1)
	go func() { done <- s.Wait() }()
	select {
	case err := <-done:
		var ee *ssh.ExitError
		switch {
		case err == nil:
			return 0, stdout.String(), stderr.String(), refusedEnv
		case errors.As(err, &ee):
			return ee.ExitStatus(), stdout.String(), stderr.String(), refusedEnv
		default:
			return -1, stdout.String(), stderr.String() + " (" + err.Error() + ")", refusedEnv
		}
	case <-time.After(10 * time.Second):
		return -3, stdout.String(), stderr.String() + " (still running after 10s)", refusedEnv
	}
}

// TestAttackSSHDRequests: with its own valid certificate, vast-2 sends
// every kind of session and global request sshd knows. Nothing but the
// SFTP server for /incoming/vast-2 may run, nothing may be forwarded, and
// no client environment may reach the shell.
func TestAttackSSHDRequests(t *testing.T) {
	e := attackTarget(t, "")
	v2 := e.agentCert(t, "vast-2", e.l.Account, time.Now(), time.Hour)
	c, err := e.dialSync(v2)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	envs := map[string]string{"SSH_ORIGINAL_COMMAND": "ringmesh-sync-sftp --node=vast-1", "LD_PRELOAD": "/incoming/vast-2/x.so",
		"GODEBUG": "x=1", "LANG": "C", "LC_ALL": "C", "PATH": "/incoming/vast-2", "HOME": "/incoming/vast-1"}
	for _, cmd := range []string{"id; touch /incoming/shell-was-here", "internal-sftp", "/usr/lib/openssh/sftp-server -d /incoming/vast-1",
		"ringmesh-sync-sftp --node=vast-1", "/ringmesh/ringmesh-sync-sftp -c 'ringmesh-sync-sftp --node=vast-1'", "cat /incoming/vast-1/games/a.db", ""} {
		code, out, errOut, refused := sessionResult(t, c, func(s *ssh.Session) error { return s.Start(cmd) }, envs)
		t.Logf("exec %q: exit %d, stdout %q, stderr %q, env refused %v", cmd, code, out, errOut, refused)
		if strings.Contains(out+errOut, "uid=") || strings.Contains(out+errOut, "VICTIM") {
			t.Errorf("ATTACK: exec %q ran: %q %q", cmd, out, errOut)
		}
		if len(refused) != len(envs) {
			t.Errorf("ATTACK?: sshd accepted client environment (refused only %v)", refused)
		}
	}
	code, out, errOut, _ := sessionResult(t, c, func(s *ssh.Session) error { return s.Shell() }, nil)
	t.Logf("shell: exit %d, stdout %q, stderr %q", code, out, errOut)
	if code == 0 {
		t.Error("shell request served something")
	}
	for _, sub := range []string{"internal-sftp", "ringmesh-sync-sftp", "sftp-server", "shell", "x"} {
		code, out, errOut, _ := sessionResult(t, c, func(s *ssh.Session) error { return s.RequestSubsystem(sub) }, nil)
		t.Logf("subsystem %q: exit %d, stdout %q, stderr %q", sub, code, out, errOut)
		if code != -2 {
			t.Errorf("subsystem %q accepted", sub)
		}
	}
	// The sftp subsystem (and an exec, which gets the same server) serves
	// only vast-2.
	for name, start := range map[string]func(*ssh.Session) error{
		"subsystem sftp": func(s *ssh.Session) error { return s.RequestSubsystem("sftp") },
		"exec id":        func(s *ssh.Session) error { return s.Start("id") },
		"shell":          func(s *ssh.Session) error { return s.Shell() },
	} {
		s, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		w, _ := s.StdinPipe()
		r, _ := s.StdoutPipe()
		if err := start(s); err != nil {
			t.Fatal(err)
		}
		sc, err := sftp.NewClientPipe(r, w)
		if err != nil {
			t.Logf("%s: no SFTP server (%v)", name, err)
			s.Close()
			continue
		}
		ents, err := sc.ReadDir("/incoming")
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Logf("%s: SFTP server, /incoming lists %v (%v)", name, names, err)
		if len(names) != 1 || names[0] != "vast-2" {
			t.Errorf("ATTACK: %s lists %v", name, names)
		}
		sc.Close()
		s.Close()
	}
	// PTY, X11, agent forwarding, TCP and stream-local forwarding, tunnels.
	s, _ := c.NewSession()
	if err := s.RequestPty("xterm", 24, 80, nil); err == nil {
		t.Error("pty granted")
	}
	x11 := ssh.Marshal(struct {
		Single        bool
		Proto, Cookie string
		Screen        uint32
	}{false, "MIT-MAGIC-COOKIE-1", "00", 0})
	if ok, _ := s.SendRequest("x11-req", true, x11); ok {
		t.Error("x11 granted")
	}
	if ok, _ := s.SendRequest("auth-agent-req@openssh.com", true, nil); ok {
		t.Error("agent forwarding granted")
	}
	s.Close()
	if conn, err := c.Dial("tcp", net.JoinHostPort(e.o.Host, strconv.Itoa(e.o.Port))); err == nil {
		conn.Close()
		t.Error("ATTACK: direct-tcpip granted")
	}
	if l, err := c.Listen("tcp", "127.0.0.1:0"); err == nil {
		l.Close()
		t.Error("ATTACK: tcpip-forward granted")
	}
	if conn, err := c.Dial("unix", "/run/systemd/private"); err == nil {
		conn.Close()
		t.Error("ATTACK: direct-streamlocal granted")
	}
	if l, err := c.ListenUnix(filepath.Join(e.l.IncomingDir(), "vast-2", "sock")); err == nil {
		l.Close()
		t.Error("ATTACK: streamlocal-forward granted")
	}
	if ch, _, err := c.OpenChannel("tun@openssh.com", ssh.Marshal(struct{ Mode, Unit uint32 }{1, 0x7fffffff})); err == nil {
		ch.Close()
		t.Error("ATTACK: tunnel granted")
	}
	if _, err := os.Stat(filepath.Join(e.l.IncomingDir(), "shell-was-here")); err == nil {
		t.Error("ATTACK: a shell command ran")
	}

	// Setstat on its own directory: chmod 0 is accepted (its own directory)
	// and locks the node out of its later sessions (the server runs as the
	// directory's owner).
	sc, err := e.sftpAs(t, v2)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/", "/incoming", "/incoming/vast-1"} {
		if err := sc.Chmod(p, 0); err == nil {
			t.Errorf("ATTACK: chmod %s accepted", p)
		}
	}
	if err := sc.Chmod("/incoming/vast-2", 0); err == nil {
		_, err := e.sftpAs(t, v2)
		t.Logf("NOTE: vast-2 chmods its own directory to 0: accepted; its next session: %v", err)
		_ = os.Chmod(filepath.Join(e.l.IncomingDir(), "vast-2"), 0o750)
	}
	if b, err := os.ReadFile(filepath.Join(e.l.IncomingDir(), "vast-1/games/a.db")); err != nil || string(b) != victimData {
		t.Fatalf("victim after the attacks: %q %v", b, err)
	}
}

// TestAttackAcceptEnv: on a target whose sshd accepts any client
// environment (AcceptEnv *, an operator's choice outside the drop-in), a
// node with its own certificate tries to set SSH_ORIGINAL_COMMAND,
// LD_PRELOAD and GODEBUG: the drop-in's AcceptEnv refuses them all for the
// sync account, and the node still comes from the certificate's
// force-command.
func TestAttackAcceptEnv(t *testing.T) {
	e := attackTarget(t, "AcceptEnv *\n")
	v2 := e.agentCert(t, "vast-2", e.l.Account, time.Now(), time.Hour)
	c, err := e.dialSync(v2)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, start := range []func(*ssh.Session) error{func(s *ssh.Session) error { return s.Shell() }, func(s *ssh.Session) error { return s.Start("x") }} {
		s, _ := c.NewSession()
		for k, v := range map[string]string{"SSH_ORIGINAL_COMMAND": "ringmesh-sync-sftp --node=vast-1", "LD_PRELOAD": "/incoming/vast-2/x.so", "GODEBUG": "gctrace=1", "GOTRACEBACK": "crash"} {
			if err := s.Setenv(k, v); err == nil {
				t.Errorf("sshd accepted the client variable %s for the sync account: the drop-in's AcceptEnv %s did not replace AcceptEnv *", k, NoClientEnv)
			}
		}
		w, _ := s.StdinPipe()
		r, _ := s.StdoutPipe()
		stderr := &lockedBuf{}
		s.Stderr = stderr
		if err := start(s); err != nil {
			t.Fatal(err)
		}
		sc, err := sftp.NewClientPipe(r, w)
		if err != nil {
			t.Logf("no SFTP server: %v (stderr %q)", err, stderr.String())
			s.Close()
			continue
		}
		ents, _ := sc.ReadDir("/incoming")
		if len(ents) != 1 || ents[0].Name() != "vast-2" {
			t.Errorf("ATTACK: with a client SSH_ORIGINAL_COMMAND the session lists %v", ents)
		}
		if _, err := sc.Stat("/incoming/vast-1/games/a.db"); err == nil {
			t.Error("ATTACK: vast-1's copy reachable")
		}
		sc.Close()
		s.Close()
		t.Logf("served vast-2 only; stderr %q", truncate(stderr.String(), 300))
	}
}

// lockedBuf is a bytes.Buffer safe to read while a session writes it.
type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// TestAttackCertWithoutForceCommand: the shell's proof that the node came
// from a CA-signed force-command is SSH_ORIGINAL_COMMAND being set, which a
// client could send itself where sshd accepts it (AcceptEnv *). The
// drop-in's AcceptEnv replaces that list for the account, so a
// certificate without force-command (none is signed by SignSyncCert), even
// with both principals, exec'ing "ringmesh-sync-sftp --node=vast-1" with a
// client SSH_ORIGINAL_COMMAND is refused, and its shell request too.
func TestAttackCertWithoutForceCommand(t *testing.T) {
	e := attackTarget(t, "AcceptEnv *\n")
	bare := e.signRaw(t, "vast-2", map[string]string{}, e.l.Account, auth.SyncNodePrincipal(e.l.Account))
	c, err := e.dialSync(bare)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	code, out, errOut, _ := sessionResult(t, c, func(s *ssh.Session) error { return s.Start("ringmesh-sync-sftp --node=vast-1") }, nil)
	if code == 0 || !strings.Contains(errOut, "no forced command") {
		t.Errorf("exec without client env: exit %d stdout %q stderr %q, want refused", code, out, errOut)
	}
	code, out, errOut, _ = sessionResult(t, c, func(s *ssh.Session) error { return s.Shell() }, nil)
	if code == 0 || !strings.Contains(errOut, "only serves SFTP") {
		t.Errorf("login shell: exit %d stdout %q stderr %q, want the SFTP-only refusal (not the agent)", code, truncate(out, 300), truncate(errOut, 600))
	}
	s, _ := c.NewSession()
	defer s.Close()
	if err := s.Setenv("SSH_ORIGINAL_COMMAND", "x"); err == nil {
		t.Error("sshd accepted SSH_ORIGINAL_COMMAND from the client")
	}
	w, _ := s.StdinPipe()
	r, _ := s.StdoutPipe()
	if err := s.Start("ringmesh-sync-sftp --node=vast-1"); err != nil {
		t.Fatal(err)
	}
	sc, err := sftp.NewClientPipe(r, w)
	if err != nil {
		return // refused
	}
	defer sc.Close()
	if f, err := sc.Open("/incoming/vast-1/games/a.db"); err == nil {
		b, _ := io.ReadAll(f)
		f.Close()
		t.Errorf("ATTACK: a certificate without force-command plus a client SSH_ORIGINAL_COMMAND reads vast-1's copy: %q", b)
	}
}

// TestAttackOldStyleCert: a certificate signed before the per-node server
// (principal = the account only, force-command=internal-sftp) would get
// OpenSSH's internal-sftp over all of /incoming. A set-up target accepts
// only certificates with auth.SyncNodePrincipal(account), so it is refused at once.
// What such a session may have left behind is made harmless: setup
// removes whatever at the top of incoming/ is not a directory (a symlink
// standing in for a future node's directory), and the server does not
// write a file that has a second name (a hard link planted in another
// node's directory to read that node's later in-place writes).
func TestAttackOldStyleCert(t *testing.T) {
	e := attackTarget(t, "")
	old := e.signRaw(t, "vast-2", map[string]string{"force-command": "internal-sftp"}, e.l.Account)
	if sc, err := e.sftpAs(t, old); err == nil {
		sc.Close()
		t.Fatal("ATTACK: an old-style certificate (the account as its only principal, force-command=internal-sftp) logs in")
	}

	// Leftovers of such a session, planted here directly (as the account
	// would have made them).
	inc := e.l.IncomingDir()
	if err := os.MkdirAll(filepath.Join(inc, "vast-2"), 0o750); err != nil {
		t.Fatal(err)
	}
	u, err := user.Lookup(e.l.Account)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(filepath.Join(inc, "vast-2"), uid, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(inc, "vast-1/games/a.db"), filepath.Join(inc, "vast-2/trap")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("vast-2", filepath.Join(inc, "vast-3")); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(filepath.Join(inc, "vast-3"), uid, gid); err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	e.admin.Fingerprint = e.o.Fingerprint()
	client, _, err := DialAdmin(ctx, e.admin)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	rep, err := Setup(ctx, SSHRunner{Client: client}, Options{Layout: e.l, CA: e.caPub, Binary: e.bin})
	if err != nil {
		t.Fatal(err)
	}
	removed := false
	for _, c := range rep.Changes {
		removed = removed || (strings.HasPrefix(c.Item, "incoming ") && strings.Contains(c.Detail, "vast-3"))
	}
	if !removed {
		t.Errorf("setup did not report removing the symlink incoming/vast-3: %+v", rep.Changes)
	}
	if _, err := os.Lstat(filepath.Join(inc, "vast-3")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("incoming/vast-3 after setup: %v, want removed", err)
	}

	// vast-1 updates its copy in place, as the transport's delta writes do:
	// refused while the file has a second name, so the transport sends a
	// whole copy into a new inode, which the trap does not see.
	v1, err := e.sftpAs(t, e.agentCert(t, "vast-1", e.l.Account, time.Now(), time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if f, err := v1.OpenFile("/incoming/vast-1/games/a.db", os.O_WRONLY); err == nil {
		_, werr := f.WriteAt([]byte("VICTIM-SECRET vast-1 database, version 2"), 0)
		f.Close()
		t.Errorf("vast-1 wrote in place into a file with a second name (write error %v)", werr)
	}
	if err := v1.Remove("/incoming/vast-1/games/a.db"); err != nil {
		t.Fatal(err)
	}
	if err := sftpPut(v1, "/incoming/vast-1/games/a.db", []byte("VICTIM-SECRET vast-1 database, version 2")); err != nil {
		t.Fatal(err)
	}
	v2, err := e.sftpAs(t, e.agentCert(t, "vast-2", e.l.Account, time.Now(), time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if f, err := v2.Open("/incoming/vast-2/trap"); err == nil {
		b, _ := io.ReadAll(f)
		f.Close()
		if strings.Contains(string(b), "version 2") {
			t.Errorf("ATTACK (persists): vast-2 reads vast-1's later write through the hard link: %q", b)
		}
	}
	if sc, err := e.sftpAs(t, e.agentCert(t, "vast-3", e.l.Account, time.Now(), time.Hour)); err != nil {
		t.Errorf("vast-3 cannot sync after setup removed the symlink: %v", err)
	} else {
		sc.Close()
	}
}

// TestAttackOddNodeIDs: the CA signs no certificate whose node could name
// another directory, and the shell parses no force-command but the exact
// form.
func TestAttackOddNodeIDs(t *testing.T) {
	iss, err := auth.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := iss.EnsureSSHCA(); err != nil {
		t.Fatal(err)
	}
	k, _ := sshtest.NewKeyPair()
	for _, n := range []string{"", ".", "..", "a/b", "../vast-1", "/", "vast-1/", "vast 1", "vast-1\x00", "vast-1\n", "vast\\1", "vast.1",
		"vast-1 --node=vast-2", "--node=vast-1", strings.Repeat("a", 65), "vast\u20101", "ⅴast-1", "*", "vast-1;id"} {
		if _, err := iss.SignSyncCert(auth.SyncCertRequest{Node: n, Key: k.Signer.PublicKey(), Principal: "ringmesh-sync"}); err == nil {
			t.Errorf("ATTACK: CA signs a certificate for node %q", n)
		}
	}
	// IDs that are valid but odd: signed, and each names exactly one
	// directory under incoming, revocable by the KRL.
	for _, n := range []string{"-", "--", "-rf", "_", strings.Repeat("a", 64), "incoming", "ringmesh"} {
		if _, err := iss.SignSyncCert(auth.SyncCertRequest{Node: n, Key: k.Signer.PublicKey(), Principal: "ringmesh-sync"}); err != nil {
			t.Errorf("node %q: %v", n, err)
		}
		if !validNode(n) {
			t.Errorf("node %q is signed but cannot be revoked (RevokeNode refuses it)", n)
		}
	}
	for _, cmd := range []string{"ringmesh-sync-sftp --node=vast-1 ; id", "ringmesh-sync-sftp --node=vast-1\n", "ringmesh-sync-sftp --node=vast-1 --node=vast-2",
		" ringmesh-sync-sftp --node=vast-1", "ringmesh-sync-sftp  --node=vast-1", "ringmesh-sync-sftp --node=", "ringmesh-sync-sftp --node=..",
		"ringmesh-sync-sftp --node=vast-1/../vast-2", "ringmesh-sync-sftp --node=vast-1\x00", "/ringmesh/ringmesh-sync-sftp --node=vast-1", "internal-sftp"} {
		if n, err := auth.ParseSyncForceCommand(cmd); err == nil {
			t.Errorf("ATTACK: force-command %q parsed as node %q", cmd, n)
		}
	}
	_ = context.Background
}
