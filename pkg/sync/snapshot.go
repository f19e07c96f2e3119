package meshsync

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // pure Go SQLite driver ("sqlite"), for VACUUM INTO snapshots
)

// Snapshot is a consistent copy of a SQLite database made by SnapshotSQLite.
type Snapshot struct {
	// Path of the snapshot file; the caller removes it when done.
	Path string
	// SHA256 (hex) and Size (bytes) of the snapshot file.
	SHA256 string
	Size   int64
	// Source is the live database's version (main file and -wal) observed
	// just before the snapshot was taken: everything committed up to then is
	// in the snapshot.
	Source Version
	// Took is how long VACUUM INTO and hashing took.
	Took time.Duration
}

// SnapshotSQLite writes a transactionally consistent copy of the SQLite
// database dbPath into a new file under tmpDir with VACUUM INTO (pure Go,
// modernc.org/sqlite): the copy is made inside one read transaction, so
// writers can keep committing (WAL or rollback journal mode) and the copy
// never holds a half-written page. The live file is never read directly.
func SnapshotSQLite(ctx context.Context, dbPath, tmpDir string) (Snapshot, error) {
	start := time.Now()
	if strings.ContainsAny(dbPath, "?#") {
		return Snapshot{}, fmt.Errorf("snapshot %s: '?' and '#' are not supported in database paths", dbPath)
	}
	src, err := statVersion(dbPath, true)
	if err != nil {
		return Snapshot{}, fmt.Errorf("snapshot %s: %w", dbPath, err)
	}
	if err := os.MkdirAll(tmpDir, 0o700); err != nil {
		return Snapshot{}, fmt.Errorf("snapshot %s: %w", dbPath, err)
	}
	tmp, err := os.CreateTemp(tmpDir, filepath.Base(dbPath)+".snap-*")
	if err != nil {
		return Snapshot{}, fmt.Errorf("snapshot %s: %w", dbPath, err)
	}
	snapPath := tmp.Name()
	_ = tmp.Close() // VACUUM INTO accepts an existing empty file
	ok := false
	defer func() {
		if !ok {
			_ = os.Remove(snapPath)
		}
	}()

	db, err := sql.Open("sqlite", dbPath+"?_busy_timeout=30000")
	if err != nil {
		return Snapshot{}, fmt.Errorf("snapshot %s: open: %w", dbPath, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, "VACUUM INTO ?", snapPath); err != nil {
		return Snapshot{}, fmt.Errorf("snapshot %s: VACUUM INTO: %w", dbPath, err)
	}
	if err := db.Close(); err != nil {
		return Snapshot{}, fmt.Errorf("snapshot %s: close: %w", dbPath, err)
	}
	sum, size, err := hashFile(ctx, snapPath)
	if err != nil {
		return Snapshot{}, fmt.Errorf("snapshot %s: hash: %w", dbPath, err)
	}
	ok = true
	return Snapshot{Path: snapPath, SHA256: sum, Size: size, Source: src, Took: time.Since(start)}, nil
}

// hashFile returns the hex SHA-256 and size of a file, stopping on ctx.
func hashFile(ctx context.Context, p string) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(h, ctxReader{ctx, f}, make([]byte, 1<<20))
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
