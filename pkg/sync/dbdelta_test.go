package meshsync

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ringmesh/ringmesh/internal/testutil"
	"github.com/ringmesh/ringmesh/pkg/sync/sshtest"
)

const deltaRowBytes = 1000

// createGameDB makes a WAL-mode database at p with rows 1..n of
// deltaRowBytes random bytes each.
func createGameDB(t testing.TB, p string, n int) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", p+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(30000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(1)
	if _, err := db.Exec("CREATE TABLE IF NOT EXISTS games (id INTEGER PRIMARY KEY, payload BLOB NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	insertRows(t, db, n)
	return db
}

// insertRows commits n new rows in one transaction.
func insertRows(t testing.TB, db *sql.DB, n int) {
	t.Helper()
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(uint64(n), 9))
	buf := make([]byte, deltaRowBytes)
	for i := 0; i < n; i++ {
		for j := range buf {
			buf[j] = byte(r.Uint32())
		}
		if _, err := tx.Exec("INSERT INTO games (payload) VALUES (?)", buf); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// checkRemoteDB opens a database copy on the target (a plain file, read
// only), checks its integrity and returns its highest row id.
func checkRemoteDB(t testing.TB, p string) int64 {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+p+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var ok string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&ok); err != nil || ok != "ok" {
		t.Fatalf("%s: integrity_check = %q, %v", p, ok, err)
	}
	var mode string
	if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "delete" {
		t.Fatalf("%s: journal_mode = %q, %v (want a standalone file)", p, mode, err)
	}
	var max sql.NullInt64
	if err := db.QueryRow("SELECT max(id) FROM games").Scan(&max); err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	for _, s := range []string{"-wal", "-shm", "-journal"} {
		if _, err := os.Stat(p + s); err == nil {
			t.Fatalf("%s%s exists on the target", p, s)
		}
	}
	return max.Int64
}

type deltaRig struct {
	t      *testing.T
	o      *sshtest.OpenSSH
	tr     *SFTPTransport
	target Target
	src    string
	snaps  string
	state  string
	remote string // local path of the remote name.db
	// shadow, when set, makes the snapshots the engine's way (dbShadow).
	shadow *dbShadow
	// opts are the transport's options (DBStateDir is set by the rig).
	opts SFTPOptions
}

func newDeltaRig(t *testing.T, o *sshtest.OpenSSH, name string) *deltaRig {
	dir := t.TempDir()
	r := &deltaRig{t: t, o: o, target: openSSHTarget(o, "hetzner-1"),
		src: filepath.Join(dir, name), snaps: filepath.Join(dir, "snapshots"), state: filepath.Join(dir, "dbdelta"),
		remote: filepath.Join(o.Dir, "store", "vast-1", "games", name)}
	r.newTransport()
	return r
}

// newTransport replaces the transport (as an agent restart would).
func (r *deltaRig) newTransport() {
	if r.tr != nil {
		r.tr.Close()
	}
	o := r.opts
	o.DBStateDir = r.state
	r.tr = NewSFTPTransport(o)
	r.t.Cleanup(func() { r.tr.Close() })
}

// push snapshots the database and pushes it; it returns the receipt, the
// snapshot and the push error.
func (r *deltaRig) push(ctx context.Context) (Receipt, Snapshot, error) {
	r.t.Helper()
	var (
		snap Snapshot
		err  error
	)
	if r.shadow != nil {
		if snap, err = r.shadow.snapshot(ctx, r.src); err != nil {
			r.t.Fatal(err)
		}
		if snap.Method != "pages" {
			r.t.Fatalf("snapshot made by %q, want the shadow's pages", snap.Method)
		}
	} else {
		if snap, err = SnapshotSQLite(ctx, r.src, r.snaps); err != nil {
			r.t.Fatal(err)
		}
		defer os.Remove(snap.Path)
		if snap.Method != "backup" {
			r.t.Fatalf("snapshot made by %q, want the backup API", snap.Method)
		}
	}
	rc, err := r.tr.Push(ctx, LocalFile{Path: snap.Path, RemoteName: "vast-1/games/" + filepath.Base(r.src),
		Size: snap.Size, SHA256: snap.SHA256, Pages: snap.Pages}, r.target)
	return rc, snap, err
}

