package meshsync

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ringmesh/ringmesh/pkg/sync/sshtest"
)

// TestShadowSnapshotWritesOnlyChangedPages: the shadow copy of a database
// is a consistent standalone database after every snapshot, and after the
// first one only the pages that changed are written: a multi-MB database
// with 100 new rows costs a few pages, not a copy.
func TestShadowSnapshotWritesOnlyChangedPages(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	dir := t.TempDir()
	src := filepath.Join(dir, "games.db")
	db := createGameDB(t, src, 10000) // ~10 MB
	sh := newDBShadow(filepath.Join(dir, "snapshots"), src)

	check := func(snap Snapshot, rows int64) {
		t.Helper()
		if snap.Path != sh.path || snap.Method != "pages" {
			t.Fatalf("snapshot %s by %q, want the shadow %s by pages", snap.Path, snap.Method, sh.path)
		}
		if got := fileSHA(t, snap.Path); got != snap.SHA256 {
			t.Fatalf("shadow hashes to %s, snapshot says %s", got, snap.SHA256)
		}
		if fi, err := os.Stat(snap.Path); err != nil || fi.Size() != snap.Size || snap.Size != snap.Pages.Size {
			t.Fatalf("shadow: stat %v, %v; snapshot size %d, page map %d", fi, err, snap.Size, snap.Pages.Size)
		}
		if got := checkRemoteDB(t, snap.Path); got != rows {
			t.Fatalf("shadow holds %d rows, want %d", got, rows)
		}
	}

	first, err := sh.snapshot(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	check(first, 10000)
	if first.Written != first.Size {
		t.Fatalf("first snapshot wrote %d of %d bytes, want all", first.Written, first.Size)
	}
	for i := 1; i <= 3; i++ {
		insertRows(t, db, 100)
		snap, err := sh.snapshot(ctx, src)
		if err != nil {
			t.Fatal(err)
		}
		check(snap, int64(10000+100*i))
		if snap.Written*20 >= snap.Size {
			t.Fatalf("100 rows: wrote %d of %d bytes, want under 5 %%", snap.Written, snap.Size)
		}
		t.Logf("100 rows: %d of %d bytes written (%.2f %%)", snap.Written, snap.Size, 100*float64(snap.Written)/float64(snap.Size))
	}

	// The backup API's copy of the same state holds the same rows.
	bk, err := SnapshotSQLite(ctx, src, filepath.Join(dir, "backup"))
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(bk.Path)
	if got := checkRemoteDB(t, bk.Path); got != 10300 {
		t.Fatalf("backup snapshot holds %d rows", got)
	}

	// The database shrinks: the shadow is truncated with it.
	if _, err := db.Exec("DELETE FROM games WHERE id > 2000"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("VACUUM"); err != nil {
		t.Fatal(err)
	}
	small, err := sh.snapshot(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	check(small, 2000)
	if small.Size >= first.Size/2 {
		t.Fatalf("after VACUUM the shadow is %d bytes, first was %d", small.Size, first.Size)
	}

	// A restart knows nothing of the shadow file left behind: all of it is
	// rewritten, to the same bytes.
	again := newDBShadow(filepath.Join(dir, "snapshots"), src)
	re, err := again.snapshot(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	if re.Path != small.Path || re.SHA256 != small.SHA256 || re.Written != re.Size {
		t.Fatalf("after a restart: %s %s wrote %d of %d; before %s %s", re.Path, re.SHA256, re.Written, re.Size, small.Path, small.SHA256)
	}
}

// TestShadowSnapshotWhileWriting: snapshots taken while another connection
// commits all the time are each a consistent database holding at least
// every row committed before the snapshot began.
func TestShadowSnapshotWhileWriting(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	dir := t.TempDir()
	src := filepath.Join(dir, "games.db")
	createGameDB(t, src, 2000)
	w, err := sql.Open("sqlite", src+"?_pragma=busy_timeout(30000)")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.SetMaxOpenConns(1)
	var committed atomic.Int64
	committed.Store(2000)
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for wctx.Err() == nil {
			if _, err := w.ExecContext(wctx, "INSERT INTO games (payload) VALUES (randomblob(900))"); err != nil {
				if wctx.Err() == nil {
					t.Errorf("writer: %v", err)
				}
				return
			}
			committed.Add(1)
		}
	})
	defer func() { stop(); wg.Wait() }()
	sh := newDBShadow(filepath.Join(dir, "snapshots"), src)
	last := int64(0)
	for i := 0; i < 6; i++ {
		before := committed.Load()
		snap, err := sh.snapshot(ctx, src)
		if err != nil {
			t.Fatal(err)
		}
		rows := checkRemoteDB(t, snap.Path)
		if rows < before || rows < last {
			t.Fatalf("snapshot %d holds %d rows; %d were committed before it began, the previous held %d", i, rows, before, last)
		}
		if got := fileSHA(t, snap.Path); got != snap.SHA256 {
			t.Fatalf("snapshot %d: shadow hashes to %s, snapshot says %s", i, got, snap.SHA256)
		}
		last = rows
	}
	if last <= 2000 {
		t.Fatalf("the writer committed nothing the snapshots saw (%d rows)", last)
	}
}

// TestDBDeltaVerifiesWrittenPages: on a target without sha256sum (as a
// chrooted SFTP account is), a page delta is verified by reading back only
// the pages written while the whole copy was verified within
// DBFullVerifyInterval; once that is older, the whole copy is read back,
// and a copy damaged on the target is caught and replaced.
func TestDBDeltaVerifiesWrittenPages(t *testing.T) {
	o := sshtest.StartOpenSSH(t)
	ctx := testCtx(t, 3*time.Minute)
	var now atomic.Int64
	now.Store(time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	dir := t.TempDir()
	r := &deltaRig{t: t, o: o, target: openSSHTarget(o, "hetzner-1"),
		src: filepath.Join(dir, "games.db"), snaps: filepath.Join(dir, "snapshots"), state: filepath.Join(dir, "dbdelta"),
		remote: filepath.Join(o.Dir, "store", "vast-1", "games", "games.db"),
		// No remote hashing (what a chrooted internal-sftp account gives).
		opts: SFTPOptions{ExecHashMinSize: 1 << 62, DBFullVerifyInterval: time.Hour, Now: clock}}
	r.shadow = newDBShadow(r.snaps, r.src)
	r.newTransport()
	db := createGameDB(t, r.src, 10000)

	rc, _ := r.mustPush(ctx)
	if rc.VerifiedBy != "read back" {
		t.Fatalf("first push verified by %q, want read back", rc.VerifiedBy)
	}
	insertRows(t, db, 100)
	r.mustPush(ctx) // fills the spare
	for i := 0; i < 2; i++ {
		now.Add(int64(10 * time.Minute))
		insertRows(t, db, 100)
		rc, snap := r.mustPush(ctx)
		if !rc.Delta || rc.VerifiedBy != "written pages" || rc.BytesSent*20 >= snap.Size {
			t.Fatalf("delta push %d: receipt %+v of %d bytes, want a small delta verified by its written pages", i, rc, snap.Size)
		}
		if got := checkRemoteDB(t, r.remote); got != int64(10000+100*(i+2)) {
			t.Fatalf("target copy has %d rows", got)
		}
	}

	// Damage a page of the spare that no delta rewrites (old rows), then
	// let the full-verification interval pass.
	spare := r.remote + SpareSuffix
	fi, err := os.Stat(spare)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(spare, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("damaged on the target"), fi.Size()/2+100); err != nil {
		t.Fatal(err)
	}
	f.Close()
	now.Add(int64(2 * time.Hour))
	insertRows(t, db, 100)
	rc, _ = r.mustPush(ctx) // checks that the copy in place is the snapshot
	if rc.Delta || rc.VerifiedBy != "read back" {
		t.Fatalf("push after the interval, spare damaged: receipt %+v, want a whole copy read back", rc)
	}
	if got := checkRemoteDB(t, r.remote); got != 10400 {
		t.Fatalf("target copy has %d rows", got)
	}
}

// TestFlushReportsDatabaseChangedAfterCopy: a database committed to between
// the flush's scan and its snapshot is copied, but the copy is of a newer
// version than the scan saw, so it does not count as a copy of the file the
// flush reports on. It is reported as missed with reason "changed" and the
// copy made, not as "not started before the deadline" (what the drill
// showed for a database written until SIGTERM).
func TestFlushReportsDatabaseChangedAfterCopy(t *testing.T) {
	f := newEngineFixture(t, 1)
	dbp := f.db(t, "games/selfplay.db", 50)
	w, err := sql.Open("sqlite", dbp+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	tr := newFakeTransport(0)
	var once sync.Once
	tr.fail = func(lf LocalFile, _ Target) error {
		if strings.HasSuffix(lf.RemoteName, "selfplay.db") {
			return nil
		}
		// The flush manifest goes first, after the scan: the trainer
		// commits meanwhile.
		once.Do(func() {
			if _, err := w.Exec("INSERT INTO games (moves, note) VALUES (randomblob(100), 'after the scan')"); err != nil {
				t.Errorf("write after the scan: %v", err)
			}
		})
		return nil
	}
	eng, err := NewEngine(EngineConfig{NodeID: "vast-2", Manifest: f.m, Transport: tr, StateDir: filepath.Join(f.dir, "state"),
		Targets: func() []Target { return []Target{{NodeID: "hetzner-cpu1"}} }})
	if err != nil {
		t.Fatal(err)
	}
	res := eng.Flush(testCtx(t, time.Minute), time.Now().Add(30*time.Second))
	var got *FlushFile
	for i := range res.Missed {
		if res.Missed[i].Path == dbp {
			got = &res.Missed[i]
		}
	}
	if got == nil {
		t.Fatalf("the database written after the scan is not missed: made %+v, missed %+v", res.Made, res.Missed)
	}
	if got.Reason != ReasonChanged || !strings.Contains(got.Detail, "copied to hetzner-cpu1, but") {
		t.Fatalf("database missed with %q: %q, want %q with the copy made", got.Reason, got.Detail, ReasonChanged)
	}
	// The second pass does not send the same target the database again:
	// the copy would be just as new.
	tr.mu.Lock()
	defer tr.mu.Unlock()
	pushes := 0
	for _, l := range tr.log {
		if strings.HasSuffix(l, "selfplay.db") {
			pushes++
		}
	}
	if pushes != 1 {
		t.Fatalf("the database was pushed %d times to the one target, want once: %q", pushes, tr.log)
	}
}

// TestEngineKeepsAndPrunesShadows: the engine's pushes of a database go
// through its shadow copy in the state directory, the copy on the target is
// the snapshot, and once the database is gone the next cycle removes the
// shadow.
func TestEngineKeepsAndPrunesShadows(t *testing.T) {
	f := newEngineFixture(t, 1)
	dbp := f.db(t, "games/selfplay.db", 50)
	tr := newFakeTransport(0)
	state := filepath.Join(f.dir, "state")
	eng, err := NewEngine(EngineConfig{NodeID: "vast-2", Manifest: f.m, Transport: tr, StateDir: state,
		Targets: func() []Target { return []Target{{NodeID: "hetzner-cpu1"}} }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t, time.Minute)
	if _, err := eng.SyncNow(ctx, nil); err != nil {
		t.Fatal(err)
	}
	shadows, _ := filepath.Glob(filepath.Join(state, "snapshots", "*.shadow"))
	if len(shadows) != 1 {
		t.Fatalf("shadow copies after a cycle: %v, want one", shadows)
	}
	if got := checkRemoteDB(t, shadows[0]); got < 50 {
		t.Fatalf("shadow holds %d rows", got)
	}
	var ent FileEntry
	for _, e := range f.m.Entries() {
		if e.Path == dbp {
			ent = e
		}
	}
	if len(ent.Receipts) != 1 || ent.Receipts["hetzner-cpu1"].SHA256 != fileSHA(t, shadows[0]) {
		t.Fatalf("receipts %+v, want one of the shadow's SHA-256 %s", ent.Receipts, fileSHA(t, shadows[0]))
	}
	for _, s := range []string{"", "-wal", "-shm"} {
		if err := os.Remove(dbp + s); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	if _, err := eng.SyncNow(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(state, "snapshots", "*")); len(left) != 0 {
		t.Fatalf("after the database was deleted: %v left in the snapshot directory", left)
	}
}
