package sshtest

import (
	"bytes"
	"context"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func dial(t *testing.T, s *Server) *ssh.Client {
	t.Helper()
	cb, err := knownhosts.New(s.KnownHostsPath)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ssh.Dial("tcp", s.Addr(), &ssh.ClientConfig{
		User:              s.User,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(s.ClientKey.Signer)},
		HostKeyCallback:   cb,
		HostKeyAlgorithms: []string{ssh.KeyAlgoED25519},
		Timeout:           10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestServerSFTPExecAndKnobs(t *testing.T) {
	s := New(t, Options{})
	c := dial(t, s)
	sc, err := sftp.NewClient(c)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	if err := sc.MkdirAll("/a/b"); err != nil {
		t.Fatal(err)
	}
	f, err := sc.Create("/a/b/x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if b, err := os.ReadFile(s.LocalPath("/a/b/x")); err != nil || string(b) != "hello" {
		t.Fatalf("local file %q %v", b, err)
	}
	if s.BytesWritten() != 5 {
		t.Fatalf("bytes written %d", s.BytesWritten())
	}

	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	out, err := sess.Output(`sha256sum -- '/a/b/x'`)
	sess.Close()
	if err != nil || !strings.HasPrefix(string(out), "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824  /a/b/x") {
		t.Fatalf("sha256sum: %q %v", out, err)
	}

	s.SetFreeBytes(12345 * 4096)
	st, err := sc.StatVFS("/a")
	if err != nil || st.Frsize*st.Bavail != 12345*4096 {
		t.Fatalf("statvfs %+v %v", st, err)
	}

	s.FailWritesAfter(3)
	f, _ = sc.Create("/a/full")
	_, err = f.Write([]byte("toolong"))
	f.Close()
	if err == nil || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("write past budget: %v", err)
	}
	s.FailWritesAfter(-1)

	s.CorruptNextFileAt(1)
	f, _ = sc.Create("/a/corrupt")
	_, _ = f.Write([]byte("abc"))
	f.Close()
	if b, _ := os.ReadFile(s.LocalPath("/a/corrupt")); bytes.Equal(b, []byte("abc")) || len(b) != 3 {
		t.Fatalf("corruption knob: %q", b)
	}

	s.CutNextConnAfter(4096)
	c2 := dial(t, s)
	sc2, err := sftp.NewClient(c2)
	if err == nil {
		var f2 *sftp.File
		if f2, err = sc2.Create("/a/cut"); err == nil {
			_, err = f2.Write(make([]byte, 64<<10))
		}
	}
	if err == nil {
		t.Fatal("connection was not cut")
	}
	c2.Close()
	c.Close()
	if err := s.WaitIdle(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if s.Connections() != 2 {
		t.Fatalf("connections %d", s.Connections())
	}
}

func TestServerRefusesUnknownKeyAndExecWhenDisabled(t *testing.T) {
	s := New(t, Options{DisableExec: true})
	other, _ := NewKeyPair()
	_, err := ssh.Dial("tcp", s.Addr(), &ssh.ClientConfig{
		User: s.User, Auth: []ssh.AuthMethod{ssh.PublicKeys(other.Signer)},
		HostKeyCallback: ssh.FixedHostKey(s.HostKey.Signer.PublicKey()), Timeout: 10 * time.Second,
	})
	if err == nil {
		t.Fatal("unknown client key accepted")
	}
	c := dial(t, s)
	sess, _ := c.NewSession()
	defer sess.Close()
	if err := sess.Run("sha256sum /x"); err == nil {
		t.Fatal("exec accepted with DisableExec")
	}
}

func TestSplitWords(t *testing.T) {
	for in, want := range map[string][]string{
		`sha256sum -- '/a b/it'\''s'`: {"sha256sum", "--", "/a b/it's"},
		`mkdir -p "x y"`:              {"mkdir", "-p", "x y"},
		`a\ b c`:                      {"a b", "c"},
	} {
		got, err := splitWords(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("splitWords(%q) = %q %v, want %q", in, got, err, want)
		}
	}
	if _, err := splitWords(`'open`); err == nil {
		t.Error("unterminated quote accepted")
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}
