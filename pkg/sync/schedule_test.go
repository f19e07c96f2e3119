package meshsync

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// Over a bandwidth-limited link, continuous sync sends the oldest data at
// risk first, whatever its class: an NPZ file written two minutes ago goes
// before a database changed a minute ago, which goes before a checkpoint
// written just now (flush order would be the reverse).
func TestContinuousSyncOldestFirstOverLimitedLink(t *testing.T) {
	f := newEngineFixture(t, 1)
	f.file(t, "checkpoints/new.pt", 256<<10, time.Second)
	f.file(t, "training/old.npz", 256<<10, 2*time.Minute)
	f.file(t, "training/older.npz", 256<<10, 3*time.Minute)
	f.file(t, "models/mid.bin", 256<<10, time.Minute)
	tr := newFakeTransport(4 << 20) // 4 MiB/s
	e, err := NewEngine(EngineConfig{NodeID: "vast-1", Manifest: f.m, Transport: tr, StateDir: t.TempDir(), MaxConcurrent: 1,
		Targets: func() []Target { return []Target{{NodeID: "t1"}} }})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := e.SyncNow(testCtx(t, time.Minute), nil)
	if err != nil || len(rep.Pushed) != 4 {
		t.Fatalf("SyncNow: %v, %+v", err, rep)
	}
	var order []string
	for _, l := range tr.pushLog() {
		order = append(order, l[strings.LastIndex(l, "/")+1:])
	}
	want := []string{"older.npz", "old.npz", "mid.bin", "new.pt"}
	if strings.Join(order, " ") != strings.Join(want, " ") {
		t.Fatalf("push order %v, want oldest first %v", order, want)
	}
}

// A database written all the time never matches its last snapshot, but
// its RPO age is that of the newest change not on the targets, not the time
// since it first changed: a receipt for a snapshot that saw changes up to
// 2 s ago makes the age 2 s, even though the live database moved on.
func TestDatabaseRPOAgeFollowsSnapshots(t *testing.T) {
	f := newEngineFixture(t, 1)
	p := f.db(t, "games/g.db", 50)
	old := time.Now().Add(-time.Minute)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
	_ = os.Chtimes(p+"-wal", old, old)
	if _, err := f.m.Scan(context.Background(), ScanOptions{}); err != nil {
		t.Fatal(err)
	}
	if r := f.m.RPO(time.Now()); r.OldestUnsyncedAgeSeconds < 59 {
		t.Fatalf("before any copy the age is since the first change: %+v", r)
	}
	ent, _ := f.m.Entry(p)
	snapSeen := time.Now().Add(-2 * time.Second)
	// The snapshot saw a later state (one more commit) than the scan did.
	rc := Receipt{NodeID: "t1", SHA256: "ab", Size: 1, SourceSize: ent.Size, SourceModTime: snapSeen, SourceWALSize: ent.WALSize + 4096, SourceWALModTime: snapSeen}
	if err := f.m.RecordReceipt(p, rc); err != nil {
		t.Fatal(err)
	}
	r := f.m.RPO(time.Now())
	if r.UnsyncedFiles != 1 {
		t.Fatalf("the live database differs from the snapshot: still at risk, got %+v", r)
	}
	if r.OldestUnsyncedAgeSeconds < 1.9 || r.OldestUnsyncedAgeSeconds > 30 {
		t.Fatalf("RPO age %.1fs, want ~2 s (newest change the target has)", r.OldestUnsyncedAgeSeconds)
	}
}

// barrierTransport counts pushes in flight; each push waits (up to 10 s)
// until want pushes are in flight at once.
type barrierTransport struct {
	*fakeTransport
	want     int
	mu       sync.Mutex
	inflight int
	peak     int
	all      chan struct{}
}

func (b *barrierTransport) Push(ctx context.Context, f LocalFile, t Target) (Receipt, error) {
	b.mu.Lock()
	b.inflight++
	b.peak = max(b.peak, b.inflight)
	if b.inflight == b.want {
		close(b.all)
	}
	b.mu.Unlock()
	select {
	case <-b.all:
	case <-time.After(10 * time.Second):
	}
	defer func() { b.mu.Lock(); b.inflight--; b.mu.Unlock() }()
	return b.fakeTransport.Push(ctx, f, t)
}

// Continuous sync sends a file's copies to its targets in parallel: each
// target is its own link, so two copies do not take twice as long.
func TestContinuousSyncCopiesInParallel(t *testing.T) {
	f := newEngineFixture(t, 2)
	f.file(t, "checkpoints/c.pt", 128<<10, time.Second)
	tr := &barrierTransport{fakeTransport: newFakeTransport(0), want: 2, all: make(chan struct{})}
	e, err := NewEngine(EngineConfig{NodeID: "vast-1", Manifest: f.m, Transport: tr, StateDir: t.TempDir(), MaxConcurrent: 1,
		Targets: func() []Target { return []Target{{NodeID: "t1"}, {NodeID: "t2"}} }})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := e.SyncNow(testCtx(t, time.Minute), nil)
	if err != nil || len(rep.Pushed) != 2 {
		t.Fatalf("SyncNow: %v %+v", err, rep)
	}
	if tr.peak != 2 {
		t.Fatalf("at most %d pushes in flight, want the two copies in parallel", tr.peak)
	}
	if r := f.m.RPO(time.Now()); !r.Zero() {
		t.Fatalf("RPO after both copies: %+v", r)
	}
}
