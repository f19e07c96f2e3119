// Package sshtest runs SSH + SFTP servers for tests of code that moves files
// over SSH (pkg/sync and anything else in ringmesh that needs one).
//
// Two kinds are offered:
//
//   - [New] starts an in-process server (golang.org/x/crypto/ssh +
//     github.com/pkg/sftp request server) on 127.0.0.1 with its own ed25519
//     host key, public-key authentication for one generated client key, an
//     optional "exec sha256sum" (and "mkdir -p") implementation, and fault
//     knobs: cut a connection after N bytes, fail writes with ENOSPC after N
//     bytes, report any free space through statvfs@openssh.com, corrupt a byte
//     of the next uploaded file, slow writes down.
//   - [StartOpenSSH] runs the system's real sshd as a child process on a free
//     loopback port with a throw-away configuration; it skips the test when
//     /usr/sbin/sshd is not installed.
//
// Both serve the SFTP paths of a temporary directory and hand out the client
// key (signer and key file), a known_hosts file and the host key fingerprint,
// so host-key checking is always exercised: nothing here needs
// InsecureIgnoreHostKey.
package sshtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// Options configure an in-process server started by [New].
type Options struct {
	// User is the only login name accepted; default "ringmesh".
	User string
	// Root is the local directory served as "/" over SFTP and exec; default a
	// new tb.TempDir().
	Root string
	// DisableExec refuses "exec" channel requests, like a server that only
	// offers the sftp subsystem; clients must verify by reading back.
	DisableExec bool
	// DisableStatVFS answers statvfs@openssh.com with SSH_FX_OP_UNSUPPORTED.
	DisableStatVFS bool
}

// Server is an in-process SSH server with an SFTP subsystem. All knob methods
// are safe for concurrent use.
type Server struct {
	// Host and Port are the listening address (Host is always 127.0.0.1).
	Host string
	Port int
	// User is the accepted login name.
	User string
	// Root is the local directory that SFTP path "/" maps to.
	Root string
	// HostKey is the server's host key.
	HostKey KeyPair
	// ClientKey is the one key accepted for User.
	ClientKey KeyPair
	// ClientKeyPath is ClientKey written to a file (mode 0600).
	ClientKeyPath string
	// KnownHostsPath is a known_hosts file holding HostKey for [Host]:Port.
	KnownHostsPath string

	opts Options
	ln   net.Listener
	cfg  *ssh.ServerConfig
	wg   sync.WaitGroup

	mu         sync.Mutex
	conns      map[net.Conn]struct{}
	closed     bool
	cutNext    int64 // bytes; 0 = off
	failBudget int64 // bytes still writable before ENOSPC; <0 = unlimited
	freeBytes  int64 // reported by statvfs; <0 = the real file system's figure
	corruptAt  int64 // offset to corrupt in the next written file; <0 = off
	writeDelay time.Duration
	execs      []string
	totalConns int

	active  atomic.Int64
	written atomic.Int64
}

// New starts an in-process server for the duration of the test.
func New(tb testing.TB, opts Options) *Server {
	tb.Helper()
	if opts.User == "" {
		opts.User = "ringmesh"
	}
	if opts.Root == "" {
		opts.Root = tb.TempDir()
	}
	hostKey, err := NewKeyPair()
	if err != nil {
		tb.Fatalf("sshtest: host key: %v", err)
	}
	clientKey, err := NewKeyPair()
	if err != nil {
		tb.Fatalf("sshtest: client key: %v", err)
	}
	s := &Server{
		User:       opts.User,
		Root:       opts.Root,
		HostKey:    hostKey,
		ClientKey:  clientKey,
		opts:       opts,
		conns:      map[net.Conn]struct{}{},
		failBudget: -1,
		freeBytes:  -1,
		corruptAt:  -1,
	}
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if meta.User() != s.User {
				return nil, fmt.Errorf("sshtest: unknown user %q", meta.User())
			}
			if string(key.Marshal()) != string(s.ClientKey.Signer.PublicKey().Marshal()) {
				return nil, errors.New("sshtest: key not authorized")
			}
			return &ssh.Permissions{}, nil
		},
	}
	cfg.AddHostKey(hostKey.Signer)
	s.cfg = cfg

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("sshtest: listen: %v", err)
	}
	s.ln = ln
	addr := ln.Addr().(*net.TCPAddr)
	s.Host, s.Port = "127.0.0.1", addr.Port

	keyDir := tb.TempDir()
	s.ClientKeyPath = filepath.Join(keyDir, "id_ed25519")
	if err := clientKey.WriteFile(s.ClientKeyPath); err != nil {
		tb.Fatalf("sshtest: %v", err)
	}
	s.KnownHostsPath = filepath.Join(keyDir, "known_hosts")
	if err := WriteKnownHosts(s.KnownHostsPath, s.Host, s.Port, hostKey.Signer.PublicKey()); err != nil {
		tb.Fatalf("sshtest: %v", err)
	}

	s.wg.Add(1)
	go s.acceptLoop()
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// Addr is "127.0.0.1:port".
func (s *Server) Addr() string { return net.JoinHostPort(s.Host, fmt.Sprint(s.Port)) }

