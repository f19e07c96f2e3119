package enroll

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
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// sq quotes s for a POSIX shell (values are pattern-checked before, this
// is the second fence).
func sq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// authMethods are the client keys: the node's identity file, the keys of
// a running ssh-agent, else the usual ~/.ssh/id_* files.
func authMethods(identityFile string) ([]ssh.AuthMethod, func(), error) {
	var signers []ssh.Signer
	closeFn := func() {}
	var problems []string
	addFile := func(p string, must bool) {
		b, err := os.ReadFile(p)
		if err != nil {
			if must {
				problems = append(problems, fmt.Sprintf("identity file %s: %v", p, err))
			}
			return
		}
		s, err := ssh.ParsePrivateKey(b)
		if err != nil {
			var pe *ssh.PassphraseMissingError
			if errors.As(err, &pe) {
				problems = append(problems, fmt.Sprintf("identity file %s is encrypted: load it into ssh-agent (ssh-add %s)", p, p))
				return
			}
			problems = append(problems, fmt.Sprintf("identity file %s: %v", p, err))
			return
		}
		signers = append(signers, s)
	}
	if identityFile != "" {
		addFile(expandHome(identityFile), true)
	}
	if sock := os.Getenv("SSH_AUTH_SOCK"); sock != "" {
		if c, err := net.Dial("unix", sock); err == nil {
			if ss, err := agent.NewClient(c).Signers(); err == nil {
				signers = append(signers, ss...)
			}
			closeFn = func() { c.Close() }
		}
	}
	if identityFile == "" {
		for _, n := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
			addFile(expandHome("~/.ssh/"+n), false)
		}
	}
	if len(signers) == 0 {
		closeFn()
		if len(problems) == 0 {
			problems = append(problems, "no SSH key: set ssh_key for the node in the inventory, or run ssh-agent")
		}
		return nil, func() {}, errors.New(strings.Join(problems, "; "))
	}
	return []ssh.AuthMethod{ssh.PublicKeys(signers...)}, closeFn, nil
}

func expandHome(p string) string {
	if strings.HasPrefix(p, "~/") {
		if h, err := os.UserHomeDir(); err == nil {
			return h + p[1:]
		}
	}
	return p
}

// dial connects to host:port as user, verifying the host key with cb.
func dial(ctx context.Context, host string, port int, user string, auth []ssh.AuthMethod, algos []string, cb ssh.HostKeyCallback, timeout time.Duration) (*ssh.Client, error) {
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	// The handshake honours ctx through the connection's deadline.
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	cfg := &ssh.ClientConfig{User: user, Auth: auth, HostKeyCallback: cb, HostKeyAlgorithms: algos, Timeout: timeout}
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	if err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	return ssh.NewClient(c, chans, reqs), nil
}

// run runs one shell command on the node and returns its stdout; a
// non-zero exit is an error carrying stderr.
func run(ctx context.Context, c *ssh.Client, cmd string) (string, error) {
	s, err := c.NewSession()
	if err != nil {
		return "", err
	}
	defer s.Close()
	var out, errb bytes.Buffer
	s.Stdout, s.Stderr = &out, &errb
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	if err := s.Run(cmd); err != nil {
		if ctx.Err() != nil {
			return out.String(), ctx.Err()
		}
		msg := strings.TrimSpace(errb.String())
		if len(msg) > 400 {
			msg = msg[len(msg)-400:]
		}
		if msg != "" {
			return out.String(), fmt.Errorf("%v: %s", err, msg)
		}
		return out.String(), err
	}
	return out.String(), nil
}

// putFile writes data to dst atomically: a temporary name in the same
// directory, mode set before any byte is written, then a rename over dst.
func putFile(sc *sftp.Client, dst string, data io.Reader, mode os.FileMode) error {
	tmp, err := putTemp(sc, dst, data, mode)
	if err != nil {
		return err
	}
	if err := sc.PosixRename(tmp, dst); err != nil {
		_ = sc.Remove(tmp)
		return fmt.Errorf("rename %s to %s: %w", tmp, dst, err)
	}
	return nil
}

// putTemp writes data to a new temporary file next to dst (mode set
// before any byte is written) and returns its name.
func putTemp(sc *sftp.Client, dst string, data io.Reader, mode os.FileMode) (string, error) {
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	tmp := path.Join(path.Dir(dst), "."+path.Base(dst)+".tmp-"+hex.EncodeToString(rnd[:]))
	f, err := sc.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return "", fmt.Errorf("create %s: %w", tmp, err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = sc.Remove(tmp)
		}
	}()
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return "", fmt.Errorf("chmod %s: %w", tmp, err)
	}
	if _, err := f.ReadFrom(data); err != nil {
		f.Close()
		return "", fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("close %s: %w", tmp, err)
	}
	ok = true
	return tmp, nil
}

// mkdirs creates dirs (and parents) and sets each to mode.
func mkdirs(sc *sftp.Client, mode os.FileMode, dirs ...string) error {
	for _, d := range dirs {
		if err := sc.MkdirAll(d); err != nil {
			return fmt.Errorf("mkdir %s: %w (choose an install prefix the SSH user may write with --prefix)", d, err)
		}
		if err := sc.Chmod(d, mode); err != nil {
			return fmt.Errorf("chmod %s: %w", d, err)
		}
	}
	return nil
}

func isIP(h string) bool { return net.ParseIP(h) != nil }

func joinHostPort(h string, port int) string { return net.JoinHostPort(h, strconv.Itoa(port)) }
