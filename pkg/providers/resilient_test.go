package providers_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/pkg/providers"
)

func testPolicy(clk *fakeClock) providers.Policy {
	return providers.Policy{
		MaxAttempts:      4,
		BaseDelay:        100 * time.Millisecond,
		MaxDelay:         time.Second,
		CallTimeout:      5 * time.Second,
		BreakerThreshold: 3,
		BreakerCooldown:  45 * time.Second,
		Clock:            clk,
		Rand:             func() float64 { return 0.5 },
	}
}

func TestResilientRetriesReads(t *testing.T) {
	for _, op := range []string{providers.OpList, providers.OpGet} {
		t.Run(op, func(t *testing.T) {
			clk := newFakeClock()
			inner := newScripted("fake")
			inner.fail(op, perr(providers.KindTransient), perr(providers.KindRateLimited), perr(providers.KindNotSent))
			pol := testPolicy(clk)
			pol.BreakerThreshold = 10
			p := providers.Resilient(inner, pol, zerolog.Nop(), nil)
			var err error
			if op == providers.OpList {
				_, err = p.List(context.Background())
			} else {
				_, err = p.Get(context.Background(), "1")
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if inner.count(op) != 4 {
				t.Errorf("calls = %d, want 4", inner.count(op))
			}
			// Full jitter with Rand=0.5: half of 100ms, 200ms, 400ms.
			want := []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond}
			if got := clk.Sleeps(); !reflect.DeepEqual(got, want) {
				t.Errorf("sleeps = %v, want %v", got, want)
			}
		})
	}
}

func TestResilientReadGivesUpAfterMaxAttempts(t *testing.T) {
	clk := newFakeClock()
	inner := newScripted("fake")
	for i := 0; i < 10; i++ {
		inner.fail(providers.OpList, perr(providers.KindTransient))
	}
	pol := testPolicy(clk)
	pol.MaxAttempts = 3
	pol.BreakerThreshold = 100
	_, err := providers.Resilient(inner, pol, zerolog.Nop(), nil).List(context.Background())
	if providers.KindOf(err) != providers.KindTransient {
		t.Fatalf("err = %v, want transient", err)
	}
	if inner.count(providers.OpList) != 3 || len(clk.Sleeps()) != 2 {
		t.Errorf("calls = %d sleeps = %v; want 3 calls, 2 sleeps", inner.count(providers.OpList), clk.Sleeps())
	}
}

func TestResilientNeverRepeatsMutationWithUnknownOutcome(t *testing.T) {
	for _, op := range []string{providers.OpStart, providers.OpStop, providers.OpTerminate} {
		t.Run(op, func(t *testing.T) {
			inner := newScripted("fake")
			inner.fail(op, perr(providers.KindTransient))
			p := providers.Resilient(inner, testPolicy(newFakeClock()), zerolog.Nop(), nil)
			err := mutate(p, op)
			if providers.KindOf(err) != providers.KindTransient {
				t.Fatalf("err = %v, want the transient error back", err)
			}
			if inner.count(op) != 1 {
				t.Errorf("%s sent %d times, want exactly 1", op, inner.count(op))
			}
		})
	}
}

func mutate(p providers.Provider, op string) error {
	ctx := context.Background()
	switch op {
	case providers.OpStart:
		return p.Start(ctx, "1")
	case providers.OpStop:
		return p.Stop(ctx, "1")
	}
	return p.Terminate(ctx, "1")
}

func TestResilientRetriesMutationThatWasNotApplied(t *testing.T) {
	for _, op := range []string{providers.OpStart, providers.OpStop, providers.OpTerminate} {
		inner := newScripted("fake")
		inner.fail(op, perr(providers.KindRateLimited), perr(providers.KindNotSent))
		p := providers.Resilient(inner, testPolicy(newFakeClock()), zerolog.Nop(), nil)
		if err := mutate(p, op); err != nil {
			t.Errorf("%s: %v", op, err)
		}
		if inner.count(op) != 3 {
			t.Errorf("%s: calls = %d, want 3", op, inner.count(op))
		}
	}
}