// Fingerprint is the host key's SHA-256 fingerprint ("SHA256:base64...").
func (s *Server) Fingerprint() string { return ssh.FingerprintSHA256(s.HostKey.Signer.PublicKey()) }

// LocalPath maps a remote (SFTP) path to the local file that holds it.
func (s *Server) LocalPath(remote string) string {
	if !path.IsAbs(remote) {
		remote = "/" + remote
	}
	return filepath.Join(s.Root, filepath.FromSlash(path.Clean(remote)))
}

// CutNextConnAfter makes the next accepted connection drop after the server
// has read n bytes from the client (n counts SSH wire bytes, handshake
// included). n <= 0 turns the knob off.
func (s *Server) CutNextConnAfter(n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cutNext = n
}

// FailWritesAfter lets n more file bytes be written; any write past that
// fails with ENOSPC ("no space left on device"). n < 0 removes the limit.
func (s *Server) FailWritesAfter(n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failBudget = n
}

// SetFreeBytes makes statvfs@openssh.com report n free (and available)
// bytes. n < 0 reports the real file system under Root.
func (s *Server) SetFreeBytes(n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.freeBytes = n
}

// CorruptNextFileAt flips the byte at offset off of the next file opened for
// writing (one shot). off < 0 turns the knob off.
func (s *Server) CorruptNextFileAt(off int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.corruptAt = off
}

// SetWriteDelay makes every SFTP write request sleep d before writing.
func (s *Server) SetWriteDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writeDelay = d
}

// BytesWritten is the number of file bytes written through SFTP so far.
func (s *Server) BytesWritten() int64 { return s.written.Load() }

// Connections is the number of SSH connections accepted so far.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.totalConns
}

// ExecCommands lists the exec requests received so far, in order.
func (s *Server) ExecCommands() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.execs...)
}

// WaitIdle waits until no connection is being served any more (every
// connection, its SFTP server and pending writes have finished).
func (s *Server) WaitIdle(ctx context.Context) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for s.active.Load() != 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("sshtest: %d connection(s) still active: %w", s.active.Load(), ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

// Close stops the listener, drops every connection and waits for the
// serving goroutines. It is called automatically at test cleanup.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	err := s.ln.Close()
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

func (s *Server) acceptLoop() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = nc.Close()
			return
		}
		s.totalConns++
		if s.cutNext > 0 {
			nc = &cutConn{Conn: nc, left: s.cutNext}
			s.cutNext = 0
		}
		s.conns[nc] = struct{}{}
		s.active.Add(1)
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(nc)
	}
}

func (s *Server) serveConn(nc net.Conn) {
	defer s.wg.Done()
	defer s.active.Add(-1)
	defer func() {
		s.mu.Lock()
		delete(s.conns, nc)
		s.mu.Unlock()
		_ = nc.Close()
	}()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	sconn, chans, reqs, err := ssh.NewServerConn(nc, s.cfg)
	if err != nil {
		return
	}
	_ = nc.SetDeadline(time.Time{})
	defer sconn.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		ssh.DiscardRequests(reqs)
	}()
	for nch := range chans {
		if nch.ChannelType() != "session" {
			_ = nch.Reject(ssh.UnknownChannelType, "only session channels")
			continue
		}
		ch, creqs, err := nch.Accept()
		if err != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveSession(ch, creqs)
		}()
	}
	_ = sconn.Close()
	wg.Wait()
}

