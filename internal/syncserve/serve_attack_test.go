package syncserve

// Attacks on the per-node SFTP server as a hostile node holding its own
// valid certificate would try them (in-process: the same Serve that sshd
// runs through the account's shell). Each test asserts the claim of
// docs/security.md "Sync targets": a node affects only <incoming>/<node>.

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/sys/unix"
)

const victimData = "VICTIM-SECRET vast-1 database page"

// attackLayout makes base/incoming with vast-1's copy (the victim) and a
// host file next to incoming, and returns base, incoming and the host file.
func attackLayout(t *testing.T) (string, string, string) {
	t.Helper()
	base := t.TempDir()
	incoming := filepath.Join(base, "incoming")
	if err := os.MkdirAll(filepath.Join(incoming, "vast-1", "games"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(incoming, "vast-1", "games", "a.db"), []byte(victimData), 0o640); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(base, "secret")
	if err := os.WriteFile(secret, []byte("host file"), 0o600); err != nil {
		t.Fatal(err)
	}
	return base, incoming, secret
}

// snapshot describes every entry under base except the subtree skip: type,
// mode, size, link count, owner, mtime, content hash or link target.
func snapshot(t *testing.T, base, skip string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.Walk(base, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if p == skip {
			return filepath.SkipDir
		}
		st := fi.Sys().(*syscall.Stat_t)
		d := fmt.Sprintf("%v %d nlink=%d uid=%d gid=%d mtime=%d", fi.Mode(), fi.Size(), st.Nlink, st.Uid, st.Gid, fi.ModTime().UnixNano())
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h := sha256.Sum256(b)
			d += " sha256=" + hex.EncodeToString(h[:8])
		case fi.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			d += " -> " + l
		}
		m[p] = d
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func compareSnapshots(t *testing.T, before, after map[string]string) {
	t.Helper()
	for p, d := range before {
		if a, ok := after[p]; !ok {
			t.Errorf("ATTACK: %s removed (was %s)", p, d)
		} else if a != d {
			t.Errorf("ATTACK: %s changed: %s -> %s", p, d, a)
		}
	}
	for p, d := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("ATTACK: %s created outside the attacker's directory: %s", p, d)
		}
	}
}

// inOwn reports whether the client path p names vast-2's own tree (or one
// of the virtual directories above it) once cleaned.
func inOwn(p string) bool {
	c := path.Clean("/" + p)
	return c == "/" || c == "/incoming" || c == "/incoming/vast-2" || strings.HasPrefix(c, "/incoming/vast-2/")
}

