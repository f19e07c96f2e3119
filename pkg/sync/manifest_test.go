package meshsync

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock for manifest tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func writeAt(t *testing.T, p, content string, mtime time.Time) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

type manifestFixture struct {
	dir     string
	sources []Source
	clock   *fakeClock
	t0      time.Time
}

func newManifestFixture(t *testing.T) *manifestFixture {
	dir := t.TempDir()
	t0 := time.Date(2026, 11, 29, 14, 0, 0, 0, time.UTC)
	f := &manifestFixture{dir: dir, clock: &fakeClock{t: t0.Add(time.Hour)}, t0: t0}
	f.sources = []Source{
		{Class: ClassCheckpoint, Root: filepath.Join(dir, "ckpt"), Globs: []string{"*.pt"}, Priority: 1},
		{Class: ClassDB, Root: filepath.Join(dir, "games"), Globs: []string{"*.db"}},
		{Class: ClassNPZ, Root: filepath.Join(dir, "training"), Globs: []string{"**/*.npz"}},
		{Class: ClassModel, Root: filepath.Join(dir, "models-not-created-yet")},
	}
	writeAt(t, filepath.Join(dir, "ckpt/a.pt"), "aaaa", t0)
	writeAt(t, filepath.Join(dir, "ckpt/b.pt"), "bbbbbbbb", t0.Add(time.Minute))
	writeAt(t, filepath.Join(dir, "ckpt/notes.txt"), "not matched", t0)
	writeAt(t, filepath.Join(dir, "games/g.db"), "sqlite-ish", t0)
	writeAt(t, filepath.Join(dir, "games/g.db-wal"), "wal", t0)
	writeAt(t, filepath.Join(dir, "games/g.db-shm"), "shm", t0)
	writeAt(t, filepath.Join(dir, "training/hex8/x.npz"), "npz!", t0.Add(2*time.Minute))
	return f
}

