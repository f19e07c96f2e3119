package meshsync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// ManifestRemoteName is where the flush's JSON manifest goes under a
// target's RemoteDir/<node>/.
const ManifestRemoteName = "MANIFEST.json"

// EngineConfig configures an Engine.
type EngineConfig struct {
	// NodeID of this node: names the remote directory of its files.
	NodeID string
	// Manifest of this node's files (the engine scans it).
	Manifest *Manifest
	// Transport pushes files (NewSFTPTransport by default in the agent).
	Transport Transport
	// Targets returns the current targets (from the coordinator's router);
	// called at the start of every cycle and flush, so updates apply at the
	// next cycle. Call Trigger to apply them at once.
	Targets func() []Target
	// StateDir holds, under snapshots/, each synced database's shadow copy
	// (as big as the database; removed when the database leaves the
	// manifest, and all of them at start) and the flush manifest (the
	// agent's state directory).
	StateDir string
	// Interval between the end of one cycle and the start of the next;
	// default 5 s.
	Interval time.Duration
	// MaxConcurrent is the number of files pushed at a time (auto_sync
	// max_concurrent_syncs); default 1. In continuous sync and SyncNow the
	// copies of one file go to their targets in parallel (each target is
	// its own link); the flush sends one copy at a time.
	MaxConcurrent int
	// DBSnapshotInterval is the least time between two snapshots of one
	// database in continuous sync (a database written all the time is
	// otherwise snapshotted every cycle: a local copy and hash of the whole
	// file, though over SFTP only its changed pages are sent); 0 = every
	// cycle. Flush and SyncNow ignore it.
	DBSnapshotInterval time.Duration
	// RetryBackoff is the pause before a failed target is tried again in
	// continuous sync; it doubles per consecutive failure up to MaxBackoff.
	// Defaults: Interval and 5 min.
	RetryBackoff time.Duration
	MaxBackoff   time.Duration
	// OnProgress, when set, receives progress of every cycle, SyncNow and
	// Flush (at most every 100 ms, and at the end), one call at a time, from
	// the goroutines doing the pushes: it must return quickly.
	OnProgress func(Progress)
	// OnCycle, when set, receives each continuous cycle's report.
	OnCycle func(CycleReport)
	// Logger; the zero value logs nothing.
	Logger zerolog.Logger
	// Now is the clock; default time.Now. Push durations (and so the
	// throughput estimates) and Flush's deadline decisions (whether a push
	// fits in the time left, whether to start another one) read it, so a
	// test can drive the engine on virtual time; the flush context keeps
	// the deadline as a wall-clock backstop.
	Now func() time.Time
}

// Progress reports a running cycle, SyncNow or Flush.
type Progress struct {
	// Phase: "scan", "push", "flush" or "done".
	Phase string `json:"phase"`
	// FilesDone and FilesTotal count planned pushes (file x target).
	FilesDone  int `json:"files_done"`
	FilesTotal int `json:"files_total"`
	// BytesDone counts bytes of finished pushes plus what the running ones
	// sent; BytesTotal is the size of everything planned (bytes).
	BytesDone  int64 `json:"bytes_done"`
	BytesTotal int64 `json:"bytes_total"`
	// BytesSent is what actually went over the wire (bytes; resumed and
	// already-present data is not sent).
	BytesSent int64 `json:"bytes_sent"`
	// Current is the file being pushed (one of them when several are).
	Current string `json:"current,omitempty"`
}

// PushResult is the outcome of one push of one file to one target.
type PushResult struct {
	Path    string   `json:"path"`
	Class   Class    `json:"class"`
	Target  string   `json:"target"`
	Receipt *Receipt `json:"receipt,omitempty"`
	// Error is empty on success.
	Error string `json:"error,omitempty"`
	// Seconds the push took.
	Seconds float64 `json:"seconds"`
}

// CycleReport is the result of one continuous cycle or SyncNow.
type CycleReport struct {
	Started  time.Time    `json:"started"`
	Finished time.Time    `json:"finished"`
	Scan     ScanStats    `json:"scan"`
	Pushed   []PushResult `json:"pushed,omitempty"`
	Failed   []PushResult `json:"failed,omitempty"`
	// Deferred counts pushes not attempted this cycle (target backing off,
	// database snapshot interval not reached).
	Deferred int `json:"deferred"`
	// BytesSent in bytes.
	BytesSent int64 `json:"bytes_sent"`
	RPO       RPO   `json:"rpo"`
	// Error is set when the cycle itself failed (scan error, cancelled).
	Error string `json:"error,omitempty"`
}

// Flush reasons for files that did not make it.
const (
	// ReasonDeadline: the deadline passed before the file was sent (in
	// flight, not started, or not attempted because it could not finish).
	ReasonDeadline = "deadline"
	// ReasonError: every push attempted failed.
	ReasonError = "error"
	// ReasonNoTarget: no target receives the file's class.
	ReasonNoTarget = "no-target"
	// ReasonChanged: copies were made, but of a newer version than the
	// flush's scan saw (a database committed to between the scan and its
	// snapshot), so they do not count as copies of the file reported on.
	ReasonChanged = "changed"
)