func TestResilientHonoursRetryAfter(t *testing.T) {
	clk := newFakeClock()
	inner := newScripted("fake")
	inner.fail(providers.OpStop, &providers.Error{Provider: "fake", Op: "stop", Kind: providers.KindRateLimited, Status: 429, RetryAfter: 7 * time.Second})
	p := providers.Resilient(inner, testPolicy(clk), zerolog.Nop(), nil)
	if err := p.Stop(context.Background(), "1"); err != nil {
		t.Fatal(err)
	}
	if got := clk.Sleeps(); !reflect.DeepEqual(got, []time.Duration{7 * time.Second}) {
		t.Errorf("sleeps = %v, want [7s]", got)
	}
}

func TestResilientRefusesToWaitOutHugeRetryAfter(t *testing.T) {
	inner := newScripted("fake")
	inner.fail(providers.OpList, &providers.Error{Kind: providers.KindRateLimited, RetryAfter: time.Hour})
	_, err := providers.Resilient(inner, testPolicy(newFakeClock()), zerolog.Nop(), nil).List(context.Background())
	if providers.KindOf(err) != providers.KindRateLimited || inner.count(providers.OpList) != 1 {
		t.Errorf("err = %v calls = %d; want the 429 back after 1 call", err, inner.count(providers.OpList))
	}
}

