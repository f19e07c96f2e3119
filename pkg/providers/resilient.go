package providers

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Clock is the time source of the resilience layer; tests inject a fake one so
// that backoff and breaker cooldowns take no real time.
type Clock interface {
	Now() time.Time
	// Sleep waits for d or until ctx is done (then it returns ctx.Err()).
	Sleep(ctx context.Context, d time.Duration) error
}

// SystemClock returns the real clock.
func SystemClock() Clock { return systemClock{} }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Policy configures Resilient. Zero fields take the defaults of DefaultPolicy.
type Policy struct {
	// MaxAttempts is the number of tries of one call, the first included (default 3).
	MaxAttempts int
	// BaseDelay and MaxDelay bound the exponential backoff with full jitter:
	// before retry n (n = 1, 2, ...) the wrapper sleeps a uniformly random
	// duration in [0, min(MaxDelay, BaseDelay·2^(n-1))). Defaults 500ms and 20s.
	BaseDelay time.Duration
	MaxDelay  time.Duration
	// MaxRetryAfter caps an honoured Retry-After: an answer asking to wait
	// longer is returned to the caller instead of waited out (default 2m).
	MaxRetryAfter time.Duration
	// CallTimeout bounds each attempt (default 30s). The caller's context still
	// bounds the whole call, retries and sleeps included.
	CallTimeout time.Duration
	// BreakerThreshold consecutive failed attempts open the circuit (default 3).
	BreakerThreshold int
	// BreakerCooldown is how long the circuit stays open the first time
	// (default 45s); every failed half-open trial doubles it, up to
	// BreakerMaxCooldown (default 300s). A successful trial closes the circuit
	// and resets the cooldown.
	BreakerCooldown    time.Duration
	BreakerMaxCooldown time.Duration
	// Clock and Rand (uniform in [0,1)) are injectable for tests.
	Clock Clock
	Rand  func() float64
}

// DefaultPolicy returns the defaults (the numbers of the original system's
// per-provider breaker: 3 failures, 45s, doubling, capped at 300s).
func DefaultPolicy() Policy {
	return Policy{
		MaxAttempts:        3,
		BaseDelay:          500 * time.Millisecond,
		MaxDelay:           20 * time.Second,
		MaxRetryAfter:      2 * time.Minute,
		CallTimeout:        30 * time.Second,
		BreakerThreshold:   3,
		BreakerCooldown:    45 * time.Second,
		BreakerMaxCooldown: 300 * time.Second,
		Clock:              SystemClock(),
		Rand:               rand.Float64,
	}
}

func (p Policy) withDefaults() Policy {
	d := DefaultPolicy()
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = d.MaxAttempts
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = d.BaseDelay
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = d.MaxDelay
	}
	if p.MaxDelay < p.BaseDelay {
		p.MaxDelay = p.BaseDelay
	}
	if p.MaxRetryAfter <= 0 {
		p.MaxRetryAfter = d.MaxRetryAfter
	}
	if p.CallTimeout <= 0 {
		p.CallTimeout = d.CallTimeout
	}
	if p.BreakerThreshold <= 0 {
		p.BreakerThreshold = d.BreakerThreshold
	}
	if p.BreakerCooldown <= 0 {
		p.BreakerCooldown = d.BreakerCooldown
	}
	if p.BreakerMaxCooldown <= 0 {
		p.BreakerMaxCooldown = d.BreakerMaxCooldown
	}
	if p.BreakerMaxCooldown < p.BreakerCooldown {
		p.BreakerMaxCooldown = p.BreakerCooldown
	}
	if p.Clock == nil {
		p.Clock = d.Clock
	}
	if p.Rand == nil {
		p.Rand = d.Rand
	}
	return p
}

// BreakerState is the state of a provider's circuit breaker; its numeric value
// is what the breaker-state gauge reports.
type BreakerState int

// Breaker states.
const (
	BreakerClosed   BreakerState = 0
	BreakerOpen     BreakerState = 1
	BreakerHalfOpen BreakerState = 2
)

func (s BreakerState) String() string {
	switch s {
	case BreakerClosed:
		return "closed"
	case BreakerOpen:
		return "open"
	case BreakerHalfOpen:
		return "half-open"
	}
	return fmt.Sprintf("BreakerState(%d)", int(s))
}

// Operation names used in errors, logs and metric labels.
const (
	OpList      = "list"
	OpGet       = "get"
	OpStart     = "start"
	OpStop      = "stop"
	OpTerminate = "terminate"
)

