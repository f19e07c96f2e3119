package meshsync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/ringmesh/ringmesh/pkg/sync/route"
)

// DefaultReplicationTarget is sync_routing.replication_target's default.
const DefaultReplicationTarget = route.DefaultReplicationTarget

// Version identifies one state of a local file: what a rescan compares to
// decide whether a file changed (and must be hashed again).
type Version struct {
	// Size in bytes.
	Size int64 `json:"size"`
	// ModTime is the file's mtime.
	ModTime time.Time `json:"mtime"`
	// Inode number (0 where the platform has none).
	Inode uint64 `json:"inode,omitempty"`
	// WALSize (bytes) and WALModTime describe a database's "-wal" file:
	// commits in WAL mode touch only that file. Zero for other classes and
	// for databases without one.
	WALSize    int64     `json:"wal_size,omitempty"`
	WALModTime time.Time `json:"wal_mtime,omitzero"`
}

// Latest is the later of the file's and its -wal file's mtime: when the
// data last changed.
func (v Version) Latest() time.Time {
	if v.WALModTime.After(v.ModTime) {
		return v.WALModTime
	}
	return v.ModTime
}

// Equal reports whether two versions describe the same file state.
func (v Version) Equal(o Version) bool {
	return v.Size == o.Size && v.ModTime.Equal(o.ModTime) && v.Inode == o.Inode &&
		v.WALSize == o.WALSize && v.WALModTime.Equal(o.WALModTime)
}

// FileEntry is the manifest's record of one protected file.
type FileEntry struct {
	// Path is the absolute local path.
	Path string `json:"path"`
	// Source is the Source.Name the file belongs to.
	Source string `json:"source"`
	// RelPath is the slash-separated path relative to the source root.
	RelPath  string `json:"rel"`
	Class    Class  `json:"class"`
	Priority int    `json:"priority,omitempty"`
	Version
	// SHA256 (hex) of the content at Version; "" while not hashed yet. For
	// databases: the SHA-256 of the last snapshot taken at this Version.
	SHA256 string `json:"sha256,omitempty"`
	// HashedAt is when SHA256 was computed.
	HashedAt time.Time `json:"hashed_at,omitzero"`
	// DirtySince is when the file started to hold data not yet replicated
	// (for a new file its mtime; for a changed one the first change seen
	// after it was last in sync); zero while in sync.
	DirtySince time.Time `json:"dirty_since,omitzero"`
	// Receipts by target node ID. A receipt may be stale (for an older
	// version); ValidReceipt tells.
	Receipts map[string]Receipt `json:"receipts,omitempty"`
}

// RemoteName is where the file goes under a target's RemoteDir:
// "<node>/<source name>/<rel>".
func (e FileEntry) RemoteName(nodeID string) string {
	return nodeID + "/" + e.Source + "/" + e.RelPath
}

// ValidReceipt reports whether r proves a copy of the file as it is now.
// Regular files: the receipt's SHA-256 and size equal the current hash and
// size. Databases: the receipt was made from a snapshot of exactly the
// current version (size and mtime of the database and its -wal file).
func (e FileEntry) ValidReceipt(r Receipt) bool {
	if r.SHA256 == "" {
		return false
	}
	if e.Class == ClassDB {
		return r.SourceSize == e.Size && r.SourceModTime.Equal(e.ModTime) &&
			r.SourceWALSize == e.WALSize && r.SourceWALModTime.Equal(e.WALModTime)
	}
	return e.SHA256 != "" && r.SHA256 == e.SHA256 && r.Size == e.Size
}

// VerifiedCopies counts the targets holding a valid copy.
func (e FileEntry) VerifiedCopies() int {
	n := 0
	for _, r := range e.Receipts {
		if e.ValidReceipt(r) {
			n++
		}
	}
	return n
}

// Synced reports whether at least replication targets hold a valid copy.
func (e FileEntry) Synced(replication int) bool { return e.VerifiedCopies() >= replication }

