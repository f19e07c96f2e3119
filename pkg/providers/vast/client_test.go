package vast

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/pkg/providers"
	"github.com/ringmesh/ringmesh/pkg/providers/internal/providertest"
	"github.com/ringmesh/ringmesh/pkg/providers/vast/vastfake"
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

func newFake(t *testing.T, opts vastfake.Options) *vastfake.Server {
	t.Helper()
	f := vastfake.New(opts)
	t.Cleanup(f.Close)
	return f
}

func newClient(t *testing.T, f *vastfake.Server, mod func(*Options)) *Client {
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
	f := newFake(t, vastfake.Options{StartDelay: 30 * time.Millisecond, StopDelay: 30 * time.Millisecond})
	id := f.Add(vastfake.SeedInstance(0, "fleet-node-3"))
	c := newClient(t, f, nil)
	providertest.Lifecycle(t, c, strconv.FormatInt(id, 10), waitFor)

	var puts, deletes int
	for _, call := range f.MutatingCalls() {
		switch call.Method {
		case http.MethodPut:
			puts++
		case http.MethodDelete:
			deletes++
		}
	}
	if puts != 2 || deletes != 2 {
		t.Errorf("mutating calls: %d PUT, %d DELETE; want 2 (stop, start) and 2 (terminate twice)", puts, deletes)
	}
}

func TestLaunchMovesThroughStates(t *testing.T) {
	clk := &manualClock{now: time.Date(2026, 11, 29, 14, 0, 0, 0, time.UTC)}
	f := newFake(t, vastfake.Options{BootDelay: time.Minute, Now: clk.Now})
	in := vastfake.SeedInstance(0, "booting")
	id := strconv.FormatInt(f.Launch(in), 10)
	c := newClient(t, f, nil)
	ctx := context.Background()
	for _, step := range []struct {
		advance time.Duration
		want    providers.State
		raw     string
		ssh     int
	}{
		{0, providers.StatePending, "", 1},
		{30 * time.Second, providers.StateStarting, "loading", 1},
		{30 * time.Second, providers.StateRunning, "running", 2},
	} {
		clk.Advance(step.advance)
		got, err := c.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != step.want || got.RawState != step.raw || len(got.SSH) != step.ssh {
			t.Errorf("after %v: %s raw %q ssh %v; want %s %q with %d endpoints", step.advance, got.State, got.RawState, got.SSH, step.want, step.raw, step.ssh)
		}
	}
}

func TestListFollowsPages(t *testing.T) {
	f := newFake(t, vastfake.Options{})
	want := map[string]bool{}
	for i := 0; i < 60; i++ {
		id := f.Add(vastfake.SeedInstance(0, fmt.Sprintf("n%d", i)))
		want[strconv.FormatInt(id, 10)] = true
	}
	for _, tc := range []struct {
		pageSize, pages int
	}{{0, 3}, {10, 6}, {25, 3}} {
		f.ResetCalls()
		c := newClient(t, f, func(o *Options) { o.PageSize = tc.pageSize })
		got, err := c.List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		ids := map[string]bool{}
		for _, in := range got {
			ids[in.ID] = true
		}
		if len(got) != 60 || len(ids) != 60 {
			t.Errorf("page size %d: %d instances (%d unique), want 60", tc.pageSize, len(got), len(ids))
		}
		for id := range want {
			if !ids[id] {
				t.Errorf("missing %s", id)
			}
		}
		if n := f.CountCalls(http.MethodGet, "/api/v1/instances/"); n != tc.pages {
			t.Errorf("page size %d: %d list calls, want %d", tc.pageSize, n, tc.pages)
		}
		calls := f.Calls()
		if len(calls) > 0 && (!strings.Contains(calls[0].Query, "limit=") || strings.Contains(calls[0].Query, "after_token")) {
			t.Errorf("first page query %q", calls[0].Query)
		}
		if len(calls) > 1 && !strings.Contains(calls[1].Query, "after_token=") {
			t.Errorf("second page query %q lacks after_token", calls[1].Query)
		}
	}
}

func TestListEmptyAccount(t *testing.T) {
	f := newFake(t, vastfake.Options{})
	got, err := newClient(t, f, nil).List(context.Background())
	if err != nil || len(got) != 0 {
		t.Fatalf("got %v, %v", got, err)
	}
}