// Resilient wraps p with per-attempt timeouts, bounded retries with
// exponential backoff and full jitter, and a circuit breaker (one per wrapper,
// so one per provider). Rules:
//
//   - Reads (List, Get) are retried on KindTransient, KindRateLimited and
//     KindNotSent, and when an attempt exceeds CallTimeout.
//   - Mutations (Start, Stop, Terminate) are retried only on KindRateLimited
//     and KindNotSent: the request was not applied. A transient failure or a
//     timeout leaves the outcome unknown, so it is returned, never repeated
//     (no double apply); the caller re-reads the state.
//   - A Retry-After carried by *Error is honoured (Vast sends none: the
//     wrapper then backs off by itself). A Retry-After above
//     Policy.MaxRetryAfter, or one that would outlive the caller's deadline,
//     ends the call with the error instead.
//   - Terminate answering ErrNotFound is success (idempotent).
//   - The breaker counts consecutive failed attempts that say the API is
//     unhealthy: transient, rate limited, not sent, timed out, or an
//     unparseable answer (KindInvalid without a 4xx status). Not found,
//     conflict, auth, 4xx invalid, unsupported and retired answers show a
//     working API and count as successes. After BreakerThreshold such failures
//     the circuit opens: calls fail at once with an error wrapping
//     ErrCircuitOpen. After the cooldown one trial call is let through
//     (half-open); its success closes the circuit, its failure re-opens it
//     with a doubled cooldown.
//
// Metrics (registered on reg when it is not nil; shared between wrappers):
// ringmesh_provider_calls_total{provider,op,outcome} (outcome "ok", an
// ErrorKind, "circuit_open", "canceled", "unsupported", "retired" or "error"),
// ringmesh_provider_retries_total{provider,op} and
// ringmesh_provider_breaker_state{provider} (0 closed, 1 open, 2 half-open).
func Resilient(p Provider, pol Policy, log zerolog.Logger, reg prometheus.Registerer) Provider {
	pol = pol.withDefaults()
	r := &resilient{
		p:    p,
		name: p.Name(),
		pol:  pol,
		log:  log.With().Str("provider", p.Name()).Logger(),
		m:    newResilienceMetrics(reg),
	}
	r.br = &breaker{
		threshold: pol.BreakerThreshold,
		base:      pol.BreakerCooldown,
		max:       pol.BreakerMaxCooldown,
		cooldown:  pol.BreakerCooldown,
		clock:     pol.Clock,
		onChange:  r.breakerChanged,
	}
	r.m.breaker.WithLabelValues(r.name).Set(float64(BreakerClosed))
	return r
}

// BreakerStateOf returns the breaker state of a Resilient wrapper (looking
// through other wrappers); ok is false when p has no Resilient layer.
func BreakerStateOf(p Provider) (state BreakerState, ok bool) {
	for p != nil {
		if r, isR := p.(*resilient); isR {
			return r.br.current(), true
		}
		u, isU := p.(Unwrapper)
		if !isU {
			break
		}
		p = u.Unwrap()
	}
	return BreakerClosed, false
}

type resilient struct {
	p    Provider
	name string
	pol  Policy
	log  zerolog.Logger
	m    *resilienceMetrics
	br   *breaker
}

func (r *resilient) Unwrap() Provider           { return r.p }
func (r *resilient) Name() string               { return r.name }
func (r *resilient) Capabilities() Capabilities { return r.p.Capabilities() }