func (s *Server) serveSession(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	for req := range reqs {
		switch req.Type {
		case "subsystem":
			name := parseString(req.Payload)
			if name != "sftp" {
				_ = req.Reply(false, nil)
				continue
			}
			_ = req.Reply(true, nil)
			go ssh.DiscardRequests(reqs)
			h := &fsHandler{s: s}
			rs := sftp.NewRequestServer(ch, sftp.Handlers{FileGet: h, FilePut: h, FileCmd: h, FileList: h},
				sftp.WithStartDirectory("/"))
			err := rs.Serve()
			_ = rs.Close()
			code := uint32(0)
			if err != nil && !errors.Is(err, io.EOF) {
				code = 1
			}
			sendExit(ch, code)
			return
		case "exec":
			cmd := parseString(req.Payload)
			s.mu.Lock()
			s.execs = append(s.execs, cmd)
			s.mu.Unlock()
			if s.opts.DisableExec {
				_ = req.Reply(false, nil)
				continue
			}
			_ = req.Reply(true, nil)
			go ssh.DiscardRequests(reqs)
			sendExit(ch, s.runCommand(cmd, ch, ch.Stderr()))
			return
		default:
			if req.WantReply {
				_ = req.Reply(false, nil)
			}
		}
	}
}

func sendExit(ch ssh.Channel, code uint32) {
	_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{code}))
}

func parseString(payload []byte) string {
	var msg struct{ Value string }
	if err := ssh.Unmarshal(payload, &msg); err != nil {
		return ""
	}
	return msg.Value
}

// runCommand implements the few commands ringmesh runs over exec:
// "sha256sum [--] FILE..." and "mkdir -p [--] DIR...". Anything else exits 127.
func (s *Server) runCommand(cmd string, stdout, stderr io.Writer) uint32 {
	argv, err := splitWords(cmd)
	if err != nil || len(argv) == 0 {
		fmt.Fprintf(stderr, "sshtest: cannot parse %q: %v\n", cmd, err)
		return 2
	}
	args := argv[1:]
	switch argv[0] {
	case "sha256sum":
		if len(args) > 0 && args[0] == "--" {
			args = args[1:]
		}
		code := uint32(0)
		for _, a := range args {
			f, err := os.Open(s.LocalPath(a))
			if err != nil {
				fmt.Fprintf(stderr, "sha256sum: %s: %v\n", a, err)
				code = 1
				continue
			}
			h := sha256.New()
			_, err = io.Copy(h, f)
			_ = f.Close()
			if err != nil {
				fmt.Fprintf(stderr, "sha256sum: %s: %v\n", a, err)
				code = 1
				continue
			}
			fmt.Fprintf(stdout, "%s  %s\n", hex.EncodeToString(h.Sum(nil)), a)
		}
		return code
	case "mkdir":
		var dirs []string
		parents := false
		for i, a := range args {
			if a == "--" {
				dirs = append(dirs, args[i+1:]...)
				break
			}
			if a == "-p" {
				parents = true
				continue
			}
			dirs = append(dirs, a)
		}
		for _, d := range dirs {
			var err error
			if parents {
				err = os.MkdirAll(s.LocalPath(d), 0o755)
			} else {
				err = os.Mkdir(s.LocalPath(d), 0o755)
			}
			if err != nil {
				fmt.Fprintf(stderr, "mkdir: %v\n", err)
				return 1
			}
		}
		return 0
	default:
		fmt.Fprintf(stderr, "sh: %s: command not found\n", argv[0])
		return 127
	}
}

// splitWords splits a POSIX shell command line into words, honouring single
// quotes, double quotes and backslashes (no expansions).
func splitWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unterminated single quote")
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, errors.New("unterminated double quote")
			}
			inWord = true
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			inWord = true
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// cutConn closes the connection once left bytes have been read from it.
type cutConn struct {
	net.Conn
	mu   sync.Mutex
	left int64
}

func (c *cutConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	left := c.left
	c.mu.Unlock()
	if left <= 0 {
		_ = c.Conn.Close()
		return 0, io.EOF
	}
	if int64(len(p)) > left {
		p = p[:left]
	}
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.left -= int64(n)
	c.mu.Unlock()
	return n, err
}
