package leader

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/pkg/mesh"
)

// Defaults applied by New to a zero Config field.
const (
	// DefaultTTL is the lease length; it equals bus.Topology's default LeaderTTL.
	DefaultTTL = 10 * time.Second
	// DefaultKey is the key of the lease in the mesh_leader bucket.
	DefaultKey = "coordinator"
)

// Config configures an Elector. Zero fields take the documented defaults.
type Config struct {
	// Name is this coordinator's node ID ([A-Za-z0-9_-]{1,64}); it is the
	// lease holder. It must be unique among running electors and stable
	// across restarts: a restarted elector takes back a lease carrying its
	// own Name without waiting for it to expire.
	Name string
	// TTL is the lease length; default 10 s. It must equal the mesh_leader
	// bucket's TTL (bus.Topology.LeaderTTL) or be shorter: the bucket's TTL
	// removes a crashed leader's lease, and a bucket TTL shorter than TTL
	// could remove a lease its holder still acts on. Run checks this before
	// every acquisition and returns an error otherwise. A TTL shorter than
	// the bucket's is safe: followers then take over by their own clocks
	// after TTL (revision unchanged), before the bucket expires the value.
	TTL time.Duration
	// RenewEvery is the interval between renewals by the leader and between
	// polls of the key by followers; default TTL/3. It must be shorter than
	// TTL − SafetyMargin. It also bounds each KV request.
	RenewEvery time.Duration
	// SafetyMargin is how long before TTL, counted from the start of its
	// last successful renew, the leader stops acting; default TTL/5. It
	// must cover the clock rate drift between machines (see the package doc).
	SafetyMargin time.Duration
	// Key is the lease key in the bucket; default "coordinator".
	Key string
	// Now returns the current time; default time.Now. Lease windows are
	// computed from its readings, so it must carry a monotonic clock
	// reading (as time.Now does). Timers use the real clock.
	Now func() time.Time

	// noStepDown makes Run return on ctx end without releasing the lease or
	// clearing its state, as if the process froze or crashed (tests only).
	noStepDown bool

	// beforeWrite, when set, runs between reading the bucket state the
	// term is computed from and the write that claims it (tests only: it
	// lets a test move the key in that gap).
	beforeWrite func()
}

// Lease is the JSON value of the lease key. Times are the holder's wall
// clock (UTC) and are informational: no other elector relies on them for
// safety.
type Lease struct {
	// Holder is the leader's Name.
	Holder string `json:"holder"`
	// Term increases with every new acquisition (not with renewals).
	Term uint64 `json:"term"`
	// Acquired is when this term started.
	Acquired time.Time `json:"acquired"`
	// Renewed is when the last renew request started.
	Renewed time.Time `json:"renewed"`
	// Expires is Renewed + TTL, as the holder sees it.
	Expires time.Time `json:"expires"`
}

// Status is one observed leadership state, sent on Changes.
type Status struct {
	// Leader is the holder of the latest observed lease ("" when none).
	Leader string
	// Term is the latest term observed (that of Leader when it is set).
	Term uint64
	// IsSelf is IsLeader() at the time the status was computed.
	IsSelf bool
}

// Elector campaigns for and renews the lease. Create it with New, then call
// Run once; the query methods are safe for concurrent use.
type Elector struct {
	kv      jetstream.KeyValue
	cfg     Config
	log     zerolog.Logger
	m       metrics
	changes chan Status
	started atomic.Bool

	mu       sync.Mutex
	held     bool      // we hold the lease (our write is the latest we know of)
	myRev    uint64    // revision of our latest confirmed write
	myTerm   uint64    // term we hold
	acquired time.Time // start of our current term
	leaseEnd time.Time // start of last successful renew + TTL − SafetyMargin
	obs      observation
	maxTerm  uint64   // highest term ever observed or written
	hist     []window // recent leadership windows (tests)

	// Loop goroutine only.
	last        Status    // last sent on changes (zero: nothing known yet)
	lastAttempt time.Time // start of the last renew (leader) or poll (follower)
	failing     bool      // the last renew failed without losing the lease
	warnedTTL   bool
	errLogged   bool
}