// TestAttackPathTricks: vast-2 throws every path trick at every operation
// the server has, aimed at vast-1's copy, the incoming directory and a host
// file. Nothing outside incoming/vast-2 may change, and nothing vast-1 holds
// may be read, listed or statted.
func TestAttackPathTricks(t *testing.T) {
	base, incoming, secret := attackLayout(t)
	own := "/incoming/vast-2/own"
	c := client(t, incoming, "vast-2")
	if err := put(c, own, []byte("mine")); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, base, filepath.Join(incoming, "vast-2"))

	long := strings.Repeat("a", 300)
	paths := []string{
		"/incoming/vast-1/games/a.db", "//incoming//vast-1//games//a.db", "/incoming/vast-1/games/a.db/",
		"/incoming/vast-1/games/a.db//", "/incoming/vast-1/", "/incoming/vast-1", "/incoming/vast-1/.", "/incoming/./vast-1/games/a.db",
		"/incoming/vast-2/../vast-1/games/a.db", "/incoming/vast-2/x/../../vast-1/games/a.db", "incoming/vast-1/games/a.db",
		"../incoming/vast-1/games/a.db", "./incoming/vast-1", "/../../../../../" + strings.TrimPrefix(incoming, "/") + "/vast-1/games/a.db",
		incoming + "/vast-1/games/a.db", incoming + "/vast-2/own", secret, "/secret", "/../secret", "/incoming/../secret",
		"/incoming/vast-2/../../secret", "/incoming/vast-2/../../../../../../" + strings.TrimPrefix(secret, "/"),
		// NUL bytes: cut by a C string? (Go refuses NUL in syscalls.)
		"/incoming/vast-2/\x00/../../vast-1/games/a.db", "/incoming/vast-2\x00/../vast-1/games/a.db", "/incoming/vast-1\x00",
		"/incoming/vast-2/x\x00/../../../vast-1/games/a.db", "/incoming/vast-2/\x00", "\x00",
		// Case, look-alikes, invisible characters, backslashes.
		"/incoming/VAST-1/games/a.db", "/incoming/vast\u20101/games/a.db", "/incoming/vast-1\u200b/games/a.db",
		"/incoming/vast-2\u200b/../vast-1/games/a.db", "/incoming/vast-2/..\\vast-1\\games\\a.db", "\\incoming\\vast-1\\games\\a.db",
		"/incoming/vast-2/%2e%2e/vast-1/games/a.db",
		// Prefix confusion: vast-2 vs vast-2x, vast-1.
		"/incoming/vast-2x", "/incoming/vast-", "/incoming/vast-1x/../vast-1/games/a.db",
		// Long and deep.
		"/incoming/vast-2/" + strings.Repeat("x/../", 3000) + "../vast-1/games/a.db",
		"/incoming/vast-2/" + strings.Repeat("../", 3000) + "vast-1/games/a.db",
		"/incoming/vast-2/" + long, "/incoming/vast-2/" + strings.Repeat(long[:200]+"/", 30) + "f",
		// The chroot's other directories.
		"/ringmesh/sftp.conf", "/ringmesh", "/incoming", "/", "/.", "//", "/..",
	}
	try := func(what, p string, err error) {
		if err == nil && !inOwn(p) {
			t.Errorf("ATTACK: %s %q succeeded", what, p)
		}
	}
	for _, p := range paths {
		if fi, err := c.Stat(p); err == nil && !inOwn(p) {
			t.Errorf("ATTACK: stat %q: %v %d", p, fi.Mode(), fi.Size())
		}
		if fi, err := c.Lstat(p); err == nil && !inOwn(p) {
			t.Errorf("ATTACK: lstat %q: %v %d", p, fi.Mode(), fi.Size())
		}
		if f, err := c.Open(p); err == nil {
			b, _ := io.ReadAll(f)
			f.Close()
			if bytes.Contains(b, []byte("VICTIM")) || bytes.Contains(b, []byte("host file")) || !inOwn(p) {
				t.Errorf("ATTACK: read %q: %q", p, b)
			}
		}
		if ents, err := c.ReadDir(p); err == nil {
			for _, e := range ents {
				if e.Name() != "vast-2" && e.Name() != "incoming" && !inOwn(p) {
					t.Errorf("ATTACK: readdir %q lists %s", p, e.Name())
				}
			}
		}
		for _, fl := range []int{os.O_WRONLY | os.O_CREATE | os.O_TRUNC, os.O_WRONLY | os.O_APPEND, os.O_RDWR, os.O_RDWR | os.O_CREATE | os.O_EXCL, os.O_WRONLY} {
			if f, err := c.OpenFile(p, fl); err == nil {
				_, werr := f.Write([]byte("ATTACKER"))
				f.Close()
				try(fmt.Sprintf("open(%#x)+write(%v)", fl, werr), p, nil)
			}
		}
		try("truncate", p, c.Truncate(p, 1))
		try("chmod", p, c.Chmod(p, 0o777))
		try("chtimes", p, c.Chtimes(p, time.Unix(1, 0), time.Unix(1, 0)))
		try("chown", p, c.Chown(p, 0, 0))
		try("mkdir", p, c.Mkdir(p))
		try("mkdir sub", p+"/sub", c.Mkdir(p+"/sub"))
		try("rename from", p, c.Rename(p, "/incoming/vast-2/got"))
		_ = c.Remove("/incoming/vast-2/got")
		try("posix-rename from", p, c.PosixRename(p, "/incoming/vast-2/got"))
		_ = c.Remove("/incoming/vast-2/got")
		try("link from", p, c.Link(p, "/incoming/vast-2/got"))
		_ = c.Remove("/incoming/vast-2/got")
		try("rename onto", p, c.Rename(own, p))
		try("posix-rename onto", p, c.PosixRename(own, p))
		if _, err := c.Stat(own); err != nil { // moved: put it back for the next round
			_ = put(c, own, []byte("mine"))
		}
		try("link onto", p, c.Link(own, p))
		if err := c.Symlink(p, "/incoming/vast-2/sym"); err == nil {
			t.Errorf("ATTACK: symlink to %q made", p)
		}
		if err := c.Symlink("/incoming/vast-2/own", p); err == nil {
			t.Errorf("ATTACK: symlink at %q made", p)
		}
		if l, err := c.ReadLink(p); err == nil {
			t.Errorf("ATTACK: readlink %q = %q", p, l)
		}
		try("remove", p, c.Remove(p))
		try("rmdir", p, c.RemoveDirectory(p))
		if rp, err := c.RealPath(p); err == nil && !strings.HasPrefix(rp, "/") {
			t.Errorf("realpath %q = %q", p, rp)
		}
	}
	compareSnapshots(t, before, snapshot(t, base, filepath.Join(incoming, "vast-2")))
	if b, err := os.ReadFile(filepath.Join(incoming, "vast-1", "games", "a.db")); err != nil || string(b) != victimData {
		t.Fatalf("victim after the attacks: %q %v", b, err)
	}
	// Nothing in vast-2's tree shares an inode with vast-1's copy.
	var vst syscall.Stat_t
	if err := syscall.Stat(filepath.Join(incoming, "vast-1", "games", "a.db"), &vst); err != nil {
		t.Fatal(err)
	}
	_ = filepath.Walk(filepath.Join(incoming, "vast-2"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Sys().(*syscall.Stat_t).Ino == vst.Ino {
			t.Errorf("ATTACK: %s is a hard link of vast-1's copy", p)
		}
		return nil
	})
}

