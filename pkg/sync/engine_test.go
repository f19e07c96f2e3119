package meshsync

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ringmesh/ringmesh/internal/testutil"
	"github.com/ringmesh/ringmesh/pkg/sync/sshtest"
)

// fakeTransport "sends" at a simulated rate and keeps what arrived in
// memory. It hashes what it reads, so receipts are real.
type fakeTransport struct {
	mu sync.Mutex
	// bytesPerSec is the simulated throughput (0 = instant).
	bytesPerSec float64
	// clock, when set, makes the transport run on virtual time: instead of
	// sleeping it advances clock by each chunk's transfer time, and a push
	// whose next chunk would end past ctx's deadline (read as a time on
	// clock) is cut there with context.DeadlineExceeded, as a real
	// deadline would cut it. Give the engine the same clock.
	clock *fakeClock
	// store[target][remoteName] = sha256 of the verified copy.
	store map[string]map[string]string
	// log lists pushes in start order: "target remoteName".
	log []string
	// started counts pushes started per remote name.
	fail func(f LocalFile, t Target) error
}

func newFakeTransport(bps float64) *fakeTransport {
	return &fakeTransport{bytesPerSec: bps, store: map[string]map[string]string{}}
}

func (f *fakeTransport) Push(ctx context.Context, file LocalFile, t Target) (Receipt, error) {
	f.mu.Lock()
	f.log = append(f.log, t.NodeID+" "+file.RemoteName)
	fail := f.fail
	bps := f.bytesPerSec
	clk := f.clock
	f.mu.Unlock()
	if fail != nil {
		if err := fail(file, t); err != nil {
			return Receipt{}, err
		}
	}
	fh, err := os.Open(file.Path)
	if err != nil {
		return Receipt{}, err
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil {
		return Receipt{}, err
	}
	if file.Size > 0 && fi.Size() != file.Size {
		return Receipt{}, ErrSourceChanged
	}
	h := sha256.New()
	const chunk = 64 << 10
	start := time.Now()
	var sent int64
	buf := make([]byte, chunk)
	for {
		n, rerr := fh.Read(buf)
		if n > 0 && clk != nil {
			if err := ctx.Err(); err != nil {
				return Receipt{}, fmt.Errorf("fake push of %s cut after %d bytes: %w", file.RemoteName, sent, err)
			}
			var step time.Duration
			if bps > 0 {
				step = time.Duration(float64(n) / bps * float64(time.Second))
			}
			if dl, ok := ctx.Deadline(); ok && clk.Now().Add(step).After(dl) {
				clk.advanceTo(dl)
				return Receipt{}, fmt.Errorf("fake push of %s cut after %d bytes: %w", file.RemoteName, sent, context.DeadlineExceeded)
			}
			clk.Advance(step)
		}
		if n > 0 {
			h.Write(buf[:n])
			sent += int64(n)
			if bps > 0 && clk == nil {
				due := start.Add(time.Duration(float64(sent) / bps * float64(time.Second)))
				if d := time.Until(due); d > 0 {
					select {
					case <-time.After(d):
					case <-ctx.Done():
						return Receipt{}, fmt.Errorf("fake push of %s cut after %d bytes: %w", file.RemoteName, sent, ctx.Err())
					}
				}
			}
			if file.Progress != nil {
				file.Progress(sent)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return Receipt{}, rerr
		}
	}
	if err := ctx.Err(); err != nil {
		return Receipt{}, err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if file.SHA256 != "" && sum != file.SHA256 {
		return Receipt{}, ErrSourceChanged
	}
	f.mu.Lock()
	if f.store[t.NodeID] == nil {
		f.store[t.NodeID] = map[string]string{}
	}
	f.store[t.NodeID][file.RemoteName] = sum
	f.mu.Unlock()
	verified := time.Now()
	if clk != nil {
		verified = clk.Now()
	}
	return Receipt{NodeID: t.NodeID, SHA256: sum, Size: sent, VerifiedAt: verified, RemotePath: file.RemoteName,
		Transport: "fake", BytesSent: sent, SourceSize: file.SourceSize, SourceModTime: file.SourceModTime,
		SourceWALSize: file.SourceWALSize, SourceWALModTime: file.SourceWALModTime}, nil
}

// advanceTo moves the clock forward to t (never back).
func (c *fakeClock) advanceTo(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.After(c.t) {
		c.t = t
	}
}

// newVirtualClock starts a virtual clock a day ahead of the wall clock, so
// that a flush context's deadline (a time on the virtual clock) never fires
// on the wall clock during a test: only the virtual time the transport
// spends decides what makes the deadline.
func newVirtualClock() *fakeClock { return &fakeClock{t: time.Now().Add(24 * time.Hour)} }

func (f *fakeTransport) has(target, remote string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.store[target][remote]
	return s, ok
}

func (f *fakeTransport) pushLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.log)
}

type engineFixture struct {
	dir     string
	m       *Manifest
	sources []Source
}

func newEngineFixture(t *testing.T, repl int) *engineFixture {
	dir := t.TempDir()
	f := &engineFixture{dir: dir}
	f.sources = []Source{
		{Class: ClassCheckpoint, Root: filepath.Join(dir, "checkpoints")},
		{Class: ClassModel, Root: filepath.Join(dir, "models")},
		{Class: ClassDB, Root: filepath.Join(dir, "games"), Globs: []string{"*.db"}},
		{Class: ClassNPZ, Root: filepath.Join(dir, "training"), Globs: []string{"*.npz"}},
	}
	m, err := OpenManifest(filepath.Join(dir, "state", "manifest.db"), ManifestOptions{Sources: f.sources, ReplicationTarget: repl})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	f.m = m
	return f
}

// file writes n random bytes under the fixture and sets its mtime to age ago.
func (f *engineFixture) file(t *testing.T, rel string, n int64, age time.Duration) string {
	t.Helper()
	p := filepath.Join(f.dir, rel)
	writeRandom(t, p, n, uint64(len(rel))*7919+uint64(n))
	mt := time.Now().Add(-age)
	if err := os.Chtimes(p, mt, mt); err != nil {
		t.Fatal(err)
	}
	return p
}

// sparse makes a big file quickly (content irrelevant).
func (f *engineFixture) sparse(t *testing.T, rel string, n int64) string {
	t.Helper()
	p := filepath.Join(f.dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	fh, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fh.WriteString("header"); err != nil {
		t.Fatal(err)
	}
	if err := fh.Truncate(n); err != nil {
		t.Fatal(err)
	}
	if err := fh.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

func (f *engineFixture) db(t *testing.T, rel string, rows int) string {
	t.Helper()
	p := filepath.Join(f.dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	w := startWriter(t, p, "WAL")
	testutil.EventuallyTrue(t, 30*time.Second, "rows", func() bool { return w.rows.Load() >= int64(rows) })
	w.Stop(t)
	return p
}

func TestEngineContinuousSyncOverSFTP(t *testing.T) {
	f := newEngineFixture(t, 2)
	s1 := sshtest.New(t, sshtest.Options{})
	s2 := sshtest.New(t, sshtest.Options{DisableExec: true})
	tr := NewSFTPTransport(SFTPOptions{})
	defer tr.Close()
	var tmu sync.Mutex
	targets := []Target{targetFor(s1, "hetzner-cpu1"), targetFor(s2, "hetzner-cpu2")}
	targets[1].HostKey = HostKeyConfig{Fingerprint: s2.Fingerprint()}

	ckpt := f.file(t, "checkpoints/epoch1.pt", 300<<10, time.Minute)
	npz := f.file(t, "training/hex8.npz", 50<<10, time.Minute)
	dbp := f.db(t, "games/selfplay.db", 100)

	var cycles sync.Mutex
	var reports []CycleReport
	eng, err := NewEngine(EngineConfig{
		NodeID: "vast-29129529", Manifest: f.m, Transport: tr, StateDir: filepath.Join(f.dir, "state"),
		Interval: 50 * time.Millisecond,
		Targets: func() []Target {
			tmu.Lock()
			defer tmu.Unlock()
			return slices.Clone(targets)
		},
		OnCycle: func(r CycleReport) { cycles.Lock(); reports = append(reports, r); cycles.Unlock() },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- eng.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-runErr; !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v", err)
		}
	}()

	testutil.EventuallyTrue(t, 30*time.Second, "RPO zero", func() bool { r := eng.RPO(); return r.Zero() && r.TotalFiles == 3 })
	for _, s := range []*sshtest.Server{s1, s2} {
		for rel, p := range map[string]string{"checkpoint/epoch1.pt": ckpt, "npz/hex8.npz": npz} {
			if got, want := fileSHA(t, s.LocalPath("/store/vast-29129529/"+rel)), fileSHA(t, p); got != want {
				t.Fatalf("%s: remote %s != local %s", rel, got, want)
			}
		}
		checkSQLite(t, s.LocalPath("/store/vast-29129529/db/selfplay.db"))
	}
	_ = dbp

	// New data is pushed within a few cycles.
	newFile := f.file(t, "models/best.bin", 100<<10, 0)
	eng.Trigger()
	testutil.EventuallyTrue(t, 30*time.Second, "new model synced", func() bool {
		e, ok := f.m.Entry(newFile)
		return ok && e.Synced(2)
	})
	// A changed file is pushed again.
	writeRandom(t, ckpt, 310<<10, 99)
	testutil.EventuallyTrue(t, 30*time.Second, "changed checkpoint synced", func() bool {
		e, ok := f.m.Entry(ckpt)
		return ok && e.SHA256 == fileSHA(t, ckpt) && e.Synced(2)
	})
	if got := fileSHA(t, s1.LocalPath("/store/vast-29129529/checkpoint/epoch1.pt")); got != fileSHA(t, ckpt) {
		t.Fatal("changed checkpoint not on target")
	}
	st := eng.Status()
	if st.Cycles == 0 || st.BytesSent == 0 || len(st.Targets) != 2 || !st.RPO.Zero() {
		t.Fatalf("status %+v", st)
	}
	b, err := json.Marshal(st)
	if err != nil || !strings.Contains(string(b), `"unsynced_bytes":0`) {
		t.Fatalf("status json %s %v", b, err)
	}
}

func TestEngineSyncNowProgress(t *testing.T) {
	f := newEngineFixture(t, 1)
	srv := sshtest.New(t, sshtest.Options{})
	tr := NewSFTPTransport(SFTPOptions{})
	defer tr.Close()
	var total int64
	for i := 0; i < 5; i++ {
		f.file(t, fmt.Sprintf("checkpoints/c%d.pt", i), 700<<10, time.Duration(i)*time.Minute)
		total += 700 << 10
	}
	eng, err := NewEngine(EngineConfig{NodeID: "runpod-1", Manifest: f.m, Transport: tr, StateDir: filepath.Join(f.dir, "state"),
		Targets: func() []Target { return []Target{targetFor(srv, "hetzner-cpu1")} }})
	if err != nil {
		t.Fatal(err)
	}
	var ps []Progress
	rep, err := eng.SyncNow(testCtx(t, time.Minute), func(p Progress) { ps = append(ps, p) })
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Pushed) != 5 || len(rep.Failed) != 0 || rep.BytesSent != total || !rep.RPO.Zero() {
		t.Fatalf("report %+v", rep)
	}
	last := ps[len(ps)-1]
	if last.Phase != "done" || last.BytesDone != total || last.BytesTotal != total || last.FilesDone != 5 || last.FilesTotal != 5 || last.BytesSent != total {
		t.Fatalf("final progress %+v, want %d/%d bytes", last, total, total)
	}
	var prev int64
	for _, p := range ps {
		if p.BytesDone < prev || (p.BytesTotal > 0 && p.BytesDone > p.BytesTotal) {
			t.Fatalf("progress went backwards or beyond total: %+v", ps)
		}
		prev = p.BytesDone
	}
	// Nothing left: a second SyncNow sends nothing.
	rep, err = eng.SyncNow(testCtx(t, time.Minute), nil)
	if err != nil || len(rep.Pushed) != 0 || rep.BytesSent != 0 {
		t.Fatalf("second SyncNow %+v %v", rep, err)
	}
}

func TestEngineBacksOffFailingTarget(t *testing.T) {
	f := newEngineFixture(t, 1)
	f.file(t, "checkpoints/a.pt", 1000, time.Minute)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close() // nothing listens there now
	dead := Target{NodeID: "dead", Endpoint: Endpoint{Host: "127.0.0.1", Port: port, User: "x"}, KeyPath: "/nonexistent",
		HostKey: HostKeyConfig{Fingerprint: "SHA256:" + strings.Repeat("A", 43)}, RemoteDir: "/store", ConnectTimeout: time.Second}
	tr := NewSFTPTransport(SFTPOptions{})
	defer tr.Close()
	eng, err := NewEngine(EngineConfig{NodeID: "vast-1", Manifest: f.m, Transport: tr, StateDir: filepath.Join(f.dir, "state"),
		Interval: time.Hour, RetryBackoff: time.Hour, Targets: func() []Target { return []Target{dead} }})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := eng.cycle(testCtx(t, time.Minute), cycleOpts{continuous: true})
	if err != nil || len(rep.Failed) != 1 {
		t.Fatalf("%+v %v", rep, err)
	}
	rep, _ = eng.cycle(testCtx(t, time.Minute), cycleOpts{continuous: true})
	if len(rep.Failed) != 0 || rep.Deferred != 1 {
		t.Fatalf("second cycle %+v, want the target deferred (backoff)", rep)
	}
	st := eng.Status()
	if len(st.Targets) != 1 || st.Targets[0].Failures != 1 || st.Targets[0].BackoffUntil.IsZero() || st.Targets[0].LastError == "" {
		t.Fatalf("target state %+v", st.Targets)
	}
	// SyncNow ignores the backoff.
	rep, _ = eng.SyncNow(testCtx(t, time.Minute), nil)
	if len(rep.Failed) != 1 {
		t.Fatalf("SyncNow %+v, want one attempt", rep)
	}
}

// TestFlushPreemption: a 15 s preemption deadline on a link that moves
// 2 MiB/s, on virtual time (the engine's clock and the transport's), so a
// busy machine changes nothing the test sees. Files older than the last
// continuous cycle were synced by the continuous loop; new data lands after
// it, and the notice comes before the next one (the interval is long, so
// no second cycle races the flush). The flush pushes the manifest first,
// then the new small files, and reports exactly the new big files as
// missed for the deadline: it does not even try them, as the throughput
// the continuous loop measured says they cannot make it.
func TestFlushPreemption(t *testing.T) {
	const interval = time.Hour
	const deadlineIn = 15 * time.Second

	f := newEngineFixture(t, 2)
	clk := newVirtualClock()
	tr := newFakeTransport(2 << 20)
	tr.clock = clk
	old := []string{
		f.file(t, "checkpoints/old.pt", 1<<20, time.Hour),
		f.file(t, "models/old.bin", 256<<10, time.Hour),
		f.file(t, "training/old.npz", 64<<10, time.Hour),
		f.db(t, "games/old.db", 40),
	}
	targets := []Target{{NodeID: "hetzner-cpu1"}, {NodeID: "hetzner-cpu2"}}
	eng, err := NewEngine(EngineConfig{NodeID: "vast-29129529", Manifest: f.m, Transport: tr, StateDir: filepath.Join(f.dir, "state"),
		Interval: interval, Targets: func() []Target { return targets }, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runDone := make(chan struct{})
	go func() { defer close(runDone); _ = eng.Run(ctx) }()
	defer func() { cancel(); <-runDone }()
	testutil.EventuallyTrue(t, 30*time.Second, "continuous sync of the old files", func() bool { return eng.RPO().Zero() })

	// New data lands just before the notice: small files that fit in the
	// deadline and big ones that cannot.
	newSmall := []string{
		f.file(t, "checkpoints/new-small.pt", 200<<10, 0),
		f.file(t, "training/new-small.npz", 30<<10, 0),
		f.db(t, "games/new.db", 40),
	}
	newBig := []string{
		f.sparse(t, "checkpoints/new-big.pt", 64<<20), // needs ~32 s at 2 MiB/s
		f.sparse(t, "training/new-big.npz", 48<<20),   // needs ~24 s
	}
	flushStart := clk.Now()
	res := eng.Flush(context.Background(), flushStart.Add(deadlineIn))
	took := res.Finished.Sub(res.Started) // virtual: the time the pushes took on the link
	if res.Started != flushStart || res.Finished.After(res.Deadline) {
		t.Errorf("flush ran %v → %v on the engine's clock, deadline %v", res.Started, res.Finished, res.Deadline)
	}
	if res.Error != "" {
		t.Fatalf("flush error %s", res.Error)
	}

	var flushLog []string
	for _, l := range tr.pushLog() {
		if strings.HasSuffix(l, ManifestRemoteName) || len(flushLog) > 0 {
			flushLog = append(flushLog, l)
		}
	}
	t.Logf("flush took %v of link time; pushes: %q", took, flushLog)
	// The manifest went first, and lists every file.
	if len(res.Manifest.Receipts) != 2 {
		t.Fatalf("manifest receipts %+v; result %+v", res.Manifest, res)
	}
	if len(flushLog) == 0 || !strings.HasSuffix(flushLog[0], "vast-29129529/"+ManifestRemoteName) {
		t.Fatalf("flush did not start with the manifest: %q", flushLog)
	}
	mb, err := os.ReadFile(filepath.Join(f.dir, "state", "flush-manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc flushManifestDoc
	if err := json.Unmarshal(mb, &doc); err != nil || len(doc.Files) != 9 || doc.Node != "vast-29129529" {
		t.Fatalf("manifest doc: %v %+v", err, doc)
	}

	made := map[string]FlushFile{}
	for _, ff := range res.Made {
		made[ff.Path] = ff
	}
	missed := map[string]FlushFile{}
	for _, ff := range res.Missed {
		missed[ff.Path] = ff
	}
	if len(made)+len(missed) != 9 {
		t.Fatalf("made %d + missed %d != 9 files", len(made), len(missed))
	}
	for _, p := range old {
		ff, ok := made[p]
		if !ok || !ff.AlreadySafe || !ff.Replicated {
			t.Errorf("old file %s: %+v, want already safe from continuous sync", p, ff)
		}
	}
	for _, p := range newSmall {
		ff, ok := made[p]
		if !ok || len(ff.Receipts) == 0 {
			t.Errorf("new small file %s did not make it: %+v", p, missed[p])
			continue
		}
		// The receipts are real: the transport holds that content.
		ent, _ := f.m.Entry(p)
		for _, rc := range ff.Receipts {
			if sum, ok := tr.has(rc.NodeID, ent.RemoteName("vast-29129529")); !ok || sum != rc.SHA256 {
				t.Errorf("%s: receipt %+v but the target holds %q", p, rc, sum)
			}
		}
	}
	for _, p := range newBig {
		ff, ok := missed[p]
		if !ok || ff.Reason != ReasonDeadline || !strings.HasPrefix(ff.Detail, "not attempted") {
			t.Errorf("big new file %s: %+v (made: %+v), want missed for the deadline, not attempted", p, ff, made[p])
		}
		ent, _ := f.m.Entry(p)
		for _, tg := range targets {
			if _, ok := tr.has(tg.NodeID, ent.RemoteName("vast-29129529")); ok {
				t.Errorf("%s reported missed but %s holds it", p, tg.NodeID)
			}
		}
	}
	if res.FirstByte.IsZero() || res.FirstByte.Sub(res.Started) > deadlineIn {
		t.Errorf("first byte at %v (start %v)", res.FirstByte, res.Started)
	}
	if res.RPO.UnsyncedFiles != 2 {
		t.Errorf("RPO after flush %+v, want the two big files", res.RPO)
	}
	// Flush order among new data: checkpoints before databases before NPZ
	// (a file the continuous loop already took is not in the flush log).
	prev, prevName := -1, ""
	for _, suffix := range []string{"checkpoint/new-small.pt", "db/new.db", "npz/new-small.npz"} {
		i := slices.IndexFunc(flushLog, func(l string) bool { return strings.HasSuffix(l, suffix) })
		if i < 0 {
			continue
		}
		if i < prev {
			t.Errorf("flush pushed %s before %s: %q", suffix, prevName, flushLog)
		}
		prev, prevName = i, suffix
	}
}

// TestFlushDeadlineCutsInFlightPush: without throughput history the flush
// starts the newest (big) checkpoint, the deadline cuts it, and everything
// behind it is reported as not started. Virtual time: the deadline falls
// while the big file is on the link, however busy the machine is.
func TestFlushDeadlineCutsInFlightPush(t *testing.T) {
	f := newEngineFixture(t, 1)
	clk := newVirtualClock()
	tr := newFakeTransport(1 << 20)
	tr.clock = clk
	f.file(t, "training/small.npz", 1000, time.Hour)
	big := f.sparse(t, "checkpoints/big.pt", 32<<20)
	eng, err := NewEngine(EngineConfig{NodeID: "vast-2", Manifest: f.m, Transport: tr, StateDir: filepath.Join(f.dir, "state"),
		Targets: func() []Target { return []Target{{NodeID: "hetzner-cpu1"}} }, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	res := eng.Flush(context.Background(), clk.Now().Add(500*time.Millisecond))
	if len(res.Manifest.Receipts) != 1 || len(res.Made) != 0 || len(res.Missed) != 2 {
		t.Fatalf("result %+v", res)
	}
	if res.Missed[0].Path != big || res.Missed[0].Reason != ReasonDeadline || !strings.Contains(res.Missed[0].Detail, "deadline exceeded") {
		t.Fatalf("big file %+v, want cut by the deadline", res.Missed[0])
	}
	if res.Missed[1].Reason != ReasonDeadline || !strings.Contains(res.Missed[1].Detail, "not started") {
		t.Fatalf("small file %+v, want not started before the deadline", res.Missed[1])
	}
	if res.BytesSent == 0 {
		t.Fatal("nothing sent")
	}
}

func TestFlushReportsErrorsAndNoTarget(t *testing.T) {
	f := newEngineFixture(t, 1)
	clk := newVirtualClock()
	tr := newFakeTransport(0)
	tr.clock = clk
	tr.fail = func(file LocalFile, tg Target) error {
		if strings.HasSuffix(file.RemoteName, ".pt") {
			return fmt.Errorf("%w: 1.0 MiB free", ErrTargetDiskFull)
		}
		return nil
	}
	a := f.file(t, "checkpoints/a.pt", 1000, time.Hour)
	n := f.file(t, "training/n.npz", 1000, time.Hour)
	eng, err := NewEngine(EngineConfig{NodeID: "vast-3", Manifest: f.m, Transport: tr, StateDir: filepath.Join(f.dir, "state"),
		Targets: func() []Target {
			return []Target{{NodeID: "hetzner-cpu1", Classes: []Class{ClassManifest, ClassCheckpoint}}}
		}, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	res := eng.Flush(context.Background(), clk.Now().Add(5*time.Second))
	if len(res.Missed) != 2 || len(res.Made) != 0 {
		t.Fatalf("result %+v", res)
	}
	byPath := map[string]FlushFile{}
	for _, m := range res.Missed {
		byPath[m.Path] = m
	}
	if byPath[a].Reason != ReasonError || !strings.Contains(byPath[a].Detail, "disk full") {
		t.Errorf("a.pt: %+v", byPath[a])
	}
	if byPath[n].Reason != ReasonNoTarget {
		t.Errorf("n.npz: %+v", byPath[n])
	}
}