// observation is what this elector last saw of the key.
type observation struct {
	rev      uint64    // revision of the latest entry seen; 0 = none
	seen     time.Time // local time rev was first seen
	live     bool      // the latest entry is a value (not a marker)
	val      Lease     // decoded value when live and valid
	valid    bool      // val decoded
	released bool      // a delete marker follows the last value (graceful step-down)
	gone     bool      // the value vanished without a delete marker (TTL expiry, purge)
	liveSeen time.Time // local time the last value's revision was first seen
	liveRev  uint64    // revision of the last value seen
}

// window is one period during which IsLeader could return true: from the
// instant held was set to End (the lease end or the instant held was cleared).
type window struct {
	Term       uint64
	Start, End time.Time
}

const maxHist = 32

var keyRe = regexp.MustCompile(`^[-/_=a-zA-Z0-9]+(\.[-/_=a-zA-Z0-9]+)*$`)

// New validates cfg, applies defaults and registers the metrics on reg
// (nil: not registered). kv is the mesh_leader bucket; log is used as is,
// with component=leader added.
func New(kv jetstream.KeyValue, cfg Config, log zerolog.Logger, reg prometheus.Registerer) (*Elector, error) {
	if kv == nil {
		return nil, errors.New("leader: nil KeyValue")
	}
	if err := mesh.ValidateNodeID(cfg.Name); err != nil {
		return nil, fmt.Errorf("leader: name: %w", err)
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.TTL < 0 {
		return nil, fmt.Errorf("leader: TTL %s: must be positive", cfg.TTL)
	}
	if cfg.SafetyMargin == 0 {
		cfg.SafetyMargin = cfg.TTL / 5
	}
	if cfg.SafetyMargin <= 0 || cfg.SafetyMargin >= cfg.TTL {
		return nil, fmt.Errorf("leader: safety margin %s: must be in (0, TTL %s)", cfg.SafetyMargin, cfg.TTL)
	}
	if cfg.RenewEvery == 0 {
		cfg.RenewEvery = cfg.TTL / 3
	}
	if cfg.RenewEvery <= 0 || cfg.RenewEvery >= cfg.TTL-cfg.SafetyMargin {
		return nil, fmt.Errorf("leader: renew interval %s: must be in (0, TTL − safety margin = %s)",
			cfg.RenewEvery, cfg.TTL-cfg.SafetyMargin)
	}
	if cfg.Key == "" {
		cfg.Key = DefaultKey
	}
	if !keyRe.MatchString(cfg.Key) {
		return nil, fmt.Errorf("leader: key %q: not a valid KV key", cfg.Key)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	e := &Elector{
		kv:      kv,
		cfg:     cfg,
		log:     log.With().Str("component", "leader").Str("name", cfg.Name).Str("key", cfg.Key).Logger(),
		m:       newMetrics(),
		changes: make(chan Status, 16),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{e.m.isLeader, e.m.term, e.m.transitions} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("leader: register metrics: %w", err)
			}
		}
	}
	return e, nil
}

// Config returns the configuration with defaults applied.
func (e *Elector) Config() Config { return e.cfg }

// IsLeader reports whether this elector may act now: it holds the lease and
// its monotonic clock is before the start of its last successful renew plus
// TTL − SafetyMargin. Call it right before every mutating action.
func (e *Elector) IsLeader() bool {
	now := e.cfg.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.isLeaderLocked(now)
}

func (e *Elector) isLeaderLocked(now time.Time) bool {
	return e.held && now.Before(e.leaseEnd)
}

// Fence returns the term this elector leads in and true, or 0 and false
// when it is not the leader now. Stamp actions with the term (an
// idempotency key such as "<term>:<decision>") so each is applied once.
func (e *Elector) Fence() (term uint64, ok bool) {
	now := e.cfg.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.isLeaderLocked(now) {
		return 0, false
	}
	return e.myTerm, true
}

// Leader returns the holder and term of the latest lease value observed
// (through the watch, a poll or this elector's own writes), and false when
// the key was absent, deleted or unreadable at the last observation. The
// holder may have stopped acting already; only IsLeader says "act".
func (e *Elector) Leader() (holder string, term uint64, ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.obs.live || !e.obs.valid {
		return "", e.maxTerm, false
	}
	return e.obs.val.Holder, e.obs.val.Term, true
}