// TestAttackOwnRootEdges: operations on the node's directory itself and on
// the virtual directories above it ("/", "/incoming"): renaming, linking,
// removing or re-moding them, and odd Setstat values on its own files.
func TestAttackOwnRootEdges(t *testing.T) {
	base, incoming, _ := attackLayout(t)
	c := client(t, incoming, "vast-2")
	own := filepath.Join(incoming, "vast-2")
	if err := c.Mkdir("/incoming/vast-2/sub"); err != nil {
		t.Fatal(err)
	}
	if err := put(c, "/incoming/vast-2/f", []byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	outside := snapshot(t, base, own)
	root := "/incoming/vast-2"
	for name, err := range map[string]error{
		"rename root into itself":         c.Rename(root, root+"/sub/moved"),
		"rename root (trailing dot)":      c.Rename(root+"/.", root+"/moved"),
		"rename root via sub/..":          c.Rename(root+"/sub/..", root+"/moved"),
		"rename file onto root":           c.Rename(root+"/f", root),
		"posix-rename root":               c.PosixRename(root, root+"/moved"),
		"posix-rename onto root":          c.PosixRename(root+"/f", root),
		"posix-rename dir into its child": c.PosixRename(root+"/sub", root+"/sub/inner"),
		"link root":                       c.Link(root, root+"/rootlink"),
		"link onto root":                  c.Link(root+"/f", root),
		"link dir":                        c.Link(root+"/sub", root+"/sublink"),
		"remove root":                     c.Remove(root),
		"rmdir root":                      c.RemoveDirectory(root),
		"rmdir root/.":                    c.RemoveDirectory(root + "/."),
		"rmdir root/sub/..":               c.RemoveDirectory(root + "/sub/.."),
		"mkdir root":                      c.Mkdir(root),
		"truncate root":                   c.Truncate(root, 0),
	} {
		if err == nil {
			t.Errorf("%s: allowed", name)
		}
	}
	if fi, err := os.Lstat(own); err != nil || !fi.IsDir() {
		t.Fatalf("vast-2's directory after the attempts: %v %v", fi, err)
	}
	for _, p := range []string{"/", "/incoming", "//", "/incoming/"} {
		for what, err := range map[string]error{
			"chmod": c.Chmod(p, 0o777), "chmod 0": c.Chmod(p, 0), "chown": c.Chown(p, 0, 0),
			"chtimes": c.Chtimes(p, time.Unix(0, 0), time.Unix(0, 0)), "truncate": c.Truncate(p, 0),
			"remove": c.Remove(p), "rmdir": c.RemoveDirectory(p), "mkdir": c.Mkdir(p),
			"rename": c.Rename(p, root+"/x"), "posix-rename": c.PosixRename(p, root+"/x"), "link": c.Link(p, root+"/x"),
		} {
			if err == nil {
				t.Errorf("ATTACK: %s %q allowed", what, p)
			}
		}
	}
	compareSnapshots(t, outside, snapshot(t, base, own))

	// Modes: masked to 0750 (no setuid/setgid/sticky, nothing for others).
	if err := c.Chmod(root+"/f", 0o7777); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(own, "f")); fi.Mode() != 0o750 {
		t.Errorf("chmod 07777 gives %v, want -rwxr-x---", fi.Mode())
	}
	// chown is accepted and ignored.
	if err := c.Chown(root+"/f", 12345, 12345); err != nil {
		t.Logf("chown: %v", err)
	}
	if st, _ := os.Stat(filepath.Join(own, "f")); st.Sys().(*syscall.Stat_t).Uid == 12345 {
		t.Error("ATTACK: chown applied")
	}
	// The node may take all permissions from its own directory: allowed
	// (its own directory), but it locks itself out of later sessions, since
	// the server runs as the directory's owner (not observable here as root).
	if err := c.Chmod(root, 0); err == nil {
		fi, _ := os.Stat(own)
		t.Logf("NOTE: chmod 0 of the node's own directory accepted: now %v (self-lockout for later sessions)", fi.Mode())
		_ = os.Chmod(own, 0o750)
	}
	// A huge truncate: sparse, on the node's own file.
	if err := c.Truncate(root+"/f", 1<<40); err == nil {
		fi, _ := os.Stat(filepath.Join(own, "f"))
		t.Logf("NOTE: truncate to 1 TiB accepted (sparse file of apparent size %d on the target)", fi.Size())
	} else {
		t.Logf("truncate to 1 TiB: %v", err)
	}
	// Deeper than PATH_MAX: os.Root walks component by component.
	deep := root
	for i := 0; i < 300; i++ {
		deep += "/dddddddddddddddd"
	}
	if err := c.MkdirAll(deep); err == nil {
		t.Logf("NOTE: a directory tree %d bytes deep (over PATH_MAX 4096) can be made in the node's own directory", len(deep))
	} else {
		t.Logf("deep tree: %v", err)
	}
}

