package meshsync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// RsyncPartialDir is the directory (relative to the destination's) where
// rsync keeps interrupted transfers; they are reused by the next run and
// never appear under the final name.
const RsyncPartialDir = ".rsync-partial"

// RsyncOptions configure an RsyncTransport.
type RsyncOptions struct {
	// RsyncPath and SSHPath are the local binaries; default: looked up in PATH.
	RsyncPath string
	SSHPath   string
	// TempDir receives the per-push known_hosts files; default os.TempDir().
	TempDir string
	// Timeout is rsync's --timeout (I/O inactivity), default 60 s.
	Timeout time.Duration
	// Logger; the zero value logs nothing.
	Logger zerolog.Logger
}

// RsyncTransport pushes with rsync over the OpenSSH client, for targets
// where both ends have rsync. The host key is verified by ringmesh's own
// policy (known_hosts and/or fingerprint) over a Go SSH connection first,
// and the verified key is the only one the ssh client accepts
// (StrictHostKeyChecking=yes with a one-entry UserKnownHostsFile). After
// rsync, the remote SHA-256 is computed with sha256sum and compared.
//
// Its bandwidth limit (--bwlimit) applies per rsync process, not across
// concurrent pushes to one host as the SFTP transport's does. It needs
// Target.KeyPath (the ssh binary cannot use an in-memory Signer).
type RsyncTransport struct {
	opts RsyncOptions

	mu       sync.Mutex
	remoteOK map[string]bool
}

var _ Transport = (*RsyncTransport)(nil)

// RsyncAvailable reports whether rsync and ssh exist locally.
func RsyncAvailable() error {
	if _, err := exec.LookPath("rsync"); err != nil {
		return fmt.Errorf("%w: rsync not found locally: %v", ErrTransportUnavailable, err)
	}
	if _, err := exec.LookPath("ssh"); err != nil {
		return fmt.Errorf("%w: ssh client not found locally: %v", ErrTransportUnavailable, err)
	}
	return nil
}

// NewRsyncTransport returns an rsync transport, or an error wrapping
// ErrTransportUnavailable when rsync or ssh is missing locally.
func NewRsyncTransport(opts RsyncOptions) (*RsyncTransport, error) {
	var err error
	if opts.RsyncPath == "" {
		if opts.RsyncPath, err = exec.LookPath("rsync"); err != nil {
			return nil, fmt.Errorf("%w: rsync not found locally: %v", ErrTransportUnavailable, err)
		}
	}
	if opts.SSHPath == "" {
		if opts.SSHPath, err = exec.LookPath("ssh"); err != nil {
			return nil, fmt.Errorf("%w: ssh client not found locally: %v", ErrTransportUnavailable, err)
		}
	}
	if opts.TempDir == "" {
		opts.TempDir = os.TempDir()
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 60 * time.Second
	}
	return &RsyncTransport{opts: opts, remoteOK: map[string]bool{}}, nil
}