func (r *deltaRig) mustPush(ctx context.Context) (Receipt, Snapshot) {
	r.t.Helper()
	rc, snap, err := r.push(ctx)
	if err != nil {
		r.t.Fatalf("push: %v\nsshd log:\n%s", err, r.o.Log())
	}
	if rc.SHA256 != snap.SHA256 || rc.Size != snap.Size {
		r.t.Fatalf("receipt %+v for snapshot %s (%d bytes)", rc, snap.SHA256, snap.Size)
	}
	if got := fileSHA(r.t, r.remote); got != snap.SHA256 {
		r.t.Fatalf("remote %s hashes to %s, snapshot %s", r.remote, got, snap.SHA256)
	}
	return rc, snap
}

// TestDBDeltaContinuousWriter pushes a database a goroutine keeps writing:
// every push leaves a target copy that opens, passes integrity_check and
// holds every row committed before the snapshot, and from the third push on
// only the changed pages are sent.
func TestDBDeltaContinuousWriter(t *testing.T) {
	o := sshtest.StartOpenSSH(t)
	ctx := testCtx(t, 3*time.Minute)
	r := newDeltaRig(t, o, "live.db")
	db := createGameDB(t, r.src, 5000) // ~5 MB

	var committed atomic.Int64 // highest id whose commit returned
	committed.Store(5000)
	var inserted atomic.Int64
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var werr error
	wg.Go(func() {
		buf := make([]byte, deltaRowBytes)
		for wctx.Err() == nil {
			res, err := db.ExecContext(wctx, "INSERT INTO games (payload) VALUES (?)", buf)
			if err != nil {
				if wctx.Err() == nil {
					werr = err
				}
				return
			}
			id, _ := res.LastInsertId()
			committed.Store(id)
			inserted.Add(1)
			buf[id%deltaRowBytes]++
		}
	})
	defer func() {
		stop()
		wg.Wait()
		if werr != nil {
			t.Errorf("writer: %v", werr)
		}
	}()

	var rowsAt []int64 // rows inserted by the writer when each snapshot started
	var deltas int
	for cycle := 0; cycle < 6; cycle++ {
		// Wait for the writer to have committed something new since the
		// last push: every cycle pushes a changed database.
		last := committed.Load()
		testutil.EventuallyTrue(t, time.Minute, "a new commit", func() bool { return committed.Load() > last })
		before := committed.Load()
		rowsAt = append(rowsAt, inserted.Load())
		rc, snap := r.mustPush(ctx)
		if got := checkRemoteDB(t, r.remote); got < before {
			t.Fatalf("cycle %d: target copy holds rows up to %d, %d were committed before the snapshot", cycle, got, before)
		}
		if cycle < 2 {
			if rc.Delta || rc.BytesSent != snap.Size {
				t.Fatalf("cycle %d: receipt %+v, want a full copy of %d bytes (no spare yet)", cycle, rc, snap.Size)
			}
			continue
		}
		if !rc.Delta {
			t.Fatalf("cycle %d: receipt %+v, want a page delta", cycle, rc)
		}
		deltas++
		// The spare held the version of two snapshots ago: at most the
		// rows written since then (each at most a page and a half with its
		// share of interior pages), plus the header page and a few b-tree
		// pages, may differ.
		rows := inserted.Load() - rowsAt[cycle-2]
		bound := rows*deltaRowBytes*3/2 + 32*4096
		if rc.BytesSent > bound || rc.BytesSent >= snap.Size {
			t.Fatalf("cycle %d: sent %d bytes of %d for at most %d new rows (bound %d)", cycle, rc.BytesSent, snap.Size, rows, bound)
		}
		t.Logf("cycle %d: %d of %d bytes sent (%.2f %%), %d rows since the spare's version",
			cycle, rc.BytesSent, snap.Size, 100*float64(rc.BytesSent)/float64(snap.Size), rows)
		if got := checkRemoteDB(t, r.remote+SpareSuffix); got <= 0 {
			t.Fatalf("spare holds %d rows", got)
		}
	}
	if deltas == 0 {
		t.Fatal("no delta push")
	}
}