// raw is an SFTP v3 connection spoken by hand, for requests the client
// library does not send (odd flags, unknown extensions, NUL bytes).
type raw struct {
	t  *testing.T
	w  io.Writer
	r  io.Reader
	id uint32
}

func rawSession(t *testing.T, incoming, node string) (*raw, []string) {
	t.Helper()
	cr, sw := io.Pipe()
	sr, cw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- Serve(struct {
			io.Reader
			io.WriteCloser
		}{sr, sw}, incoming, node)
		sw.Close()
	}()
	t.Cleanup(func() {
		cw.Close()
		cr.Close()
		<-done
	})
	r := &raw{t: t, w: cw, r: cr}
	r.send(1, u32(3)) // SSH_FXP_INIT v3
	typ, body := r.recv()
	if typ != 2 {
		t.Fatalf("init answered with type %d", typ)
	}
	var exts []string
	body = body[4:] // version
	for len(body) > 0 {
		var n, v string
		n, body = str(body)
		v, body = str(body)
		exts = append(exts, n+"="+v)
	}
	return r, exts
}

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
func s(v string) []byte   { return append(u32(uint32(len(v))), v...) }
func str(b []byte) (string, []byte) {
	n := binary.BigEndian.Uint32(b)
	return string(b[4 : 4+n]), b[4+n:]
}

func (r *raw) send(typ byte, payload []byte) {
	pkt := append(u32(uint32(len(payload)+1)), typ)
	pkt = append(pkt, payload...)
	if _, err := r.w.Write(pkt); err != nil {
		r.t.Fatal(err)
	}
}

