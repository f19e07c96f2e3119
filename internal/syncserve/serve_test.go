package syncserve

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pkg/sftp"

	"github.com/ringmesh/ringmesh/pkg/auth"
)

// client serves node's session in-process and returns an SFTP client of it.
func client(t *testing.T, incoming, node string) *sftp.Client {
	t.Helper()
	cr, sw := io.Pipe() // server → client
	sr, cw := io.Pipe() // client → server
	done := make(chan error, 1)
	go func() {
		done <- Serve(struct {
			io.Reader
			io.WriteCloser
		}{sr, sw}, incoming, node)
		sw.Close()
	}()
	c, err := sftp.NewClientPipe(cr, cw)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		cw.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve(%s): %v", node, err)
		}
	})
	return c
}

func put(c *sftp.Client, p string, data []byte) error {
	f, err := c.Create(p)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// TestNodeSeesOnlyItsOwnDirectory: what the sync transport does works in
// <incoming>/<node>, and nothing a node sends (other nodes' paths, "..",
// absolute host paths, symlinks, hard links or renames across) reads,
// writes, lists or removes anything outside it.
func TestNodeSeesOnlyItsOwnDirectory(t *testing.T) {
	base := t.TempDir()
	incoming := filepath.Join(base, "incoming")
	if err := os.Mkdir(incoming, 0o750); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(base, "secret")
	if err := os.WriteFile(secret, []byte("host file"), 0o600); err != nil {
		t.Fatal(err)
	}
	v1 := client(t, incoming, "vast-1")
	// vast-1 syncs the way the transport does: MkdirAll, .partial, rename,
	// statvfs, hard link + posix-rename swap, truncate.
	if err := v1.MkdirAll("/incoming/vast-1/games"); err != nil {
		t.Fatal(err)
	}
	if err := put(v1, "/incoming/vast-1/games/a.db.partial", []byte("version 1")); err != nil {
		t.Fatal(err)
	}
	if err := v1.PosixRename("/incoming/vast-1/games/a.db.partial", "/incoming/vast-1/games/a.db"); err != nil {
		t.Fatal(err)
	}
	if err := v1.Link("/incoming/vast-1/games/a.db", "/incoming/vast-1/games/a.db.prev"); err != nil {
		t.Fatal(err)
	}
	if _, err := v1.StatVFS("/incoming/vast-1/games"); err != nil {
		t.Fatal(err)
	}
	if err := put(v1, "/incoming/vast-1/games/b.npz.partial", []byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	if err := v1.Truncate("/incoming/vast-1/games/b.npz.partial", 7); err != nil {
		t.Fatal(err)
	}
	if fi, err := v1.Stat("/incoming/vast-1/games/b.npz.partial"); err != nil || fi.Size() != 7 {
		t.Fatalf("after truncate: %v, %v", fi, err)
	}
	if ents, err := v1.ReadDir("/incoming"); err != nil || len(ents) != 1 || ents[0].Name() != "vast-1" {
		t.Fatalf("vast-1 lists /incoming as %v (%v), want only its own directory", ents, err)
	}

	v2 := client(t, incoming, "vast-2")
	victim := "/incoming/vast-1/games/a.db"
	for _, p := range []string{
		victim, "/incoming/vast-2/../vast-1/games/a.db", "incoming/vast-1/games/a.db", "/incoming/vast-2/../../secret",
		"/../secret", secret, "/incoming/vast-1", "/secret",
	} {
		if _, err := v2.Stat(p); err == nil {
			t.Errorf("vast-2 stats %q", p)
		}
		if f, err := v2.Open(p); err == nil {
			b, _ := io.ReadAll(f)
			f.Close()
			t.Errorf("vast-2 reads %q: %q", p, b)
		}
		if err := put(v2, p, []byte("overwritten")); err == nil {
			t.Errorf("vast-2 writes %q", p)
		}
		if err := v2.Remove(p); err == nil {
			t.Errorf("vast-2 removes %q", p)
		}
		if err := v2.Truncate(p, 0); err == nil {
			t.Errorf("vast-2 truncates %q", p)
		}
	}
	if err := v2.MkdirAll("/incoming/vast-2"); err != nil {
		t.Fatal(err)
	}
	if err := v2.Link(victim, "/incoming/vast-2/stolen"); err == nil {
		t.Error("vast-2 hard-links vast-1's file into its directory")
	}
	if err := v2.Symlink("/incoming/vast-1", "/incoming/vast-2/link"); err == nil {
		t.Error("vast-2 makes a symlink")
	}
	if err := v2.PosixRename(victim, "/incoming/vast-2/moved"); err == nil {
		t.Error("vast-2 renames vast-1's file")
	}
	if err := v2.Rename("/incoming/vast-2/x", victim); err == nil {
		t.Error("vast-2 renames onto vast-1's file")
	}
	if err := v2.Mkdir("/incoming/vast-3"); err == nil {
		t.Error("vast-2 makes another node's directory")
	}
	if ents, err := v2.ReadDir("/incoming"); err != nil || len(ents) != 1 || ents[0].Name() != "vast-2" {
		t.Fatalf("vast-2 lists /incoming as %v (%v)", ents, err)
	}
	if _, err := v2.ReadDir("/incoming/vast-1"); err == nil {
		t.Error("vast-2 lists vast-1's directory")
	}
	// A symlink planted in vast-2's directory (by anything but the server)
	// is not followed out of it.
	if err := os.Symlink(filepath.Join(incoming, "vast-1"), filepath.Join(incoming, "vast-2", "planted")); err != nil {
		t.Fatal(err)
	}
	if f, err := v2.Open("/incoming/vast-2/planted/games/a.db"); err == nil {
		f.Close()
		t.Error("vast-2 reads through a symlink out of its directory")
	}
	if err := put(v2, "/incoming/vast-2/planted/games/new", []byte("x")); err == nil {
		t.Error("vast-2 writes through a symlink out of its directory")
	}

	if b, err := os.ReadFile(filepath.Join(incoming, "vast-1", "games", "a.db")); err != nil || string(b) != "version 1" {
		t.Fatalf("vast-1's copy after vast-2's attempts: %q, %v", b, err)
	}
	if b, _ := os.ReadFile(secret); !bytes.Equal(b, []byte("host file")) {
		t.Fatalf("host file changed: %q", b)
	}
	for _, p := range []string{filepath.Join(incoming, "vast-3"), filepath.Join(incoming, "vast-2", "stolen"), filepath.Join(base, "x")} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s exists", p)
		}
	}
}

