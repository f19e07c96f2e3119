package meshsync

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/rs/zerolog"
)

// WatchOptions tune Manifest.Watch.
type WatchOptions struct {
	// Debounce is how long changed paths are collected before they are
	// recorded (one stat per path per Debounce); default 200 ms. It bounds
	// how late a write is seen in the RPO: Debounce plus a stat.
	Debounce time.Duration
	// FallbackInterval is the period of the stat-only rescan used while
	// inotify cannot watch a root (no watcher, watch limit reached, root
	// missing so far); default 1 s.
	FallbackInterval time.Duration
	// Logger; the zero value logs nothing.
	Logger zerolog.Logger

	// newNotifier opens the watcher (nil = fsnotify's); tests set it to
	// inject queue overflows and failed watch adds, which the kernel cannot
	// be made to produce on demand.
	newNotifier func() (notifier, error)
}

// notifier is what Watch uses of an fsnotify watcher.
type notifier struct {
	add    func(dir string) error
	close  func() error
	events <-chan fsnotify.Event
	errors <-chan error
}

func newNotifier() (notifier, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return notifier{}, err
	}
	return notifier{add: w.Add, close: w.Close, events: w.Events, errors: w.Errors}, nil
}

// Watch keeps the manifest current between scans so that the RPO is never
// an underestimate: it watches every directory under the sources' roots
// with inotify (github.com/fsnotify/fsnotify) and records each new or
// changed file (size, mtime; the hash is cleared, so the file counts as at
// risk at its current size until a scan hashes it and the targets confirm
// it) within Debounce. When the kernel queue overflows it runs a stat-only
// scan (ScanOptions.SkipHash); while a root cannot be watched it rescans
// stat-only every FallbackInterval. Files that disappear are left to the
// next Scan (they keep counting as at risk until then). Watch returns
// ctx.Err() when ctx ends.
func (m *Manifest) Watch(ctx context.Context, opts WatchOptions) error {
	if opts.Debounce <= 0 {
		opts.Debounce = 200 * time.Millisecond
	}
	if opts.FallbackInterval <= 0 {
		opts.FallbackInterval = time.Second
	}
	log := opts.Logger
	if opts.newNotifier == nil {
		opts.newNotifier = newNotifier
	}
	w, err := opts.newNotifier()
	if err != nil {
		log.Warn().Err(err).Dur("interval", opts.FallbackInterval).Msg("inotify unavailable; rescanning (stat only) on an interval instead")
		return m.pollLoop(ctx, opts.FallbackInterval)
	}
	defer w.close()

	watched := map[string]bool{}
	// addTree watches dir and every directory below it; it returns the
	// regular files found (created before the watch was in place) and
	// whether every directory could be watched.
	addTree := func(dir string) ([]string, bool) {
		var files []string
		complete := true
		_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if !errors.Is(err, fs.ErrNotExist) {
					complete = false
				}
				if d != nil && d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			if d.IsDir() {
				if !watched[p] {
					if err := w.add(p); err != nil {
						log.Warn().Err(err).Str("dir", p).Msg("cannot watch directory; falling back to periodic rescans")
						complete = false
						return nil
					}
					watched[p] = true
				}
				return nil
			}
			if d.Type().IsRegular() {
				files = append(files, p)
			}
			return nil
		})
		return files, complete
	}
	roots := func() []string {
		m.mu.Lock()
		defer m.mu.Unlock()
		var out []string
		for _, s := range m.sources {
			if r, err := filepath.Abs(s.Root); err == nil {
				out = append(out, r)
			}
		}
		return out
	}
	// arm watches every root that exists; it returns the files found,
	// whether every directory could be watched, and whether a root is
	// still missing (it is looked for again every FallbackInterval).
	arm := func() (files []string, complete, missing bool) {
		complete = true
		for _, r := range roots() {
			if watched[r] {
				continue
			}
			if fi, err := os.Stat(r); err != nil || !fi.IsDir() {
				missing = true
				continue
			}
			found, ok := addTree(r)
			files = append(files, found...)
			complete = complete && ok
		}
		return files, complete, missing
	}
	pending := map[string]bool{}
	initial, complete, missing := arm()
	for _, f := range initial {
		pending[f] = true
	}
	debounce := time.NewTicker(opts.Debounce)
	defer debounce.Stop()
	fallback := time.NewTicker(opts.FallbackInterval)
	defer fallback.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev, ok := <-w.events:
			if !ok {
				return m.pollLoop(ctx, opts.FallbackInterval)
			}
			if ev.Has(fsnotify.Create) {
				if fi, err := os.Lstat(ev.Name); err == nil && fi.IsDir() {
					found, ok := addTree(ev.Name)
					for _, f := range found {
						pending[f] = true
					}
					complete = complete && ok
					continue
				}
			}
			if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
				delete(watched, ev.Name) // a removed directory's watch is gone
				if slices.Contains(roots(), ev.Name) {
					missing = true
				}
			}
			if ev.Has(fsnotify.Create) || ev.Has(fsnotify.Write) || ev.Has(fsnotify.Chmod) {
				pending[ev.Name] = true
			}
		case err, ok := <-w.errors:
			if !ok {
				return m.pollLoop(ctx, opts.FallbackInterval)
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				log.Warn().Msg("inotify queue overflowed; rescanning (stat only)")
				clear(pending)
				if _, err := m.Scan(ctx, ScanOptions{SkipHash: true}); err != nil && ctx.Err() == nil {
					log.Warn().Err(err).Msg("rescan after inotify overflow")
				}
				continue
			}
			log.Warn().Err(err).Msg("inotify")
		case <-debounce.C:
			if len(pending) == 0 {
				continue
			}
			ps := make([]string, 0, len(pending))
			for p := range pending {
				ps = append(ps, p)
			}
			clear(pending)
			slices.Sort(ps)
			if _, err := m.Observe(ps); err != nil {
				log.Warn().Err(err).Msg("record changed files")
			}
		case <-fallback.C:
			if complete && !missing {
				continue
			}
			var found []string
			var ok bool
			found, ok, missing = arm()
			complete = complete && ok
			for _, f := range found {
				pending[f] = true
			}
			if !complete {
				if _, err := m.Scan(ctx, ScanOptions{SkipHash: true}); err != nil && ctx.Err() == nil {
					log.Warn().Err(err).Msg("fallback rescan")
				}
			}
		}
	}
}