func (r *raw) recv() (byte, []byte) {
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(r.r, hdr); err != nil {
		r.t.Fatal(err)
	}
	body := make([]byte, binary.BigEndian.Uint32(hdr)-1)
	if _, err := io.ReadFull(r.r, body); err != nil {
		r.t.Fatal(err)
	}
	return hdr[4], body
}

// req sends a request with a fresh id and returns the reply type, and the
// status code for SSH_FXP_STATUS (else the body after the id).
func (r *raw) req(typ byte, parts ...[]byte) (byte, uint32, []byte) {
	r.id++
	payload := u32(r.id)
	for _, p := range parts {
		payload = append(payload, p...)
	}
	r.send(typ, payload)
	rt, body := r.recv()
	if binary.BigEndian.Uint32(body) != r.id {
		r.t.Fatalf("reply to id %d has id %d", r.id, binary.BigEndian.Uint32(body))
	}
	body = body[4:]
	if rt == 101 {
		return rt, binary.BigEndian.Uint32(body), body
	}
	return rt, 0, body
}

const (
	fxpOpen, fxpClose, fxpRead, fxpWrite, fxpSetstat, fxpFsetstat, fxpOpendir = 3, 4, 5, 6, 9, 10, 11
	fxpStat, fxpRename, fxpReadlink, fxpSymlink, fxpExtended                  = 17, 18, 19, 20, 200
	fxStatus, fxHandle, fxData, fxAttrs, fxExtReply                           = 101, 102, 103, 105, 201
	fxOK, fxOpUnsupported                                                     = 0, 8
)