// FlushFile is one file's outcome in a flush.
type FlushFile struct {
	Path    string    `json:"path"`
	Class   Class     `json:"class"`
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mtime"`
	// Receipts are the valid receipts the file has after the flush.
	Receipts []Receipt `json:"receipts,omitempty"`
	// AlreadySafe: the file met the replication target before the flush
	// started (continuous sync had done it).
	AlreadySafe bool `json:"already_safe,omitempty"`
	// Replicated: it meets the replication target after the flush.
	Replicated bool `json:"replicated"`
	// Reason (ReasonDeadline, ReasonError, ReasonNoTarget) and Detail for
	// files that did not make it.
	Reason string `json:"reason,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// FlushResult says exactly which files are off the node after a flush. A
// file "made it" when at least one target holds a verified copy of its
// current version; Replicated tells whether it reached the replication
// target.
type FlushResult struct {
	NodeID   string    `json:"node"`
	Started  time.Time `json:"started"`
	Deadline time.Time `json:"deadline"`
	Finished time.Time `json:"finished"`
	// Manifest is the JSON manifest pushed first, with its receipts.
	Manifest FlushFile `json:"manifest"`
	// Made and Missed are in flush order.
	Made   []FlushFile `json:"made"`
	Missed []FlushFile `json:"missed"`
	// BytesSent in bytes.
	BytesSent int64 `json:"bytes_sent"`
	// FirstByte is when the first byte of the flush went out (zero if none).
	FirstByte time.Time `json:"first_byte,omitzero"`
	// RPO after the flush.
	RPO RPO `json:"rpo"`
	// Error is set when the flush could not run at all.
	Error string `json:"error,omitempty"`
}

// TargetState is the engine's view of one target's health.
type TargetState struct {
	NodeID       string    `json:"node"`
	Failures     int       `json:"failures"`
	BackoffUntil time.Time `json:"backoff_until,omitzero"`
	LastError    string    `json:"last_error,omitempty"`
	LastSuccess  time.Time `json:"last_success,omitzero"`
	// BytesPerSecond is the measured throughput of recent pushes (0 = none yet).
	BytesPerSecond float64 `json:"bytes_per_second"`
}

// EngineStatus is a snapshot of the engine for heartbeats and meshctl.
type EngineStatus struct {
	NodeID    string        `json:"node"`
	RPO       RPO           `json:"rpo"`
	Busy      bool          `json:"busy"`
	Flushing  bool          `json:"flushing"`
	Progress  Progress      `json:"progress"`
	Cycles    int64         `json:"cycles"`
	BytesSent int64         `json:"bytes_sent"`
	LastCycle *CycleReport  `json:"last_cycle,omitempty"`
	Targets   []TargetState `json:"targets"`
}

// Engine runs continuous sync, SyncNow and the preemption flush for one
// agent. Every push goes through one pool of MaxConcurrent slots.
type Engine struct {
	cfg EngineConfig
	log zerolog.Logger

	cycleLock chan struct{} // held by the running cycle, SyncNow or Flush
	slots     chan struct{} // push concurrency
	wake      chan struct{}

	mu           sync.Mutex
	cycleCancel  context.CancelFunc
	flushing     bool
	busy         bool
	targets      map[string]*targetState
	lastSnapshot map[string]time.Time
	// shadows are the databases' local copies (dbShadow), by path.
	shadows   map[string]*dbShadow
	lastCycle *CycleReport
	progress  Progress

	cycles    atomic.Int64
	bytesSent atomic.Int64
}

type targetState struct {
	TargetState
}

// NewEngine validates cfg and returns an engine; Run starts it.
func NewEngine(cfg EngineConfig) (*Engine, error) {
	switch {
	case cfg.NodeID == "":
		return nil, errors.New("sync engine: NodeID is required")
	case cfg.Manifest == nil:
		return nil, errors.New("sync engine: Manifest is required")
	case cfg.Transport == nil:
		return nil, errors.New("sync engine: Transport is required")
	case cfg.Targets == nil:
		return nil, errors.New("sync engine: Targets is required")
	case cfg.StateDir == "":
		return nil, errors.New("sync engine: StateDir is required")
	}
	if strings.ContainsAny(cfg.NodeID, "/\\") || cfg.NodeID == "." || cfg.NodeID == ".." {
		return nil, fmt.Errorf("sync engine: node ID %q is not a valid path segment", cfg.NodeID)
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 5 * time.Second
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = 1
	}
	if cfg.RetryBackoff <= 0 {
		cfg.RetryBackoff = cfg.Interval
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 5 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	snapDir := filepath.Join(cfg.StateDir, "snapshots")
	if err := os.MkdirAll(snapDir, 0o700); err != nil {
		return nil, fmt.Errorf("sync engine: %w", err)
	}
	// Snapshots left by a crash are of no use.
	if old, err := os.ReadDir(snapDir); err == nil {
		for _, f := range old {
			_ = os.Remove(filepath.Join(snapDir, f.Name()))
		}
	}
	e := &Engine{
		cfg:          cfg,
		log:          cfg.Logger,
		cycleLock:    make(chan struct{}, 1),
		slots:        make(chan struct{}, cfg.MaxConcurrent),
		wake:         make(chan struct{}, 1),
		targets:      map[string]*targetState{},
		lastSnapshot: map[string]time.Time{},
		shadows:      map[string]*dbShadow{},
	}
	return e, nil
}

// Run syncs continuously until ctx ends: scan, push what is missing, wait
// Interval (or a Trigger), repeat. It returns ctx.Err().
func (e *Engine) Run(ctx context.Context) error {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		case <-e.wake:
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		}
		rep, err := e.cycle(ctx, cycleOpts{continuous: true, progress: e.cfg.OnProgress})
		if err == nil && e.cfg.OnCycle != nil {
			e.cfg.OnCycle(rep)
		}
		timer.Reset(e.cfg.Interval)
	}
}

// Trigger makes Run start a cycle now (new data, targets changed).
func (e *Engine) Trigger() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// SyncNow runs one full cycle at once (waiting for a running one to end),
// ignoring target backoff and the database snapshot interval, and reports
// progress (bytes done / total) to onProgress as well as to OnProgress.
func (e *Engine) SyncNow(ctx context.Context, onProgress func(Progress)) (CycleReport, error) {
	return e.cycle(ctx, cycleOpts{progress: joinProgress(onProgress, e.cfg.OnProgress)})
}

func joinProgress(a, b func(Progress)) func(Progress) {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	}
	return func(p Progress) { a(p); b(p) }
}

// RPO is the node's current recovery point.
func (e *Engine) RPO() RPO { return e.cfg.Manifest.RPO(e.cfg.Now()) }

// FreshRPO measures the recovery point now by walking the sources
// (Manifest.FreshRPO); the safe-to-terminate gate asks for it instead of
// trusting the last heartbeat.
func (e *Engine) FreshRPO(ctx context.Context) (RPO, error) { return e.cfg.Manifest.FreshRPO(ctx) }

// Status returns a snapshot of the engine.
func (e *Engine) Status() EngineStatus {
	st := EngineStatus{
		NodeID:    e.cfg.NodeID,
		RPO:       e.RPO(),
		Cycles:    e.cycles.Load(),
		BytesSent: e.bytesSent.Load(),
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	st.Busy, st.Flushing, st.Progress = e.busy, e.flushing, e.progress
	if e.lastCycle != nil {
		c := *e.lastCycle
		st.LastCycle = &c
	}
	for _, t := range e.targets {
		st.Targets = append(st.Targets, t.TargetState)
	}
	slices.SortFunc(st.Targets, func(a, b TargetState) int { return strings.Compare(a.NodeID, b.NodeID) })
	return st
}

func (e *Engine) lock(ctx context.Context) error {
	select {
	case e.cycleLock <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (e *Engine) unlock() { <-e.cycleLock }

type cycleOpts struct {
	continuous bool // honour backoff and DBSnapshotInterval; step aside for Flush
	progress   func(Progress)
}

func (e *Engine) cycle(ctx context.Context, o cycleOpts) (CycleReport, error) {
	if err := e.lock(ctx); err != nil {
		return CycleReport{}, err
	}
	defer e.unlock()
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	e.mu.Lock()
	if o.continuous && e.flushing {
		e.mu.Unlock()
		return CycleReport{}, errors.New("flush in progress")
	}
	e.cycleCancel = cancel
	e.busy = true
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		e.cycleCancel = nil
		e.busy = false
		e.mu.Unlock()
	}()

	rep := CycleReport{Started: e.cfg.Now()}
	pr := newProgressTracker(e, "scan", o.progress)
	pr.emit(true)
	scan, err := e.cfg.Manifest.Scan(cctx, ScanOptions{})
	rep.Scan = scan
	if err != nil {
		rep.Error = err.Error()
		rep.Finished = e.cfg.Now()
		rep.RPO = e.RPO()
		return rep, err
	}
	for _, msg := range scan.Errors {
		e.log.Warn().Str("error", msg).Msg("sync scan")
	}

	e.pruneShadows()
	targets := e.usableTargets(e.cfg.Targets())
	repl := e.cfg.Manifest.ReplicationTarget()
	now := e.cfg.Now()
	var jobs []*job
	for _, ent := range e.ordered() {
		need := repl - ent.VerifiedCopies()
		if need <= 0 {
			continue
		}
		var cands []Target
		for _, t := range targets {
			if !t.Accepts(ent.Class) || hasValid(ent, t.NodeID) {
				continue
			}
			if o.continuous && e.backingOff(t.NodeID, now) {
				rep.Deferred++
				continue
			}
			cands = append(cands, t)
		}
		if len(cands) == 0 {
			continue
		}
		if o.continuous && ent.Class == ClassDB && e.cfg.DBSnapshotInterval > 0 {
			e.mu.Lock()
			last := e.lastSnapshot[ent.Path]
			e.mu.Unlock()
			if !last.IsZero() && now.Sub(last) < e.cfg.DBSnapshotInterval {
				rep.Deferred++
				continue
			}
		}
		jobs = append(jobs, &job{entry: ent, targets: cands, need: need})
	}
	// Oldest data at risk first, across all classes: a stream of new files
	// (or a database written all the time) cannot starve older ones.
	slices.SortStableFunc(jobs, func(a, b *job) int { return compareAge(a.entry, b.entry) })
	pr.plan("push", jobs)
	results := e.runJobs(cctx, jobs, pr, nil)
	for _, r := range results {
		if r.Error == "" {
			rep.Pushed = append(rep.Pushed, r)
		} else {
			rep.Failed = append(rep.Failed, r)
		}
	}
	rep.BytesSent = pr.sent.Load()
	rep.Finished = e.cfg.Now()
	rep.RPO = e.RPO()
	pr.finish()
	if err := cctx.Err(); err != nil {
		rep.Error = err.Error()
	}
	e.cycles.Add(1)
	e.mu.Lock()
	c := rep
	e.lastCycle = &c
	e.mu.Unlock()
	if rep.Error != "" {
		return rep, cctx.Err()
	}
	return rep, nil
}

func hasValid(ent FileEntry, node string) bool {
	r, ok := ent.Receipts[node]
	return ok && ent.ValidReceipt(r)
}

// usableTargets drops targets without a node ID and this node itself.
func (e *Engine) usableTargets(ts []Target) []Target {
	var out []Target
	seen := map[string]bool{}
	for _, t := range ts {
		if t.NodeID == "" || t.NodeID == e.cfg.NodeID || seen[t.NodeID] {
			continue
		}
		seen[t.NodeID] = true
		out = append(out, t)
	}
	return out
}

// ordered returns the manifest entries in flush order: manifests, then
// checkpoints and models, then databases, then the rest (NPZ); within a
// group higher Source.Priority first, then newest first, then by path.
func (e *Engine) ordered() []FileEntry {
	ents := e.cfg.Manifest.Entries()
	slices.SortStableFunc(ents, compareFlushOrder)
	return ents
}

func classRank(c Class) int {
	switch c {
	case ClassManifest:
		return 0
	case ClassCheckpoint, ClassModel:
		return 1
	case ClassDB:
		return 2
	}
	return 3
}

func compareFlushOrder(a, b FileEntry) int {
	if ra, rb := classRank(a.Class), classRank(b.Class); ra != rb {
		return ra - rb
	}
	if a.Priority != b.Priority {
		return b.Priority - a.Priority
	}
	if c := b.Latest().Compare(a.Latest()); c != 0 {
		return c
	}
	return strings.Compare(a.Path, b.Path)
}

// atRiskSince is when the entry's oldest change not yet on enough targets
// happened (DirtySince, else its latest mtime).
func atRiskSince(e FileEntry) time.Time {
	if !e.DirtySince.IsZero() {
		return e.DirtySince
	}
	return e.Latest()
}

// compareAge is the continuous-sync order: the oldest data at risk first;
// equal ages in flush order (class, Source.Priority, path).
func compareAge(a, b FileEntry) int {
	if c := atRiskSince(a).Compare(atRiskSince(b)); c != 0 {
		return c
	}
	return compareFlushOrder(a, b)
}

func (e *Engine) backingOff(node string, now time.Time) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.targets[node]
	return t != nil && now.Before(t.BackoffUntil)
}

func (e *Engine) targetOK(node string, bytes int64, d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.target(node)
	t.Failures, t.BackoffUntil, t.LastError = 0, time.Time{}, ""
	t.LastSuccess = e.cfg.Now()
	if bytes >= 1<<20 && d > 0 {
		bps := float64(bytes) / d.Seconds()
		if t.BytesPerSecond == 0 {
			t.BytesPerSecond = bps
		} else {
			t.BytesPerSecond = 0.5*t.BytesPerSecond + 0.5*bps
		}
	}
}

func (e *Engine) targetFailed(node string, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.target(node)
	t.Failures++
	t.LastError = err.Error()
	d := e.cfg.RetryBackoff
	for i := 1; i < t.Failures && d < e.cfg.MaxBackoff; i++ {
		d *= 2
	}
	if d > e.cfg.MaxBackoff {
		d = e.cfg.MaxBackoff
	}
	t.BackoffUntil = e.cfg.Now().Add(d)
}

func (e *Engine) target(node string) *targetState {
	t := e.targets[node]
	if t == nil {
		t = &targetState{TargetState: TargetState{NodeID: node}}
		e.targets[node] = t
	}
	return t
}

func (e *Engine) throughput(node string) float64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	if t := e.targets[node]; t != nil {
		return t.BytesPerSecond
	}
	return 0
}

// job pushes one file to up to need of its candidate targets, in order.
type job struct {
	entry   FileEntry
	targets []Target
	need    int
	// outcome, for flush reporting
	attempted bool
	lastErr   error
	// copiedTo lists the targets this job made a verified copy on.
	copiedTo []string
}

// planned is the number of pushes the job is expected to make.
func (j *job) planned() int { return min(j.need, len(j.targets)) }

// jobHooks adapt runJobs for the flush.
type jobHooks struct {
	// skip is asked before each push; a non-empty answer skips it.
	skip func(j *job, t Target) string
	// connectTimeout overrides targets' ConnectTimeout when > 0.
	connectTimeout func() time.Duration
	// expired reports that no further job may start (the flush deadline
	// passed on the engine's clock).
	expired func() bool
}

// runJobs runs jobs in order on the engine's push slots.
func (e *Engine) runJobs(ctx context.Context, jobs []*job, pr *progressTracker, hooks *jobHooks) []PushResult {
	var mu sync.Mutex
	var results []PushResult
	var wg sync.WaitGroup
	for _, j := range jobs {
		acquired := false
		select {
		case e.slots <- struct{}{}:
			acquired = true
		case <-ctx.Done():
		}
		if ctx.Err() != nil || (hooks != nil && hooks.expired != nil && hooks.expired()) {
			if acquired {
				<-e.slots
			}
			break
		}
		wg.Add(1)
		go func(j *job) {
			defer wg.Done()
			defer func() { <-e.slots }()
			rs := e.runJob(ctx, j, pr, hooks)
			mu.Lock()
			results = append(results, rs...)
			mu.Unlock()
		}(j)
	}
	wg.Wait()
	return results
}

// shadow returns the database's shadow copy, made on first use.
func (e *Engine) shadow(dbPath string) *dbShadow {
	e.mu.Lock()
	defer e.mu.Unlock()
	sh := e.shadows[dbPath]
	if sh == nil {
		sh = newDBShadow(filepath.Join(e.cfg.StateDir, "snapshots"), dbPath)
		e.shadows[dbPath] = sh
	}
	return sh
}

// pruneShadows removes the shadow copies of databases no longer in the
// manifest (deleted, or no longer matched by a data class), unless a push
// is reading one.
func (e *Engine) pruneShadows() {
	present := map[string]bool{}
	for _, ent := range e.cfg.Manifest.Entries() {
		if ent.Class == ClassDB {
			present[ent.Path] = true
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for p, sh := range e.shadows {
		if present[p] {
			continue
		}
		select {
		case sh.busy <- struct{}{}:
		default:
			continue // in use: the next cycle
		}
		if err := os.Remove(sh.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			e.log.Warn().Err(err).Str("shadow", sh.path).Msg("could not remove the shadow copy of a database no longer synced")
		}
		delete(e.shadows, p)
		<-sh.busy
	}
}

func (e *Engine) runJob(ctx context.Context, j *job, pr *progressTracker, hooks *jobHooks) []PushResult {
	ent := j.entry
	var results []PushResult
	lf := LocalFile{
		Path:          ent.Path,
		RemoteName:    ent.RemoteName(e.cfg.NodeID),
		Size:          ent.Size,
		ModTime:       ent.ModTime,
		SHA256:        ent.SHA256,
		SourceSize:    ent.Size,
		SourceModTime: ent.ModTime,
	}
	if ent.Class == ClassDB {
		if ctx.Err() != nil {
			j.lastErr = ctx.Err()
			return nil
		}
		sh := e.shadow(ent.Path)
		if err := sh.lock(ctx); err != nil {
			j.lastErr = err
			pr.unplanned(ent.Size, j.planned())
			return nil
		}
		// The pushes below read the shadow: the next version waits for them.
		defer sh.unlock()
		snap, err := sh.snapshot(ctx, ent.Path)
		e.mu.Lock()
		e.lastSnapshot[ent.Path] = e.cfg.Now()
		e.mu.Unlock()
		if err != nil {
			j.attempted, j.lastErr = true, err
			e.log.Warn().Err(err).Str("path", ent.Path).Msg("database snapshot failed")
			pr.unplanned(ent.Size, j.planned())
			return []PushResult{{Path: ent.Path, Class: ent.Class, Error: err.Error()}}
		}
		if snap.Path != sh.path {
			defer os.Remove(snap.Path)
		}
		e.log.Debug().Str("path", ent.Path).Str("method", snap.Method).Int64("size", snap.Size).
			Int64("written", snap.Written).Dur("took", snap.Took).Msg("database snapshot")
		e.cfg.Manifest.SetHash(ent.Path, snap.Source, snap.SHA256)
		lf.Path, lf.Size, lf.ModTime, lf.SHA256 = snap.Path, snap.Size, time.Time{}, snap.SHA256
		lf.Pages = snap.Pages
		lf.SourceSize, lf.SourceModTime = snap.Source.Size, snap.Source.ModTime
		lf.SourceWALSize, lf.SourceWALModTime = snap.Source.WALSize, snap.Source.WALModTime
	}
	got := 0
	next := 0
	if hooks == nil && j.need > 1 && len(j.targets) > 1 {
		// Continuous sync and SyncNow: the copies go to their targets in
		// parallel (each target is its own link, with its own bandwidth
		// limit); a target that fails is replaced by the next candidate below.
		n := min(j.need, len(j.targets))
		type out struct {
			res PushResult
			ok  bool
			err error
		}
		outs := make([]out, n)
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Go(func() {
				r, ok, err := e.pushOne(ctx, ent, lf, j.targets[i], pr)
				outs[i] = out{r, ok, err}
			})
		}
		wg.Wait()
		next = n
		for _, o := range outs {
			if o.res.Target != "" {
				results = append(results, o.res)
				j.attempted = true
			}
			if o.ok {
				got++
				j.copiedTo = append(j.copiedTo, o.res.Target)
			} else if o.err != nil {
				j.lastErr = o.err
				if errors.Is(o.err, ErrSourceChanged) {
					next = len(j.targets) // the next scan sees the new version
				}
			}
		}
	}
	for _, t := range j.targets[next:] {
		if got >= j.need {
			break
		}
		if ctx.Err() != nil {
			if j.lastErr == nil {
				j.lastErr = ctx.Err()
			}
			break
		}
		if hooks != nil && hooks.skip != nil {
			if why := hooks.skip(j, t); why != "" {
				j.lastErr = errors.New(why)
				continue
			}
		}
		if hooks != nil && hooks.connectTimeout != nil {
			if ct := hooks.connectTimeout(); ct > 0 && (t.ConnectTimeout <= 0 || ct < t.ConnectTimeout) {
				t.ConnectTimeout = ct
			}
		}
		j.attempted = true
		res, ok, err := e.pushOne(ctx, ent, lf, t, pr)
		results = append(results, res)
		if ok {
			got++
			j.copiedTo = append(j.copiedTo, t.NodeID)
			continue
		}
		j.lastErr = err
		if errors.Is(err, ErrSourceChanged) {
			break // the next scan sees the new version
		}
	}
	pr.unplanned(ent.Size, j.planned()-got)
	return results
}

// pushOne pushes lf (the file of ent, or its snapshot) to t and records
// the receipt. It returns the result, whether a verified copy exists now,
// and the error otherwise.
func (e *Engine) pushOne(ctx context.Context, ent FileEntry, lf LocalFile, t Target, pr *progressTracker) (PushResult, bool, error) {
	if ctx.Err() != nil {
		return PushResult{}, false, ctx.Err()
	}
	f := lf
	var mu sync.Mutex
	var last int64
	f.Progress = func(sent int64) {
		mu.Lock()
		d := sent - last
		last = sent
		mu.Unlock()
		pr.add(d)
	}
	pr.current(ent.Path)
	start := e.cfg.Now()
	rc, err := e.cfg.Transport.Push(ctx, f, t)
	d := e.cfg.Now().Sub(start)
	res := PushResult{Path: ent.Path, Class: ent.Class, Target: t.NodeID, Seconds: d.Seconds()}
	mu.Lock()
	sent := last
	mu.Unlock()
	if err != nil {
		res.Error = err.Error()
		pr.done(ent.Size, sent, false)
		if ctx.Err() == nil && !errors.Is(err, ErrSourceChanged) {
			e.targetFailed(t.NodeID, err)
		}
		e.log.Warn().Err(err).Str("path", ent.Path).Str("target", t.NodeID).Msg("push failed")
		return res, false, err
	}
	if ent.Class != ClassDB && ent.SHA256 == "" {
		e.cfg.Manifest.SetHash(ent.Path, ent.Version, rc.SHA256)
	}
	if err := e.cfg.Manifest.RecordReceipt(ent.Path, rc); err != nil {
		e.log.Warn().Err(err).Str("path", ent.Path).Msg("record receipt")
	}
	e.targetOK(t.NodeID, rc.BytesSent, d)
	pr.done(ent.Size, sent, true)
	rcCopy := rc
	res.Receipt = &rcCopy
	return res, true, nil
}

// Flush is the preemption path: it stops continuous sync, then, before
// deadline, pushes (1) a JSON manifest of every file and its state, (2) the
// files without any verified copy in flush order (manifests, newest
// checkpoints and models, databases newest first, the rest), one copy each,
// (3) further copies up to the replication target. Files are hashed while
// they are sent (the scan only stats). It returns exactly which files have
// a verified copy off the node and which do not, and why.
func (e *Engine) Flush(ctx context.Context, deadline time.Time) FlushResult {
	res := FlushResult{NodeID: e.cfg.NodeID, Started: e.cfg.Now(), Deadline: deadline}
	fctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()

	e.mu.Lock()
	e.flushing = true
	if e.cycleCancel != nil {
		e.cycleCancel()
	}
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		e.flushing = false
		e.mu.Unlock()
	}()
	if err := e.lock(fctx); err != nil {
		res.Error = "waiting for the running cycle to stop: " + err.Error()
		res.Finished = e.cfg.Now()
		return e.flushOutcome(res, nil, nil)
	}
	defer e.unlock()
	e.mu.Lock()
	e.busy = true
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		e.busy = false
		e.mu.Unlock()
	}()

	// Stat only: new and changed files are hashed while they are sent.
	if _, err := e.cfg.Manifest.Scan(fctx, ScanOptions{SkipHash: true}); err != nil {
		res.Error = "scan: " + err.Error()
	}
	repl := e.cfg.Manifest.ReplicationTarget()
	before := map[string]bool{}
	for _, ent := range e.cfg.Manifest.Entries() {
		if ent.Synced(repl) {
			before[ent.Path] = true
		}
	}
	targets := e.usableTargets(e.cfg.Targets())
	pr := newProgressTracker(e, "flush", e.cfg.OnProgress)
	var firstByte atomic.Int64
	pr.onFirstByte = func() { firstByte.CompareAndSwap(0, e.cfg.Now().UnixNano()) }

	// expired: the deadline passed on the engine's clock (or the flush
	// context ended).
	expired := func() bool { return fctx.Err() != nil || !e.cfg.Now().Before(deadline) }
	hooks := &jobHooks{
		expired: expired,
		skip: func(j *job, t Target) string {
			left := deadline.Sub(e.cfg.Now())
			if left <= 0 {
				return "deadline passed before the push started"
			}
			bps := e.throughput(t.NodeID)
			if bps <= 0 {
				return ""
			}
			size := j.entry.Size
			need := time.Duration(float64(size) / bps * float64(time.Second))
			if need > left {
				return fmt.Sprintf("not attempted: needs ~%s at %s/s, %s left", need.Round(100*time.Millisecond),
					fmtBytes(int64(bps)), left.Round(100*time.Millisecond))
			}
			return ""
		},
		connectTimeout: func() time.Duration {
			ct := deadline.Sub(e.cfg.Now()) / 4
			return min(max(ct, time.Second), 10*time.Second)
		},
	}

	// (1) the manifest, to one target first.
	ents := e.ordered()
	manifestFile, mErr := e.writeFlushManifest(ents, repl, res.Started)
	var manTargets []Target
	for _, t := range targets {
		if t.Accepts(ClassManifest) {
			manTargets = append(manTargets, t)
		}
	}
	res.Manifest = FlushFile{Path: manifestFile.Path, Class: ClassManifest, Size: manifestFile.Size}
	var manifestReceipts []Receipt
	// pushManifest pushes the manifest to targets in order until want
	// targets hold it.
	pushManifest := func(want int) {
		for _, t := range manTargets {
			if len(manifestReceipts) >= want || expired() {
				return
			}
			if slices.ContainsFunc(manifestReceipts, func(r Receipt) bool { return r.NodeID == t.NodeID }) {
				continue
			}
			f := manifestFile
			var last int64
			f.Progress = func(sent int64) { pr.add(sent - last); last = sent }
			t.ConnectTimeout = hooks.connectTimeout()
			select {
			case e.slots <- struct{}{}:
			case <-fctx.Done():
				return
			}
			rc, err := e.cfg.Transport.Push(fctx, f, t)
			<-e.slots
			if err != nil {
				res.Manifest.Detail = err.Error()
				if fctx.Err() == nil {
					e.targetFailed(t.NodeID, err)
				}
				continue
			}
			manifestReceipts = append(manifestReceipts, rc)
		}
	}
	if mErr != nil {
		res.Manifest.Reason, res.Manifest.Detail = ReasonError, mErr.Error()
	} else {
		pushManifest(1)
	}

	// (2) one copy of everything that has none, (3) more copies.
	var pass1, pass2 []*job
	jobsByPath := map[string][]*job{}
	for _, ent := range ents {
		have := ent.VerifiedCopies()
		if have >= repl {
			continue
		}
		var cands []Target
		for _, t := range targets {
			if t.Accepts(ent.Class) && !hasValid(ent, t.NodeID) {
				cands = append(cands, t)
			}
		}
		if len(cands) == 0 {
			continue
		}
		if have == 0 {
			j := &job{entry: ent, targets: cands, need: 1}
			pass1 = append(pass1, j)
			jobsByPath[ent.Path] = append(jobsByPath[ent.Path], j)
		}
	}
	pr.plan("flush", pass1)
	e.runJobs(fctx, pass1, pr, hooks)

	if mErr == nil && !expired() {
		pushManifest(len(manTargets)) // the other targets get it too
	}
	if !expired() {
		for _, ent := range e.ordered() {
			have := ent.VerifiedCopies()
			// A target that took a copy in the first pass that does not
			// count (a database committed to after the scan: the copy is
			// newer than what the scan saw) would only get the same again.
			var copied []string
			for _, pj := range jobsByPath[ent.Path] {
				for _, id := range pj.copiedTo {
					if !hasValid(ent, id) && !slices.Contains(copied, id) {
						copied = append(copied, id)
					}
				}
			}
			if have+len(copied) >= repl {
				continue
			}
			var cands []Target
			for _, t := range targets {
				if t.Accepts(ent.Class) && !hasValid(ent, t.NodeID) && !slices.Contains(copied, t.NodeID) {
					cands = append(cands, t)
				}
			}
			if len(cands) == 0 {
				continue
			}
			j := &job{entry: ent, targets: cands, need: repl - have - len(copied)}
			pass2 = append(pass2, j)
			jobsByPath[ent.Path] = append(jobsByPath[ent.Path], j)
		}
		pr.plan("flush", pass2)
		e.runJobs(fctx, pass2, pr, hooks)
	}
	pr.finish()

	res.Manifest.Receipts = manifestReceipts
	res.Manifest.Replicated = len(manifestReceipts) >= min(repl, max(1, len(manTargets)))
	if len(manifestReceipts) == 0 && res.Manifest.Reason == "" {
		res.Manifest.Reason = flushReason(fctx, res.Manifest.Detail, len(manTargets))
	} else if len(manifestReceipts) > 0 {
		res.Manifest.Detail = ""
	}
	res.BytesSent = pr.sent.Load()
	if fb := firstByte.Load(); fb != 0 {
		res.FirstByte = time.Unix(0, fb)
	}
	res.Finished = e.cfg.Now()
	return e.flushOutcome(res, before, jobsByPath)
}

func flushReason(ctx context.Context, detail string, targets int) string {
	switch {
	case targets == 0:
		return ReasonNoTarget
	case ctx.Err() != nil, strings.Contains(detail, "deadline"), strings.Contains(detail, "not attempted"):
		return ReasonDeadline
	}
	return ReasonError
}

// flushOutcome sorts every manifest entry into Made / Missed.
func (e *Engine) flushOutcome(res FlushResult, before map[string]bool, jobs map[string][]*job) FlushResult {
	repl := e.cfg.Manifest.ReplicationTarget()
	deadlinePassed := !e.cfg.Now().Before(res.Deadline)
	for _, ent := range e.ordered() {
		f := FlushFile{Path: ent.Path, Class: ent.Class, Size: ent.Size, ModTime: ent.ModTime, AlreadySafe: before[ent.Path]}
		for _, r := range ent.Receipts {
			if ent.ValidReceipt(r) {
				f.Receipts = append(f.Receipts, r)
			}
		}
		slices.SortFunc(f.Receipts, func(a, b Receipt) int { return strings.Compare(a.NodeID, b.NodeID) })
		f.Replicated = len(f.Receipts) >= repl
		if len(f.Receipts) > 0 {
			res.Made = append(res.Made, f)
			continue
		}
		js := jobs[ent.Path]
		switch {
		case len(js) == 0 && res.Error != "":
			f.Reason, f.Detail = ReasonDeadline, res.Error
			if !deadlinePassed && !strings.Contains(res.Error, "deadline") {
				f.Reason = ReasonError
			}
		case len(js) == 0:
			f.Reason, f.Detail = ReasonNoTarget, "no target receives class "+string(ent.Class)
		default:
			j := js[len(js)-1]
			var copiedTo []string
			for _, pj := range js {
				for _, id := range pj.copiedTo {
					if !slices.Contains(copiedTo, id) {
						copiedTo = append(copiedTo, id)
					}
				}
			}
			switch {
			case len(copiedTo) > 0:
				// A database committed to between the flush's scan and its
				// snapshot: the copy is of a version the scan did not see.
				f.Reason = ReasonChanged
				f.Detail = fmt.Sprintf("copied to %s, but it changed between the scan and the snapshot the copy was made from",
					strings.Join(copiedTo, ", "))
				if j.lastErr != nil {
					f.Detail += "; then: " + j.lastErr.Error()
				}
			case j.lastErr == nil:
				f.Reason, f.Detail = ReasonDeadline, "not started before the deadline"
			case errors.Is(j.lastErr, context.DeadlineExceeded) || strings.HasPrefix(j.lastErr.Error(), "not attempted") ||
				strings.HasPrefix(j.lastErr.Error(), "deadline passed"):
				f.Reason, f.Detail = ReasonDeadline, j.lastErr.Error()
			case errors.Is(j.lastErr, context.Canceled):
				f.Reason, f.Detail = ReasonError, j.lastErr.Error()
			default:
				f.Reason, f.Detail = ReasonError, j.lastErr.Error()
			}
		}
		res.Missed = append(res.Missed, f)
	}
	res.RPO = e.RPO()
	return res
}

// flushManifestDoc is the JSON manifest pushed first on a flush.
type flushManifestDoc struct {
	Schema            string              `json:"schema"`
	Node              string              `json:"node"`
	GeneratedAt       time.Time           `json:"generated_at"`
	ReplicationTarget int                 `json:"replication_target"`
	Files             []flushManifestFile `json:"files"`
}

type flushManifestFile struct {
	Path       string    `json:"path"`
	RemoteName string    `json:"remote_name"`
	Class      Class     `json:"class"`
	Size       int64     `json:"size"`
	ModTime    time.Time `json:"mtime"`
	SHA256     string    `json:"sha256,omitempty"`
	CopiesOn   []string  `json:"copies_on,omitempty"`
	Synced     bool      `json:"synced"`
}

// writeFlushManifest writes the JSON manifest atomically under StateDir.
func (e *Engine) writeFlushManifest(ents []FileEntry, repl int, now time.Time) (LocalFile, error) {
	doc := flushManifestDoc{Schema: "ringmesh.sync.manifest.v1", Node: e.cfg.NodeID, GeneratedAt: now.UTC(), ReplicationTarget: repl}
	for _, ent := range ents {
		f := flushManifestFile{Path: ent.Path, RemoteName: ent.RemoteName(e.cfg.NodeID), Class: ent.Class, Size: ent.Size,
			ModTime: ent.ModTime, SHA256: ent.SHA256, Synced: ent.Synced(repl)}
		for n, r := range ent.Receipts {
			if ent.ValidReceipt(r) {
				f.CopiesOn = append(f.CopiesOn, n)
			}
		}
		slices.Sort(f.CopiesOn)
		doc.Files = append(doc.Files, f)
	}
	b, err := json.MarshalIndent(doc, "", " ")
	if err != nil {
		return LocalFile{}, err
	}
	p := filepath.Join(e.cfg.StateDir, "flush-manifest.json")
	if err := writeFileAtomic(p, b); err != nil {
		return LocalFile{Path: p}, err
	}
	return LocalFile{Path: p, RemoteName: e.cfg.NodeID + "/" + ManifestRemoteName, Size: int64(len(b))}, nil
}

func writeFileAtomic(p string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(p), filepath.Base(p)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), p)
}

// progressTracker aggregates progress over concurrent pushes and emits it
// at most every 100 ms.
type progressTracker struct {
	e      *Engine
	fn     func(Progress)
	sent   atomic.Int64
	emitMu sync.Mutex // callbacks run one at a time, in order

	onFirstByte func()

	mu       sync.Mutex
	p        Progress
	lastEmit time.Time
	inflight int64
}

func newProgressTracker(e *Engine, phase string, fn func(Progress)) *progressTracker {
	t := &progressTracker{e: e, fn: fn}
	t.p.Phase = phase
	return t
}

func (t *progressTracker) plan(phase string, jobs []*job) {
	t.mu.Lock()
	t.p.Phase = phase
	for _, j := range jobs {
		n := j.planned()
		t.p.FilesTotal += n
		t.p.BytesTotal += j.entry.Size * int64(n)
	}
	t.mu.Unlock()
	t.emit(true)
}

func (t *progressTracker) add(n int64) {
	if n <= 0 {
		return
	}
	if t.sent.Add(n) == n && t.onFirstByte != nil {
		t.onFirstByte()
	}
	t.e.bytesSent.Add(n)
	t.mu.Lock()
	t.inflight += n
	t.mu.Unlock()
	t.emit(false)
}

func (t *progressTracker) current(p string) {
	t.mu.Lock()
	t.p.Current = p
	t.mu.Unlock()
}

// done accounts a finished push of a file of size bytes that sent sent
// bytes over the wire.
func (t *progressTracker) done(size, sent int64, ok bool) {
	t.mu.Lock()
	t.inflight -= sent
	if ok {
		t.p.FilesDone++
		t.p.BytesDone += size
	}
	t.mu.Unlock()
	t.emit(false)
}

// unplanned removes n planned pushes of a file of size bytes that will not
// happen in this round (failed or cut by the deadline).
func (t *progressTracker) unplanned(size int64, n int) {
	if n <= 0 {
		return
	}
	t.mu.Lock()
	t.p.FilesTotal -= n
	t.p.BytesTotal -= size * int64(n)
	t.mu.Unlock()
}

func (t *progressTracker) finish() {
	t.mu.Lock()
	t.p.Phase = "done"
	t.p.Current = ""
	t.mu.Unlock()
	t.emit(true)
}

func (t *progressTracker) emit(force bool) {
	t.emitMu.Lock()
	defer t.emitMu.Unlock()
	t.mu.Lock()
	now := time.Now()
	if !force && now.Sub(t.lastEmit) < 100*time.Millisecond {
		t.mu.Unlock()
		return
	}
	t.lastEmit = now
	p := t.p
	p.BytesDone += t.inflight
	p.BytesSent = t.sent.Load()
	t.mu.Unlock()
	t.e.mu.Lock()
	t.e.progress = p
	t.e.mu.Unlock()
	if t.fn != nil {
		t.fn(p)
	}
}