func (e FileEntry) clone() FileEntry {
	if e.Receipts != nil {
		m := make(map[string]Receipt, len(e.Receipts))
		for k, v := range e.Receipts {
			m[k] = v
		}
		e.Receipts = m
	}
	return e
}

// RPO is a node's recovery point: what would be lost if it vanished now.
type RPO struct {
	// UnsyncedBytes is the total size in bytes of the unsynced files.
	UnsyncedBytes int64 `json:"unsynced_bytes"`
	// UnsyncedFiles counts files with fewer valid receipts than the
	// replication target.
	UnsyncedFiles int `json:"unsynced_files"`
	// OldestUnsyncedAgeSeconds is the age in seconds of the oldest unsynced
	// data (now - DirtySince, or - Latest mtime); 0 when everything is synced.
	OldestUnsyncedAgeSeconds float64 `json:"oldest_unsynced_age_seconds"`
	// OldestUnsynced is that file's path.
	OldestUnsynced string `json:"oldest_unsynced,omitempty"`
	// TotalFiles and TotalBytes (bytes) cover every file in the manifest.
	TotalFiles int   `json:"total_files"`
	TotalBytes int64 `json:"total_bytes"`
	// ReplicationTarget is the number of verified copies wanted per file.
	ReplicationTarget int `json:"replication_target"`
	// At is when the figures were computed.
	At time.Time `json:"at"`
	// ScannedAt is when the last complete scan ended; zero until the first
	// scan since the manifest was opened (the figures are not trustworthy
	// yet: files written while the agent was down are not counted).
	ScannedAt time.Time `json:"scanned_at,omitzero"`
}

// Zero reports whether no data exists only on this node. It is false until
// a scan has completed, so an agent that just started never looks safe to
// terminate.
func (r RPO) Zero() bool { return r.UnsyncedFiles == 0 && !r.ScannedAt.IsZero() }

// ManifestOptions configure a Manifest.
type ManifestOptions struct {
	// Sources to scan.
	Sources []Source
	// ReplicationTarget is the number of verified copies wanted per file;
	// default DefaultReplicationTarget.
	ReplicationTarget int
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger; the zero value logs nothing.
	Logger zerolog.Logger
}

// ScanOptions tune one Scan.
type ScanOptions struct {
	// SkipHash only stats: new and changed files are recorded without a
	// hash (and so count as unsynced) and are hashed by a later Scan or by
	// the push itself. The preemption flush uses it to start sending at once.
	SkipHash bool
}

// ScanStats reports one Scan.
type ScanStats struct {
	Files   int   // files in the manifest after the scan
	Bytes   int64 // their total size in bytes
	New     int
	Changed int
	Removed int
	// Hashed counts files hashed by this scan; HashedBytes their bytes.
	Hashed      int
	HashedBytes int64
	Duration    time.Duration
	// Errors lists files or roots that could not be read (the scan goes on).
	Errors []string
}

// Manifest tracks an agent's protected files and their receipts, persisted
// in a bbolt file. Safe for concurrent use.
type Manifest struct {
	db     *bolt.DB
	now    func() time.Time
	log    zerolog.Logger
	scanMu sync.Mutex

	mu          sync.Mutex
	sources     []Source
	replication int
	entries     map[string]*FileEntry
	scannedAt   time.Time
	// walkStarted is when the walk of the last complete scan began: every
	// entry's Version was seen at or after it.
	walkStarted time.Time

	hashes      atomic.Int64
	hashedBytes atomic.Int64
}

var (
	bucketFiles = []byte("files")
	bucketMeta  = []byte("meta")
)