// TestAttackRawRequests: what the server answers to extensions, odd open
// flags, Setstat through handles and NUL bytes, sent by hand.
func TestAttackRawRequests(t *testing.T) {
	base, incoming, _ := attackLayout(t)
	r, exts := rawSession(t, incoming, "vast-2")
	t.Logf("server advertises: %v", exts)
	if strings.Join(exts, " ") != "hardlink@openssh.com=1 posix-rename@openssh.com=1 statvfs@openssh.com=2" {
		t.Errorf("advertised extensions changed: %v", exts)
	}
	if rt, st, _ := r.req(fxpOpen, s("/incoming/vast-2/own"), u32(0x2|0x8), u32(0)); rt != fxHandle {
		t.Fatalf("create own file: type %d status %d", rt, st)
	}
	outside := snapshot(t, base, filepath.Join(incoming, "vast-2"))

	// Extensions beyond the advertised three (OpenSSH's own and others):
	// all unsupported, whatever they carry.
	victim := "/incoming/vast-1/games/a.db"
	for _, e := range []struct {
		name string
		data []byte
	}{
		{"fsync@openssh.com", s("\x00\x00\x00\x00")},
		{"lsetstat@openssh.com", append(s(victim), u32(4)...)},
		{"fstatvfs@openssh.com", s("x")},
		{"expand-path@openssh.com", s("~/../vast-1")},
		{"home-directory", s("ringmesh-sync")},
		{"copy-data", append(append(s("h"), make([]byte, 16)...), s("h2")...)},
		{"copy-file", append(s(victim), s("/incoming/vast-2/copy")...)},
		{"limits@openssh.com", nil},
		{"users-groups-by-id@openssh.com", append(u32(4), u32(0)...)},
		{"check-file-name", append(s(victim), s("sha256")...)},
		{"space-available", s(victim)},
		{"md5-hash", s(victim)},
		{"x-unknown@example.com", s(victim)},
		{"", nil},
	} {
		rt, st, _ := r.req(fxpExtended, s(e.name), e.data)
		if rt != fxStatus || st != fxOpUnsupported {
			t.Errorf("ATTACK?: extension %q answered type %d status %d", e.name, rt, st)
		}
	}
	// The three it has, aimed at vast-1.
	for name, data := range map[string][]byte{
		"hardlink@openssh.com":     append(s(victim), s("/incoming/vast-2/stolen")...),
		"posix-rename@openssh.com": append(s(victim), s("/incoming/vast-2/stolen")...),
	} {
		if rt, st, _ := r.req(fxpExtended, s(name), data); rt != fxStatus || st == fxOK {
			t.Errorf("ATTACK: %s on vast-1's copy: type %d status %d", name, rt, st)
		}
	}
	if rt, _, _ := r.req(fxpExtended, s("statvfs@openssh.com"), s("/incoming/vast-1")); rt != fxStatus {
		t.Errorf("ATTACK: statvfs of vast-1's directory answered")
	}
	if rt, _, _ := r.req(fxpExtended, s("statvfs@openssh.com"), s("/")); rt == fxExtReply {
		t.Log("NOTE: statvfs of / answers the whole file system's block and inode counts (what all nodes together use)")
	}

	// Open with odd pflags on vast-1's copy: none, append only, excl only,
	// every bit.
	for _, pf := range []uint32{0, 0x1, 0x2, 0x4, 0x8, 0x10, 0x20, 0x3f, 0xffffffff} {
		if rt, st, _ := r.req(fxpOpen, s(victim), u32(pf), u32(0)); rt != fxStatus || st == fxOK {
			t.Errorf("ATTACK: open vast-1's copy with pflags %#x: type %d", pf, rt)
		}
	}
	// pflags 0 on its own file: refused ("bad file flags"), not a handle.
	if rt, st, body := r.req(fxpOpen, s("/incoming/vast-2/own"), u32(0), u32(0)); rt != fxStatus {
		t.Errorf("open with pflags 0: type %d status %d %q", rt, st, body)
	}
	// Fsetstat/fstat on a handle of "/" (opendir): applied by path, so to
	// the virtual root: refused.
	rt, _, body := r.req(fxpOpendir, s("/"))
	if rt != fxHandle {
		t.Fatalf("opendir /: %d", rt)
	}
	h, _ := str(body)
	if rt, st, _ := r.req(fxpFsetstat, s(h), u32(4), u32(0o777)); rt != fxStatus || st == fxOK {
		t.Errorf("ATTACK: fsetstat on a handle of / accepted")
	}
	// Setstat with every attribute flag, including extended with junk.
	if rt, st, _ := r.req(fxpSetstat, s("/incoming"), u32(0x8000000f), make([]byte, 8), u32(0), u32(0), u32(0o777), u32(0), u32(0), u32(1), s("x"), s("y")); rt != fxStatus || st == fxOK {
		t.Errorf("ATTACK: setstat of /incoming with every flag accepted")
	}
	// SSH_FXP_SYMLINK (OpenSSH argument order) out of the directory, and
	// readlink.
	for _, args := range [][2]string{{"/incoming/vast-1", "/incoming/vast-2/l"}, {"/incoming/vast-2/l", "/incoming/vast-1"}, {"../vast-1", "/incoming/vast-2/l"}, {"/etc", "/incoming/vast-2/l"}} {
		if rt, st, _ := r.req(fxpSymlink, s(args[0]), s(args[1])); rt != fxStatus || st == fxOK {
			t.Errorf("ATTACK: symlink %v accepted", args)
		}
	}
	if rt, _, _ := r.req(fxpReadlink, s("/incoming/vast-2/own")); rt != fxStatus {
		t.Errorf("readlink answered")
	}
	// NUL bytes inside names that pass the lexical check.
	for _, p := range []string{"/incoming/vast-2/own\x00/../../vast-1/games/a.db", "/incoming/vast-2/\x00../vast-1/games/a.db"} {
		if rt, st, _ := r.req(fxpOpen, s(p), u32(0x1), u32(0)); rt == fxHandle {
			rt, _, body := r.req(fxpRead, s("x"), make([]byte, 8), u32(100))
			t.Errorf("ATTACK?: open %q gives a handle (read: %d %q)", p, rt, body)
		} else if st == fxOK {
			t.Errorf("open %q status OK", p)
		}
		if rt, st, _ := r.req(fxpRename, s("/incoming/vast-2/own"), s(p)); rt == fxStatus && st == fxOK {
			t.Errorf("ATTACK?: rename onto %q accepted", p)
		}
	}
	compareSnapshots(t, outside, snapshot(t, base, filepath.Join(incoming, "vast-2")))
}