func (r *resilient) List(ctx context.Context) ([]Instance, error) {
	var out []Instance
	err := r.call(ctx, OpList, false, func(ctx context.Context) error {
		var err error
		out, err = r.p.List(ctx)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (r *resilient) Get(ctx context.Context, id string) (Instance, error) {
	var out Instance
	err := r.call(ctx, OpGet, false, func(ctx context.Context) error {
		var err error
		out, err = r.p.Get(ctx, id)
		return err
	})
	if err != nil {
		return Instance{}, err
	}
	return out, nil
}

func (r *resilient) Start(ctx context.Context, id string) error {
	return r.call(ctx, OpStart, true, func(ctx context.Context) error { return r.p.Start(ctx, id) })
}

func (r *resilient) Stop(ctx context.Context, id string) error {
	return r.call(ctx, OpStop, true, func(ctx context.Context) error { return r.p.Stop(ctx, id) })
}

func (r *resilient) Terminate(ctx context.Context, id string) error {
	return r.call(ctx, OpTerminate, true, func(ctx context.Context) error {
		err := r.p.Terminate(ctx, id)
		if errors.Is(err, ErrNotFound) {
			return nil // already gone: terminate is idempotent
		}
		return err
	})
}

func (r *resilient) call(ctx context.Context, op string, mutating bool, fn func(context.Context) error) error {
	var last error
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			if last == nil {
				last = fmt.Errorf("%s %s: %w", r.name, op, err)
			}
			r.m.calls.WithLabelValues(r.name, op, "canceled").Inc()
			return last
		}
		trial, err := r.br.allow()
		if err != nil {
			r.m.calls.WithLabelValues(r.name, op, "circuit_open").Inc()
			err = fmt.Errorf("%s %s: %w", r.name, op, err)
			if last != nil {
				err = fmt.Errorf("%w (previous attempt: %v)", err, last)
			}
			return err
		}

		actx, cancel := context.WithTimeout(ctx, r.pol.CallTimeout)
		err = fn(actx)
		attemptTimedOut := errors.Is(actx.Err(), context.DeadlineExceeded) && ctx.Err() == nil
		cancel()
		if err != nil && attemptTimedOut && KindOf(err) == "" {
			err = &Error{Provider: r.name, Op: op, Kind: KindTransient,
				Err: fmt.Errorf("no answer within %s: %w", r.pol.CallTimeout, err)}
		}

		switch {
		case err != nil && ctx.Err() != nil:
			r.br.done(trial, resultNeutral) // the caller gave up: says nothing about the API
		case breakerFailure(err):
			r.br.done(trial, resultFailure)
		default:
			r.br.done(trial, resultSuccess)
		}

		if err == nil {
			r.m.calls.WithLabelValues(r.name, op, "ok").Inc()
			return nil
		}
		last = err
		if ctx.Err() != nil || !retryable(err, mutating) || attempt >= r.pol.MaxAttempts {
			r.m.calls.WithLabelValues(r.name, op, outcomeOf(err, ctx)).Inc()
			return err
		}
		delay, ok := r.backoff(attempt, err)
		if !ok {
			r.m.calls.WithLabelValues(r.name, op, outcomeOf(err, ctx)).Inc()
			return err
		}
		if dl, has := ctx.Deadline(); has && delay > time.Until(dl) { // deadlines are wall-clock time
			// Waiting would outlive the caller: give the error back now.
			r.m.calls.WithLabelValues(r.name, op, outcomeOf(err, ctx)).Inc()
			return err
		}
		r.m.retries.WithLabelValues(r.name, op).Inc()
		r.log.Warn().Str("op", op).Int("attempt", attempt).Int("max_attempts", r.pol.MaxAttempts).
			Dur("backoff", delay).Err(err).Msg("provider call failed; retrying")
		if err := r.pol.Clock.Sleep(ctx, delay); err != nil {
			r.m.calls.WithLabelValues(r.name, op, "canceled").Inc()
			return last
		}
	}
}

// backoff returns the wait before retry number attempt (1-based), honouring
// a Retry-After; ok is false when the Retry-After is too long to wait out.
func (r *resilient) backoff(attempt int, err error) (time.Duration, bool) {
	var pe *Error
	if errors.As(err, &pe) && pe.RetryAfter > 0 {
		if pe.RetryAfter > r.pol.MaxRetryAfter {
			return 0, false
		}
		return pe.RetryAfter, true
	}
	ceiling := r.pol.BaseDelay
	for i := 1; i < attempt && ceiling < r.pol.MaxDelay; i++ {
		ceiling *= 2
	}
	if ceiling > r.pol.MaxDelay {
		ceiling = r.pol.MaxDelay
	}
	f := r.pol.Rand()
	if f < 0 || f >= 1 {
		f = 0
	}
	return time.Duration(f * float64(ceiling)), true
}

// retryable says whether a failed attempt may be repeated.
func retryable(err error, mutating bool) bool {
	switch KindOf(err) {
	case KindRateLimited, KindNotSent:
		return true
	case KindTransient:
		return !mutating
	}
	return false
}

// breakerFailure says whether err counts against the API's health.
func breakerFailure(err error) bool {
	if err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrUnsupported) ||
		errors.Is(err, ErrRetired) || errors.Is(err, ErrNotConfigured) || errors.Is(err, ErrUnconfirmed) {
		return false
	}
	var pe *Error
	if !errors.As(err, &pe) {
		return true // an unclassified failure: assume the worst
	}
	switch pe.Kind {
	case KindTransient, KindRateLimited, KindNotSent:
		return true
	case KindInvalid:
		return pe.Status < 400 || pe.Status >= 500 // garbage answer, not a refused request
	}
	return false
}