func (m *Manifest) pollLoop(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			_, _ = m.Scan(ctx, ScanOptions{SkipHash: true})
		}
	}
}

// classify finds the source covering the absolute path p, with the same
// rules as a scan (first source wins; SQLite sidecars map to their
// database for class db and are skipped elsewhere; partial files are
// skipped). It returns the path the manifest records.
func classify(sources []Source, p string) (src Source, file, rel string, ok bool) {
	for _, s := range sources {
		root, err := filepath.Abs(s.Root)
		if err != nil {
			continue
		}
		r, err := filepath.Rel(root, p)
		if err != nil || r == "." || r == ".." || strings.HasPrefix(r, ".."+string(filepath.Separator)) {
			continue
		}
		r = filepath.ToSlash(r)
		f := p
		if strings.HasSuffix(r, PartialSuffix) {
			return Source{}, "", "", false
		}
		if s.Class == ClassDB && isSQLiteSidecar(r) {
			if !strings.HasSuffix(r, "-wal") {
				continue // -shm, -journal: no commit lands only there
			}
			r, f = strings.TrimSuffix(r, "-wal"), strings.TrimSuffix(p, "-wal")
		}
		if len(s.Globs) > 0 && !slices.ContainsFunc(s.Globs, func(g string) bool { return matchGlob(g, r) }) {
			continue
		}
		return s, f, r, true
	}
	return Source{}, "", "", false
}