// Changes returns a channel of leadership changes: a Status is sent
// whenever Leader, Term or IsSelf changes. The elector never blocks on it:
// when a receiver falls 16 changes behind, the oldest are dropped, so the
// last Status received is always current. It is meant for one receiver and
// is closed when Run returns. IsSelf=false may arrive a little after
// IsLeader turned false; IsLeader is the authority.
func (e *Elector) Changes() <-chan Status { return e.changes }

// Run campaigns for the lease and renews it until ctx ends; then, if it
// holds the lease, it stops acting and deletes the key (revision-checked)
// so that a follower takes over at once. Bus errors are logged and
// retried. Run returns nil after a clean stop, and an error only when it
// cannot work at all (called twice, bucket TTL shorter than Config.TTL).
func (e *Elector) Run(ctx context.Context) error {
	if !e.started.CompareAndSwap(false, true) {
		return errors.New("leader: Run called twice")
	}
	defer close(e.changes)
	e.log.Info().Dur("ttl", e.cfg.TTL).Dur("renew_every", e.cfg.RenewEvery).
		Dur("safety_margin", e.cfg.SafetyMargin).Msg("leader election started")

	// The watch runs on its own goroutine: creating it can block for the
	// client's API timeout while the bus is unreachable.
	entries := make(chan jetstream.KeyValueEntry, 64)
	wctx, wcancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		e.watch(wctx, entries)
	}()
	defer func() {
		wcancel()
		wg.Wait()
	}()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		var err error
		select {
		case <-ctx.Done():
			e.stop(ctx)
			return nil
		case ent := <-entries:
			err = e.onEntry(ctx, ent)
		case <-timer.C:
			err = e.tick(ctx)
		}
		if err != nil {
			e.stepDown(ctx, "fatal error")
			e.publish()
			return err
		}
		e.publish()
		timer.Reset(e.nextWake())
	}
}

// watch sends every entry of the key to out (not the nil marker that ends
// the initial values), re-creating the watcher when it ends, until ctx ends.
func (e *Elector) watch(ctx context.Context, out chan<- jetstream.KeyValueEntry) {
	for {
		// The subscription lives until ctx ends; without a deadline, its
		// creation is bounded by the client's default API timeout.
		w, err := e.kv.Watch(ctx, e.cfg.Key)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			e.log.Debug().Err(err).Msg("lease watch not started; polling meanwhile")
		} else {
		recv:
			for {
				// Select on ctx as well: the updates channel is not always
				// closed when the watch's context ends.
				var ent jetstream.KeyValueEntry
				var ok bool
				select {
				case <-ctx.Done():
					_ = w.Stop()
					return
				case ent, ok = <-w.Updates():
				}
				if !ok {
					break recv
				}
				if ent == nil {
					continue
				}
				select {
				case out <- ent:
				case <-ctx.Done():
					_ = w.Stop()
					return
				}
			}
			_ = w.Stop()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(e.cfg.RenewEvery):
		}
	}
}

// onEntry handles a watched entry.
func (e *Elector) onEntry(ctx context.Context, ent jetstream.KeyValueEntry) error {
	now := e.cfg.Now()
	e.mu.Lock()
	e.observeLocked(ent, now)
	if e.held && e.obs.rev > e.myRev {
		if e.obs.live && e.obs.valid && e.obs.val.Holder == e.cfg.Name && e.obs.val.Term == e.myTerm {
			// Our own renew whose reply was lost: adopt its revision, but do
			// not extend the window (its start time is unknown).
			e.myRev = e.obs.rev
		} else {
			e.loseLocked("lease written by another elector")
		}
	}
	held := e.held
	e.mu.Unlock()
	if held {
		return nil
	}
	return e.campaign(ctx)
}

// tick renews (leader) or polls and campaigns (follower).
func (e *Elector) tick(ctx context.Context) error {
	now := e.cfg.Now()
	e.mu.Lock()
	held := e.held
	if held && !now.Before(e.leaseEnd) {
		e.loseLocked("lease lapsed: no successful renew in time")
		held = false
	}
	e.mu.Unlock()
	if held {
		if now.Sub(e.lastAttempt) >= e.renewInterval() {
			e.renew(ctx)
		}
		return nil
	}
	if now.Sub(e.lastAttempt) >= e.cfg.RenewEvery || e.takeoverDue(now) {
		e.lastAttempt = now
		e.refresh(ctx)
	}
	return e.campaign(ctx)
}