// TestAttackConcurrentRenameRace: vast-2 renames its own directories back
// and forth while it stats, opens and lists paths through them, so that a
// rel() mapping made before a rename meets a changed tree in os.Root. It
// never reaches vast-1 (os.Root resolves each request from the root fd).
func TestAttackConcurrentRenameRace(t *testing.T) {
	base, incoming, _ := attackLayout(t)
	own := filepath.Join(incoming, "vast-2")
	c := client(t, incoming, "vast-2")
	c2 := client(t, incoming, "vast-2")
	if err := c.MkdirAll("/incoming/vast-2/a/b"); err != nil {
		t.Fatal(err)
	}
	outside := snapshot(t, base, own)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_ = c2.PosixRename("/incoming/vast-2/a/b", "/incoming/vast-2/b")
			_ = c2.PosixRename("/incoming/vast-2/b", "/incoming/vast-2/a/b")
		}
	}()
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		for _, p := range []string{"/incoming/vast-2/a/b/../../../vast-1/games/a.db", "/incoming/vast-2/b/../vast-1/games/a.db", "/incoming/vast-2/a/b/../../vast-1"} {
			if f, err := c.Open(p); err == nil {
				b, _ := io.ReadAll(f)
				f.Close()
				t.Errorf("ATTACK: read %q: %q", p, b)
			}
			if _, err := c.ReadDir(p); err == nil {
				t.Errorf("ATTACK: listed %q", p)
			}
		}
	}
	close(stop)
	<-done
	compareSnapshots(t, outside, snapshot(t, base, own))
}

// TestAttackServeDirSwapRace: a writer of the incoming directory (a session
// of a certificate with the old force-command=internal-sftp, or any process
// of the shared account) swaps the node's directory for a symlink to
// another node's directory over and over while sessions start. Serve must
// never serve the other directory: it checks the directory it opened is
// the one it found to be a directory (same inode). Before that check,
// vast-3's session was served from vast-2/bait after ~800 sessions.
func TestAttackServeDirSwapRace(t *testing.T) {
	_, incoming, _ := attackLayout(t)
	bait := filepath.Join(incoming, "vast-2", "bait")
	if err := os.MkdirAll(bait, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bait, "marker"), []byte("vast-2 reads this"), 0o640); err != nil {
		t.Fatal(err)
	}
	victimDir := filepath.Join(incoming, "vast-3")
	if err := os.Mkdir(victimDir, 0o750); err != nil {
		t.Fatal(err)
	}
	alt := filepath.Join(incoming, ".alt")
	if err := os.Symlink("vast-2/bait", alt); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			_ = unix.Renameat2(unix.AT_FDCWD, victimDir, unix.AT_FDCWD, alt, unix.RENAME_EXCHANGE)
		}
	}()
	defer func() { close(stop); <-done }()
	tries, refused := 0, 0
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		tries++
		won, err := serveOnceSeesMarker(incoming, "vast-3")
		if err != nil {
			refused++
			continue
		}
		if won {
			t.Fatalf("ATTACK: after %d sessions (%d refused), vast-3's session was served from vast-2/bait: /incoming/vast-3/marker is vast-2's file", tries, refused)
		}
	}
	t.Logf("race not won in %d sessions (%d refused: symlink seen by Lstat)", tries, refused)
}

// serveOnceSeesMarker runs one session of node and reports whether it sees
// /incoming/<node>/marker.
func serveOnceSeesMarker(incoming, node string) (bool, error) {
	cr, sw := io.Pipe()
	sr, cw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := Serve(struct {
			io.Reader
			io.WriteCloser
		}{sr, sw}, incoming, node)
		sw.CloseWithError(errors.New("served"))
		sr.Close() // a client still writing its init gets an error
		done <- err
	}()
	defer func() { cw.Close(); cr.Close(); <-done }()
	c, err := sftp.NewClientPipe(cr, cw)
	if err != nil {
		return false, err
	}
	defer c.Close()
	_, err = c.Stat("/incoming/" + node + "/marker")
	return err == nil, nil
}