// TestDBDeltaSmallChangeSendsLittle: 100 new rows in a 20 MB database send
// less than 5 % of it; the restarted transport (state read from disk) goes
// on with deltas.
func TestDBDeltaSmallChangeSendsLittle(t *testing.T) {
	o := sshtest.StartOpenSSH(t)
	ctx := testCtx(t, 3*time.Minute)
	r := newDeltaRig(t, o, "games.db")
	db := createGameDB(t, r.src, 20000) // ~20 MB
	r.mustPush(ctx)
	insertRows(t, db, 100)
	r.mustPush(ctx) // fills the spare
	for i := 0; i < 3; i++ {
		if i == 2 {
			r.newTransport() // agent restart: the page hashes come from the state dir
		}
		insertRows(t, db, 100)
		rc, snap := r.mustPush(ctx)
		if !rc.Delta || rc.BytesSent*20 >= snap.Size {
			t.Fatalf("push %d: receipt %+v: sent %d of %d bytes, want a delta under 5 %%", i, rc, rc.BytesSent, snap.Size)
		}
		t.Logf("100 rows: %d of %d bytes sent (%.2f %%)", rc.BytesSent, snap.Size, 100*float64(rc.BytesSent)/float64(snap.Size))
		if got := checkRemoteDB(t, r.remote); got != int64(20000+100*(i+2)) {
			t.Fatalf("target copy has %d rows", got)
		}
	}
}