// OpenManifest opens (or creates) the manifest database at path, typically
// <state dir>/sync-manifest.db, and loads it. Only one process may hold it.
func OpenManifest(path string, opts ManifestOptions) (*Manifest, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", path, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("manifest %s is locked by another process (is another agent running?)", path)
		}
		return nil, fmt.Errorf("manifest %s: %w", path, err)
	}
	m := &Manifest{db: db, now: opts.Now, log: opts.Logger, entries: map[string]*FileEntry{}}
	if m.now == nil {
		m.now = time.Now
	}
	m.replication = opts.ReplicationTarget
	if m.replication <= 0 {
		m.replication = DefaultReplicationTarget
	}
	if err := m.SetSources(opts.Sources); err != nil {
		_ = db.Close()
		return nil, err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if v := meta.Get([]byte("schema")); v != nil && string(v) != "1" {
			return fmt.Errorf("unsupported manifest schema %q", v)
		}
		if err := meta.Put([]byte("schema"), []byte("1")); err != nil {
			return err
		}
		b, err := tx.CreateBucketIfNotExists(bucketFiles)
		if err != nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			var e FileEntry
			if err := json.Unmarshal(v, &e); err != nil {
				m.log.Warn().Err(err).Str("path", string(k)).Msg("dropping unreadable manifest entry")
				return nil
			}
			m.entries[string(k)] = &e
			return nil
		})
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("manifest %s: %w", path, err)
	}
	return m, nil
}

// Close closes the database.
func (m *Manifest) Close() error { return m.db.Close() }

// SetSources replaces the sources scanned (the next Scan drops files no
// source covers any more).
func (m *Manifest) SetSources(sources []Source) error {
	names := map[string]bool{}
	for i, s := range sources {
		if !s.Class.Valid() {
			return fmt.Errorf("source %d (%s): unknown class %q (want one of %v)", i, s.Root, s.Class, AllClasses)
		}
		if s.Root == "" {
			return fmt.Errorf("source %d (%s): empty root", i, s.Class)
		}
		n := s.name()
		if n == "." || n == ".." || strings.ContainsAny(n, "/\\") {
			return fmt.Errorf("source %d: name %q must be a single path segment", i, n)
		}
		if names[n] {
			return fmt.Errorf("source %d: duplicate source name %q (set Source.Name)", i, n)
		}
		names[n] = true
		for _, g := range s.Globs {
			if err := validateGlob(g); err != nil {
				return fmt.Errorf("source %q: %w", n, err)
			}
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sources = slices.Clone(sources)
	return nil
}

// ReplicationTarget returns the number of verified copies wanted per file.
func (m *Manifest) ReplicationTarget() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.replication
}

// SetReplicationTarget changes the number of verified copies wanted.
func (m *Manifest) SetReplicationTarget(n int) {
	if n <= 0 {
		n = DefaultReplicationTarget
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.replication = n
}

// HashStats returns how many files and bytes this manifest hashed since it
// was opened.
func (m *Manifest) HashStats() (files, bytes int64) { return m.hashes.Load(), m.hashedBytes.Load() }

type observed struct {
	src Source
	rel string
	v   Version
}

// statVersion stats a file (and, for databases, its -wal file).
func statVersion(p string, db bool) (Version, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return Version{}, err
	}
	v := Version{Size: fi.Size(), ModTime: fi.ModTime(), Inode: inodeOf(fi)}
	if db {
		if wi, err := os.Stat(p + "-wal"); err == nil {
			v.WALSize, v.WALModTime = wi.Size(), wi.ModTime()
		}
	}
	return v, nil
}

func (m *Manifest) walk(ctx context.Context, sources []Source, stats *ScanStats) map[string]observed {
	seen := map[string]observed{}
	for _, src := range sources {
		root, err := filepath.Abs(src.Root)
		if err != nil {
			stats.Errors = append(stats.Errors, fmt.Sprintf("%s: %v", src.Root, err))
			continue
		}
		err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if cerr := ctx.Err(); cerr != nil {
				return cerr
			}
			if err != nil {
				if p == root && errors.Is(err, fs.ErrNotExist) {
					return fs.SkipAll // a data directory that does not exist yet
				}
				stats.Errors = append(stats.Errors, fmt.Sprintf("%s: %v", p, err))
				if d != nil && d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			if !d.Type().IsRegular() {
				return nil
			}
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return nil
			}
			rel = filepath.ToSlash(rel)
			if src.Class == ClassDB && isSQLiteSidecar(rel) {
				return nil
			}
			if strings.HasSuffix(rel, PartialSuffix) {
				return nil
			}
			if len(src.Globs) > 0 && !slices.ContainsFunc(src.Globs, func(g string) bool { return matchGlob(g, rel) }) {
				return nil
			}
			if _, dup := seen[p]; dup {
				return nil // an earlier source already covers it
			}
			fi, err := d.Info()
			if err != nil {
				if !errors.Is(err, fs.ErrNotExist) {
					stats.Errors = append(stats.Errors, fmt.Sprintf("%s: %v", p, err))
				}
				return nil
			}
			v := Version{Size: fi.Size(), ModTime: fi.ModTime(), Inode: inodeOf(fi)}
			if src.Class == ClassDB {
				if wi, err := os.Stat(p + "-wal"); err == nil {
					v.WALSize, v.WALModTime = wi.Size(), wi.ModTime()
				}
			}
			seen[p] = observed{src: src, rel: rel, v: v}
			return nil
		})
		if err != nil && ctx.Err() == nil {
			stats.Errors = append(stats.Errors, fmt.Sprintf("%s: %v", root, err))
		}
	}
	return seen
}

