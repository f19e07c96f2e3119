package meshsync

import (
	"context"
	"crypto/rand"
	"database/sql"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ringmesh/ringmesh/internal/testutil"
	"github.com/ringmesh/ringmesh/pkg/sync/sshtest"
)

// busyWriter keeps inserting into a SQLite database until stopped.
type busyWriter struct {
	db      *sql.DB
	rows    atomic.Int64
	commits atomic.Int64
	stop    chan struct{}
	done    chan struct{}
	err     error
}

func startWriter(t *testing.T, path, journal string) *busyWriter {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode("+journal+")")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS games (id INTEGER PRIMARY KEY, moves BLOB NOT NULL, note TEXT)`); err != nil {
		t.Fatal(err)
	}
	w := &busyWriter{db: db, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		blob := make([]byte, 2048)
		for {
			select {
			case <-w.stop:
				return
			default:
			}
			tx, err := db.Begin()
			if err != nil {
				w.err = err
				return
			}
			for i := 0; i < 20; i++ {
				_, _ = rand.Read(blob)
				if _, err := tx.Exec(`INSERT INTO games (moves, note) VALUES (?, ?)`, blob, "selfplay"); err != nil {
					_ = tx.Rollback()
					w.err = err
					return
				}
			}
			// Rewrite older rows too, so pages all over the file change.
			if _, err := tx.Exec(`UPDATE games SET note = note || 'x' WHERE id % 97 = ?`, w.commits.Load()%97); err != nil {
				_ = tx.Rollback()
				w.err = err
				return
			}
			if err := tx.Commit(); err != nil {
				w.err = err
				return
			}
			w.rows.Add(20)
			w.commits.Add(1)
		}
	}()
	t.Cleanup(func() { w.Stop(t) })
	return w
}

func (w *busyWriter) Stop(t *testing.T) {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
	_ = w.db.Close()
	if w.err != nil {
		t.Errorf("writer: %v", w.err)
	}
}

// checkSQLite opens a database copy and runs PRAGMA integrity_check.
func checkSQLite(t *testing.T, path string) int64 {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var res string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&res); err != nil {
		t.Fatalf("integrity_check on %s: %v", path, err)
	}
	if res != "ok" {
		t.Fatalf("integrity_check on %s: %q", path, res)
	}
	var n int64
	if err := db.QueryRow(`SELECT count(*) FROM games`).Scan(&n); err != nil {
		t.Fatalf("count on %s: %v", path, err)
	}
	return n
}

func TestSQLiteSnapshotWhileWriting(t *testing.T) {
	for _, journal := range []string{"WAL", "DELETE"} {
		t.Run(journal, func(t *testing.T) {
			dir := t.TempDir()
			dbPath := filepath.Join(dir, "games", "selfplay.db")
			if err := os.MkdirAll(filepath.Dir(dbPath), 0o755); err != nil {
				t.Fatal(err)
			}
			w := startWriter(t, dbPath, journal)
			testutil.EventuallyTrue(t, 30*time.Second, "writer to commit 30 transactions", func() bool { return w.commits.Load() >= 30 })

			srv := sshtest.New(t, sshtest.Options{})
			tr := NewSFTPTransport(SFTPOptions{})
			defer tr.Close()
			tg := targetFor(srv, "hetzner-cpu1")
			ctx := testCtx(t, 2*time.Minute)
			var last int64
			for i := 0; i < 3; i++ {
				snap, err := SnapshotSQLite(ctx, dbPath, filepath.Join(dir, "state"))
				if err != nil {
					t.Fatalf("snapshot %d: %v", i, err)
				}
				if snap.Source.Size == 0 || snap.SHA256 == "" {
					t.Fatalf("snapshot %+v", snap)
				}
				rc, err := tr.Push(ctx, LocalFile{Path: snap.Path, RemoteName: "vast-1/db/selfplay.db", SHA256: snap.SHA256,
					SourceSize: snap.Source.Size, SourceModTime: snap.Source.ModTime}, tg)
				if err != nil {
					t.Fatalf("push %d: %v", i, err)
				}
				if rc.SHA256 != snap.SHA256 || !rc.SourceModTime.Equal(snap.Source.ModTime) {
					t.Fatalf("receipt %+v does not describe snapshot %+v", rc, snap)
				}
				rows := checkSQLite(t, srv.LocalPath(rc.RemotePath))
				if rows < last || rows == 0 {
					t.Fatalf("copy %d has %d rows, previous %d", i, rows, last)
				}
				last = rows
				if err := os.Remove(snap.Path); err != nil {
					t.Fatal(err)
				}
				c := w.commits.Load()
				testutil.EventuallyTrue(t, 30*time.Second, "more commits", func() bool { return w.commits.Load() > c+5 })
			}
			if w.rows.Load() <= last {
				t.Fatalf("writer wrote %d rows, copies had %d: the writer was not running during the copy", w.rows.Load(), last)
			}
		})
	}
}

