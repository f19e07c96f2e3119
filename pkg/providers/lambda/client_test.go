package lambda

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/time/rate"

	"github.com/ringmesh/ringmesh/pkg/providers"
	"github.com/ringmesh/ringmesh/pkg/providers/internal/providertest"
	"github.com/ringmesh/ringmesh/pkg/providers/lambda/lambdafake"
)

const waitFor = 5 * time.Second

func newFake(t *testing.T, opts lambdafake.Options) *lambdafake.Server {
	t.Helper()
	f := lambdafake.New(opts)
	t.Cleanup(f.Close)
	return f
}

func newClient(t *testing.T, f *lambdafake.Server, mod func(*Options)) *Client {
	t.Helper()
	o := Options{BaseURL: f.URL(), APIKey: f.APIKey(), Log: zerolog.Nop(), Limiter: rate.NewLimiter(rate.Inf, 1)}
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
	f := newFake(t, lambdafake.Options{BootDelay: 30 * time.Millisecond, TerminateDelay: 30 * time.Millisecond})
	id := f.Launch(lambdafake.SeedInstance("", "lambda-1", "198.51.100.2"))
	c := newClient(t, f, nil)
	if c.Capabilities().CanStop || c.Capabilities().CanStart {
		t.Error("Lambda cannot stop or start")
	}
	providertest.Lifecycle(t, c, id, waitFor)
	if n := len(f.MutatingCalls()); n != 2 {
		t.Errorf("%d mutating calls, want 2 terminates (stop/start must not reach the API)", n)
	}
}

func TestTerminatingThenGone(t *testing.T) {
	f := newFake(t, lambdafake.Options{TerminateDelay: time.Hour})
	id := f.Add(lambdafake.SeedInstance("", "a", "198.51.100.9"))
	c := newClient(t, f, nil)
	ctx := context.Background()
	if err := c.Terminate(ctx, id); err != nil {
		t.Fatal(err)
	}
	in, err := c.Get(ctx, id)
	if err != nil || in.State != providers.StateStopping || in.RawState != "terminating" {
		t.Fatalf("%+v %v", in, err)
	}
	if err := c.Terminate(ctx, id); err != nil {
		t.Errorf("terminate of a terminating instance: %v", err)
	}
}

func TestUnsupportedOpsMakeNoCall(t *testing.T) {
	f := newFake(t, lambdafake.Options{})
	id := f.Add(lambdafake.SeedInstance("", "a", "198.51.100.9"))
	rp, _ := resilient(newClient(t, f, nil), time.Second)
	if err := rp.Stop(context.Background(), id); !errors.Is(err, providers.ErrUnsupported) || !strings.Contains(err.Error(), "only be terminated") {
		t.Errorf("Stop: %v", err)
	}
	if err := rp.Start(context.Background(), id); !errors.Is(err, providers.ErrUnsupported) {
		t.Errorf("Start: %v", err)
	}
	if n := len(f.Calls()); n != 0 {
		t.Errorf("%d calls reached the API", n)
	}
	if st, _ := providers.BreakerStateOf(rp); st != providers.BreakerClosed {
		t.Errorf("unsupported ops must not trip the breaker: %v", st)
	}
}