func (e *Elector) renewInterval() time.Duration {
	if e.failing {
		return e.cfg.RenewEvery / 2
	}
	return e.cfg.RenewEvery
}

// takeoverDue reports whether the follower's take-over time has come.
func (e *Elector) takeoverDue(now time.Time) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	act, _, at := e.decideLocked(now)
	return act != actWait || (!at.IsZero() && !now.Before(at))
}

// nextWake returns how long the loop may sleep.
func (e *Elector) nextWake() time.Duration {
	now := e.cfg.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	var d time.Duration
	if e.held {
		d = e.lastAttempt.Add(e.renewInterval()).Sub(now)
		if le := e.leaseEnd.Sub(now); le < d {
			d = le
		}
	} else {
		d = e.lastAttempt.Add(e.cfg.RenewEvery).Sub(now)
		if _, _, at := e.decideLocked(now); !at.IsZero() {
			if ta := at.Sub(now); ta < d {
				d = ta
			}
		}
	}
	return max(d, time.Millisecond)
}

func (e *Elector) reqCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, e.cfg.RenewEvery)
}

// refresh reads the key and records what it finds.
func (e *Elector) refresh(ctx context.Context) {
	rctx, cancel := e.reqCtx(ctx)
	ent, err := e.kv.Get(rctx, e.cfg.Key)
	cancel()
	now := e.cfg.Now()
	switch {
	case err == nil:
		e.mu.Lock()
		e.observeLocked(ent, now)
		e.mu.Unlock()
		e.errLogged = false
	case errors.Is(err, jetstream.ErrKeyNotFound):
		e.mu.Lock()
		e.observeAbsentLocked()
		e.mu.Unlock()
		e.errLogged = false
	default:
		e.logErr(err, "read lease")
	}
}

func (e *Elector) logErr(err error, what string) {
	if errors.Is(err, context.Canceled) {
		return
	}
	ev := e.log.Debug()
	if !e.errLogged {
		ev = e.log.Warn()
		e.errLogged = true
	}
	ev.Err(err).Msg(what + " failed; retrying")
}

type action int

const (
	actWait action = iota
	actCreate
	actTakeover
)

// decideLocked says what a follower may do now: create the key, take over
// revision rev by CAS, or wait (until at, when non-zero).
func (e *Elector) decideLocked(now time.Time) (act action, rev uint64, at time.Time) {
	if e.held {
		return actWait, 0, time.Time{}
	}
	o := &e.obs
	switch {
	case o.rev == 0 && !o.gone:
		return actCreate, 0, time.Time{} // nothing seen: creating fails harmlessly if it exists
	case o.released:
		return actCreate, 0, time.Time{}
	case o.gone:
		// Vanished without a delete marker: trust the bucket TTL, but not
		// before our own clock agrees for the last value we saw.
		if o.liveRev == 0 {
			return actCreate, 0, time.Time{}
		}
		if t := o.liveSeen.Add(e.cfg.TTL); now.Before(t) {
			return actWait, 0, t
		}
		return actCreate, 0, time.Time{}
	case o.live && o.valid && o.val.Holder == e.cfg.Name:
		return actTakeover, o.rev, time.Time{} // our own lease (restart)
	case o.live:
		t := o.seen.Add(e.cfg.TTL)
		if !now.After(t) {
			return actWait, 0, t.Add(time.Millisecond)
		}
		if o.valid && !now.After(o.val.Expires) {
			return actWait, 0, o.val.Expires.Add(time.Millisecond)
		}
		return actTakeover, o.rev, time.Time{}
	}
	return actWait, 0, time.Time{}
}

