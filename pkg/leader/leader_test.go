package leader

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/internal/testutil"
)

// fakeKV satisfies jetstream.KeyValue for tests that never reach the bus.
type fakeKV struct{ jetstream.KeyValue }

func TestNewValidatesConfig(t *testing.T) {
	kv := fakeKV{}
	e, err := New(kv, Config{Name: "voter-1"}, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	c := e.Config()
	if c.TTL != 10*time.Second || c.RenewEvery != c.TTL/3 || c.SafetyMargin != 2*time.Second || c.Key != "coordinator" || c.Now == nil {
		t.Errorf("defaults: %+v", c)
	}
	for name, cfg := range map[string]Config{
		"no name":           {},
		"dotted name":       {Name: "a.b"},
		"negative TTL":      {Name: "a", TTL: -time.Second},
		"margin ≥ TTL":      {Name: "a", TTL: time.Second, SafetyMargin: time.Second},
		"renew ≥ TTL−M":     {Name: "a", TTL: time.Second, RenewEvery: 800 * time.Millisecond},
		"wildcard key":      {Name: "a", Key: "coord.*"},
		"key with a space":  {Name: "a", Key: "co ord"},
		"key ending in dot": {Name: "a", Key: "coord."},
	} {
		if _, err := New(kv, cfg, zerolog.Nop(), nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := New(nil, Config{Name: "a"}, zerolog.Nop(), nil); err == nil {
		t.Error("nil KeyValue accepted")
	}
}

func TestLeaseJSON(t *testing.T) {
	at := time.Date(2026, 11, 29, 14, 0, 0, 0, time.UTC)
	b, err := json.Marshal(Lease{Holder: "voter-1", Term: 7, Acquired: at, Renewed: at, Expires: at.Add(10 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"holder":"voter-1","term":7,"acquired":"2026-11-29T14:00:00Z","renewed":"2026-11-29T14:00:00Z","expires":"2026-11-29T14:00:10Z"}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
}

// A slow receiver never blocks the loop, and the last Status it gets is current.
func TestChangesDropOldest(t *testing.T) {
	e, err := New(fakeKV{}, Config{Name: "a"}, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := uint64(1); i <= 100; i++ {
			e.mu.Lock()
			e.obs = observation{rev: i, live: true, valid: true, val: Lease{Holder: "b", Term: i}}
			e.mu.Unlock()
			e.publish()
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("publish blocked")
	}
	var last Status
	for len(e.changes) > 0 {
		last = <-e.Changes()
	}
	if last != (Status{Leader: "b", Term: 100}) {
		t.Errorf("last status %+v", last)
	}
}

func TestSingleElector(t *testing.T) {
	url := startBus(t, steadyTTL)
	a := startElector(t, url, "voter-1", withTTL(steadyTTL))
	waitLeader(t, patience, a)
	holder, term, ok := a.Leader()
	if !ok || holder != "voter-1" || term == 0 {
		t.Fatalf("Leader() = %q %d %v", holder, term, ok)
	}
	if ft, ok := a.Fence(); !ok || ft != term {
		t.Errorf("Fence() = %d %v, want %d true", ft, ok, term)
	}
	var st Status
	testutil.EventuallyTrue(t, patience, "IsSelf status", func() bool {
		select {
		case st = <-a.Changes():
		default:
		}
		return st.IsSelf
	})
	if st != (Status{Leader: "voter-1", Term: term, IsSelf: true}) {
		t.Errorf("status %+v", st)
	}
	// Renewals keep it leader, in the same term, past several TTLs.
	time.Sleep(2 * steadyTTL)
	if _, t2, _ := a.Leader(); !a.IsLeader() || t2 != term {
		t.Errorf("after 2 TTL: leader %v term %d (was %d)", a.IsLeader(), t2, term)
	}
	for name, want := range map[string]float64{
		"ringmesh_leader_is_leader": 1, "ringmesh_leader_term": float64(term), "ringmesh_leader_transitions_total": 1,
	} {
		if got := gauge(t, a.reg, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	// Graceful stop releases the key and closes Changes.
	if err := a.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if a.IsLeader() {
		t.Error("still leader after Run returned")
	}
	if _, ok := a.Fence(); ok {
		t.Error("Fence ok after Run returned")
	}
	for s := range a.Changes() {
		st = s
	}
	if st.IsSelf {
		t.Errorf("last status %+v", st)
	}
	_, kv := openKV(t, url)
	if _, err := kv.Get(context.Background(), DefaultKey); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("lease not released: %v", err)
	}
	if got := gauge(t, a.reg, "ringmesh_leader_is_leader"); got != 0 {
		t.Errorf("is_leader after stop = %v", got)
	}
}

func TestThreeElectorsExactlyOneLeader(t *testing.T) {
	url := startBus(t, testTTL)
	els := []*elector{
		startElector(t, url, "voter-1", nil),
		startElector(t, url, "voter-2", nil),
		startElector(t, url, "voter-3", nil),
	}
	s := startSampler(els...)
	l := waitLeader(t, patience, els...)
	time.Sleep(3 * testTTL)
	s.stop(t)
	l2 := waitLeader(t, patience, els...)
	if l2 != l {
		t.Logf("leadership moved from %s to %s under load", l.name, l2.name)
	}
	_, term, _ := l2.Leader()
	testutil.EventuallyTrue(t, patience, "all agree on Leader()", func() bool {
		for _, e := range els {
			if h, tm, ok := e.Leader(); !ok || h != l2.name || tm != term {
				return false
			}
		}
		return true
	})
	assertNoOverlap(t, els...)
}

// The lease is slowTTL long: a follower that waited for it to expire
// would need well over slowTTL/2, one that saw it released takes a few
// round trips.
func TestGracefulStepDownHandsOverQuickly(t *testing.T) {
	url := startBus(t, slowTTL)
	els := []*elector{
		startElector(t, url, "voter-1", withTTL(slowTTL)),
		startElector(t, url, "voter-2", withTTL(slowTTL)),
		startElector(t, url, "voter-3", withTTL(slowTTL)),
	}
	s := startSampler(els...)
	old := waitLeader(t, patience, els...)
	_, oldTerm, _ := old.Leader()
	t0 := time.Now()
	if err := old.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	var rest []*elector
	for _, e := range els {
		if e != old {
			rest = append(rest, e)
		}
	}
	nw := waitLeader(t, slowTTL, rest...)
	took := time.Since(t0)
	time.Sleep(testTTL / 2) // keep sampling the new leader's first moments
	s.stop(t)
	if took > slowTTL/2 {
		t.Errorf("hand-over took %s, want well under TTL %s (released, not expired)", took, slowTTL)
	}
	if _, term, _ := nw.Leader(); term <= oldTerm {
		t.Errorf("term %d after %d", term, oldTerm)
	}
	t.Logf("%s → %s in %s", old.name, nw.name, took)
	assertNoOverlap(t, els...)
}

func TestCrashedLeaderReplacedAfterTTL(t *testing.T) {
	// Bucket TTL = lease TTL: the server expires the lease. Bucket TTL
	// much longer: only the followers' own clocks (revision unchanged for
	// > TTL) can end it within the wait.
	for _, bucketTTL := range []time.Duration{testTTL, longBucketTTL} {
		t.Run("bucket TTL "+bucketTTL.String(), func(t *testing.T) { crashedLeader(t, bucketTTL) })
	}
}

func crashedLeader(t *testing.T, bucketTTL time.Duration) {
	url := startBus(t, bucketTTL)
	els := []*elector{
		startElector(t, url, "voter-1", crash),
		startElector(t, url, "voter-2", crash),
		startElector(t, url, "voter-3", crash),
	}
	old := waitLeader(t, patience, els...)
	_, oldTerm, _ := old.Leader()
	s := startSampler(els...) // the crashed one stays in: its IsLeader still counts
	t0 := time.Now()
	if err := old.stop(t); err != nil { // no step-down, no release: a frozen process
		t.Fatalf("Run: %v", err)
	}
	var rest []*elector
	for _, e := range els {
		if e != old {
			rest = append(rest, e)
		}
	}
	nw := waitLeader(t, patience, rest...)
	took := time.Since(t0)
	if old.IsLeader() {
		t.Error("the crashed elector still reports IsLeader")
	}
	s.stop(t)
	cfg := old.Config()
	// Not before the lease can have run out (a busy machine only makes the
	// take-over later); the upper bound is the wait above, well under the
	// long bucket TTL.
	if took < cfg.TTL-cfg.RenewEvery-50*time.Millisecond {
		t.Errorf("take-over after %s, before the lease (TTL %s) can have run out", took, cfg.TTL)
	}
	t.Logf("take-over after %s (TTL %s)", took, cfg.TTL)
	if _, term, _ := nw.Leader(); term <= oldTerm {
		t.Errorf("term %d after %d", term, oldTerm)
	}
	all := assertNoOverlap(t, els...)
	// The old window closed at least about SafetyMargin before the new one opened.
	for i := 1; i < len(all); i++ {
		if all[i-1].name == old.name && all[i].name == nw.name {
			gap := all[i].Start.Sub(all[i-1].End)
			t.Logf("%s stopped at %s, %s started at %s (gap %s)", old.name, ts(all[i-1].End), nw.name, ts(all[i].Start), gap)
			if gap < cfg.SafetyMargin/2 {
				t.Errorf("gap %s between leaders, want ≥ about SafetyMargin %s", gap, cfg.SafetyMargin)
			}
		}
	}
}

// partitioned runs the partition scenario: cut() isolates the first elector
// (the leader) from the server.
func partitioned(t *testing.T, url string, a *elector, cut, heal func()) {
	waitLeader(t, patience, a)
	b := startElector(t, url, "voter-2", nil)
	c := startElector(t, url, "voter-3", nil)
	els := []*elector{a, b, c}
	testutil.EventuallyTrue(t, patience, "followers see voter-1", func() bool {
		hb, _, okb := b.Leader()
		hc, _, okc := c.Leader()
		return okb && okc && hb == "voter-1" && hc == "voter-1"
	})
	_, oldTerm, _ := a.Leader()
	s := startSampler(els...)
	tCut := time.Now()
	cut()
	cfg := a.Config()
	deadline := tCut.Add(cfg.TTL - cfg.SafetyMargin)
	// IsLeader turns false by the elector's own clock at TTL − margin after
	// the last renew began; the window check below asserts exactly that.
	testutil.EventuallyTrue(t, patience, "the partitioned leader to step down", func() bool { return !a.IsLeader() })
	t.Logf("saw the step-down %s after the cut (TTL − margin = %s)", time.Since(tCut), cfg.TTL-cfg.SafetyMargin)
	nw := waitLeader(t, patience, b, c)
	t.Logf("%s leader %s after the cut", nw.name, time.Since(tCut))
	_, newTerm, _ := nw.Leader()
	if newTerm <= oldTerm {
		t.Errorf("term %d after %d", newTerm, oldTerm)
	}
	if heal != nil {
		heal()
		testutil.EventuallyTrue(t, patience, "the healed elector to see the new leader", func() bool {
			h, tm, ok := a.Leader()
			return ok && h == nw.name && tm == newTerm
		})
		time.Sleep(testTTL / 2)
		if a.IsLeader() {
			t.Error("healed elector took the lease back")
		}
	}
	s.stop(t)
	for _, w := range a.windows() {
		if w.End.After(deadline) {
			t.Errorf("old leader's window term %d ends %s after the cut (> TTL − margin)", w.Term, w.End.Sub(tCut))
		}
	}
	assertNoOverlap(t, els...)
}

func TestPartitionedLeaderStepsDown(t *testing.T) {
	t.Run("connection closed", func(t *testing.T) {
		url := startBus(t, testTTL)
		a := startElector(t, url, "voter-1", nil)
		partitioned(t, url, a, func() { a.nc.Close() }, nil)
	})
	t.Run("black hole then heal", func(t *testing.T) {
		url := startBus(t, testTTL)
		p := startProxy(t, url)
		a := startElector(t, p.URL(), "voter-1", nil)
		partitioned(t, url, a, func() { p.paused.Store(true) }, func() { p.paused.Store(false) })
	})
}

func TestRestartTakesBackOnlyItsOwnLease(t *testing.T) {
	// slowTTL: waiting for the lease to expire would take well over
	// slowTTL/2, recognising it as its own a few round trips.
	t.Run("still its own", func(t *testing.T) {
		url := startBus(t, slowTTL)
		a := startElector(t, url, "voter-1", func(c *Config) { c.TTL = slowTTL; crash(c) })
		waitLeader(t, patience, a)
		_, oldTerm, _ := a.Leader()
		if err := a.stop(t); err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		a2 := startElector(t, url, "voter-1", withTTL(slowTTL))
		waitLeader(t, slowTTL, a2)
		if took := time.Since(t0); took > slowTTL/2 {
			t.Errorf("took its own lease back after %s, want well under TTL %s", took, slowTTL)
		}
		if _, term, _ := a2.Leader(); term <= oldTerm {
			t.Errorf("term %d after %d", term, oldTerm)
		}
	})
	// steadyTTL: voter-2 must keep its lease through the check.
	t.Run("taken by another", func(t *testing.T) {
		url := startBus(t, steadyTTL)
		a := startElector(t, url, "voter-1", func(c *Config) { c.TTL = steadyTTL; crash(c) })
		waitLeader(t, patience, a)
		b := startElector(t, url, "voter-2", withTTL(steadyTTL))
		if err := a.stop(t); err != nil {
			t.Fatal(err)
		}
		waitLeader(t, patience, b)
		_, term, _ := b.Leader()
		a2 := startElector(t, url, "voter-1", withTTL(steadyTTL))
		s := startSampler(a2, b)
		testutil.EventuallyTrue(t, patience, "the restarted elector to see voter-2", func() bool {
			h, tm, ok := a2.Leader()
			return ok && h == "voter-2" && tm == term
		})
		time.Sleep(steadyTTL + steadyTTL/4)
		s.stop(t)
		if a2.IsLeader() || !b.IsLeader() {
			t.Errorf("after restart: voter-1 leader %v, voter-2 leader %v", a2.IsLeader(), b.IsLeader())
		}
		if len(a2.windows()) != 0 {
			t.Errorf("restarted elector led: %+v", a2.windows())
		}
	})
}

// A value left by another machine is taken over only on this elector's own
// clock or the server's TTL, whatever that machine's clock wrote in it.
func TestForeignLeaseNeedsLocalEvidence(t *testing.T) {
	// min is when the elector may take over at the earliest: before that
	// would be a bug whatever the machine's load. max is a generous bound
	// that still tells the mechanisms apart: the bucket TTL of "expired by
	// value" is far beyond it, so only the elector's own clock can end that
	// wait in time.
	for name, tc := range map[string]struct {
		expires   time.Duration // ghost's expiry relative to now, by its clock
		bucketTTL time.Duration
		min, max  time.Duration // when the elector may take over
	}{
		// Expired by its value, but this elector has not watched it for TTL yet.
		"expired by value": {expires: -time.Hour, bucketTTL: longBucketTTL, min: testTTL, max: patience},
		// A clock an hour ahead: only the bucket TTL (2 TTL) removes it.
		"clock ahead": {expires: time.Hour, bucketTTL: 2 * testTTL, min: 2*testTTL - 50*time.Millisecond, max: patience},
	} {
		t.Run(name, func(t *testing.T) {
			url := startBus(t, tc.bucketTTL)
			_, kv := openKV(t, url)
			now := time.Now().UTC()
			b, _ := json.Marshal(Lease{Holder: "ghost", Term: 5, Acquired: now, Renewed: now, Expires: now.Add(tc.expires)})
			t0 := time.Now()
			if _, err := kv.Put(context.Background(), DefaultKey, b); err != nil {
				t.Fatal(err)
			}
			a := startElector(t, url, "voter-1", nil)
			testutil.EventuallyTrue(t, patience, "the elector to see the ghost", func() bool {
				h, tm, ok := a.Leader()
				return ok && h == "ghost" && tm == 5
			})
			waitLeader(t, tc.max, a)
			took := time.Since(t0)
			if took < tc.min || took > tc.max {
				t.Errorf("took over after %s, want in [%s, %s]", took, tc.min, tc.max)
			}
			if _, term, _ := a.Leader(); term <= 5 {
				t.Errorf("term %d after the ghost's 5", term)
			}
		})
	}
}

// A bucket TTL shorter than the lease could expire a lease its holder still
// acts on: Run refuses.
func TestRunRejectsBucketTTLShorterThanLease(t *testing.T) {
	url := startBus(t, testTTL)
	_, kv := openKV(t, url)
	e, err := New(kv, Config{Name: "voter-1", TTL: 2 * testTTL}, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = e.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "shorter than the lease TTL") {
		t.Fatalf("Run: %v", err)
	}
	if e.IsLeader() {
		t.Error("leader with a bad bucket")
	}
	if err := e.Run(ctx); err == nil {
		t.Error("second Run accepted")
	}
}

// A shorter lease than the bucket TTL is allowed.
func TestShorterLeaseThanBucketIsAccepted(t *testing.T) {
	url := startBus(t, 2*testTTL)
	a := startElector(t, url, "voter-1", nil)
	waitLeader(t, patience, a)
}

// lossyKV loses the reply of one successful Update (the write lands, the
// caller sees a timeout), and can refuse watches so that only polls and
// renewals observe the key.
type lossyKV struct {
	jetstream.KeyValue
	noWatch  bool
	loseNext atomic.Bool
	lost     chan struct{}
}

func (k *lossyKV) Watch(ctx context.Context, key string, opts ...jetstream.WatchOpt) (jetstream.KeyWatcher, error) {
	if k.noWatch {
		return nil, errors.New("watch disabled by the test")
	}
	return k.KeyValue.Watch(ctx, key, opts...)
}

func (k *lossyKV) Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	r, err := k.KeyValue.Update(ctx, key, value, rev)
	if err == nil && k.loseNext.CompareAndSwap(true, false) {
		k.lost <- struct{}{}
		return 0, context.DeadlineExceeded
	}
	return r, err
}

// A renew whose reply is lost but which landed neither costs the lease nor
// blocks the release on stop.
func TestLostRenewReply(t *testing.T) {
	// steadyTTL: only the lost reply may threaten the lease, not a stall.
	t.Run("adopted, same term, no gap", func(t *testing.T) {
		url := startBus(t, steadyTTL)
		nc, kv := openKV(t, url)
		lk := &lossyKV{KeyValue: kv, lost: make(chan struct{}, 1)}
		a := runElector(t, nc, lk, "voter-1", withTTL(steadyTTL))
		waitLeader(t, patience, a)
		_, term, _ := a.Leader()
		lk.loseNext.Store(true)
		deadline := time.Now().Add(steadyTTL + steadyTTL/2)
		for time.Now().Before(deadline) {
			if !a.IsLeader() {
				t.Fatal("lost the lease over one lost reply")
			}
			time.Sleep(time.Millisecond)
		}
		select {
		case <-lk.lost:
		default:
			t.Fatal("no reply was lost")
		}
		if _, t2, _ := a.Leader(); t2 != term {
			t.Errorf("term %d → %d", term, t2)
		}
	})
	t.Run("released on stop", func(t *testing.T) {
		url := startBus(t, testTTL)
		nc, kv := openKV(t, url)
		lk := &lossyKV{KeyValue: kv, noWatch: true, lost: make(chan struct{}, 1)}
		a := runElector(t, nc, lk, "voter-1", nil)
		waitLeader(t, patience, a)
		lk.loseNext.Store(true)
		select {
		case <-lk.lost:
		case <-time.After(patience):
			t.Fatal("no renew")
		}
		if err := a.stop(t); err != nil { // its revision is stale now
			t.Fatal(err)
		}
		if _, err := kv.Get(context.Background(), DefaultKey); !errors.Is(err, jetstream.ErrKeyNotFound) {
			t.Errorf("lease not released: %v", err)
		}
	})
}

// TestStaleCreateAfterReleaseRaisesTerm: an elector that read the bucket,
// then stalled while another became leader and released the key, must not
// write the lease with the term it computed before the stall (kv.Create
// would overwrite the delete marker with it): terms only rise.
func TestStaleCreateAfterReleaseRaisesTerm(t *testing.T) {
	url := startBus(t, slowTTL)
	paused, resume := make(chan struct{}), make(chan struct{})
	var pauseOnce, resumeOnce sync.Once
	release := func() { resumeOnce.Do(func() { close(resume) }) }
	t.Cleanup(release)
	late := startElector(t, url, "voter-2", func(c *Config) {
		c.TTL = slowTTL
		c.beforeWrite = func() { pauseOnce.Do(func() { close(paused); <-resume }) }
	})
	select {
	case <-paused:
	case <-time.After(patience):
		t.Fatal("voter-2 never tried to acquire")
	}
	first := startElector(t, url, "voter-1", withTTL(slowTTL))
	waitLeader(t, patience, first)
	_, firstTerm, _ := first.Leader()
	if err := first.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	release()
	waitLeader(t, patience, late)
	if _, term, _ := late.Leader(); term <= firstTerm {
		t.Errorf("voter-2 leads in term %d after voter-1's term %d", term, firstTerm)
	}
	assertNoOverlap(t, first, late)
}
