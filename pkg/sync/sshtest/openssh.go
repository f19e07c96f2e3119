package sshtest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// SSHDPath is where StartOpenSSH looks for the OpenSSH server first; PATH is
// searched next.
const SSHDPath = "/usr/sbin/sshd"

// OpenSSH is a real sshd started by StartOpenSSH.
type OpenSSH struct {
	// Host and Port are the listening address (127.0.0.1 and a free port).
	Host string
	Port int
	// User is the login name (the user running the test).
	User string
	// Dir is an empty temporary directory (an absolute local path, which is
	// also the remote path since sshd serves the real file system).
	Dir string
	// HostKey is the server's ed25519 host key.
	HostKey KeyPair
	// ClientKey is authorised for User.
	ClientKey KeyPair
	// ClientKeyPath is ClientKey written to a file (mode 0600).
	ClientKeyPath string
	// KnownHostsPath is a known_hosts file holding HostKey for [Host]:Port.
	KnownHostsPath string

	// ConfigPath is the sshd_config it runs with (for sshd -t -f).
	ConfigPath string

	cmd    *exec.Cmd
	stderr *lockedBuffer
}

// OpenSSHOptions adds to the configuration StartOpenSSHWith writes.
type OpenSSHOptions struct {
	// AllowUsers are logins allowed besides the user running the test.
	AllowUsers []string
	// Extra is appended at the end of sshd_config (e.g. an Include of a
	// drop-in directory holding Match blocks).
	Extra string
}

// Pid is the sshd process ID (SIGHUP makes it re-read its configuration).
func (o *OpenSSH) Pid() int { return o.cmd.Process.Pid }

// FindSSHD returns the path of the sshd binary, or "" when none is installed.
func FindSSHD() string {
	if fi, err := os.Stat(SSHDPath); err == nil && !fi.IsDir() {
		return SSHDPath
	}
	if p, err := exec.LookPath("sshd"); err == nil {
		if abs, err := filepath.Abs(p); err == nil {
			return abs
		}
	}
	return ""
}

// StartOpenSSH starts the system sshd as a child process on 127.0.0.1 with a
// temporary configuration (own host key, authorized_keys, PidFile, no PAM,
// internal-sftp) and stops it at test cleanup. It skips the test when sshd is
// not installed. When running as root it creates the privilege separation
// directory /run/sshd if it is missing (sshd refuses to start without it).
func StartOpenSSH(tb testing.TB) *OpenSSH {
	tb.Helper()
	return StartOpenSSHWith(tb, OpenSSHOptions{})
}

// StartOpenSSHWith is StartOpenSSH with additions to the configuration.
func StartOpenSSHWith(tb testing.TB, opts OpenSSHOptions) *OpenSSH {
	tb.Helper()
	sshd := FindSSHD()
	if sshd == "" {
		tb.Skipf("sshd not installed (looked for %s and sshd on PATH); install openssh-server to run this test", SSHDPath)
	}
	if os.Geteuid() == 0 {
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			tb.Fatalf("sshtest: create sshd privilege separation dir /run/sshd: %v", err)
		}
	}
	u, err := user.Current()
	if err != nil {
		tb.Fatalf("sshtest: current user: %v", err)
	}
	hostKey, err := NewKeyPair()
	if err != nil {
		tb.Fatal(err)
	}
	clientKey, err := NewKeyPair()
	if err != nil {
		tb.Fatal(err)
	}
	conf := tb.TempDir()
	o := &OpenSSH{
		Host:          "127.0.0.1",
		User:          u.Username,
		Dir:           tb.TempDir(),
		HostKey:       hostKey,
		ClientKey:     clientKey,
		ClientKeyPath: filepath.Join(conf, "id_ed25519"),
	}
	hostKeyPath := filepath.Join(conf, "ssh_host_ed25519_key")
	authKeys := filepath.Join(conf, "authorized_keys")
	for _, w := range []struct {
		path string
		data []byte
	}{
		{hostKeyPath, hostKey.PrivatePEM},
		{o.ClientKeyPath, clientKey.PrivatePEM},
		{authKeys, clientKey.AuthorizedKey},
	} {
		if err := os.WriteFile(w.path, w.data, 0o600); err != nil {
			tb.Fatal(err)
		}
	}

	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			tb.Fatal(err)
		}
		cfgPath := filepath.Join(conf, "sshd_config")
		cfg := fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s
AuthorizedKeysFile %s
PidFile %s
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
AllowUsers %s
Subsystem sftp internal-sftp
LogLevel VERBOSE
%s`, port, hostKeyPath, authKeys, filepath.Join(conf, "sshd.pid"), strings.Join(append([]string{o.User}, opts.AllowUsers...), " "), opts.Extra)
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
			tb.Fatal(err)
		}
		stderr := &lockedBuffer{}
		cmd := exec.Command(sshd, "-f", cfgPath, "-D", "-e")
		cmd.Stdout = stderr
		cmd.Stderr = stderr
		// Its own process group, so that the per-connection sshd processes
		// (which hold the output pipe) are killed with it; and Wait returns
		// even if one of them escaped.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.WaitDelay = 5 * time.Second
		if err := cmd.Start(); err != nil {
			tb.Fatalf("sshtest: start %s: %v", sshd, err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		if err := waitListening(net.JoinHostPort(o.Host, strconv.Itoa(port)), done, 10*time.Second); err != nil {
			_ = cmd.Process.Kill()
			<-done
			lastErr = fmt.Errorf("%v; sshd output:\n%s", err, stderr.String())
			continue
		}
		o.Port, o.cmd, o.stderr, o.ConfigPath = port, cmd, stderr, cfgPath
		tb.Cleanup(func() {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			_ = cmd.Process.Kill()
			<-done
			if tb.Failed() {
				tb.Logf("sshd output:\n%s", stderr.String())
			}
		})
		o.KnownHostsPath = filepath.Join(conf, "known_hosts")
		if err := WriteKnownHosts(o.KnownHostsPath, o.Host, o.Port, hostKey.Signer.PublicKey()); err != nil {
			tb.Fatal(err)
		}
		return o
	}
	tb.Fatalf("sshtest: sshd did not come up: %v", lastErr)
	return nil
}

// Fingerprint is the host key's SHA-256 fingerprint ("SHA256:base64...").
func (o *OpenSSH) Fingerprint() string { return ssh.FingerprintSHA256(o.HostKey.Signer.PublicKey()) }

// Log returns what sshd wrote so far (it runs with -e).
func (o *OpenSSH) Log() string { return o.stderr.String() }

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitListening polls addr until it accepts a connection and answers with an
// SSH banner, the process exits, or timeout passes.
func waitListening(addr string, exited <-chan struct{}, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("sshd exited before listening on %s", addr)
		default:
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
			buf := make([]byte, 4)
			_, rerr := c.Read(buf)
			_ = c.Close()
			if rerr == nil && string(buf) == "SSH-" {
				return nil
			}
		}
		select {
		case <-exited:
			return fmt.Errorf("sshd exited before listening on %s", addr)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("sshd not listening on %s after %v", addr, timeout)
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