// Push implements Transport.
func (t *RsyncTransport) Push(ctx context.Context, file LocalFile, target Target) (rc Receipt, err error) {
	op := "prepare"
	defer func() {
		if err != nil {
			err = &PushError{NodeID: target.NodeID, Addr: target.Endpoint.Addr(), File: file.Path, Op: op, Err: err}
		}
	}()
	remote, err := remotePath(target.RemoteDir, file.RemoteName)
	if err != nil {
		return Receipt{}, err
	}
	if target.KeyPath == "" {
		return Receipt{}, fmt.Errorf("%w: rsync needs Target.KeyPath (an in-memory signer cannot be passed to ssh)", ErrTransportUnavailable)
	}
	for _, s := range []string{target.KeyPath, t.opts.TempDir} {
		if strings.ContainsAny(s, `'"`) {
			return Receipt{}, fmt.Errorf("path %q: quotes are not supported in rsync -e arguments", s)
		}
	}
	before, err := os.Stat(file.Path)
	if err != nil {
		return Receipt{}, err
	}
	if file.Size > 0 && before.Size() != file.Size {
		return Receipt{}, fmt.Errorf("%w: size is %d bytes, expected %d", ErrSourceChanged, before.Size(), file.Size)
	}
	if !file.ModTime.IsZero() && !before.ModTime().Equal(file.ModTime) {
		return Receipt{}, fmt.Errorf("%w: mtime changed", ErrSourceChanged)
	}

	// Verify the host key our way and keep the key for the ssh client.
	op = "connect"
	var hostKey ssh.PublicKey
	client, stop, err := dialSSH(ctx, target, func(cfg *ssh.ClientConfig) {
		verify := cfg.HostKeyCallback
		cfg.HostKeyCallback = func(h string, r net.Addr, k ssh.PublicKey) error {
			if err := verify(h, r, k); err != nil {
				return err
			}
			hostKey = k
			return nil
		}
	})
	if err != nil {
		return Receipt{}, err
	}
	stop()
	defer client.Close()

	op = "check remote rsync"
	if err := t.checkRemote(ctx, client, target); err != nil {
		return Receipt{}, err
	}
	op = "create remote directory"
	if _, err := runRemote(ctx, client, "mkdir -p -- "+shellQuote(path.Dir(remote))); err != nil {
		return Receipt{}, err
	}

	op = "hash local file"
	want := file.SHA256
	if want == "" {
		if want, _, err = hashFile(ctx, file.Path); err != nil {
			return Receipt{}, err
		}
	}

	op = "write known_hosts"
	kh, err := os.CreateTemp(t.opts.TempDir, "ringmesh-known_hosts-*")
	if err != nil {
		return Receipt{}, err
	}
	defer os.Remove(kh.Name())
	line := knownhosts.Line([]string{knownhosts.Normalize(target.Endpoint.Addr())}, hostKey)
	if _, err := kh.WriteString(line + "\n"); err != nil {
		_ = kh.Close()
		return Receipt{}, err
	}
	if err := kh.Close(); err != nil {
		return Receipt{}, err
	}

	op = "rsync"
	port := target.Endpoint.Port
	if port == 0 {
		port = 22
	}
	ct := target.ConnectTimeout
	if ct <= 0 {
		ct = 15 * time.Second
	}
	sshCmd := strings.Join([]string{
		quoteRsyncArg(t.opts.SSHPath), "-p", strconv.Itoa(port), "-i", quoteRsyncArg(target.KeyPath),
		"-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
		"-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=" + quoteRsyncArg(kh.Name()),
		"-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "HostKeyAlgorithms=" + strings.Join(algosForKeyType(hostKey.Type()), ","),
		"-o", "ConnectTimeout=" + strconv.Itoa(int(ct.Seconds()+0.5)),
		"-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=3",
	}, " ")
	args := []string{"-a", "--partial", "--partial-dir=" + RsyncPartialDir, "--protect-args", "--stats",
		"--timeout=" + strconv.Itoa(int(t.opts.Timeout.Seconds()+0.5)), "-e", sshCmd}
	if target.BandwidthLimit > 0 {
		args = append(args, "--bwlimit="+strconv.FormatInt((target.BandwidthLimit+1023)/1024, 10))
	}
	host := target.Endpoint.Host
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	args = append(args, "--", file.Path, target.Endpoint.User+"@"+host+":"+remote)
	cmd := exec.CommandContext(ctx, t.opts.RsyncPath, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return Receipt{}, fmt.Errorf("%w (rsync interrupted; partial kept in %s for resume)", ctx.Err(), RsyncPartialDir)
		}
		return Receipt{}, rsyncError(err, stderr.String())
	}
	sent := parseRsyncSent(stdout.String())
	if file.Progress != nil {
		file.Progress(sent)
	}

	op = "check source"
	after, err := os.Stat(file.Path)
	if err != nil || after.Size() != before.Size() || !after.ModTime().Equal(before.ModTime()) {
		return Receipt{}, fmt.Errorf("%w: %s was modified while being sent", ErrSourceChanged, file.Path)
	}
	op = "verify remote checksum"
	got, err := execSHA256(ctx, client, remote)
	if err != nil {
		return Receipt{}, err
	}
	if got != want {
		_, _ = runRemote(ctx, client, "rm -f -- "+shellQuote(remote))
		return Receipt{}, fmt.Errorf("%w: %s on %s hashes to %s, expected %s; removed", ErrChecksumMismatch, remote, target.NodeID, got, want)
	}
	return Receipt{
		NodeID: target.NodeID, SHA256: got, Size: before.Size(), VerifiedAt: time.Now().UTC(),
		RemotePath: remote, Transport: "rsync", BytesSent: sent,
		SourceSize: file.SourceSize, SourceModTime: file.SourceModTime,
		SourceWALSize: file.SourceWALSize, SourceWALModTime: file.SourceWALModTime,
	}, nil
}

// checkRemote makes sure the target has rsync (cached per target).
func (t *RsyncTransport) checkRemote(ctx context.Context, client *ssh.Client, target Target) error {
	key := target.NodeID + "\x00" + target.Endpoint.Addr()
	t.mu.Lock()
	ok := t.remoteOK[key]
	t.mu.Unlock()
	if ok {
		return nil
	}
	if _, err := runRemote(ctx, client, "command -v rsync"); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: rsync not found on %s: %v", ErrTransportUnavailable, target.NodeID, err)
	}
	t.mu.Lock()
	t.remoteOK[key] = true
	t.mu.Unlock()
	return nil
}

// quoteRsyncArg quotes an argument of rsync's -e command (rsync splits it on
// spaces and honours single and double quotes).
func quoteRsyncArg(s string) string {
	if !strings.ContainsAny(s, " \t") {
		return s
	}
	return "'" + s + "'"
}

var rsyncSentRe = regexp.MustCompile(`(?m)^Total bytes sent: ([0-9,.]+)`)

func parseRsyncSent(out string) int64 {
	m := rsyncSentRe.FindStringSubmatch(out)
	if m == nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.NewReplacer(",", "", ".", "").Replace(m[1]), 10, 64)
	return n
}

// rsyncError classifies rsync's exit code (errcode.h).
func rsyncError(err error, stderr string) error {
	stderr = strings.TrimSpace(stderr)
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return fmt.Errorf("rsync: %w: %s", err, stderr)
	}
	code := ee.ExitCode()
	var what string
	switch code {
	case 10, 12:
		what = "socket or protocol stream error"
	case 11:
		what = "file I/O error"
		if strings.Contains(strings.ToLower(stderr), "no space left") {
			return fmt.Errorf("%w: rsync: %s", ErrTargetDiskFull, stderr)
		}
	case 23:
		what = "partial transfer due to error"
	case 24:
		what = "source file vanished"
	case 30:
		what = "I/O timeout"
	case 255:
		what = "ssh failed"
		if strings.Contains(stderr, "Host key verification failed") || strings.Contains(stderr, "REMOTE HOST IDENTIFICATION HAS CHANGED") {
			return fmt.Errorf("%w: ssh refused the host key: %s", ErrHostKeyMismatch, stderr)
		}
	default:
		what = "failed"
	}
	if strings.Contains(strings.ToLower(stderr), "no space left") {
		return fmt.Errorf("%w: rsync exit %d (%s): %s", ErrTargetDiskFull, code, what, stderr)
	}
	return fmt.Errorf("rsync exit %d (%s): %s", code, what, stderr)
}
