package vultr_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/internal/testutil"
	"github.com/ringmesh/ringmesh/pkg/providers"
	"github.com/ringmesh/ringmesh/pkg/providers/vultr"
	"github.com/ringmesh/ringmesh/pkg/providers/vultr/vultrfake"
)

const token = "test-vultr-key-SECRET"

func newPair(t *testing.T, opts vultrfake.Options, perPage int) (*vultr.Provider, *vultrfake.Server, *bytes.Buffer) {
	t.Helper()
	if opts.Token == "" {
		opts.Token = token
	}
	fake := vultrfake.New(opts)
	t.Cleanup(fake.Close)
	var logs bytes.Buffer
	lg := zerolog.New(&logs)
	p, err := vultr.New(vultr.Options{APIKey: token, BaseURL: fake.URL(), PerPage: perPage, Logger: &lg,
		HTTPClient: &http.Client{Timeout: 5 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if strings.Contains(logs.String(), token) {
			t.Errorf("API key leaked into logs: %s", logs.String())
		}
	})
	return p, fake, &logs
}

func waitState(t *testing.T, p *vultr.Provider, id string, want providers.State) providers.Instance {
	t.Helper()
	var got providers.Instance
	testutil.Eventually(t, 5*time.Second, func() error {
		in, err := p.Get(context.Background(), id)
		if err != nil {
			return fmt.Errorf("%s to be %s: %w", id, want, err)
		}
		got = in
		if in.State != want {
			return fmt.Errorf("%s to be %s: is %s", id, want, in.State)
		}
		return nil
	})
	return got
}

func TestLifecycle(t *testing.T) {
	p, fake, _ := newPair(t, vultrfake.Options{}, 0)
	ctx := context.Background()
	seeded := fake.Seed(vultrfake.Instance{Label: "vultr-a100-1", Plan: "vcg-a100-3c-30g-20vram"})
	id := seeded[0].ID

	list, err := p.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != id {
		t.Fatalf("list = %+v", list)
	}
	if list[0].State != providers.StatePending && list[0].State != providers.StateStarting && list[0].State != providers.StateRunning {
		t.Fatalf("fresh instance state = %q", list[0].State)
	}
	in := waitState(t, p, id, providers.StateRunning)
	if in.Price.PerHour != 0.616 || in.Price.Source != vultr.SourceHourly || in.GPUModel != "A100" || in.GPUMemGiB != 20 {
		t.Errorf("running instance = %+v", in)
	}
	if ep, ok := in.Endpoint(providers.EndpointDirect); !ok || ep.User != "root" || ep.Port != 22 || ep.Host == "" {
		t.Errorf("endpoint = %+v %v", ep, ok)
	}

	// Start on a running instance must not reboot it.
	if err := p.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	if n := fake.CountCalls("POST", "/v2/instances/*/start"); n != 0 {
		t.Fatalf("start sent to a running instance (%d calls): Vultr would reboot it", n)
	}

	if err := p.Stop(ctx, id); err != nil {
		t.Fatal(err)
	}
	in = waitState(t, p, id, providers.StateStopped)
	if !in.Billable(p.Capabilities()) {
		t.Error("halted Vultr instance must still bill")
	}
	// Stop again: already halted, no second halt.
	if err := p.Stop(ctx, id); err != nil {
		t.Fatal(err)
	}
	if n := fake.CountCalls("POST", "/v2/instances/*/halt"); n != 1 {
		t.Fatalf("halt calls = %d, want 1", n)
	}

	if err := p.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	waitState(t, p, id, providers.StateRunning)
	if n := fake.CountCalls("POST", "/v2/instances/*/start"); n != 1 {
		t.Fatalf("start calls = %d, want 1", n)
	}

	if err := p.Terminate(ctx, id); err != nil {
		t.Fatal(err)
	}
	_, err = p.Get(ctx, id)
	if !errors.Is(err, providers.ErrNotFound) || providers.KindOf(err) != providers.KindNotFound {
		t.Fatalf("get after terminate: %v", err)
	}
	if err := p.Terminate(ctx, id); err != nil {
		t.Fatalf("terminating a gone instance must succeed: %v", err)
	}
	if err := p.Stop(ctx, id); !errors.Is(err, providers.ErrNotFound) {
		t.Fatalf("stop of a gone instance: %v", err)
	}
	if list, _ := p.List(ctx); len(list) != 0 {
		t.Fatalf("list after terminate = %+v", list)
	}
}

func TestPagination(t *testing.T) {
	p, fake, _ := newPair(t, vultrfake.Options{}, 3)
	var seeds []vultrfake.Instance
	for i := 0; i < 8; i++ {
		seeds = append(seeds, vultrfake.Instance{Label: fmt.Sprintf("n%d", i), Status: "active", Plan: "vc2-1c-1gb"})
	}
	fake.Seed(seeds...)
	list, err := p.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 8 {
		t.Fatalf("got %d instances, want 8", len(list))
	}
	seen := map[string]bool{}
	for i, in := range list {
		if seen[in.ID] {
			t.Fatalf("duplicate %s", in.ID)
		}
		seen[in.ID] = true
		if in.Name != fmt.Sprintf("n%d", i) {
			t.Errorf("order: %d = %q", i, in.Name)
		}
		if in.Price.Source != vultr.SourceMonthly || in.Price.PerHour != 5.0/730 {
			t.Errorf("price = %+v", in.Price)
		}
	}
	if n := fake.CountCalls("GET", "/v2/instances"); n != 3 {
		t.Errorf("list pages = %d, want 3 (3+3+2)", n)
	}
	var cursors int
	for _, c := range fake.Calls() {
		if c.Path == "/v2/instances" && strings.Contains(c.Query, "cursor=") {
			cursors++
		}
	}
	if cursors != 2 {
		t.Errorf("cursor-following calls = %d, want 2", cursors)
	}
}

func TestFaults(t *testing.T) {
	cases := []struct {
		name   string
		fault  vultrfake.Fault
		kind   providers.ErrorKind
		status int
	}{
		{"rate limit", vultrfake.Fault{Kind: vultrfake.RateLimit, Count: 1, RetryAfter: 7 * time.Second}, providers.KindRateLimited, 429},
		{"server error", vultrfake.Fault{Kind: vultrfake.ServerError, Count: 1}, providers.KindTransient, 500},
		{"malformed", vultrfake.Fault{Kind: vultrfake.Malformed, Count: 1}, providers.KindInvalid, 200},
		{"auth", vultrfake.Fault{Kind: vultrfake.AuthError, Count: 1}, providers.KindAuth, 401},
		{"timeout", vultrfake.Fault{Kind: vultrfake.Timeout, Count: 1}, providers.KindTransient, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, fake, _ := newPair(t, vultrfake.Options{}, 0)
			fake.Seed(vultrfake.Instance{Status: "active"})
			fake.Inject(c.fault)
			// Only the held request needs the client to give up soon;
			// the others get time for a busy machine.
			wait := 30 * time.Second
			if c.fault.Kind == vultrfake.Timeout {
				wait = 300 * time.Millisecond
			}
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			_, err := p.List(ctx)
			if err == nil {
				t.Fatal("expected an error")
			}
			if k := providers.KindOf(err); k != c.kind {
				t.Fatalf("kind = %q, want %q (%v)", k, c.kind, err)
			}
			var pe *providers.Error
			if !errors.As(err, &pe) || pe.Status != c.status || pe.Provider != "vultr" || pe.Op != "list" {
				t.Fatalf("error = %#v", pe)
			}
			if c.fault.Kind == vultrfake.RateLimit && pe.RetryAfter != 7*time.Second {
				t.Errorf("retry-after = %v", pe.RetryAfter)
			}
			if strings.Contains(err.Error(), token) {
				t.Fatal("error leaks the API key")
			}
			// The fault was consumed: the next call works.
			if _, err := p.List(context.Background()); err != nil {
				t.Fatalf("after fault: %v", err)
			}
		})
	}
}