func TestEngineSyncsBusyDatabase(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "games", "selfplay.db")
	if err := os.MkdirAll(filepath.Dir(dbPath), 0o755); err != nil {
		t.Fatal(err)
	}
	w := startWriter(t, dbPath, "WAL")
	testutil.EventuallyTrue(t, 30*time.Second, "writer to commit", func() bool { return w.commits.Load() >= 10 })

	srv := sshtest.New(t, sshtest.Options{})
	tr := NewSFTPTransport(SFTPOptions{})
	defer tr.Close()
	m, err := OpenManifest(filepath.Join(dir, "state", "manifest.db"), ManifestOptions{
		Sources: []Source{{Class: ClassDB, Root: filepath.Join(dir, "games"), Globs: []string{"*.db"}}}, ReplicationTarget: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	eng, err := NewEngine(EngineConfig{NodeID: "vast-1", Manifest: m, Transport: tr, StateDir: filepath.Join(dir, "state"),
		Targets: func() []Target { return []Target{targetFor(srv, "hetzner-cpu1")} }})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := eng.SyncNow(testCtx(t, time.Minute), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Pushed) != 1 || rep.Pushed[0].Receipt == nil {
		t.Fatalf("report %+v", rep)
	}
	rc := rep.Pushed[0].Receipt
	if n := checkSQLite(t, srv.LocalPath(rc.RemotePath)); n == 0 {
		t.Fatal("empty copy")
	}
	if rc.RemotePath != "/store/vast-1/db/selfplay.db" {
		t.Fatalf("remote path %s", rc.RemotePath)
	}
	// The writer keeps going: the database is a new version, unsynced again.
	c := w.commits.Load()
	testutil.EventuallyTrue(t, 30*time.Second, "more commits", func() bool { return w.commits.Load() > c+3 })
	w.Stop(t)
	if _, err := m.Scan(context.Background(), ScanOptions{}); err != nil {
		t.Fatal(err)
	}
	if r := m.RPO(time.Now()); r.UnsyncedFiles != 1 {
		t.Fatalf("RPO after more commits %+v, want the database unsynced", r)
	}
	// Once the writer stopped, one more sync makes it safe.
	rep, err = eng.SyncNow(testCtx(t, time.Minute), nil)
	if err != nil || len(rep.Pushed) != 1 {
		t.Fatalf("%+v %v", rep, err)
	}
	if r := m.RPO(time.Now()); !r.Zero() {
		t.Fatalf("RPO %+v, want zero", r)
	}
	ent, _ := m.Entry(dbPath)
	if ent.SHA256 != rep.Pushed[0].Receipt.SHA256 {
		t.Fatalf("entry sha %s, receipt sha %s: the entry records the snapshot's hash", ent.SHA256, rep.Pushed[0].Receipt.SHA256)
	}
	if n := checkSQLite(t, srv.LocalPath(rc.RemotePath)); n != w.rows.Load() {
		t.Fatalf("final copy has %d rows, source %d", n, w.rows.Load())
	}
}