func outcomeOf(err error, ctx context.Context) string {
	switch {
	case err == nil:
		return "ok"
	case ctx.Err() != nil:
		return "canceled"
	case errors.Is(err, ErrUnsupported):
		return "unsupported"
	case errors.Is(err, ErrRetired):
		return "retired"
	}
	if k := KindOf(err); k != "" {
		return string(k)
	}
	return "error"
}

func (r *resilient) breakerChanged(from, to BreakerState, cooldown time.Duration) {
	r.m.breaker.WithLabelValues(r.name).Set(float64(to))
	ev := r.log.Info()
	if to == BreakerOpen {
		ev = r.log.Warn().Dur("cooldown", cooldown)
	}
	ev.Str("from", from.String()).Str("to", to.String()).Msg("provider circuit breaker changed state")
}

type breakerResult int

const (
	resultSuccess breakerResult = iota
	resultFailure
	resultNeutral
)

// breaker is a consecutive-failure circuit breaker with a single half-open
// trial and a doubling cooldown.
type breaker struct {
	threshold int
	base, max time.Duration
	clock     Clock
	onChange  func(from, to BreakerState, cooldown time.Duration)

	mu       sync.Mutex
	state    BreakerState
	failures int           // consecutive, while closed
	cooldown time.Duration // of the current/next open period
	until    time.Time     // end of the open period
	trial    bool          // a half-open trial is in flight
}

func (b *breaker) current() BreakerState {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state
}

// allow decides whether an attempt may go out; trial is true for the single
// half-open trial, whose result must be reported with done.
func (b *breaker) allow() (trial bool, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case BreakerClosed:
		return false, nil
	case BreakerOpen:
		now := b.clock.Now()
		if now.Before(b.until) {
			return false, fmt.Errorf("%w for another %s", ErrCircuitOpen, b.until.Sub(now).Round(time.Millisecond))
		}
		b.set(BreakerHalfOpen)
		b.trial = true
		return true, nil
	default: // half-open
		if b.trial {
			return false, fmt.Errorf("%w: half-open, a trial call is in flight", ErrCircuitOpen)
		}
		b.trial = true
		return true, nil
	}
}

func (b *breaker) done(trial bool, res breakerResult) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if trial {
		b.trial = false
	}
	switch res {
	case resultNeutral:
		return
	case resultSuccess:
		b.failures = 0
		if b.state != BreakerClosed && trial {
			b.cooldown = b.base
			b.set(BreakerClosed)
		}
	case resultFailure:
		switch {
		case trial:
			b.cooldown *= 2
			if b.cooldown > b.max {
				b.cooldown = b.max
			}
			b.open()
		case b.state == BreakerClosed:
			b.failures++
			if b.failures >= b.threshold {
				b.open()
			}
		}
	}
}

func (b *breaker) open() {
	b.failures = 0
	b.until = b.clock.Now().Add(b.cooldown)
	b.set(BreakerOpen)
}

func (b *breaker) set(s BreakerState) {
	if s == b.state {
		return
	}
	from := b.state
	b.state = s
	if b.onChange != nil {
		b.onChange(from, s, b.cooldown)
	}
}

type resilienceMetrics struct {
	calls   *prometheus.CounterVec
	retries *prometheus.CounterVec
	breaker *prometheus.GaugeVec
}

func newResilienceMetrics(reg prometheus.Registerer) *resilienceMetrics {
	m := &resilienceMetrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ringmesh_provider_calls_total",
			Help: "Provider API calls through the resilience layer, by final outcome (ok, an error kind, circuit_open, canceled, ...).",
		}, []string{"provider", "op", "outcome"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ringmesh_provider_retries_total",
			Help: "Retries of provider API calls.",
		}, []string{"provider", "op"}),
		breaker: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ringmesh_provider_breaker_state",
			Help: "Circuit breaker state per provider: 0 closed, 1 open, 2 half-open.",
		}, []string{"provider"}),
	}
	if reg != nil {
		m.calls = registerOrExisting(reg, m.calls)
		m.retries = registerOrExisting(reg, m.retries)
		m.breaker = registerOrExisting(reg, m.breaker)
	}
	return m
}

// registerOrExisting registers c, or returns the collector already registered
// under the same description (several providers share one registry).
func registerOrExisting[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		// A conflicting, different collector under our name: keep ours
		// unregistered rather than crash; the metrics are then not exported.
	}
	return c
}