func TestWrongKeyIsAuth(t *testing.T) {
	fake := vultrfake.New(vultrfake.Options{Token: "the-right-one"})
	defer fake.Close()
	p, err := vultr.New(vultr.Options{APIKey: "wrong", BaseURL: fake.URL()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.List(context.Background()); providers.KindOf(err) != providers.KindAuth {
		t.Fatalf("err = %v", err)
	}
}

func TestMutationFaultsAreNotRetriedByTheClient(t *testing.T) {
	p, fake, _ := newPair(t, vultrfake.Options{}, 0)
	id := fake.Seed(vultrfake.Instance{Status: "active"})[0].ID
	// 5xx after the halt took effect: the outcome is unknown to the caller.
	fake.Inject(vultrfake.Fault{Kind: vultrfake.ServerError, Count: 1, Method: "POST", Path: "/v2/instances/*/halt", AfterApply: true})
	err := p.Stop(context.Background(), id)
	if providers.KindOf(err) != providers.KindTransient {
		t.Fatalf("err = %v", err)
	}
	if n := fake.CountCalls("POST", "/v2/instances/*/halt"); n != 1 {
		t.Fatalf("halt sent %d times; the client must not retry a mutation itself", n)
	}
	// A retry by the caller reads the state first and does not halt again.
	testutil.Eventually(t, 5*time.Second, func() error {
		if in, _ := fake.Instance(id); in.PowerStatus != "stopped" {
			return fmt.Errorf("halt to land: power status %q", in.PowerStatus)
		}
		return nil
	})
	if err := p.Stop(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if n := fake.CountCalls("POST", "/v2/instances/*/halt"); n != 1 {
		t.Fatalf("halt sent %d times after retry", n)
	}
}

func TestTerminateFaults(t *testing.T) {
	p, fake, _ := newPair(t, vultrfake.Options{}, 0)
	id := fake.Seed(vultrfake.Instance{Status: "active"})[0].ID
	fake.Inject(vultrfake.Fault{Kind: vultrfake.RateLimit, Count: 1, Method: "DELETE"})
	if err := p.Terminate(context.Background(), id); providers.KindOf(err) != providers.KindRateLimited {
		t.Fatalf("err = %v", err)
	}
	if _, ok := fake.Instance(id); !ok {
		t.Fatal("429 must not delete")
	}
	if err := p.Terminate(context.Background(), id); err != nil {
		t.Fatal(err)
	}
}

func TestPlansUnavailableGivesUnknownPrice(t *testing.T) {
	p, fake, logs := newPair(t, vultrfake.Options{}, 0)
	fake.Seed(vultrfake.Instance{Status: "active"})
	fake.Inject(vultrfake.Fault{Kind: vultrfake.ServerError, Count: -1, Path: "/v2/plans"})
	list, err := p.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if list[0].Price.Known() {
		t.Fatalf("price must be unknown without plans, got %+v", list[0].Price)
	}
	if !strings.Contains(logs.String(), "plan catalogue unavailable") {
		t.Errorf("expected a warning, logs: %s", logs.String())
	}
}

func TestOddStates(t *testing.T) {
	p, fake, _ := newPair(t, vultrfake.Options{}, 0)
	id := fake.Seed(vultrfake.Instance{Status: "active"})[0].ID
	for _, c := range []struct {
		s, pw, sv string
		want      providers.State
	}{
		{"suspended", "stopped", "ok", providers.StateStopped},
		{"resizing", "running", "locked", providers.StateStarting},
		{"active", "running", "locked", providers.StateRunning},
		{"", "", "", providers.StateUnknown},
	} {
		fake.SetStatus(id, c.s, c.pw, c.sv)
		in, err := p.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if in.State != c.want {
			t.Errorf("%s/%s/%s -> %q, want %q", c.s, c.pw, c.sv, in.State, c.want)
		}
	}
}

func TestNewValidation(t *testing.T) {
	if _, err := vultr.New(vultr.Options{}); !errors.Is(err, providers.ErrNotConfigured) {
		t.Errorf("empty key: %v", err)
	}
	if _, err := vultr.New(vultr.Options{APIKey: "k", BaseURL: "::nope"}); err == nil {
		t.Error("bad URL accepted")
	}
	p, _ := vultr.New(vultr.Options{APIKey: "k", BaseURL: "http://127.0.0.1:1"})
	if err := p.Stop(context.Background(), "../x"); providers.KindOf(err) != providers.KindInvalid {
		t.Errorf("path id: %v", err)
	}
	// Connection refused before anything was sent: safe to retry.
	if _, err := p.Get(context.Background(), "abc"); providers.KindOf(err) != providers.KindNotSent {
		t.Errorf("dial error kind = %q (%v)", providers.KindOf(err), err)
	}
}

// Vultr tags are a list of strings: kept in the API's order, duplicates and
// '='-less tags included, on list and get alike.
func TestTagsStayAnOrderedList(t *testing.T) {
	p, fake, _ := newPair(t, vultrfake.Options{}, 0)
	tags := []string{"zone=b", "ringmesh", "zone=a", "ringmesh", "team=rl"}
	in := fake.Seed(vultrfake.Instance{Label: "tagged", Plan: "vc2-1c-1gb", Tags: tags})[0]
	got, err := p.Get(context.Background(), in.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Tags, tags) {
		t.Errorf("get: tags %q, want %q", got.Tags, tags)
	}
	list, err := p.List(context.Background())
	if err != nil || len(list) != 1 || !slices.Equal(list[0].Tags, tags) {
		t.Fatalf("list: %+v %v", list, err)
	}
}