func (f *manifestFixture) open(t *testing.T, repl int) *Manifest {
	t.Helper()
	m, err := OpenManifest(filepath.Join(f.dir, "state/manifest.db"), ManifestOptions{Sources: f.sources, ReplicationTarget: repl, Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestManifestIncrementalScan(t *testing.T) {
	f := newManifestFixture(t)
	m := f.open(t, 2)
	defer m.Close()
	ctx := context.Background()

	st, err := m.Scan(ctx, ScanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st.New != 4 || st.Hashed != 3 || st.Files != 4 || len(st.Errors) != 0 {
		t.Fatalf("first scan %+v, want 4 new (a.pt b.pt g.db x.npz), 3 hashed (databases are not), no errors", st)
	}
	if n, _ := m.HashStats(); n != 3 {
		t.Fatalf("hash count %d, want 3", n)
	}
	a, ok := m.Entry(filepath.Join(f.dir, "ckpt/a.pt"))
	if !ok || a.SHA256 != "61be55a8e2f6b4e172338bddf184d6dbee29c98853e0a0485ecee7f27b9af0b4" || a.Size != 4 || a.Class != ClassCheckpoint || a.Priority != 1 {
		t.Fatalf("a.pt entry %+v", a)
	}
	x, _ := m.Entry(filepath.Join(f.dir, "training/hex8/x.npz"))
	if x.RelPath != "hex8/x.npz" || x.Source != "npz" || x.RemoteName("vast-1") != "vast-1/npz/hex8/x.npz" {
		t.Fatalf("x.npz entry %+v", x)
	}
	g, _ := m.Entry(filepath.Join(f.dir, "games/g.db"))
	if g.SHA256 != "" || g.WALSize != 3 {
		t.Fatalf("g.db entry %+v: databases are not hashed by the scan and carry their -wal version", g)
	}

	// Nothing changed: nothing is read.
	st, err = m.Scan(ctx, ScanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Hashed != 0 || st.New+st.Changed+st.Removed != 0 {
		t.Fatalf("unchanged rescan %+v, want no hashing and no changes", st)
	}
	if n, _ := m.HashStats(); n != 3 {
		t.Fatalf("hash count %d after unchanged rescan, want still 3", n)
	}

	// One content change, one touch (same content), one -wal append, one removal.
	writeAt(t, filepath.Join(f.dir, "ckpt/b.pt"), "BBBBBBBBB", f.t0.Add(3*time.Minute))
	writeAt(t, filepath.Join(f.dir, "ckpt/a.pt"), "aaaa", f.t0.Add(4*time.Minute))
	writeAt(t, filepath.Join(f.dir, "games/g.db-wal"), "wal+more", f.t0.Add(5*time.Minute))
	if err := os.Remove(filepath.Join(f.dir, "training/hex8/x.npz")); err != nil {
		t.Fatal(err)
	}
	st, err = m.Scan(ctx, ScanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Changed != 3 || st.Removed != 1 || st.Hashed != 2 || st.Files != 3 {
		t.Fatalf("rescan %+v, want 3 changed (b.pt, a.pt, g.db via -wal), 1 removed, 2 hashed", st)
	}
	a2, _ := m.Entry(filepath.Join(f.dir, "ckpt/a.pt"))
	if a2.SHA256 != a.SHA256 {
		t.Fatalf("touched file hash changed")
	}

	// SkipHash records changes without reading.
	writeAt(t, filepath.Join(f.dir, "ckpt/c.pt"), "cc", f.t0.Add(6*time.Minute))
	st, err = m.Scan(ctx, ScanOptions{SkipHash: true})
	if err != nil || st.New != 1 || st.Hashed != 0 {
		t.Fatalf("stat-only scan %+v %v", st, err)
	}
	c, _ := m.Entry(filepath.Join(f.dir, "ckpt/c.pt"))
	if c.SHA256 != "" {
		t.Fatalf("stat-only scan hashed c.pt")
	}
	// ... and the next hashing scan catches up.
	st, _ = m.Scan(ctx, ScanOptions{})
	if st.Hashed != 1 {
		t.Fatalf("catch-up scan hashed %d, want 1", st.Hashed)
	}
}

func TestManifestPersistsAcrossReopen(t *testing.T) {
	f := newManifestFixture(t)
	m := f.open(t, 2)
	if _, err := m.Scan(context.Background(), ScanOptions{}); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(f.dir, "ckpt/a.pt")
	a, _ := m.Entry(p)
	rc := Receipt{NodeID: "hetzner-cpu1", SHA256: a.SHA256, Size: a.Size, VerifiedAt: f.clock.Now(), SourceSize: a.Size, SourceModTime: a.ModTime}
	if err := m.RecordReceipt(p, rc); err != nil {
		t.Fatal(err)
	}

	// A second opener is refused while the first holds the file.
	if _, err := OpenManifest(filepath.Join(f.dir, "state/manifest.db"), ManifestOptions{Sources: f.sources}); err == nil ||
		!strings.Contains(err.Error(), "locked") {
		t.Fatalf("second open: %v, want a 'locked' error", err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	m2 := f.open(t, 2)
	defer m2.Close()
	a2, ok := m2.Entry(p)
	if !ok || a2.SHA256 != a.SHA256 || len(a2.Receipts) != 1 || !a2.ValidReceipt(a2.Receipts["hetzner-cpu1"]) {
		t.Fatalf("after reopen: %+v", a2)
	}
	st, err := m2.Scan(context.Background(), ScanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Hashed != 0 || st.New != 0 || st.Changed != 0 {
		t.Fatalf("scan after reopen %+v, want nothing re-hashed", st)
	}
}

func TestManifestRPO(t *testing.T) {
	f := newManifestFixture(t)
	m := f.open(t, 2)
	defer m.Close()
	ctx := context.Background()
	if r := m.RPO(f.clock.Now()); r.Zero() || !r.ScannedAt.IsZero() {
		t.Fatalf("RPO before the first scan %+v must not read as zero", r)
	}
	if _, err := m.Scan(ctx, ScanOptions{}); err != nil {
		t.Fatal(err)
	}
	now := f.clock.Now() // t0 + 1h
	r := m.RPO(now)
	// a.pt 4 + b.pt 8 + g.db 10 + x.npz 4 bytes, all unsynced; oldest data: mtime t0.
	if r.UnsyncedFiles != 4 || r.UnsyncedBytes != 26 || r.TotalBytes != 26 || r.ReplicationTarget != 2 || r.Zero() {
		t.Fatalf("RPO %+v", r)
	}
	if r.OldestUnsyncedAgeSeconds != 3600 || r.OldestUnsynced != filepath.Join(f.dir, "ckpt/a.pt") {
		t.Fatalf("oldest %q age %v s, want a.pt (first by path among t0 files) 3600 s", r.OldestUnsynced, r.OldestUnsyncedAgeSeconds)
	}

	receipt := func(p, node string) {
		t.Helper()
		e, _ := m.Entry(p)
		rc := Receipt{NodeID: node, SHA256: e.SHA256, Size: e.Size, SourceSize: e.Size, SourceModTime: e.ModTime,
			SourceWALSize: e.WALSize, SourceWALModTime: e.WALModTime}
		if e.Class == ClassDB {
			rc.SHA256 = "snapshot-sha"
		}
		if err := m.RecordReceipt(p, rc); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"ckpt/a.pt", "ckpt/b.pt", "games/g.db", "training/hex8/x.npz"} {
		receipt(filepath.Join(f.dir, p), "t1")
	}
	if r := m.RPO(now); r.UnsyncedFiles != 4 {
		t.Fatalf("one copy each but replication 2: %+v", r)
	}
	for _, p := range []string{"ckpt/a.pt", "ckpt/b.pt", "games/g.db"} {
		receipt(filepath.Join(f.dir, p), "t2")
	}
	r = m.RPO(now)
	if r.UnsyncedFiles != 1 || r.UnsyncedBytes != 4 || r.OldestUnsynced != filepath.Join(f.dir, "training/hex8/x.npz") ||
		r.OldestUnsyncedAgeSeconds != 3600-120 {
		t.Fatalf("RPO %+v, want only x.npz (mtime t0+2m)", r)
	}
	receipt(filepath.Join(f.dir, "training/hex8/x.npz"), "t2")
	if r := m.RPO(now); !r.Zero() || r.UnsyncedBytes != 0 || r.OldestUnsyncedAgeSeconds != 0 {
		t.Fatalf("all synced: %+v", r)
	}

	// A change invalidates the receipts; the age counts from the change.
	f.clock.Advance(10 * time.Minute)
	writeAt(t, filepath.Join(f.dir, "ckpt/b.pt"), "changed!!", f.clock.Now().Add(-30*time.Second))
	// A database commit in WAL mode only touches -wal: also a change.
	writeAt(t, filepath.Join(f.dir, "games/g.db-wal"), "wal2", f.clock.Now().Add(-20*time.Second))
	if _, err := m.Scan(ctx, ScanOptions{}); err != nil {
		t.Fatal(err)
	}
	r = m.RPO(f.clock.Now())
	// b.pt counts from its new mtime (it is sent whole, as it is now). The
	// database's first commit since it was in sync may be older than the
	// -wal mtime (the last one): it counts from the last complete scan that
	// saw it unchanged, 10 min ago.
	if r.UnsyncedFiles != 2 || r.UnsyncedBytes != 9+10 || r.OldestUnsyncedAgeSeconds != 600 ||
		r.OldestUnsynced != filepath.Join(f.dir, "games/g.db") {
		t.Fatalf("after change: %+v, want b.pt and g.db unsynced, oldest g.db 600 s", r)
	}
	if b, _ := m.Entry(filepath.Join(f.dir, "ckpt/b.pt")); !b.DirtySince.Equal(f.clock.Now().Add(-30 * time.Second)) {
		t.Fatalf("b.pt dirty since %s, want its mtime", b.DirtySince)
	}
	// A receipt for the old version does not count.
	b, _ := m.Entry(filepath.Join(f.dir, "ckpt/b.pt"))
	if b.VerifiedCopies() != 0 {
		t.Fatalf("stale receipts still count: %+v", b.Receipts)
	}
	// Forgetting a terminated target.
	if err := m.ForgetTarget("t2"); err != nil {
		t.Fatal(err)
	}
	if r := m.RPO(f.clock.Now()); r.UnsyncedFiles != 4 {
		t.Fatalf("after forgetting t2: %+v", r)
	}
}

func TestManifestSourceValidation(t *testing.T) {
	dir := t.TempDir()
	bad := [][]Source{
		{{Class: "games", Root: dir}},
		{{Class: ClassDB}},
		{{Class: ClassDB, Root: dir}, {Class: ClassDB, Root: dir + "/x"}},
		{{Class: ClassDB, Root: dir, Name: "a/b"}},
		{{Class: ClassDB, Root: dir, Globs: []string{"[x"}}},
	}
	for i, s := range bad {
		if m, err := OpenManifest(filepath.Join(dir, "m.db"), ManifestOptions{Sources: s}); err == nil {
			m.Close()
			t.Errorf("case %d: sources %+v accepted", i, s)
		}
	}
}

func TestMatchGlob(t *testing.T) {
	cases := []struct {
		pat, rel string
		want     bool
	}{
		{"*.db", "games.db", true},
		{"*.db", "sub/dir/games.db", true},
		{"*.db", "games.db-wal", false},
		{"**/*.npz", "a.npz", true},
		{"**/*.npz", "x/y/a.npz", true},
		{"models/**", "models/a/b.pt", true},
		{"models/**", "other/a.pt", false},
		{"a/*/c.pt", "a/b/c.pt", true},
		{"a/*/c.pt", "a/b/x/c.pt", false},
		{"a/**/c.pt", "a/c.pt", true},
	}
	for _, c := range cases {
		if got := matchGlob(c.pat, c.rel); got != c.want {
			t.Errorf("matchGlob(%q, %q) = %v, want %v", c.pat, c.rel, got, c.want)
		}
	}
}