func serve(t *testing.T, h http.HandlerFunc) *Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := New(Options{BaseURL: srv.URL, APIKey: "k", Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestListToleratesLegacyShape(t *testing.T) {
	calls := 0
	c := serve(t, func(w http.ResponseWriter, r *http.Request) {
		calls++
		fmt.Fprintf(w, `{"instances":[%s]}`, docInstance)
	})
	got, err := c.List(context.Background())
	if err != nil || len(got) != 1 || got[0].ID != "31337001" || calls != 1 {
		t.Fatalf("got %+v, %v after %d calls", got, err, calls)
	}
}

func TestListRejectsLoopingToken(t *testing.T) {
	c := serve(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"instances":[%s],"next_token":"same"}`, docInstance)
	})
	_, err := c.List(context.Background())
	if providers.KindOf(err) != providers.KindInvalid || !strings.Contains(err.Error(), "next_token") {
		t.Fatalf("err = %v", err)
	}
}

func TestGetUnwrapsShowObject(t *testing.T) {
	c := serve(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v0/instances/31337001/":
			fmt.Fprintf(w, `{"instances": %s}`, docInstance)
		case "/api/v0/instances/31337002/":
			fmt.Fprint(w, `{"instances": null}`)
		case "/api/v0/instances/31337003/":
			fmt.Fprintf(w, `{"instances": [%s]}`, docInstance) // array form, other id
		default:
			http.NotFound(w, r)
		}
	})
	ctx := context.Background()
	in, err := c.Get(ctx, "31337001")
	if err != nil || in.State != providers.StateRunning || in.Name != "fleet-node-3" {
		t.Fatalf("Get = %+v, %v", in, err)
	}
	for _, id := range []string{"31337002", "31337003", "31337004"} {
		if _, err := c.Get(ctx, id); !errors.Is(err, providers.ErrNotFound) || providers.KindOf(err) != providers.KindNotFound {
			t.Errorf("Get(%s) = %v, want ErrNotFound", id, err)
		}
	}
}

func TestGetOfDestroyedInstanceIsNotFound(t *testing.T) {
	f := newFake(t, vastfake.Options{})
	_, err := newClient(t, f, nil).Get(context.Background(), "123")
	if !errors.Is(err, providers.ErrNotFound) {
		t.Fatalf("err = %v", err)
	}
}

func TestRateLimitRetriedByResilient(t *testing.T) {
	f := newFake(t, vastfake.Options{})
	f.Add(vastfake.SeedInstance(0, "a"))
	c := newClient(t, f, nil)

	f.Inject(vastfake.Fault{Kind: vastfake.RateLimit, Path: "/api/v1/instances/"})
	_, err := c.List(context.Background())
	var pe *providers.Error
	if !errors.As(err, &pe) || pe.Kind != providers.KindRateLimited || pe.Status != 429 || pe.RetryAfter != 0 {
		t.Fatalf("raw client: %v (%+v); want rate_limited, 429, no Retry-After", err, pe)
	}

	f.ResetCalls()
	f.Inject(vastfake.Fault{Kind: vastfake.RateLimit, Count: 2, Path: "/api/v1/instances/"})
	p, clk := resilient(c, time.Second)
	got, err := p.List(context.Background())
	if err != nil || len(got) != 1 {
		t.Fatalf("through Resilient: %v, %v", got, err)
	}
	if n := f.CountCalls(http.MethodGet, "/api/v1/instances/"); n != 3 {
		t.Errorf("%d list calls, want 3 (two 429s, then success)", n)
	}
	if s := clk.Sleeps(); len(s) != 2 {
		t.Errorf("backoff sleeps %v, want 2 (Vast sends no Retry-After: own backoff)", s)
	}
	// A 429 on a mutation is retried too: it was not applied.
	id := strconv.FormatInt(f.Add(vastfake.SeedInstance(0, "b")), 10)
	f.ResetCalls()
	f.Inject(vastfake.Fault{Kind: vastfake.RateLimit, Method: http.MethodPut})
	if err := p.Stop(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if n := len(f.MutatingCalls()); n != 2 {
		t.Errorf("%d PUTs, want 2 (429 then success)", n)
	}
}

func TestServerErrorOnMutationNotRetried(t *testing.T) {
	for _, afterApply := range []bool{false, true} {
		t.Run(fmt.Sprintf("applied=%v", afterApply), func(t *testing.T) {
			f := newFake(t, vastfake.Options{})
			id := strconv.FormatInt(f.Add(vastfake.SeedInstance(0, "a")), 10)
			p, _ := resilient(newClient(t, f, nil), time.Second)
			f.Inject(vastfake.Fault{Kind: vastfake.ServerError, Status: 502, Method: http.MethodPut, AfterApply: afterApply})
			err := p.Stop(context.Background(), id)
			if providers.KindOf(err) != providers.KindTransient {
				t.Fatalf("err = %v, want transient", err)
			}
			if m := f.MutatingCalls(); len(m) != 1 {
				t.Fatalf("mutating calls = %v, want exactly 1", m)
			}
			// The outcome is unknown to the client; a read tells.
			want := providers.StateRunning
			if afterApply {
				want = providers.StateStopped
			}
			providertest.WaitState(t, p, id, want, waitFor)
		})
	}
}

func TestServerErrorOnReadRetried(t *testing.T) {
	f := newFake(t, vastfake.Options{})
	id := strconv.FormatInt(f.Add(vastfake.SeedInstance(0, "a")), 10)
	p, _ := resilient(newClient(t, f, nil), time.Second)
	f.Inject(vastfake.Fault{Kind: vastfake.ServerError, Count: 2, Method: http.MethodGet})
	if _, err := p.Get(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if n := f.CountCalls(http.MethodGet, "/api/v0/instances/"); n != 3 {
		t.Errorf("%d GETs, want 3", n)
	}
}

func TestTimeouts(t *testing.T) {
	f := newFake(t, vastfake.Options{})
	id := strconv.FormatInt(f.Add(vastfake.SeedInstance(0, "a")), 10)
	p, _ := resilient(newClient(t, f, nil), 200*time.Millisecond)

	f.Inject(vastfake.Fault{Kind: vastfake.Timeout, Method: http.MethodGet})
	if _, err := p.Get(context.Background(), id); err != nil {
		t.Fatalf("read after one timeout: %v", err)
	}
	if n := f.CountCalls(http.MethodGet, "/api/v0/instances/"); n != 2 {
		t.Errorf("%d GETs, want 2 (timeout, retry)", n)
	}

	f.Inject(vastfake.Fault{Kind: vastfake.Timeout, Method: http.MethodDelete})
	err := p.Terminate(context.Background(), id)
	if providers.KindOf(err) != providers.KindTransient || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("terminate err = %v, want transient timeout", err)
	}
	if n := f.CountCalls(http.MethodDelete, ""); n != 1 {
		t.Errorf("%d DELETEs, want exactly 1 (timed-out mutation not repeated)", n)
	}
}

func TestMalformedBodies(t *testing.T) {
	f := newFake(t, vastfake.Options{})
	id := strconv.FormatInt(f.Add(vastfake.SeedInstance(0, "a")), 10)
	c := newClient(t, f, nil)
	p, _ := resilient(c, time.Second)
	ctx := context.Background()

	f.Inject(vastfake.Fault{Kind: vastfake.Malformed, Path: "/api/v1/instances/"})
	_, err := p.List(ctx)
	if providers.KindOf(err) != providers.KindInvalid || !strings.Contains(err.Error(), "offset") || !strings.Contains(err.Error(), "vast list") {
		t.Errorf("truncated JSON: %v", err)
	}
	if n := f.CountCalls(http.MethodGet, "/api/v1/instances/"); n != 1 {
		t.Errorf("%d list calls; an invalid answer is not retried", n)
	}

	f.Inject(vastfake.Fault{Kind: vastfake.Malformed, Path: "/api/v1/instances/",
		Body: `{"instances":[{"id":1,"gpu_ram":"lots"}],"next_token":null}`})
	if _, err := c.List(ctx); providers.KindOf(err) != providers.KindInvalid || !strings.Contains(err.Error(), "gpu_ram") {
		t.Errorf("wrong type: %v", err)
	}

	f.Inject(vastfake.Fault{Kind: vastfake.Malformed, Path: "/api/v0/instances/", Body: `{"instances":{"label":"no id"}}`})
	if _, err := c.Get(ctx, id); providers.KindOf(err) != providers.KindInvalid || !strings.Contains(err.Error(), "field id") {
		t.Errorf("missing id: %v", err)
	}

	f.Inject(vastfake.Fault{Kind: vastfake.Malformed, Path: "/api/v0/instances/", Body: `{"unexpected": true}`})
	if _, err := c.Get(ctx, id); providers.KindOf(err) != providers.KindInvalid || !strings.Contains(err.Error(), "instances") {
		t.Errorf("no instances field: %v", err)
	}

	f.Inject(vastfake.Fault{Kind: vastfake.Malformed, Method: http.MethodPut, Body: `{"success": "yes"}`})
	if err := c.Stop(ctx, id); providers.KindOf(err) != providers.KindInvalid || !strings.Contains(err.Error(), "success") {
		t.Errorf("mutation answer with wrong type: %v", err)
	}
}

func TestAuthErrorNotRetried(t *testing.T) {
	f := newFake(t, vastfake.Options{})
	bad := newClient(t, f, func(o *Options) { o.APIKey = "wrong-key" })
	p, _ := resilient(bad, time.Second)
	_, err := p.List(context.Background())
	var pe *providers.Error
	if !errors.As(err, &pe) || pe.Kind != providers.KindAuth || pe.Status != 401 || pe.Code != "auth_error" {
		t.Fatalf("err = %v", err)
	}
	if n := len(f.Calls()); n != 1 {
		t.Errorf("%d calls, want 1", n)
	}
	f.ResetCalls()
	good, _ := resilient(newClient(t, f, nil), time.Second)
	f.Inject(vastfake.Fault{Kind: vastfake.AuthError, Method: http.MethodPut})
	if err := good.Stop(context.Background(), "123"); providers.KindOf(err) != providers.KindAuth {
		t.Errorf("injected auth fault: %v", err)
	}
	if n := len(f.Calls()); n != 1 {
		t.Errorf("%d calls after an injected 401, want 1", n)
	}
}

func TestPreemptionDetected(t *testing.T) {
	f := newFake(t, vastfake.Options{})
	bid := vastfake.SeedInstance(0, "bid")
	bid.IsBid = true
	id := f.Add(bid)
	od := f.Add(vastfake.SeedInstance(0, "on-demand"))
	if err := f.Preempt(od); err == nil {
		t.Error("fake must refuse to outbid an on-demand instance")
	}
	c := newClient(t, f, nil)
	sid := strconv.FormatInt(id, 10)
	before, err := c.Get(context.Background(), sid)
	if err != nil || before.State != providers.StateRunning || !before.Interruptible || before.Interrupted {
		t.Fatalf("before: %+v %v", before, err)
	}
	if err := f.Preempt(id); err != nil {
		t.Fatal(err)
	}
	after, err := c.Get(context.Background(), sid)
	if err != nil || after.State != providers.StatePreempted || !after.Interrupted {
		t.Fatalf("after outbid: %s interrupted=%v %v", after.State, after.Interrupted, err)
	}
	if _, ok := after.Endpoint(providers.EndpointDirect); ok {
		t.Error("a stopped instance has no mapped ports, so no direct endpoint")
	}
	list, _ := c.List(context.Background())
	for _, in := range list {
		if in.ID == sid && in.State != providers.StatePreempted {
			t.Errorf("List shows %s", in.State)
		}
		if in.ID == strconv.FormatInt(od, 10) && in.State != providers.StateRunning {
			t.Errorf("on-demand instance shows %s", in.State)
		}
	}
}

func TestEndpointChangeVisibleAfterGet(t *testing.T) {
	f := newFake(t, vastfake.Options{})
	n := vastfake.SeedInstance(29129529, "vast-29129529")
	n.SSHHost, n.SSHPort = "ssh6.vast.ai", 19528
	id := f.Add(n)
	c := newClient(t, f, nil)
	sid := strconv.FormatInt(id, 10)
	in, err := c.Get(context.Background(), sid)
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := in.Endpoint(providers.EndpointProxy); p.String() != "root@ssh6.vast.ai:19528" {
		t.Fatalf("seed node proxy endpoint = %v", p)
	}
	proxyPort, directPort, err := f.ChangeSSHPort(id)
	if err != nil {
		t.Fatal(err)
	}
	in, err = c.Get(context.Background(), sid)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := in.Endpoint(providers.EndpointProxy)
	d, _ := in.Endpoint(providers.EndpointDirect)
	if p.Port != proxyPort || p.Host != "ssh6.vast.ai" || d.Port != directPort || d.Host != "203.0.113.45" {
		t.Errorf("after restart: proxy %v direct %v; want ports %d / %d", p, d, proxyPort, directPort)
	}
}

func TestAPIKeyNeverLoggedOrReturned(t *testing.T) {
	const key = "vast-key-0123456789abcdef"
	f := newFake(t, vastfake.Options{APIKey: key})
	id := strconv.FormatInt(f.Add(vastfake.SeedInstance(0, "a")), 10)
	var logs providertest.LogBuffer
	c := newClient(t, f, func(o *Options) { o.Log = logs.Logger() })
	ctx := context.Background()
	var errs []error
	_, err := c.List(ctx)
	errs = append(errs, err)
	f.Inject(vastfake.Fault{Kind: vastfake.ServerError})
	_, err = c.Get(ctx, id)
	errs = append(errs, err)
	bad := newClient(t, f, func(o *Options) { o.APIKey = key + "-wrong"; o.Log = logs.Logger() })
	_, err = bad.List(ctx)
	errs = append(errs, err)
	if logs.String() == "" {
		t.Fatal("expected debug logs of the requests")
	}
	if strings.Contains(logs.String(), key) {
		t.Errorf("API key in logs:\n%s", logs.String())
	}
	for _, e := range errs {
		if e != nil && strings.Contains(e.Error(), key) {
			t.Errorf("API key in error %v", e)
		}
	}
}

func TestNewWithoutKeyIsNotConfigured(t *testing.T) {
	if _, err := New(Options{}); !errors.Is(err, providers.ErrNotConfigured) {
		t.Fatalf("err = %v", err)
	}
	if _, err := New(Options{APIKey: "k", BaseURL: "not a url"}); err == nil {
		t.Fatal("want an error for a bad base URL")
	}
}

func TestBadIDRejectedWithoutACall(t *testing.T) {
	f := newFake(t, vastfake.Options{})
	c := newClient(t, f, nil)
	ctx := context.Background()
	for _, id := range []string{"", "vast-29129529", "12/../34", "-1"} {
		if _, err := c.Get(ctx, id); providers.KindOf(err) != providers.KindInvalid {
			t.Errorf("Get(%q) = %v", id, err)
		}
		if err := c.Terminate(ctx, id); providers.KindOf(err) != providers.KindInvalid {
			t.Errorf("Terminate(%q) = %v; a bad id must not count as already gone", id, err)
		}
	}
	if n := len(f.Calls()); n != 0 {
		t.Errorf("%d calls reached the API", n)
	}
}

func TestTerminateUnknownInstanceSucceeds(t *testing.T) {
	f := newFake(t, vastfake.Options{})
	if err := newClient(t, f, nil).Terminate(context.Background(), "99999"); err != nil {
		t.Fatalf("err = %v", err)
	}
	if n := f.CountCalls(http.MethodDelete, ""); n != 1 {
		t.Errorf("%d DELETEs", n)
	}
}

func TestDialFailureIsNotSent(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c, err := New(Options{BaseURL: "http://" + addr, APIKey: "k", Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Stop(context.Background(), "1")
	if providers.KindOf(err) != providers.KindNotSent {
		t.Fatalf("err = %v, want not_sent", err)
	}
}

func TestListIsSortedByID(t *testing.T) {
	f := newFake(t, vastfake.Options{PageSize: 4})
	for _, id := range []int64{50, 10, 40, 20, 30, 60} {
		f.Add(vastfake.SeedInstance(id, "x"))
	}
	got, err := newClient(t, f, nil).List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]int, len(got))
	for i, in := range got {
		ids[i], _ = strconv.Atoi(in.ID)
	}
	if !sort.IntsAreSorted(ids) || len(ids) != 6 {
		t.Errorf("ids %v", ids)
	}
	if n := f.CountCalls(http.MethodGet, "/api/v1/instances/"); n != 2 {
		t.Errorf("%d pages with fake page size 4, want 2", n)
	}
}