func isSQLiteSidecar(rel string) bool {
	for _, s := range []string{"-wal", "-shm", "-journal"} {
		if strings.HasSuffix(rel, s) {
			return true
		}
	}
	return false
}

// Scan walks the sources, records new, changed and removed files and, unless
// opts.SkipHash, hashes files whose version (size, mtime, inode) changed or
// that were never hashed. Unchanged files are not read. Databases are never
// hashed here: their hash is the snapshot's, set when they are pushed.
func (m *Manifest) Scan(ctx context.Context, opts ScanOptions) (ScanStats, error) {
	m.scanMu.Lock()
	defer m.scanMu.Unlock()
	start := m.now()
	var stats ScanStats

	m.mu.Lock()
	sources := slices.Clone(m.sources)
	m.mu.Unlock()

	walkStart := m.now()
	seen := m.walk(ctx, sources, &stats)
	if err := ctx.Err(); err != nil {
		return stats, err
	}

	now := m.now()
	var dirty []string
	var removed []string
	var toHash []string
	m.mu.Lock()
	for p, o := range seen {
		e := m.entries[p]
		switch {
		case e == nil:
			e = &FileEntry{Path: p, Version: o.v, DirtySince: o.v.Latest()}
			if e.DirtySince.After(now) {
				e.DirtySince = now
			}
			m.entries[p] = e
			stats.New++
		case !e.Version.Equal(o.v):
			if e.DirtySince.IsZero() {
				e.DirtySince = m.changedSinceLocked(e, o.v, now)
			}
			e.Version = o.v
			e.SHA256, e.HashedAt = "", time.Time{}
			stats.Changed++
		case e.Source != o.src.name() || e.RelPath != o.rel || e.Class != o.src.Class || e.Priority != o.src.Priority:
		default:
			if e.SHA256 == "" && e.Class != ClassDB {
				toHash = append(toHash, p)
			}
			continue
		}
		e.Source, e.RelPath, e.Class, e.Priority = o.src.name(), o.rel, o.src.Class, o.src.Priority
		dirty = append(dirty, p)
		if e.Class != ClassDB && e.SHA256 == "" {
			toHash = append(toHash, p)
		}
	}
	for p := range m.entries {
		if _, ok := seen[p]; !ok {
			delete(m.entries, p)
			removed = append(removed, p)
			stats.Removed++
		}
	}
	m.mu.Unlock()

	if !opts.SkipHash {
		slices.Sort(toHash)
		for _, p := range toHash {
			if err := ctx.Err(); err != nil {
				break
			}
			if m.hashOne(ctx, p, &stats) {
				dirty = append(dirty, p)
			}
		}
	}

	err := m.persist(dirty, removed)
	m.mu.Lock()
	if err == nil && ctx.Err() == nil {
		m.scannedAt = m.now()
		m.walkStarted = walkStart
	}
	stats.Files = len(m.entries)
	for _, e := range m.entries {
		stats.Bytes += e.Size
	}
	m.mu.Unlock()
	stats.Duration = m.now().Sub(start)
	if err != nil {
		return stats, err
	}
	return stats, ctx.Err()
}