// observeLocked records a KV entry first seen at now.
func (e *Elector) observeLocked(ent jetstream.KeyValueEntry, now time.Time) {
	o := &e.obs
	rev := ent.Revision()
	if rev <= o.rev {
		return // older, or already seen (or found gone since)
	}
	o.rev, o.seen, o.gone, o.released = rev, now, false, false
	switch ent.Operation() {
	case jetstream.KeyValuePut:
		o.live, o.liveRev, o.liveSeen = true, rev, now
		var l Lease
		err := json.Unmarshal(ent.Value(), &l)
		o.valid = err == nil && l.Holder != ""
		if o.valid {
			o.val = l
			e.maxTerm = max(e.maxTerm, l.Term)
		} else {
			o.val = Lease{}
			e.log.Warn().Uint64("revision", rev).Msg("lease value unreadable; treating it as held until it ages out")
		}
	case jetstream.KeyValueDelete:
		o.live, o.valid, o.released = false, false, true
	default: // purge, or a MaxAge marker
		o.live, o.valid, o.gone = false, false, true
	}
}

// observeAbsentLocked records that a read found no value.
func (e *Elector) observeAbsentLocked() {
	o := &e.obs
	if o.live || (o.rev == 0 && !o.gone) {
		o.live, o.valid = false, false
		if !o.released {
			o.gone = true
		}
	}
}

// campaign tries to acquire the lease when the observation allows it.
func (e *Elector) campaign(ctx context.Context) error {
	now := e.cfg.Now()
	e.mu.Lock()
	act, rev, _ := e.decideLocked(now)
	e.mu.Unlock()
	if act == actWait {
		return nil
	}
	return e.acquire(ctx, act, rev)
}

// bucketInfo returns the last sequence and TTL of the bucket's stream.
func (e *Elector) bucketInfo(ctx context.Context) (lastSeq uint64, ttl time.Duration, err error) {
	rctx, cancel := e.reqCtx(ctx)
	defer cancel()
	st, err := e.kv.Status(rctx)
	if err != nil {
		return 0, 0, err
	}
	if si, ok := st.(interface{ StreamInfo() *jetstream.StreamInfo }); ok && si.StreamInfo() != nil {
		lastSeq = si.StreamInfo().State.LastSeq
	}
	return lastSeq, st.TTL(), nil
}

func (e *Elector) acquire(ctx context.Context, act action, rev uint64) error {
	lastSeq, bttl, err := e.bucketInfo(ctx)
	if err != nil {
		e.logErr(err, "read bucket status")
		return nil
	}
	if bttl > 0 && bttl < e.cfg.TTL {
		return fmt.Errorf("leader: bucket %s TTL %s is shorter than the lease TTL %s: a lease could vanish while its holder still acts",
			e.kv.Bucket(), bttl, e.cfg.TTL)
	}
	if bttl == 0 && !e.warnedTTL {
		e.warnedTTL = true
		e.log.Warn().Str("bucket", e.kv.Bucket()).Msg("lease bucket has no TTL: a crashed leader is replaced only by followers' own timing")
	}
	e.mu.Lock()
	term := max(e.maxTerm, lastSeq, rev) + 1
	e.mu.Unlock()
	readAt := e.cfg.Now()
	if e.cfg.beforeWrite != nil {
		e.cfg.beforeWrite()
	}
	start := e.cfg.Now()
	if start.Sub(readAt) > e.cfg.TTL/2 {
		// A lease written after lastSeq could have come and aged out
		// (no marker) only after a whole TTL; stay far from that.
		e.log.Debug().Dur("stalled", start.Sub(readAt)).Msg("acquire stalled after reading the bucket; retrying")
		return nil
	}
	val := Lease{Holder: e.cfg.Name, Term: term, Acquired: wall(start), Renewed: wall(start), Expires: wall(start.Add(e.cfg.TTL))}
	b, _ := json.Marshal(val)
	rctx, cancel := e.reqCtx(ctx)
	var newRev uint64
	if act == actCreate {
		newRev, err = e.createLease(rctx, b, lastSeq)
	} else {
		newRev, err = e.kv.Update(rctx, e.cfg.Key, b, rev)
	}
	cancel()
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, errMovedSinceRead) {
			e.log.Debug().Err(err).Msg("lease taken by another elector")
			e.refresh(ctx)
			return nil
		}
		e.logErr(err, "acquire lease")
		return nil
	}
	now := e.cfg.Now()
	e.mu.Lock()
	e.held, e.myRev, e.myTerm, e.acquired = true, newRev, term, start
	e.leaseEnd = start.Add(e.cfg.TTL - e.cfg.SafetyMargin)
	e.maxTerm = max(e.maxTerm, term)
	e.obs = observation{rev: newRev, seen: now, live: true, val: val, valid: true, liveRev: newRev, liveSeen: now}
	e.hist = append(e.hist, window{Term: term, Start: now, End: e.leaseEnd})
	if len(e.hist) > maxHist {
		e.hist = e.hist[len(e.hist)-maxHist:]
	}
	e.mu.Unlock()
	e.lastAttempt, e.failing, e.errLogged = start, false, false
	e.log.Info().Uint64("term", term).Uint64("revision", newRev).Msg("became leader")
	return nil
}