// TestDBDeltaFallsBackToFullCopy: whatever makes the agent's knowledge of
// the remote files doubtful leads to a correct full copy, never a wrong file.
func TestDBDeltaFallsBackToFullCopy(t *testing.T) {
	o := sshtest.StartOpenSSH(t)
	ctx := testCtx(t, 3*time.Minute)
	r := newDeltaRig(t, o, "fallback.db")
	db := createGameDB(t, r.src, 3000)
	rows := int64(3000)
	warm := func() {
		t.Helper()
		for i := 0; i < 3; i++ {
			insertRows(t, db, 10)
			rows += 10
			r.mustPush(ctx)
		}
	}
	statePaths := func() []string {
		m, _ := filepath.Glob(filepath.Join(r.state, "*.pages"))
		return m
	}
	cases := []struct {
		name string
		// break the agent's or the target's state
		spoil func()
		// the push sends more than the whole file (delta, then full)
		deltaFirst bool
	}{
		{"state removed", func() {
			for _, p := range statePaths() {
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
			}
		}, false},
		{"state corrupted", func() {
			ps := statePaths()
			if len(ps) != 1 {
				t.Fatalf("state files %v", ps)
			}
			b, err := os.ReadFile(ps[0])
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)/2] ^= 0xff
			if err := os.WriteFile(ps[0], b, 0o600); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"state truncated", func() {
			ps := statePaths()
			if err := os.Truncate(ps[0], 40); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"remote spare tampered", func() {
			f, err := os.OpenFile(r.remote+SpareSuffix, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			// A page in the middle, which the next delta does not rewrite.
			if _, err := f.WriteAt([]byte("tampered"), 1<<20+100); err != nil {
				t.Fatal(err)
			}
			f.Close()
		}, true},
		{"remote spare removed", func() {
			if err := os.Remove(r.remote + SpareSuffix); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"remote spare truncated", func() {
			if err := os.Truncate(r.remote+SpareSuffix, 8192); err != nil {
				t.Fatal(err)
			}
		}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			warm()
			c.spoil()
			r.newTransport()
			insertRows(t, db, 10)
			rows += 10
			rc, snap := r.mustPush(ctx)
			if rc.Delta || rc.BytesSent < snap.Size {
				t.Fatalf("receipt %+v, want a full copy of %d bytes", rc, snap.Size)
			}
			if c.deltaFirst != (rc.BytesSent > snap.Size) {
				t.Fatalf("sent %d bytes for a %d-byte file (delta tried first: %v)", rc.BytesSent, snap.Size, c.deltaFirst)
			}
			if got := checkRemoteDB(t, r.remote); got != rows {
				t.Fatalf("target copy has %d rows, want %d", got, rows)
			}
		})
	}
}

// TestDBDeltaCrashDuringSwap stops a push at each of its steps (as a crash
// would): <name> always remains a complete version that verifies (the old
// one, or the new one once it was renamed into place), and the next push
// brings the target up to date.
func TestDBDeltaCrashDuringSwap(t *testing.T) {
	o := sshtest.StartOpenSSH(t)
	ctx := testCtx(t, 3*time.Minute)
	r := newDeltaRig(t, o, "crash.db")
	db := createGameDB(t, r.src, 3000)
	rows := int64(3000)
	steps := []string{"delta write", "full write", "verify", "link", "rename", "rename spare", "save state"}
	crash := errors.New("injected crash")
	for _, stepName := range steps {
		t.Run(stepName, func(t *testing.T) {
			// Bring the target to a delta-ready state (name and spare known).
			for i := 0; i < 3; i++ {
				insertRows(t, db, 10)
				rows += 10
				r.mustPush(ctx)
			}
			good := fileSHA(t, r.remote)
			goodRows := rows
			if stepName == "full write" {
				// The full path: make the spare unknown.
				if err := os.Remove(r.remote + SpareSuffix); err != nil {
					t.Fatal(err)
				}
			}
			insertRows(t, db, 10)
			rows += 10
			var hit []string
			r.tr.stepHook = func(s string) error {
				hit = append(hit, s)
				if s == stepName {
					return crash
				}
				return nil
			}
			_, snap, err := r.push(ctx)
			r.tr.stepHook = nil
			if !errors.Is(err, crash) {
				t.Fatalf("push: %v, want the injected crash at %q (steps run: %v)", err, stepName, hit)
			}
			r.newTransport() // the agent restarts
			sum := fileSHA(t, r.remote)
			renamed := slices.Contains([]string{"rename spare", "save state"}, stepName)
			switch {
			case renamed && sum != snap.SHA256:
				t.Fatalf("after a crash at %q the target's copy is %s, want the new version %s", stepName, sum, snap.SHA256)
			case !renamed && sum != good:
				t.Fatalf("after a crash at %q the target's copy is %s, want the previous version %s", stepName, sum, good)
			}
			want := goodRows
			if renamed {
				want = rows
			}
			if got := checkRemoteDB(t, r.remote); got != want {
				t.Fatalf("target copy has %d rows, want %d", got, want)
			}
			insertRows(t, db, 10)
			rows += 10
			rc, _ := r.mustPush(ctx)
			if got := checkRemoteDB(t, r.remote); got != rows {
				t.Fatalf("after recovery the copy has %d rows, want %d (receipt %+v)", got, rows, rc)
			}
			if _, err := os.Stat(r.remote + PrevSuffix); err == nil {
				t.Fatalf("%s%s left after recovery", r.remote, PrevSuffix)
			}
		})
	}
}

// TestPageMapStateRoundTrip checks the state file encoding and that every
// damaged variant is refused.
func TestPageMapStateRoundTrip(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.db")
	createGameDB(t, p, 50)
	pm, sum, err := hashPages(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if pm.PageSize != 4096 || int64(pm.Pages())*4096 != pm.Size {
		t.Fatalf("page map: %d-byte pages, %d pages, %d bytes", pm.PageSize, pm.Pages(), pm.Size)
	}
	if whole, _, _ := hashFile(context.Background(), p); whole != sum {
		t.Fatalf("whole-file hash %s, file hashes to %s", sum, whole)
	}
	st := &dbRemoteState{Cur: &dbVersion{Pages: *pm}}
	b := encodeDeltaState(st)
	got, err := decodeDeltaState(b)
	if err != nil || got.Spare != nil || got.Cur.Pages.Size != pm.Size || string(got.Cur.Pages.Sums) != string(pm.Sums) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for i := 0; i < len(b); i += 97 {
		bad := slices.Clone(b)
		bad[i] ^= 1
		if _, err := decodeDeltaState(bad); err == nil {
			t.Fatalf("byte %d flipped: accepted", i)
		}
	}
	for _, n := range []int{0, 8, 20, len(b) - 1} {
		if _, err := decodeDeltaState(b[:n]); err == nil {
			t.Fatalf("truncated to %d bytes: accepted", n)
		}
	}
	if ps := sqlitePageSize(append([]byte("SQLite format 3\x00\x00\x01"), make([]byte, 90)...)); ps != 65536 {
		t.Fatalf("page size field 1 read as %d, want 65536", ps)
	}
	runs := changedRuns(&PageMap{PageSize: 4096, Size: 3 * 4096, Sums: make([]byte, 3*pageSumLen)},
		&PageMap{PageSize: 4096, Size: 5 * 4096, Sums: append(make([]byte, 2*pageSumLen), []byte(fmt.Sprintf("%048d", 1))...)}, 1<<20)
	if len(runs) != 1 || runs[0] != (pageRun{2 * 4096, 3 * 4096}) {
		t.Fatalf("runs %+v, want pages 2-4 in one run", runs)
	}
}

// TestDBRPOCountsFromFirstUnsyncedChange: a database that was in sync and
// is then written several times before the agent looks counts as at risk
// since before its first new commit (the targets hold nothing newer than the
// version last seen), not since its last one.
func TestDBRPOCountsFromFirstUnsyncedChange(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "games", "g.db")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	db := createGameDB(t, p, 10)
	m, err := OpenManifest(filepath.Join(dir, "m.db"), ManifestOptions{
		Sources: []Source{{Class: ClassDB, Root: filepath.Dir(p), Globs: []string{"*.db"}}}, ReplicationTarget: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx := testCtx(t, time.Minute)
	if _, err := m.Scan(ctx, ScanOptions{}); err != nil {
		t.Fatal(err)
	}
	ent, _ := m.Entry(p)
	if err := m.RecordReceipt(p, Receipt{NodeID: "h1", SHA256: "x", SourceSize: ent.Size, SourceModTime: ent.ModTime,
		SourceWALSize: ent.WALSize, SourceWALModTime: ent.WALModTime}); err != nil {
		t.Fatal(err)
	}
	if r := m.RPO(time.Now()); !r.Zero() {
		t.Fatalf("RPO %+v, want zero", r)
	}
	if _, err := m.Scan(ctx, ScanOptions{}); err != nil {
		t.Fatal(err)
	}
	before := time.Now() // the first unsynced commit happens after this
	insertRows(t, db, 1)
	// More commits until the file's mtime is past that moment (file mtimes
	// come from a coarser clock).
	testutil.EventuallyTrue(t, 30*time.Second, "a later mtime", func() bool {
		insertRows(t, db, 1)
		v, err := statVersion(p, true)
		return err == nil && v.Latest().After(before)
	})
	if _, err := m.Scan(ctx, ScanOptions{}); err != nil {
		t.Fatal(err)
	}
	ent, _ = m.Entry(p)
	if ent.DirtySince.IsZero() || ent.DirtySince.After(before) {
		t.Fatalf("DirtySince %s, want at or before the first unsynced commit (after %s); last commit %s",
			ent.DirtySince, before, ent.Latest())
	}
	if r := m.RPO(time.Now()); r.UnsyncedFiles != 1 || r.OldestUnsynced != p {
		t.Fatalf("RPO %+v", r)
	}
}

// TestEngineDBDeltaOverOpenSSH: the engine pushes databases as page deltas
// (snapshot pages handed to the transport) and the receipts say so.
func TestEngineDBDeltaOverOpenSSH(t *testing.T) {
	o := sshtest.StartOpenSSH(t)
	dir := t.TempDir()
	p := filepath.Join(dir, "games", "selfplay.db")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	db := createGameDB(t, p, 8000)
	state := filepath.Join(dir, "state")
	tr := NewSFTPTransport(SFTPOptions{DBStateDir: filepath.Join(state, "dbdelta")})
	defer tr.Close()
	m, err := OpenManifest(filepath.Join(state, "manifest.db"), ManifestOptions{
		Sources: []Source{{Class: ClassDB, Root: filepath.Dir(p), Globs: []string{"*.db"}}}, ReplicationTarget: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	tg := openSSHTarget(o, "hetzner-1")
	eng, err := NewEngine(EngineConfig{NodeID: "vast-1", Manifest: m, Transport: tr, StateDir: state,
		Targets: func() []Target { return []Target{tg} }})
	if err != nil {
		t.Fatal(err)
	}
	remote := filepath.Join(o.Dir, "store", "vast-1", "db", "selfplay.db")
	rows := int64(8000)
	for i := 0; i < 4; i++ {
		rep, err := eng.SyncNow(testCtx(t, time.Minute), nil)
		if err != nil || len(rep.Pushed) != 1 || rep.Pushed[0].Receipt == nil {
			t.Fatalf("sync %d: %+v %v", i, rep, err)
		}
		rc := rep.Pushed[0].Receipt
		if got := checkRemoteDB(t, remote); got != rows {
			t.Fatalf("sync %d: target copy has %d rows, want %d", i, got, rows)
		}
		if i >= 2 && (!rc.Delta || rc.BytesSent*10 > rc.Size || rep.BytesSent != rc.BytesSent) {
			t.Fatalf("sync %d: receipt %+v, report %d bytes sent: want a small delta", i, rc, rep.BytesSent)
		}
		if r := m.RPO(time.Now()); !r.Zero() {
			t.Fatalf("sync %d: RPO %+v, want zero (nothing written since the snapshot)", i, r)
		}
		insertRows(t, db, 50)
		rows += 50
	}
}