// changedSinceLocked is the DirtySince of an entry that was in sync and is
// now seen at version nv: a time no later than its first change not on the
// targets (now - DirtySince is the RPO age). For a regular file that is the new mtime (the file is re-sent
// whole, and its content is what it is now). A database's changes pile up
// in place: its first change not on the targets came after the version
// they hold, which was last seen unchanged at the last complete scan at
// the earliest, so the later of the old version's mtime and that scan's
// start bounds it: the RPO is never an underestimate, and at most one scan
// interval too high.
func (m *Manifest) changedSinceLocked(e *FileEntry, nv Version, now time.Time) time.Time {
	if e.Class == ClassDB {
		since := e.Latest()
		if m.walkStarted.After(since) {
			since = m.walkStarted
		}
		if since.After(now) {
			since = now
		}
		return since
	}
	since := nv.Latest()
	if since.After(now) || since.Before(e.Latest()) {
		since = now
	}
	return since
}

// hashOne hashes p and stores the hash if the file did not change meanwhile.
func (m *Manifest) hashOne(ctx context.Context, p string, stats *ScanStats) bool {
	m.mu.Lock()
	e := m.entries[p]
	var want Version
	if e != nil {
		want = e.Version
	}
	m.mu.Unlock()
	if e == nil {
		return false
	}
	sum, n, err := hashFile(ctx, p)
	m.hashes.Add(1)
	m.hashedBytes.Add(n)
	stats.Hashed++
	stats.HashedBytes += n
	if err != nil {
		if ctx.Err() == nil {
			stats.Errors = append(stats.Errors, fmt.Sprintf("%s: %v", p, err))
		}
		return false
	}
	after, err := statVersion(p, false)
	if err != nil || !after.Equal(want) {
		return false // changed while hashed: the next scan sees a new version
	}
	return m.SetHash(p, want, sum)
}

// SetHash records the SHA-256 (hex) of a file's content at version v. It is
// ignored (false) when the entry is gone or its version differs.
func (m *Manifest) SetHash(p string, v Version, sum string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.entries[p]
	if e == nil || !e.Version.Equal(v) {
		return false
	}
	e.SHA256, e.HashedAt = sum, m.now().UTC()
	m.refreshDirtyLocked(e)
	return true
}

func (m *Manifest) refreshDirtyLocked(e *FileEntry) {
	if e.Synced(m.replication) {
		e.DirtySince = time.Time{}
	} else if e.DirtySince.IsZero() {
		e.DirtySince = m.now()
	}
}

// RecordReceipt stores r as the copy held by r.NodeID of the file at path p
// and persists it. A receipt for an older version is stored but does not
// count (see FileEntry.ValidReceipt).
func (m *Manifest) RecordReceipt(p string, r Receipt) error {
	if r.NodeID == "" {
		return errors.New("receipt without node ID")
	}
	m.mu.Lock()
	e := m.entries[p]
	if e == nil {
		m.mu.Unlock()
		return fmt.Errorf("record receipt: %s is not in the manifest", p)
	}
	if e.Receipts == nil {
		e.Receipts = map[string]Receipt{}
	}
	e.Receipts[r.NodeID] = r
	m.refreshDirtyLocked(e)
	if e.Class == ClassDB && !e.DirtySince.IsZero() {
		// A database written all the time never matches its last snapshot,
		// but everything committed before the snapshots on enough targets is
		// safe: what is at risk is newer than the replication-th newest
		// snapshot's observed change.
		if t := dbCoveredUntil(e.Receipts, m.replication); t.After(e.DirtySince) {
			e.DirtySince = t
		}
	}
	m.mu.Unlock()
	return m.persist([]string{p}, nil)
}