// errMovedSinceRead: the key was written after the bucket state a term
// was computed from, so that term may not exceed the writer's.
var errMovedSinceRead = errors.New("lease key moved since the term was computed")

// createLease writes b where the key is absent, deleted or purged, and
// returns the new revision. Unlike kv.Create it refuses to overwrite a
// delete or purge marker newer than lastSeq (the bucket's last sequence
// the term was computed from): such a marker ends a lease written after
// that read, whose term ours might only equal (errMovedSinceRead).
// Terms never exceed the revision they were written at, so every marker at
// or below lastSeq ends a term below ours.
func (e *Elector) createLease(ctx context.Context, b []byte, lastSeq uint64) (uint64, error) {
	rev, err := e.kv.Update(ctx, e.cfg.Key, b, 0)
	if err == nil || !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return rev, err
	}
	hist, herr := e.kv.History(ctx, e.cfg.Key)
	if herr != nil {
		if errors.Is(herr, jetstream.ErrKeyNotFound) {
			return 0, errMovedSinceRead // aged out since: decide again
		}
		return 0, herr
	}
	last := hist[len(hist)-1]
	switch {
	case last.Operation() == jetstream.KeyValuePut:
		return 0, jetstream.ErrKeyExists
	case last.Revision() > lastSeq:
		return 0, errMovedSinceRead
	}
	return e.kv.Update(ctx, e.cfg.Key, b, last.Revision())
}

func (e *Elector) renew(ctx context.Context) {
	start := e.cfg.Now()
	e.lastAttempt = start
	e.mu.Lock()
	rev, term, acq := e.myRev, e.myTerm, e.acquired
	e.mu.Unlock()
	val := Lease{Holder: e.cfg.Name, Term: term, Acquired: wall(acq), Renewed: wall(start), Expires: wall(start.Add(e.cfg.TTL))}
	b, _ := json.Marshal(val)
	rctx, cancel := e.reqCtx(ctx)
	newRev, err := e.kv.Update(rctx, e.cfg.Key, b, rev)
	cancel()
	now := e.cfg.Now()
	if err == nil {
		e.mu.Lock()
		defer e.mu.Unlock()
		if !e.held || e.myTerm != term {
			return
		}
		e.myRev = newRev
		e.obs = observation{rev: newRev, seen: now, live: true, val: val, valid: true, liveRev: newRev, liveSeen: now}
		if !now.Before(e.leaseEnd) {
			// The window closed while the request was in flight; we may
			// have stopped acting. Start a new term rather than resume.
			e.loseLocked("lease lapsed during renew")
			return
		}
		e.leaseEnd = start.Add(e.cfg.TTL - e.cfg.SafetyMargin)
		if n := len(e.hist); n > 0 && e.hist[n-1].Term == term {
			e.hist[n-1].End = e.leaseEnd
		}
		e.failing, e.errLogged = false, false
		return
	}
	if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		e.failing = true
		e.logErr(err, "renew lease")
		return
	}
	// The revision moved. It may be our own renew whose reply was lost:
	// adopt it (without extending the window) if the value is still ours.
	gctx, gcancel := e.reqCtx(ctx)
	ent, gerr := e.kv.Get(gctx, e.cfg.Key)
	gcancel()
	now = e.cfg.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	if gerr == nil {
		e.observeLocked(ent, now)
		if e.held && e.isOwn(ent, term) {
			e.myRev = ent.Revision()
			e.failing = true // renew again soon
			return
		}
	} else if errors.Is(gerr, jetstream.ErrKeyNotFound) {
		e.observeAbsentLocked()
	}
	e.loseLocked("lease lost: revision changed")
}

