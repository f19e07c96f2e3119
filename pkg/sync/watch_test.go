package meshsync

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ringmesh/ringmesh/internal/testutil"
)

func openTestManifest(t *testing.T, sources []Source) *Manifest {
	t.Helper()
	m, err := OpenManifest(filepath.Join(t.TempDir(), "m.db"), ManifestOptions{Sources: sources})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// A file written after the last scan is counted in the RPO within about a
// second through inotify, at its current size, without a scan; a file in a
// directory created after Watch started is seen too, and so is a database
// whose commits land only in its -wal file.
func TestWatchSeesNewAndChangedFilesWithoutScan(t *testing.T) {
	dir := t.TempDir()
	games := filepath.Join(dir, "games")
	train := filepath.Join(dir, "training")
	for _, d := range []string{games, train} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	m := openTestManifest(t, []Source{
		{Name: "games", Class: ClassDB, Root: games, Globs: []string{"**/*.db"}},
		{Name: "training", Class: ClassNPZ, Root: train, Globs: []string{"**/*.npz"}},
	})
	writeRandom(t, filepath.Join(train, "old.npz"), 1000, 1)
	if _, err := m.Scan(context.Background(), ScanOptions{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- m.Watch(ctx, WatchOptions{Debounce: 50 * time.Millisecond, FallbackInterval: time.Hour})
	}()
	defer func() {
		cancel()
		if err := <-done; err != context.Canceled {
			t.Errorf("Watch returned %v, want context.Canceled", err)
		}
	}()
	rpoHas := func(files int, bytes int64) func() bool {
		return func() bool {
			r := m.RPO(time.Now())
			return r.UnsyncedFiles == files && r.UnsyncedBytes == bytes
		}
	}
	// Watch arms before it is ready; retry the write until it is seen.
	testutil.EventuallyTrue(t, 10*time.Second, "old.npz counted", rpoHas(1, 1000))

	// New file in an existing directory.
	time.Sleep(100 * time.Millisecond) // let the watch on train be in place
	writeRandom(t, filepath.Join(train, "new.npz"), 5000, 2)
	testutil.EventuallyTrue(t, 10*time.Second, "new.npz counted without a scan", rpoHas(2, 6000))

	// New file in a new subdirectory.
	writeRandom(t, filepath.Join(train, "sub", "deep", "x.npz"), 7000, 3)
	testutil.EventuallyTrue(t, 10*time.Second, "file in a new directory counted", rpoHas(3, 13000))

	// Not covered by a glob: ignored.
	writeRandom(t, filepath.Join(train, "notes.txt"), 100, 4)

	// A database and then a commit that only grows its -wal.
	writeRandom(t, filepath.Join(games, "g.db"), 4096, 5)
	testutil.EventuallyTrue(t, 10*time.Second, "g.db counted", rpoHas(4, 13000+4096))
	e, _ := m.Entry(filepath.Join(games, "g.db"))
	writeRandom(t, filepath.Join(games, "g.db-wal"), 999, 6)
	testutil.EventuallyTrue(t, 10*time.Second, "-wal change recorded on g.db", func() bool {
		n, _ := m.Entry(filepath.Join(games, "g.db"))
		return n.WALSize == 999 && !n.Version.Equal(e.Version)
	})
	if r := m.RPO(time.Now()); r.UnsyncedFiles != 4 {
		t.Fatalf("RPO after the -wal write: %+v, want 4 files (notes.txt and -wal are no entries)", r)
	}
}

// FreshRPO counts what the manifest has not recorded yet, at its current
// size, and does not change the manifest.
func TestFreshRPOCountsUnrecordedFiles(t *testing.T) {
	dir := t.TempDir()
	m := openTestManifest(t, []Source{{Name: "training", Class: ClassNPZ, Root: dir}})
	writeRandom(t, filepath.Join(dir, "a.npz"), 1000, 1)
	if _, err := m.Scan(context.Background(), ScanOptions{}); err != nil {
		t.Fatal(err)
	}
	// a.npz is verified on two targets: synced.
	e, _ := m.Entry(filepath.Join(dir, "a.npz"))
	for _, n := range []string{"t1", "t2"} {
		if err := m.RecordReceipt(e.Path, Receipt{NodeID: n, SHA256: e.SHA256, Size: e.Size}); err != nil {
			t.Fatal(err)
		}
	}
	if r := m.RPO(time.Now()); !r.Zero() {
		t.Fatalf("after receipts RPO = %+v, want zero", r)
	}
	// Written after the scan: the recorded RPO does not know, FreshRPO does.
	writeRandom(t, filepath.Join(dir, "b.npz"), 2500, 2)
	writeRandom(t, filepath.Join(dir, "a.npz"), 1200, 3) // changed too
	if r := m.RPO(time.Now()); !r.Zero() {
		t.Fatalf("recorded RPO changed without a scan: %+v", r)
	}
	r, err := m.FreshRPO(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if r.UnsyncedFiles != 2 || r.UnsyncedBytes != 3700 || r.Zero() {
		t.Fatalf("FreshRPO = %+v, want 2 files, 3700 bytes", r)
	}
	if _, ok := m.Entry(filepath.Join(dir, "b.npz")); ok {
		t.Fatal("FreshRPO added an entry; it must only measure")
	}
	// An unreadable directory makes the figure unknowable: error.
	if os.Geteuid() != 0 {
		sub := filepath.Join(dir, "locked")
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(sub, 0); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(sub, 0o755)
		if _, err := m.FreshRPO(context.Background()); err == nil {
			t.Fatal("FreshRPO with an unreadable directory: want an error")
		}
	}
}
