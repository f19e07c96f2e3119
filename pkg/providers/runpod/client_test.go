package runpod

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/pkg/providers"
	"github.com/ringmesh/ringmesh/pkg/providers/internal/providertest"
	"github.com/ringmesh/ringmesh/pkg/providers/runpod/runpodfake"
)

const waitFor = 5 * time.Second

type manualClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newFake(t *testing.T, opts runpodfake.Options) *runpodfake.Server {
	t.Helper()
	f := runpodfake.New(opts)
	t.Cleanup(f.Close)
	return f
}

func newClient(t *testing.T, f *runpodfake.Server, mod func(*Options)) *Client {
	t.Helper()
	o := Options{BaseURL: f.URL(), APIKey: f.APIKey(), Log: zerolog.Nop()}
	if mod != nil {
		mod(&o)
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func resilient(c providers.Provider, callTimeout time.Duration) (providers.Provider, *providertest.InstantClock) {
	clk := &providertest.InstantClock{}
	return providers.Resilient(c, providertest.FastPolicy(clk, callTimeout), zerolog.Nop(), nil), clk
}

func TestLifecycleAgainstFake(t *testing.T) {
	f := newFake(t, runpodfake.Options{StartDelay: 30 * time.Millisecond, StopDelay: 30 * time.Millisecond})
	id := f.Add(runpodfake.SeedPod("", "runpod-1"))
	providertest.Lifecycle(t, newClient(t, f, nil), id, waitFor)
	var actions, deletes int
	for _, c := range f.MutatingCalls() {
		switch {
		case c.Method == http.MethodPost && strings.HasSuffix(c.Path, "/action"):
			actions++
		case c.Method == http.MethodDelete:
			deletes++
		}
	}
	if actions != 2 || deletes != 2 {
		t.Errorf("%d action POSTs, %d DELETEs; want 2 and 2", actions, deletes)
	}
}

func TestLaunchMovesThroughStates(t *testing.T) {
	clk := &manualClock{now: time.Date(2026, 11, 29, 14, 0, 0, 0, time.UTC)}
	f := newFake(t, runpodfake.Options{BootDelay: time.Minute, StopDelay: time.Minute, Now: clk.Now})
	id := f.Launch(runpodfake.SeedPod("", "new"))
	c := newClient(t, f, nil)
	ctx := context.Background()
	check := func(want providers.State, wantPrice float64, wantSSH int) {
		t.Helper()
		in, err := c.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if in.State != want || in.Price.PerHour != wantPrice || !in.Price.Known() || len(in.SSH) != wantSSH {
			t.Errorf("%s price %+v ssh %v; want %s %v with %d endpoints", in.State, in.Price, in.SSH, want, wantPrice, wantSSH)
		}
	}
	check(providers.StatePending, 0.69, 1)
	clk.Advance(30 * time.Second)
	check(providers.StateStarting, 0.69, 1)
	clk.Advance(30 * time.Second)
	check(providers.StateRunning, 0.69, 2)
	if err := c.Stop(ctx, id); err != nil {
		t.Fatal(err)
	}
	check(providers.StateRunning, 0.69, 2) // still running until StopDelay
	clk.Advance(time.Minute)
	check(providers.StateStopped, 0, 1)
}

func TestStopAndStartAreIdempotent(t *testing.T) {
	f := newFake(t, runpodfake.Options{})
	id := f.Add(runpodfake.SeedPod("", "a"))
	c := newClient(t, f, nil)
	ctx := context.Background()
	if err := c.Stop(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(ctx, id); err != nil {
		t.Fatalf("second stop of an EXITED pod (409 from the API): %v", err)
	}
	if err := c.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx, id); err != nil {
		t.Fatalf("second start of a RUNNING pod: %v", err)
	}
}

func TestConflictOnInvalidTransition(t *testing.T) {
	f := newFake(t, runpodfake.Options{})
	p := runpodfake.SeedPod("", "broken")
	p.Status = "ERROR"
	id := f.Add(p)
	rp, _ := resilient(newClient(t, f, nil), time.Second)
	err := rp.Stop(context.Background(), id)
	var pe *providers.Error
	if !errors.As(err, &pe) || pe.Kind != providers.KindConflict || pe.Status != 409 || !strings.Contains(err.Error(), "not allowed") {
		t.Fatalf("err = %v, want conflict with the API's detail", err)
	}
	if n := len(f.MutatingCalls()); n != 1 {
		t.Errorf("%d mutating calls, want 1 (409 is not retried)", n)
	}
}

func TestRateLimitHonoursRetryAfter(t *testing.T) {
	f := newFake(t, runpodfake.Options{})
	f.Add(runpodfake.SeedPod("", "a"))
	c := newClient(t, f, nil)
	f.Inject(runpodfake.Fault{Kind: runpodfake.RateLimit, RetryAfter: 3 * time.Second})
	_, err := c.List(context.Background())
	var pe *providers.Error
	if !errors.As(err, &pe) || pe.Kind != providers.KindRateLimited || pe.RetryAfter != 3*time.Second {
		t.Fatalf("raw: %v %+v", err, pe)
	}
	f.Inject(runpodfake.Fault{Kind: runpodfake.RateLimit, RetryAfter: 2 * time.Second, Path: "/v2/pods"})
	rp, clk := resilient(c, time.Second)
	got, err := rp.List(context.Background())
	if err != nil || len(got) != 1 {
		t.Fatalf("through Resilient: %v %v", got, err)
	}
	if !reflect.DeepEqual(clk.Sleeps(), []time.Duration{2 * time.Second}) {
		t.Errorf("sleeps %v, want [2s] from Retry-After", clk.Sleeps())
	}
}

func TestServerErrorOnMutationNotRetried(t *testing.T) {
	f := newFake(t, runpodfake.Options{})
	id := f.Add(runpodfake.SeedPod("", "a"))
	rp, _ := resilient(newClient(t, f, nil), time.Second)
	for _, op := range []func() error{
		func() error { return rp.Stop(context.Background(), id) },
		func() error { return rp.Terminate(context.Background(), id) },
	} {
		f.ResetCalls()
		f.Inject(runpodfake.Fault{Kind: runpodfake.ServerError, Status: 503, Method: ""})
		if err := op(); providers.KindOf(err) != providers.KindTransient {
			t.Fatalf("err = %v", err)
		}
		if m := f.MutatingCalls(); len(m) != 1 {
			t.Errorf("mutating calls %v, want exactly 1", m)
		}
	}
	// Reads are retried.
	f.ResetCalls()
	f.Inject(runpodfake.Fault{Kind: runpodfake.ServerError, Method: http.MethodGet})
	if _, err := rp.Get(context.Background(), id); err != nil || f.CountCalls(http.MethodGet, "/v2/pods/") != 2 {
		t.Errorf("read: %v after %d calls", err, f.CountCalls(http.MethodGet, "/v2/pods/"))
	}
}

func TestTimeouts(t *testing.T) {
	f := newFake(t, runpodfake.Options{})
	id := f.Add(runpodfake.SeedPod("", "a"))
	rp, _ := resilient(newClient(t, f, nil), 200*time.Millisecond)
	f.Inject(runpodfake.Fault{Kind: runpodfake.Timeout, Method: http.MethodGet})
	if _, err := rp.List(context.Background()); err != nil {
		t.Fatalf("list after one timeout: %v", err)
	}
	f.ResetCalls()
	f.Inject(runpodfake.Fault{Kind: runpodfake.Timeout, Method: http.MethodPost, AfterApply: true})
	err := rp.Stop(context.Background(), id)
	if providers.KindOf(err) != providers.KindTransient {
		t.Fatalf("stop: %v", err)
	}
	if m := f.MutatingCalls(); len(m) != 1 {
		t.Errorf("mutating calls %v, want 1", m)
	}
	providertest.WaitState(t, rp, id, providers.StateStopped, waitFor) // it was applied; the reply was lost
}

func TestMalformedBodies(t *testing.T) {
	f := newFake(t, runpodfake.Options{})
	id := f.Add(runpodfake.SeedPod("", "a"))
	c := newClient(t, f, nil)
	rp, _ := resilient(c, time.Second)
	ctx := context.Background()
	f.Inject(runpodfake.Fault{Kind: runpodfake.Malformed})
	if _, err := rp.List(ctx); providers.KindOf(err) != providers.KindInvalid || !strings.Contains(err.Error(), "offset") {
		t.Errorf("truncated: %v", err)
	}
	if n := len(f.Calls()); n != 1 {
		t.Errorf("%d calls; invalid answers are not retried", n)
	}
	f.Inject(runpodfake.Fault{Kind: runpodfake.Malformed, Body: `{"pods":[{"id":"abc","status":"RUNNING","cost":"cheap"}]}`})
	if _, err := c.List(ctx); providers.KindOf(err) != providers.KindInvalid || !strings.Contains(err.Error(), "pods[0]") || !strings.Contains(err.Error(), "cost") {
		t.Errorf("wrong type: %v", err)
	}
	f.Inject(runpodfake.Fault{Kind: runpodfake.Malformed, Body: `{"items":[]}`})
	if _, err := c.List(ctx); providers.KindOf(err) != providers.KindInvalid || !strings.Contains(err.Error(), "pods") {
		t.Errorf("missing pods: %v", err)
	}
	f.Inject(runpodfake.Fault{Kind: runpodfake.Malformed, Body: `{"id":"someoneelse","status":"RUNNING"}`})
	if _, err := c.Get(ctx, id); providers.KindOf(err) != providers.KindInvalid {
		t.Errorf("other pod's object: %v", err)
	}
}

func TestAuthErrorNotRetried(t *testing.T) {
	f := newFake(t, runpodfake.Options{})
	rp, _ := resilient(newClient(t, f, func(o *Options) { o.APIKey = "nope" }), time.Second)
	_, err := rp.List(context.Background())
	var pe *providers.Error
	if !errors.As(err, &pe) || pe.Kind != providers.KindAuth || pe.Status != 401 {
		t.Fatalf("err = %v", err)
	}
	if n := len(f.Calls()); n != 1 {
		t.Errorf("%d calls, want 1", n)
	}
}

func TestPreemptionDetected(t *testing.T) {
	f := newFake(t, runpodfake.Options{})
	spot := runpodfake.SeedPod("", "spot")
	spot.Interruptible = true
	id := f.Add(spot)
	od := f.Add(runpodfake.SeedPod("", "od"))
	if err := f.Preempt(od); err == nil {
		t.Error("fake must refuse to preempt an on-demand pod")
	}
	c := newClient(t, f, nil)
	if err := f.Preempt(id); err != nil {
		t.Fatal(err)
	}
	in, err := c.Get(context.Background(), id)
	if err != nil || in.State != providers.StatePreempted || !in.Interrupted || !in.Interruptible {
		t.Fatalf("%+v %v", in, err)
	}
	if !in.Price.Known() || in.Price.PerHour != 0 {
		t.Errorf("price %+v", in.Price)
	}
}

func TestEndpointChangeVisibleAfterGet(t *testing.T) {
	f := newFake(t, runpodfake.Options{})
	id := f.Add(runpodfake.SeedPod("", "a"))
	c := newClient(t, f, nil)
	before, err := c.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	port, err := f.ChangeSSHPort(id)
	if err != nil {
		t.Fatal(err)
	}
	after, err := c.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := before.Endpoint(providers.EndpointDirect)
	a, _ := after.Endpoint(providers.EndpointDirect)
	if a.Port != port || a.Port == b.Port || a.Host != b.Host {
		t.Errorf("direct endpoint %v → %v, want port %d", b, a, port)
	}
	if p, _ := after.Endpoint(providers.EndpointProxy); p.Host != "ssh.runpod.io" || p.User != id+"-64411eb2" {
		t.Errorf("proxy %v", p)
	}
}

func TestGetAndTerminateOfGonePod(t *testing.T) {
	f := newFake(t, runpodfake.Options{})
	c := newClient(t, f, nil)
	if _, err := c.Get(context.Background(), "nosuchpod"); !errors.Is(err, providers.ErrNotFound) {
		t.Errorf("Get: %v", err)
	}
	if err := c.Terminate(context.Background(), "nosuchpod"); err != nil {
		t.Errorf("Terminate: %v", err)
	}
	if err := c.Terminate(context.Background(), "bad/id"); providers.KindOf(err) != providers.KindInvalid {
		t.Errorf("bad id: %v", err)
	}
}

func TestAPIKeyNeverLoggedOrReturned(t *testing.T) {
	const key = "rpa_0123456789ABCDEFGHIJ"
	f := newFake(t, runpodfake.Options{APIKey: key})
	id := f.Add(runpodfake.SeedPod("", "a"))
	var logs providertest.LogBuffer
	c := newClient(t, f, func(o *Options) { o.Log = logs.Logger() })
	bad := newClient(t, f, func(o *Options) { o.APIKey = key + "x"; o.Log = logs.Logger() })
	var errs []error
	_, err := c.List(context.Background())
	errs = append(errs, err)
	f.Inject(runpodfake.Fault{Kind: runpodfake.ServerError})
	errs = append(errs, c.Stop(context.Background(), id))
	_, err = bad.Get(context.Background(), id)
	errs = append(errs, err)
	if logs.String() == "" {
		t.Fatal("expected debug logs")
	}
	if strings.Contains(logs.String(), key) {
		t.Error("API key in logs")
	}
	for _, e := range errs {
		if e != nil && strings.Contains(fmt.Sprint(e), key) {
			t.Errorf("API key in error %v", e)
		}
	}
	if _, err := New(Options{}); !errors.Is(err, providers.ErrNotConfigured) {
		t.Errorf("New without key: %v", err)
	}
}