func TestClientSideRateLimiter(t *testing.T) {
	f := newFake(t, lambdafake.Options{})
	f.Add(lambdafake.SeedInstance("", "a", "198.51.100.9"))
	c := newClient(t, f, func(o *Options) { o.Limiter = rate.NewLimiter(rate.Every(50*time.Millisecond), 1) })
	start := time.Now()
	for i := 0; i < 4; i++ {
		if _, err := c.List(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if el := time.Since(start); el < 140*time.Millisecond {
		t.Errorf("4 calls at 20/s took %v, want ≥ 150ms", el)
	}
	// A caller deadline shorter than the wait: not sent, safe to retry.
	slow := newClient(t, f, func(o *Options) { o.Limiter = rate.NewLimiter(rate.Every(time.Hour), 1) })
	_, _ = slow.List(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	before := len(f.Calls())
	if _, err := slow.List(ctx); providers.KindOf(err) != providers.KindNotSent {
		t.Errorf("err = %v, want not_sent", err)
	}
	if len(f.Calls()) != before {
		t.Error("a request blocked by the limiter reached the API")
	}
	if DefaultLimiter().Limit() != 1 {
		t.Errorf("default limiter %v/s, want 1", DefaultLimiter().Limit())
	}
}

func TestRateLimitRetried(t *testing.T) {
	f := newFake(t, lambdafake.Options{})
	f.Add(lambdafake.SeedInstance("", "a", "198.51.100.9"))
	c := newClient(t, f, nil)
	f.Inject(lambdafake.Fault{Kind: lambdafake.RateLimit})
	_, err := c.List(context.Background())
	var pe *providers.Error
	if !errors.As(err, &pe) || pe.Kind != providers.KindRateLimited || pe.Code != "global/too-many-requests" {
		t.Fatalf("raw: %v", err)
	}
	rp, _ := resilient(c, time.Second)
	f.Inject(lambdafake.Fault{Kind: lambdafake.RateLimit, Count: 2})
	if got, err := rp.List(context.Background()); err != nil || len(got) != 1 {
		t.Fatalf("through Resilient: %v %v", got, err)
	}
}

func TestServerErrorOnTerminateNotRetried(t *testing.T) {
	f := newFake(t, lambdafake.Options{TerminateDelay: time.Hour})
	id := f.Add(lambdafake.SeedInstance("", "a", "198.51.100.9"))
	rp, _ := resilient(newClient(t, f, nil), time.Second)
	f.Inject(lambdafake.Fault{Kind: lambdafake.ServerError, Method: http.MethodPost, AfterApply: true})
	if err := rp.Terminate(context.Background(), id); providers.KindOf(err) != providers.KindTransient {
		t.Fatalf("err = %v", err)
	}
	if m := f.MutatingCalls(); len(m) != 1 {
		t.Errorf("mutating calls %v, want 1", m)
	}
	in, err := rp.Get(context.Background(), id)
	if err != nil || in.State != providers.StateStopping {
		t.Errorf("applied terminate visible on read: %+v %v", in, err)
	}
}

func TestTimeoutAndMalformed(t *testing.T) {
	f := newFake(t, lambdafake.Options{})
	id := f.Add(lambdafake.SeedInstance("", "a", "198.51.100.9"))
	c := newClient(t, f, nil)
	rp, _ := resilient(c, 200*time.Millisecond)
	ctx := context.Background()

	f.Inject(lambdafake.Fault{Kind: lambdafake.Timeout, Method: http.MethodGet})
	if _, err := rp.Get(ctx, id); err != nil {
		t.Errorf("get after one timeout: %v", err)
	}
	f.ResetCalls()
	f.Inject(lambdafake.Fault{Kind: lambdafake.Timeout, Method: http.MethodPost})
	if err := rp.Terminate(ctx, id); providers.KindOf(err) != providers.KindTransient {
		t.Errorf("terminate timeout: %v", err)
	}
	if n := len(f.MutatingCalls()); n != 1 {
		t.Errorf("%d terminate calls, want 1", n)
	}

	f.Inject(lambdafake.Fault{Kind: lambdafake.Malformed})
	if _, err := rp.List(ctx); providers.KindOf(err) != providers.KindInvalid || !strings.Contains(err.Error(), "offset") {
		t.Errorf("truncated: %v", err)
	}
	f.Inject(lambdafake.Fault{Kind: lambdafake.Malformed, Body: `{"data":[{"id":"x","instance_type":{"specs":{"gpus":"one"}}}]}`})
	if _, err := c.List(ctx); providers.KindOf(err) != providers.KindInvalid || !strings.Contains(err.Error(), "gpus") {
		t.Errorf("wrong type: %v", err)
	}
	f.Inject(lambdafake.Fault{Kind: lambdafake.Malformed, Body: `{"instances":[]}`})
	if _, err := c.List(ctx); providers.KindOf(err) != providers.KindInvalid || !strings.Contains(err.Error(), "data") {
		t.Errorf("missing envelope: %v", err)
	}
	f.Inject(lambdafake.Fault{Kind: lambdafake.Malformed, Method: http.MethodPost, Body: `{"data":{}}`})
	if err := c.Terminate(ctx, id); providers.KindOf(err) != providers.KindInvalid || !strings.Contains(err.Error(), "terminated_instances") {
		t.Errorf("terminate without terminated_instances: %v", err)
	}
}

func TestAuthAndNotFound(t *testing.T) {
	f := newFake(t, lambdafake.Options{})
	rp, _ := resilient(newClient(t, f, func(o *Options) { o.APIKey = "bad" }), time.Second)
	_, err := rp.List(context.Background())
	var pe *providers.Error
	if !errors.As(err, &pe) || pe.Kind != providers.KindAuth || pe.Code != "global/invalid-api-key" {
		t.Fatalf("err = %v", err)
	}
	if n := len(f.Calls()); n != 1 {
		t.Errorf("%d calls, want 1", n)
	}
	c := newClient(t, f, nil)
	if _, err := c.Get(context.Background(), "deadbeef"); !errors.Is(err, providers.ErrNotFound) {
		t.Errorf("Get: %v", err)
	}
	if err := c.Terminate(context.Background(), "deadbeef"); err != nil {
		t.Errorf("Terminate of an unknown instance: %v", err)
	}
}

func TestPreemptionDetected(t *testing.T) {
	f := newFake(t, lambdafake.Options{})
	id := f.Add(lambdafake.SeedInstance("", "a", "198.51.100.9"))
	if err := f.Preempt(id); err != nil {
		t.Fatal(err)
	}
	in, err := newClient(t, f, nil).Get(context.Background(), id)
	if err != nil || in.State != providers.StatePreempted || !in.Interrupted {
		t.Fatalf("%+v %v", in, err)
	}
}

func TestBasicAuthAcceptedByFake(t *testing.T) {
	f := newFake(t, lambdafake.Options{})
	req, _ := http.NewRequest(http.MethodGet, f.URL()+"/instances", nil)
	req.SetBasicAuth(f.APIKey(), "")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("status %d", resp.StatusCode)
	}
}

func TestAPIKeyNeverLoggedOrReturned(t *testing.T) {
	const key = "secret_lambda_0123456789abcdef"
	f := newFake(t, lambdafake.Options{APIKey: key})
	var logs providertest.LogBuffer
	c := newClient(t, f, func(o *Options) { o.Log = logs.Logger() })
	bad := newClient(t, f, func(o *Options) { o.APIKey = key + "z"; o.Log = logs.Logger() })
	_, err1 := c.List(context.Background())
	_, err2 := bad.List(context.Background())
	if err1 != nil || err2 == nil {
		t.Fatalf("%v %v", err1, err2)
	}
	if logs.String() == "" || strings.Contains(logs.String(), key) || strings.Contains(err2.Error(), key) {
		t.Errorf("key leaked or nothing logged:\n%s\n%v", logs.String(), err2)
	}
	if _, err := New(Options{}); !errors.Is(err, providers.ErrNotConfigured) {
		t.Errorf("New without key: %v", err)
	}
}