// Observe records the current state of the given absolute paths at once
// (what a scan would, without hashing): a new file is added, a changed one
// gets its new size and mtime and loses its hash and so counts as at risk
// until it is hashed and confirmed. Paths no source covers and paths that
// cannot be stat'd are ignored (removals are left to Scan). It returns how
// many entries changed.
func (m *Manifest) Observe(paths []string) (int, error) {
	m.mu.Lock()
	sources := slices.Clone(m.sources)
	m.mu.Unlock()
	type obs struct {
		src  Source
		rel  string
		v    Version
		file string
	}
	var got []obs
	done := map[string]bool{}
	for _, p := range paths {
		src, file, rel, ok := classify(sources, p)
		if !ok || done[file] {
			continue
		}
		done[file] = true
		fi, err := os.Stat(file)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		v, err := statVersion(file, src.Class == ClassDB)
		if err != nil {
			continue
		}
		got = append(got, obs{src: src, rel: rel, v: v, file: file})
	}
	now := m.now()
	var dirty []string
	m.mu.Lock()
	for _, o := range got {
		e := m.entries[o.file]
		switch {
		case e == nil:
			e = &FileEntry{Path: o.file, Version: o.v, DirtySince: o.v.Latest()}
			if e.DirtySince.After(now) {
				e.DirtySince = now
			}
			m.entries[o.file] = e
		case !e.Version.Equal(o.v):
			if e.DirtySince.IsZero() {
				e.DirtySince = m.changedSinceLocked(e, o.v, now)
			}
			e.Version = o.v
			e.SHA256, e.HashedAt = "", time.Time{}
		default:
			continue
		}
		e.Source, e.RelPath, e.Class, e.Priority = o.src.name(), o.rel, o.src.Class, o.src.Priority
		dirty = append(dirty, o.file)
	}
	m.mu.Unlock()
	return len(dirty), m.persist(dirty, nil)
}

// FreshRPO measures the recovery point now, without trusting the last
// scan: it walks the sources (stat only, nothing is read or changed) and
// counts as at risk every file that is new or changed since the manifest
// last recorded it (at its current size), every file without enough valid
// receipts, and every unsynced manifest entry the walk did not find. It
// fails when the walk could not read a directory or file (the figure would
// be an underestimate) or ctx ends.
func (m *Manifest) FreshRPO(ctx context.Context) (RPO, error) {
	m.mu.Lock()
	sources := slices.Clone(m.sources)
	m.mu.Unlock()
	var stats ScanStats
	seen := m.walk(ctx, sources, &stats)
	if err := ctx.Err(); err != nil {
		return RPO{}, err
	}
	if len(stats.Errors) > 0 {
		return RPO{}, fmt.Errorf("cannot measure the RPO: %d unreadable paths (first: %s)", len(stats.Errors), stats.Errors[0])
	}
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	r := RPO{ReplicationTarget: m.replication, At: now, ScannedAt: now}
	var oldest time.Time
	risk := func(p string, size int64, since time.Time) {
		r.UnsyncedFiles++
		r.UnsyncedBytes += size
		if since.IsZero() || since.After(now) {
			since = now
		}
		if oldest.IsZero() || since.Before(oldest) || (since.Equal(oldest) && p < r.OldestUnsynced) {
			oldest, r.OldestUnsynced = since, p
		}
	}
	for p, o := range seen {
		r.TotalFiles++
		r.TotalBytes += o.v.Size
		e := m.entries[p]
		switch {
		case e == nil:
			risk(p, o.v.Size, o.v.Latest())
		case !e.Version.Equal(o.v):
			since := e.DirtySince
			if since.IsZero() {
				since = o.v.Latest()
			}
			risk(p, o.v.Size, since)
		case !e.Synced(m.replication):
			since := e.DirtySince
			if since.IsZero() {
				since = e.Latest()
			}
			risk(p, e.Size, since)
		}
	}
	for p, e := range m.entries {
		if _, ok := seen[p]; ok || e.Synced(m.replication) {
			continue
		}
		since := e.DirtySince
		if since.IsZero() {
			since = e.Latest()
		}
		risk(p, e.Size, since)
	}
	if !oldest.IsZero() {
		if age := now.Sub(oldest).Seconds(); age > 0 {
			r.OldestUnsyncedAgeSeconds = age
		}
	}
	return r, nil
}