// isOwn reports whether ent is a value this elector wrote in term.
func (e *Elector) isOwn(ent jetstream.KeyValueEntry, term uint64) bool {
	var l Lease
	return ent.Operation() == jetstream.KeyValuePut && json.Unmarshal(ent.Value(), &l) == nil &&
		l.Holder == e.cfg.Name && l.Term == term
}

// loseLocked stops acting at once.
func (e *Elector) loseLocked(why string) {
	if !e.held {
		return
	}
	now := e.cfg.Now()
	e.held = false
	if n := len(e.hist); n > 0 && e.hist[n-1].Term == e.myTerm && now.Before(e.hist[n-1].End) {
		e.hist[n-1].End = now
	}
	e.log.Warn().Uint64("term", e.myTerm).Msg(why + "; stepped down")
}

// stepDown stops acting, then releases the key if it still carries our
// Name: our current term, or a write whose outcome we never learnt (a
// renew or acquire cancelled in flight). Nobody else acts on such a value.
func (e *Elector) stepDown(ctx context.Context, why string) {
	e.mu.Lock()
	now := e.cfg.Now()
	held, rev, term := e.held, e.myRev, e.myTerm
	if held {
		e.held = false
		if n := len(e.hist); n > 0 && e.hist[n-1].Term == term && now.Before(e.hist[n-1].End) {
			e.hist[n-1].End = now
		}
	}
	e.mu.Unlock()
	if held {
		e.publish() // IsSelf=false goes out before the key is released
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.cfg.RenewEvery)
	defer cancel()
	var err error
	if held {
		err = e.kv.Delete(dctx, e.cfg.Key, jetstream.LastRevision(rev))
	}
	if !held || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		ent, gerr := e.kv.Get(dctx, e.cfg.Key)
		var l Lease
		ours := gerr == nil && json.Unmarshal(ent.Value(), &l) == nil && l.Holder == e.cfg.Name
		if !held && !ours {
			return
		}
		if ours {
			term = l.Term
			err = e.kv.Delete(dctx, e.cfg.Key, jetstream.LastRevision(ent.Revision()))
		}
	}
	if err != nil {
		e.log.Warn().Err(err).Uint64("term", term).Msg("stepped down (" + why + "); lease not released, it expires after TTL")
		return
	}
	e.log.Info().Uint64("term", term).Msg("stepped down (" + why + "); lease released")
}

// stop ends Run.
func (e *Elector) stop(ctx context.Context) {
	if e.cfg.noStepDown {
		return
	}
	e.stepDown(ctx, "shutdown")
	e.publish()
}

// publish sends the status and sets the metrics when they changed.
func (e *Elector) publish() {
	now := e.cfg.Now()
	e.mu.Lock()
	s := Status{Term: e.maxTerm, IsSelf: e.isLeaderLocked(now)}
	if e.obs.live && e.obs.valid {
		s.Leader, s.Term = e.obs.val.Holder, e.obs.val.Term
	}
	e.mu.Unlock()
	if s == e.last {
		return
	}
	if s.IsSelf != e.last.IsSelf {
		e.m.transitions.Inc()
	}
	e.last = s
	if s.IsSelf {
		e.m.isLeader.Set(1)
	} else {
		e.m.isLeader.Set(0)
	}
	e.m.term.Set(float64(s.Term))
	for {
		select {
		case e.changes <- s:
			return
		default:
		}
		select {
		case <-e.changes: // drop the oldest
		default:
		}
	}
}

// windows returns the recent leadership windows (tests).
func (e *Elector) windows() []window {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]window(nil), e.hist...)
}

func wall(t time.Time) time.Time { return t.Round(0).UTC().Truncate(time.Millisecond) }

type metrics struct {
	isLeader    prometheus.Gauge
	term        prometheus.Gauge
	transitions prometheus.Counter
}

func newMetrics() metrics {
	return metrics{
		isLeader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ringmesh_leader_is_leader", Help: "1 while this coordinator holds the leader lease and may act, else 0."}),
		term: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ringmesh_leader_term", Help: "Latest leader term observed (strictly increasing, not dense)."}),
		transitions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ringmesh_leader_transitions_total", Help: "Times this coordinator became or stopped being the leader."}),
	}
}
