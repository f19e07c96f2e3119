package meshsync

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"modernc.org/sqlite" // pure Go SQLite driver ("sqlite"): backup API and VACUUM INTO snapshots
)

// Snapshot is a consistent copy of a SQLite database made by SnapshotSQLite.
type Snapshot struct {
	// Path of the snapshot file; the caller removes it when done.
	Path string
	// SHA256 (hex) and Size (bytes) of the snapshot file.
	SHA256 string
	Size   int64
	// Pages are the snapshot's per-page hashes (what a page-delta push
	// compares with the version a target holds).
	Pages *PageMap
	// Source is the live database's version (main file and -wal) observed
	// just before the snapshot was taken: everything committed up to then is
	// in the snapshot.
	Source Version
	// Method is how the copy was made: "pages" (the agent's shadow copy,
	// only changed pages rewritten; see dbShadow), "backup" (the SQLite
	// online backup API) or "vacuum" (VACUUM INTO, the fallback).
	Method string
	// Written is the bytes written to make the copy: the changed pages for
	// "pages", the whole file otherwise.
	Written int64
	// Took is how long the copy and hashing took.
	Took time.Duration
}

// sqliteBackuper is the part of modernc.org/sqlite's driver connection
// SnapshotSQLite uses (reached through (*sql.Conn).Raw).
type sqliteBackuper interface {
	NewBackup(dstURI string) (*sqlite.Backup, error)
}

// SnapshotSQLite writes a transactionally consistent copy of the SQLite
// database dbPath into a new file under tmpDir, pure Go (modernc.org/sqlite):
// with the online backup API (sqlite3_backup_step over all pages in one
// step, inside one read transaction), which copies the pages as they are, so
// page N of the copy is page N of the database and unchanged pages stay
// byte-identical from one snapshot to the next (what makes page deltas
// small). Only if the backup fails does it fall back to VACUUM INTO (which
// rewrites and reorders pages). Writers keep committing meanwhile (WAL
// mode; in rollback-journal mode they wait for the copy). The copy is set to
// journal_mode=DELETE, a standalone file without -wal. The live file is
// never read directly.
func SnapshotSQLite(ctx context.Context, dbPath, tmpDir string) (Snapshot, error) {
	start := time.Now()
	if strings.ContainsAny(dbPath, "?#") {
		return Snapshot{}, fmt.Errorf("snapshot %s: '?' and '#' are not supported in database paths", dbPath)
	}
	if strings.ContainsAny(tmpDir, "?#") {
		return Snapshot{}, fmt.Errorf("snapshot %s: '?' and '#' are not supported in the snapshot directory %s", dbPath, tmpDir)
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
	_ = tmp.Close() // both the backup and VACUUM INTO accept an existing empty file
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
	method := "backup"
	if berr := backupTo(ctx, db, snapPath); berr != nil {
		if ctx.Err() != nil {
			return Snapshot{}, fmt.Errorf("snapshot %s: backup: %w", dbPath, ctx.Err())
		}
		method = "vacuum"
		if err := os.Truncate(snapPath, 0); err != nil {
			return Snapshot{}, fmt.Errorf("snapshot %s: backup failed (%v); %w", dbPath, berr, err)
		}
		if _, err := db.ExecContext(ctx, "VACUUM INTO ?", snapPath); err != nil {
			return Snapshot{}, fmt.Errorf("snapshot %s: backup failed (%v); VACUUM INTO: %w", dbPath, berr, err)
		}
	}
	if err := db.Close(); err != nil {
		return Snapshot{}, fmt.Errorf("snapshot %s: close: %w", dbPath, err)
	}
	if err := setJournalDelete(ctx, snapPath); err != nil {
		return Snapshot{}, fmt.Errorf("snapshot %s: %w", dbPath, err)
	}
	pm, sum, err := hashPages(ctx, snapPath)
	if err != nil {
		return Snapshot{}, fmt.Errorf("snapshot %s: hash: %w", dbPath, err)
	}
	ok = true
	return Snapshot{Path: snapPath, SHA256: sum, Size: pm.Size, Pages: pm, Source: src, Method: method, Written: pm.Size, Took: time.Since(start)}, nil
}

// backupTo copies the database behind db into the file dst with the online
// backup API, all pages in one step (one read transaction: a consistent
// copy even while other connections commit).
func backupTo(ctx context.Context, db *sql.DB, dst string) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		bc, ok := dc.(sqliteBackuper)
		if !ok {
			return fmt.Errorf("driver connection %T has no backup API", dc)
		}
		b, err := bc.NewBackup(dst)
		if err != nil {
			return fmt.Errorf("start backup: %w", err)
		}
		more, err := b.Step(-1)
		if err == nil && more {
			err = errors.New("backup step stopped before the last page")
		}
		if ferr := b.Finish(); err == nil && ferr != nil {
			err = fmt.Errorf("finish backup: %w", ferr)
		}
		return err
	})
}

// setJournalDelete makes the snapshot a standalone rollback-journal
// database (a copy of a WAL database says "WAL" in its header, and would
// want -wal and -shm files next to it wherever it is opened).
func setJournalDelete(ctx context.Context, p string) error {
	db, err := sql.Open("sqlite", p)
	if err != nil {
		return fmt.Errorf("open snapshot: %w", err)
	}
	defer db.Close()
	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode=DELETE").Scan(&mode); err != nil {
		return fmt.Errorf("snapshot journal mode: %w", err)
	}
	if !strings.EqualFold(mode, "delete") {
		return fmt.Errorf("snapshot journal mode is %q, want delete", mode)
	}
	return db.Close()
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
