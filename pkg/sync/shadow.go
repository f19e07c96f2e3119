package meshsync

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// dbShadow is the local copy of one database that the agent keeps between
// cycles (StateDir/snapshots/<key>.shadow). Each cycle reads the database's
// pages in one read transaction through SQLite's sqlite_dbpage table and
// rewrites only the pages whose hash changed, so a database written all the
// time costs one read and a write of its changed pages per cycle, not a
// full copy. The pushes of a version read the shadow; the next version is
// not made until they are done (lock).
type dbShadow struct {
	path string
	// busy is a one-slot lock held from the snapshot to the end of that
	// version's pushes.
	busy chan struct{}
	// pages is what the shadow file holds now; nil = not known (after a
	// restart or a failed update), and every page is rewritten.
	pages *PageMap
}

func newDBShadow(dir, dbPath string) *dbShadow {
	k := sha256.Sum256([]byte(dbPath))
	return &dbShadow{
		path: filepath.Join(dir, filepath.Base(dbPath)+"."+hex.EncodeToString(k[:8])+".shadow"),
		busy: make(chan struct{}, 1),
	}
}

// lock waits for the shadow to be free, or for ctx.
func (s *dbShadow) lock(ctx context.Context) error {
	select {
	case s.busy <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *dbShadow) unlock() { <-s.busy }

// snapshot brings the shadow up to date with dbPath (the caller holds the
// lock) and describes it; Snapshot.Path is the shadow, which the caller must
// not remove. Method is "pages"; Written is the bytes rewritten in the
// shadow. When the database cannot be read page by page (no sqlite_dbpage),
// it falls back to SnapshotSQLite into the shadow's directory, and the
// returned Snapshot is a temporary file (Method "backup" or "vacuum") that
// the caller removes.
func (s *dbShadow) snapshot(ctx context.Context, dbPath string) (Snapshot, error) {
	snap, err := snapshotPages(ctx, dbPath, s.path, s.pages)
	if err == nil {
		s.pages = snap.Pages
		return snap, nil
	}
	s.pages = nil
	if !errors.Is(err, errNoDBPage) {
		return Snapshot{}, err
	}
	return SnapshotSQLite(ctx, dbPath, filepath.Dir(s.path))
}

// errNoDBPage: the SQLite build has no sqlite_dbpage table.
var errNoDBPage = errors.New("sqlite_dbpage is not available")

// snapshotPages updates the file shadow to a transactionally consistent
// copy of the SQLite database dbPath: all pages are read in one statement
// (one read transaction: writers keep committing meanwhile in WAL mode),
// hashed, and written to shadow only where they differ from prev (the
// page map of what shadow holds; nil = rewrite all). Page 1's file format
// bytes (18-19) are set to 1, so the copy is a standalone rollback-journal
// database, as SnapshotSQLite's is.
func snapshotPages(ctx context.Context, dbPath, shadow string, prev *PageMap) (Snapshot, error) {
	start := time.Now()
	if strings.ContainsAny(dbPath, "?#") {
		return Snapshot{}, fmt.Errorf("snapshot %s: '?' and '#' are not supported in database paths", dbPath)
	}
	src, err := statVersion(dbPath, true)
	if err != nil {
		return Snapshot{}, fmt.Errorf("snapshot %s: %w", dbPath, err)
	}
	if err := os.MkdirAll(filepath.Dir(shadow), 0o700); err != nil {
		return Snapshot{}, fmt.Errorf("snapshot %s: %w", dbPath, err)
	}
	db, err := sql.Open("sqlite", dbPath+"?_busy_timeout=30000")
	if err != nil {
		return Snapshot{}, fmt.Errorf("snapshot %s: open: %w", dbPath, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	rows, err := db.QueryContext(ctx, "SELECT pgno, data FROM sqlite_dbpage ORDER BY pgno")
	if err != nil {
		if strings.Contains(err.Error(), "no such table: sqlite_dbpage") {
			return Snapshot{}, errNoDBPage
		}
		return Snapshot{}, fmt.Errorf("snapshot %s: read pages: %w", dbPath, err)
	}
	defer rows.Close()
	f, err := os.OpenFile(shadow, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return Snapshot{}, fmt.Errorf("snapshot %s: %w", dbPath, err)
	}
	defer f.Close()
	pm := &PageMap{}
	whole := sha256.New()
	var (
		written int64
		pgno    int64
		data    []byte
	)
	for i := int64(0); rows.Next(); i++ {
		if err := ctx.Err(); err != nil {
			return Snapshot{}, fmt.Errorf("snapshot %s: %w", dbPath, err)
		}
		if err := rows.Scan(&pgno, &data); err != nil {
			return Snapshot{}, fmt.Errorf("snapshot %s: page %d: %w", dbPath, i+1, err)
		}
		if pgno != i+1 {
			return Snapshot{}, fmt.Errorf("snapshot %s: page %d where page %d was expected", dbPath, pgno, i+1)
		}
		if i == 0 {
			pm.PageSize = sqlitePageSize(data)
			if pm.PageSize == 0 || pm.PageSize != len(data) {
				return Snapshot{}, fmt.Errorf("snapshot %s: page 1 (%d bytes) is not a SQLite header page", dbPath, len(data))
			}
			pm.Sums = make([]byte, 0, max(prevPages(prev), 1)*pageSumLen)
			if data[18] == 2 || data[19] == 2 {
				// WAL → rollback journal, what PRAGMA journal_mode=DELETE writes.
				data = bytes.Clone(data)
				data[18], data[19] = 1, 1
			}
		} else if len(data) != pm.PageSize {
			return Snapshot{}, fmt.Errorf("snapshot %s: page %d is %d bytes, the page size is %d", dbPath, pgno, len(data), pm.PageSize)
		}
		sum := sha256.Sum256(data)
		whole.Write(data)
		pm.Sums = append(pm.Sums, sum[:pageSumLen]...)
		if prev == nil || prev.PageSize != pm.PageSize || int(i) >= prev.Pages() || !bytes.Equal(prev.sum(int(i)), sum[:pageSumLen]) {
			if _, err := f.WriteAt(data, i*int64(pm.PageSize)); err != nil {
				return Snapshot{}, fmt.Errorf("snapshot %s: write %s: %w", dbPath, shadow, err)
			}
			written += int64(len(data))
		}
		pm.Size += int64(len(data))
	}
	if err := rows.Err(); err != nil {
		return Snapshot{}, fmt.Errorf("snapshot %s: read pages: %w", dbPath, err)
	}
	if pm.Size == 0 {
		return Snapshot{}, fmt.Errorf("snapshot %s: the database has no pages", dbPath)
	}
	if prev == nil || prev.Size != pm.Size {
		if err := f.Truncate(pm.Size); err != nil {
			return Snapshot{}, fmt.Errorf("snapshot %s: truncate %s: %w", dbPath, shadow, err)
		}
	}
	if err := f.Close(); err != nil {
		return Snapshot{}, fmt.Errorf("snapshot %s: %w", dbPath, err)
	}
	return Snapshot{
		Path: shadow, SHA256: hex.EncodeToString(whole.Sum(nil)), Size: pm.Size, Pages: pm,
		Source: src, Method: "pages", Written: written, Took: time.Since(start),
	}, nil
}

func prevPages(m *PageMap) int {
	if m == nil {
		return 0
	}
	return m.Pages()
}