// dbCoveredUntil returns the latest change (database or -wal mtime as seen
// right before the snapshot) that at least repl targets hold, zero if fewer
// than repl receipts exist.
func dbCoveredUntil(rs map[string]Receipt, repl int) time.Time {
	var ts []time.Time
	for _, r := range rs {
		if r.SHA256 == "" {
			continue
		}
		t := r.SourceModTime
		if r.SourceWALModTime.After(t) {
			t = r.SourceWALModTime
		}
		ts = append(ts, t)
	}
	if repl <= 0 || len(ts) < repl {
		return time.Time{}
	}
	slices.SortFunc(ts, func(a, b time.Time) int { return b.Compare(a) })
	return ts[repl-1]
}

// ForgetTarget drops every receipt of nodeID (call it when that node is
// terminated: its copies are gone).
func (m *Manifest) ForgetTarget(nodeID string) error {
	var changed []string
	m.mu.Lock()
	for p, e := range m.entries {
		if _, ok := e.Receipts[nodeID]; ok {
			delete(e.Receipts, nodeID)
			m.refreshDirtyLocked(e)
			changed = append(changed, p)
		}
	}
	m.mu.Unlock()
	return m.persist(changed, nil)
}

// Entry returns a copy of the entry for path p.
func (m *Manifest) Entry(p string) (FileEntry, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.entries[p]
	if e == nil {
		return FileEntry{}, false
	}
	return e.clone(), true
}

// Entries returns copies of all entries, sorted by path.
func (m *Manifest) Entries() []FileEntry {
	m.mu.Lock()
	out := make([]FileEntry, 0, len(m.entries))
	for _, e := range m.entries {
		out = append(out, e.clone())
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b FileEntry) int { return strings.Compare(a.Path, b.Path) })
	return out
}

// RPO computes the node's recovery point at now.
func (m *Manifest) RPO(now time.Time) RPO {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := RPO{ReplicationTarget: m.replication, At: now, ScannedAt: m.scannedAt}
	var oldest time.Time
	for _, e := range m.entries {
		r.TotalFiles++
		r.TotalBytes += e.Size
		if e.Synced(m.replication) {
			continue
		}
		r.UnsyncedFiles++
		r.UnsyncedBytes += e.Size
		since := e.DirtySince
		if since.IsZero() {
			since = e.Latest()
		}
		if oldest.IsZero() || since.Before(oldest) || (since.Equal(oldest) && e.Path < r.OldestUnsynced) {
			oldest, r.OldestUnsynced = since, e.Path
		}
	}
	if !oldest.IsZero() {
		if age := now.Sub(oldest).Seconds(); age > 0 {
			r.OldestUnsyncedAgeSeconds = age
		}
	}
	return r
}

func (m *Manifest) persist(changed, removed []string) error {
	if len(changed) == 0 && len(removed) == 0 {
		return nil
	}
	type kv struct {
		k string
		v []byte
	}
	var puts []kv
	m.mu.Lock()
	for _, p := range changed {
		e := m.entries[p]
		if e == nil {
			removed = append(removed, p)
			continue
		}
		b, err := json.Marshal(e)
		if err != nil {
			m.mu.Unlock()
			return err
		}
		puts = append(puts, kv{p, b})
	}
	m.mu.Unlock()
	err := m.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketFiles)
		for _, p := range puts {
			if err := b.Put([]byte(p.k), p.v); err != nil {
				return err
			}
		}
		for _, p := range removed {
			if err := b.Delete([]byte(p)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("persist manifest: %w", err)
	}
	return nil
}