func TestResilientDoesNotWaitPastCallerDeadline(t *testing.T) {
	inner := newScripted("fake")
	inner.fail(providers.OpList, &providers.Error{Kind: providers.KindRateLimited, RetryAfter: 90 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := providers.Resilient(inner, testPolicy(newFakeClock()), zerolog.Nop(), nil).List(ctx)
	if providers.KindOf(err) != providers.KindRateLimited || inner.count(providers.OpList) != 1 {
		t.Errorf("err = %v calls = %d", err, inner.count(providers.OpList))
	}
}

func TestResilientDoesNotRetryPermanentErrors(t *testing.T) {
	for _, k := range []providers.ErrorKind{providers.KindAuth, providers.KindInvalid, providers.KindConflict, providers.KindNotFound} {
		inner := newScripted("fake")
		inner.fail(providers.OpGet, perr(k))
		_, err := providers.Resilient(inner, testPolicy(newFakeClock()), zerolog.Nop(), nil).Get(context.Background(), "1")
		if providers.KindOf(err) != k || inner.count(providers.OpGet) != 1 {
			t.Errorf("%s: err = %v calls = %d; want 1 call", k, err, inner.count(providers.OpGet))
		}
	}
}

func TestResilientTerminateOfGoneInstanceSucceeds(t *testing.T) {
	inner := newScripted("fake")
	inner.fail(providers.OpTerminate, &providers.Error{Kind: providers.KindNotFound, Status: 404})
	if err := providers.Resilient(inner, testPolicy(newFakeClock()), zerolog.Nop(), nil).Terminate(context.Background(), "1"); err != nil {
		t.Fatalf("err = %v, want nil (idempotent terminate)", err)
	}
	// but Get of a gone instance is still ErrNotFound
	inner.fail(providers.OpGet, &providers.Error{Kind: providers.KindNotFound, Status: 404})
	if _, err := providers.Resilient(inner, testPolicy(newFakeClock()), zerolog.Nop(), nil).Get(context.Background(), "1"); !errors.Is(err, providers.ErrNotFound) {
		t.Errorf("Get err = %v, want ErrNotFound", err)
	}
}

func TestResilientBackoffIsCapped(t *testing.T) {
	clk := newFakeClock()
	inner := newScripted("fake")
	for i := 0; i < 10; i++ {
		inner.fail(providers.OpList, perr(providers.KindTransient))
	}
	pol := testPolicy(clk)
	pol.MaxAttempts = 8
	pol.BreakerThreshold = 100
	pol.Rand = func() float64 { return 0.999 }
	_, _ = providers.Resilient(inner, pol, zerolog.Nop(), nil).List(context.Background())
	sleeps := clk.Sleeps()
	if len(sleeps) != 7 {
		t.Fatalf("sleeps = %v", sleeps)
	}
	ceil := 100 * time.Millisecond
	for i, d := range sleeps {
		if d >= ceil || d < ceil*99/100 {
			t.Errorf("sleep %d = %v, want just under %v", i, d, ceil)
		}
		if ceil < time.Second {
			ceil *= 2
			if ceil > time.Second {
				ceil = time.Second
			}
		}
	}
}

func TestResilientPerCallTimeout(t *testing.T) {
	inner := newScripted("fake")
	inner.hook = func(ctx context.Context, op string) error {
		<-ctx.Done() // a provider that never answers
		return ctx.Err()
	}
	pol := testPolicy(newFakeClock())
	pol.CallTimeout = 20 * time.Millisecond
	pol.MaxAttempts = 2
	p := providers.Resilient(inner, pol, zerolog.Nop(), nil)
	_, err := p.Get(context.Background(), "1")
	if providers.KindOf(err) != providers.KindTransient || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want transient timeout", err)
	}
	if inner.count(providers.OpGet) != 2 {
		t.Errorf("read calls = %d, want 2 (timeouts of reads are retried)", inner.count(providers.OpGet))
	}
	if err := p.Stop(context.Background(), "1"); providers.KindOf(err) != providers.KindTransient {
		t.Fatalf("stop err = %v", err)
	}
	if inner.count(providers.OpStop) != 1 {
		t.Errorf("stop calls = %d, want 1 (a timed-out mutation has an unknown outcome)", inner.count(providers.OpStop))
	}
}

func TestResilientStopsWhenCallerCancels(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	inner := newScripted("fake")
	inner.hook = func(context.Context, string) error {
		cancel()
		return perr(providers.KindTransient)
	}
	pol := testPolicy(newFakeClock())
	pol.BreakerThreshold = 1
	p := providers.Resilient(inner, pol, zerolog.Nop(), nil)
	if _, err := p.List(ctx); err == nil {
		t.Fatal("want an error")
	}
	if inner.count(providers.OpList) != 1 {
		t.Errorf("calls = %d, want 1", inner.count(providers.OpList))
	}
	if st, _ := providers.BreakerStateOf(p); st != providers.BreakerClosed {
		t.Errorf("a caller's cancel must not count against the API: breaker %v", st)
	}
}

func TestBreakerOpensAndRecovers(t *testing.T) {
	clk := newFakeClock()
	inner := newScripted("fake")
	inner.fail(providers.OpList, perr(providers.KindTransient), perr(providers.KindTransient), perr(providers.KindTransient))
	pol := testPolicy(clk)
	pol.MaxAttempts = 1
	p := providers.Resilient(inner, pol, zerolog.Nop(), nil)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if _, err := p.List(ctx); providers.KindOf(err) != providers.KindTransient {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if st, _ := providers.BreakerStateOf(p); st != providers.BreakerOpen {
		t.Fatalf("breaker %v after 3 failures, want open", st)
	}
	_, err := p.List(ctx)
	if !errors.Is(err, providers.ErrCircuitOpen) || !strings.Contains(err.Error(), "fake list") {
		t.Fatalf("err = %v, want ErrCircuitOpen naming provider and op", err)
	}
	if err := p.Stop(ctx, "1"); !errors.Is(err, providers.ErrCircuitOpen) {
		t.Fatalf("the breaker is per provider, all ops: %v", err)
	}
	if inner.count(providers.OpList) != 3 || inner.count(providers.OpStop) != 0 {
		t.Errorf("calls reached the API while open: list %d stop %d", inner.count(providers.OpList), inner.count(providers.OpStop))
	}
	clk.Advance(44 * time.Second)
	if _, err := p.List(ctx); !errors.Is(err, providers.ErrCircuitOpen) {
		t.Fatalf("still open before the cooldown: %v", err)
	}
	clk.Advance(time.Second)
	if _, err := p.List(ctx); err != nil {
		t.Fatalf("trial after cooldown: %v", err)
	}
	if st, _ := providers.BreakerStateOf(p); st != providers.BreakerClosed {
		t.Errorf("breaker %v after a good trial, want closed", st)
	}
}

func TestBreakerCooldownDoublesAndIsCapped(t *testing.T) {
	clk := newFakeClock()
	inner := newScripted("fake")
	for i := 0; i < 20; i++ {
		inner.fail(providers.OpList, perr(providers.KindTransient))
	}
	pol := testPolicy(clk)
	pol.MaxAttempts = 1
	p := providers.Resilient(inner, pol, zerolog.Nop(), nil)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		_, _ = p.List(ctx)
	}
	// 45s, then each failed trial doubles: 90, 180, 300 (cap), 300.
	for _, cooldown := range []time.Duration{45, 90, 180, 300, 300} {
		cooldown *= time.Second
		clk.Advance(cooldown - time.Second)
		before := inner.count(providers.OpList)
		if _, err := p.List(ctx); !errors.Is(err, providers.ErrCircuitOpen) {
			t.Fatalf("cooldown %v: open 1s early? %v", cooldown, err)
		}
		clk.Advance(time.Second)
		if _, err := p.List(ctx); providers.KindOf(err) != providers.KindTransient {
			t.Fatalf("cooldown %v: want a failed trial, got %v", cooldown, err)
		}
		if inner.count(providers.OpList) != before+1 {
			t.Fatalf("cooldown %v: trial should be exactly one call", cooldown)
		}
	}
}

func TestBreakerHalfOpenAllowsOneTrial(t *testing.T) {
	clk := newFakeClock()
	inner := newScripted("fake")
	inner.fail(providers.OpGet, perr(providers.KindTransient), perr(providers.KindTransient), perr(providers.KindTransient))
	pol := testPolicy(clk)
	pol.MaxAttempts = 1
	p := providers.Resilient(inner, pol, zerolog.Nop(), nil)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		_, _ = p.Get(ctx, "1")
	}
	clk.Advance(46 * time.Second)

	entered := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	inner.mu.Lock()
	inner.hook = func(ctx context.Context, op string) error {
		once.Do(func() { close(entered); <-release })
		return nil
	}
	inner.mu.Unlock()
	done := make(chan error, 1)
	go func() {
		_, err := p.Get(ctx, "1")
		done <- err
	}()
	select {
	case <-entered:
	case <-time.After(30 * time.Second):
		t.Fatal("trial call never reached the provider")
	}
	if st, _ := providers.BreakerStateOf(p); st != providers.BreakerHalfOpen {
		t.Errorf("state during trial = %v", st)
	}
	if _, err := p.Get(ctx, "1"); !errors.Is(err, providers.ErrCircuitOpen) {
		t.Errorf("second call during the trial: %v, want ErrCircuitOpen", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("trial: %v", err)
	}
	if _, err := p.Get(ctx, "1"); err != nil {
		t.Errorf("after a good trial: %v", err)
	}
}

func TestBreakerIgnoresAnswersOfAHealthyAPI(t *testing.T) {
	inner := newScripted("fake")
	inner.fail(providers.OpGet, perr(providers.KindNotFound), perr(providers.KindConflict), perr(providers.KindAuth),
		&providers.Error{Kind: providers.KindInvalid, Status: 400}, providers.ErrUnsupported)
	pol := testPolicy(newFakeClock())
	pol.BreakerThreshold = 2
	p := providers.Resilient(inner, pol, zerolog.Nop(), nil)
	for i := 0; i < 5; i++ {
		_, _ = p.Get(context.Background(), "1")
	}
	if st, _ := providers.BreakerStateOf(p); st != providers.BreakerClosed {
		t.Errorf("breaker %v; not-found/conflict/auth/400/unsupported must not open it", st)
	}
	// A garbage 200 answer does count.
	inner.fail(providers.OpGet, &providers.Error{Kind: providers.KindInvalid, Status: 200}, &providers.Error{Kind: providers.KindInvalid, Status: 200})
	for i := 0; i < 2; i++ {
		_, _ = p.Get(context.Background(), "1")
	}
	if st, _ := providers.BreakerStateOf(p); st != providers.BreakerOpen {
		t.Errorf("breaker %v after two unparseable answers, want open", st)
	}
}

func TestResilientWrapsTransparently(t *testing.T) {
	inner := newScripted("lambda")
	p := providers.Resilient(providers.Retire(inner), testPolicy(newFakeClock()), zerolog.Nop(), nil)
	if p.Name() != "lambda" || p.Capabilities() != inner.Capabilities() {
		t.Error("Name/Capabilities must pass through")
	}
	if !providers.IsRetired(p) {
		t.Error("IsRetired must see through Resilient")
	}
	if err := p.Terminate(context.Background(), "1"); !errors.Is(err, providers.ErrRetired) {
		t.Errorf("err = %v", err)
	}
	if st, ok := providers.BreakerStateOf(p); !ok || st != providers.BreakerClosed {
		t.Errorf("retired refusals are not API failures: %v %v", st, ok)
	}
	if _, ok := providers.BreakerStateOf(inner); ok {
		t.Error("BreakerStateOf on a plain provider must say no")
	}
}

func TestResilientMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	clk := newFakeClock()
	a := newScripted("vast")
	b := newScripted("runpod")
	pol := testPolicy(clk)
	pol.MaxAttempts = 2
	pa := providers.Resilient(a, pol, zerolog.Nop(), reg)
	pb := providers.Resilient(b, pol, zerolog.Nop(), reg) // shares the registry: no panic
	ctx := context.Background()

	a.fail(providers.OpList, perr(providers.KindTransient))
	_, _ = pa.List(ctx) // retried once, ok
	a.fail(providers.OpStop, perr(providers.KindTransient))
	_ = pa.Stop(ctx, "1") // transient, not retried
	for i := 0; i < 3; i++ {
		b.fail(providers.OpGet, perr(providers.KindTransient), perr(providers.KindTransient))
	}
	for i := 0; i < 3; i++ {
		_, _ = pb.Get(ctx, "1")
	}

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	value := func(name string, labels map[string]string) float64 {
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
		next:
			for _, m := range mf.GetMetric() {
				have := map[string]string{}
				for _, lp := range m.GetLabel() {
					have[lp.GetName()] = lp.GetValue()
				}
				for k, v := range labels {
					if have[k] != v {
						continue next
					}
				}
				if m.Counter != nil {
					return m.GetCounter().GetValue()
				}
				return m.GetGauge().GetValue()
			}
		}
		return -1
	}
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"ringmesh_provider_calls_total", map[string]string{"provider": "vast", "op": "list", "outcome": "ok"}, 1},
		{"ringmesh_provider_retries_total", map[string]string{"provider": "vast", "op": "list"}, 1},
		{"ringmesh_provider_calls_total", map[string]string{"provider": "vast", "op": "stop", "outcome": "transient"}, 1},
		{"ringmesh_provider_breaker_state", map[string]string{"provider": "vast"}, 0},
		{"ringmesh_provider_breaker_state", map[string]string{"provider": "runpod"}, 1},
		// runpod: attempts 1-2 fail (call 1), attempt 3 opens the breaker and
		// call 2's retry meets the open circuit; call 3 is refused at once.
		{"ringmesh_provider_calls_total", map[string]string{"provider": "runpod", "op": "get", "outcome": "transient"}, 1},
		{"ringmesh_provider_calls_total", map[string]string{"provider": "runpod", "op": "get", "outcome": "circuit_open"}, 2},
	}
	for _, c := range checks {
		if got := value(c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}