// TestRunShell: the login shell serves only under a forced command that
// names a valid node.
func TestRunShell(t *testing.T) {
	env := func(orig string) func(string) string {
		return func(k string) string {
			if k == "SSH_ORIGINAL_COMMAND" {
				return orig
			}
			return ""
		}
	}
	for name, c := range map[string]struct {
		args []string
		orig string
		want string
	}{
		"interactive":       {nil, "", "only serves SFTP"},
		"client command":    {[]string{"-c", auth.SyncForceCommand("vast-1")}, "", "no forced command"},
		"other command":     {[]string{"-c", "sh -c id"}, "internal-sftp", "want"},
		"node with a slash": {[]string{"-c", "ringmesh-sync-sftp --node=../x"}, "internal-sftp", "node"},
		"no config":         {[]string{"-c", auth.SyncForceCommand("vast-1")}, "internal-sftp", "sftp.conf"},
	} {
		var stderr bytes.Buffer
		code := RunShell(c.args, env(c.orig), strings.NewReader(""), nopCloser{io.Discard}, &stderr)
		if code == 0 || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%s: exit %d, stderr %q, want a refusal mentioning %q", name, code, stderr.String(), c.want)
		}
	}
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

func TestServeRefusesBadNode(t *testing.T) {
	for _, n := range []string{"", "..", "a/b", "vast 1"} {
		if err := Serve(struct {
			io.Reader
			io.WriteCloser
		}{strings.NewReader(""), nopCloser{io.Discard}}, t.TempDir(), n); err == nil || errors.Is(err, io.EOF) {
			t.Errorf("Serve(node %q) = %v, want an error", n, err)
		}
	}
}
