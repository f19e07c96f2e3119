package hetzner_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/internal/testutil"
	"github.com/ringmesh/ringmesh/pkg/providers"
	"github.com/ringmesh/ringmesh/pkg/providers/hetzner"
	"github.com/ringmesh/ringmesh/pkg/providers/hetzner/hetznerfake"
)

const token = "test-hcloud-token-SECRET"

type env struct {
	p    *hetzner.Provider
	fake *hetznerfake.Server
	logs *bytes.Buffer
}

func newEnv(t *testing.T, fo hetznerfake.Options, po hetzner.Options) env {
	t.Helper()
	if fo.Token == "" {
		fo.Token = token
	}
	fake := hetznerfake.New(fo)
	t.Cleanup(fake.Close)
	var logs bytes.Buffer
	lg := zerolog.New(&logs)
	po.Token = token
	po.Endpoint = fake.URL()
	po.Logger = &lg
	if po.PollInterval == 0 {
		po.PollInterval = 5 * time.Millisecond
	}
	if po.HTTPClient == nil {
		po.HTTPClient = &http.Client{Timeout: 5 * time.Second}
	}
	p, err := hetzner.New(po)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if strings.Contains(logs.String(), token) {
			t.Errorf("token leaked into logs")
		}
	})
	return env{p: p, fake: fake, logs: &logs}
}

func id(n int64) string { return strconv.FormatInt(n, 10) }

func TestLifecycle(t *testing.T) {
	e := newEnv(t, hetznerfake.Options{}, hetzner.Options{})
	ctx := context.Background()
	sid := id(e.fake.Seed(hetznerfake.SeedServer{Name: "hetzner-cpu9", ServerType: "ccx33", Location: "nbg1"})[0])

	list, err := e.p.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != sid || list[0].State != providers.StateRunning {
		t.Fatalf("list = %+v", list)
	}
	in := list[0]
	if in.Price.Currency != "EUR" || in.Price.PerHour != 0.08925 || in.Price.Source != hetzner.PriceSource {
		t.Errorf("price = %+v", in.Price)
	}
	if in.CPUs != 8 || in.MemoryGiB != 32 || in.GPUCount != 0 || in.Region != "nbg1" {
		t.Errorf("resources = %+v", in)
	}

	if err := e.p.Stop(ctx, sid); err != nil {
		t.Fatal(err)
	}
	got, err := e.p.Get(ctx, sid)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != providers.StateStopped {
		t.Fatalf("after stop: %q", got.State)
	}
	if !got.Billable(e.p.Capabilities()) {
		t.Error("an off Hetzner server bills")
	}
	if n := e.fake.CountCalls("POST", "/v1/servers/*/actions/poweroff"); n != 0 {
		t.Errorf("graceful shutdown worked, yet %d hard poweroffs were sent", n)
	}
	// Stop again: already off, no action.
	if err := e.p.Stop(ctx, sid); err != nil {
		t.Fatal(err)
	}
	if n := e.fake.CountCalls("POST", "/v1/servers/*/actions/shutdown"); n != 1 {
		t.Errorf("shutdown calls = %d, want 1", n)
	}

	if err := e.p.Start(ctx, sid); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.p.Get(ctx, sid); got.State != providers.StateRunning {
		t.Fatalf("after start: %q", got.State)
	}
	if err := e.p.Start(ctx, sid); err != nil {
		t.Fatal(err)
	}
	if n := e.fake.CountCalls("POST", "/v1/servers/*/actions/poweron"); n != 1 {
		t.Errorf("poweron calls = %d, want 1", n)
	}

	if err := e.p.Terminate(ctx, sid); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, func() error {
		if _, err := e.p.Get(ctx, sid); !errors.Is(err, providers.ErrNotFound) {
			return fmt.Errorf("server gone: get says %v", err)
		}
		return nil
	})
	if err := e.p.Terminate(ctx, sid); err != nil {
		t.Fatalf("second terminate: %v", err)
	}
	if n := e.fake.CountCalls("DELETE", "/v1/servers/"); n != 1 {
		t.Errorf("DELETE calls = %d, want 1", n)
	}
	if err := e.p.Stop(ctx, sid); providers.KindOf(err) != providers.KindNotFound {
		t.Errorf("stop of a gone server: %v", err)
	}
}

func TestStopFallsBackToPoweroff(t *testing.T) {
	e := newEnv(t, hetznerfake.Options{}, hetzner.Options{ShutdownTimeout: 50 * time.Millisecond})
	sid := id(e.fake.Seed(hetznerfake.SeedServer{IgnoreACPI: true})[0])
	if err := e.p.Stop(context.Background(), sid); err != nil {
		t.Fatal(err)
	}
	if st, _ := e.fake.Status(mustInt(sid)); st != "off" {
		t.Fatalf("status = %q, want off", st)
	}
	if n := e.fake.CountCalls("POST", "/v1/servers/*/actions/poweroff"); n != 1 {
		t.Errorf("poweroff calls = %d, want 1", n)
	}
	if !strings.Contains(e.logs.String(), "forcing poweroff") {
		t.Errorf("fallback not logged: %s", e.logs.String())
	}
}

func TestStopHonoursContextDeadlineForFallback(t *testing.T) {
	// ShutdownTimeout is long, but the context allows 4 s: the fallback must
	// still happen within it (half the remaining time is spent waiting; the
	// other half leaves a busy machine room for the calls).
	e := newEnv(t, hetznerfake.Options{}, hetzner.Options{ShutdownTimeout: time.Hour})
	sid := id(e.fake.Seed(hetznerfake.SeedServer{IgnoreACPI: true})[0])
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	if err := e.p.Stop(ctx, sid); err != nil {
		t.Fatal(err)
	}
	if st, _ := e.fake.Status(mustInt(sid)); st != "off" {
		t.Fatalf("status = %q", st)
	}
}

func mustInt(s string) int64 {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		panic(err)
	}
	return n
}

func TestVoterProtection(t *testing.T) {
	guard := hetzner.NewVoterGuard("hetzner-cpu1")
	e := newEnv(t, hetznerfake.Options{}, hetzner.Options{Guard: guard})
	ids := e.fake.Seed(hetznerfake.SeedServer{Name: "hetzner-cpu1"}, hetznerfake.SeedServer{Name: "hetzner-cpu2"})
	voter, other := id(ids[0]), id(ids[1])
	ctx := context.Background()

	for _, op := range []struct {
		name string
		do   func(context.Context, string) error
	}{{"stop", e.p.Stop}, {"terminate", e.p.Terminate}} {
		err := op.do(ctx, voter)
		if !errors.Is(err, hetzner.ErrProtected) {
			t.Fatalf("%s of a voter: %v", op.name, err)
		}
		if providers.KindOf(err) != providers.KindInvalid || !strings.Contains(err.Error(), "hetzner-cpu1") ||
			!strings.Contains(err.Error(), "WithOverride") {
			t.Errorf("%s refusal not clear: %v", op.name, err)
		}
	}
	if n := e.fake.CountCalls("POST", "") + e.fake.CountCalls("DELETE", ""); n != 0 {
		t.Fatalf("%d mutating calls reached the API for a protected voter", n)
	}
	// Empty reason does not override.
	if err := e.p.Stop(hetzner.WithOverride(ctx, "  "), voter); !errors.Is(err, hetzner.ErrProtected) {
		t.Fatalf("blank override accepted: %v", err)
	}
	// Protection by ID too, updated at run time by the coordinator.
	guard.Set([]string{"hetzner-cpu1", other})
	if err := e.p.Terminate(ctx, other); !errors.Is(err, hetzner.ErrProtected) {
		t.Fatalf("ID protection: %v", err)
	}
	// Start is never refused.
	if err := e.p.Start(ctx, voter); err != nil {
		t.Fatal(err)
	}
	// Override with a reason works and is logged.
	octx := hetzner.WithOverride(ctx, "operator replaces voter 1")
	if err := e.p.Stop(octx, voter); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(e.logs.String(), "operator replaces voter 1") {
		t.Errorf("override reason not logged: %s", e.logs.String())
	}
	if err := e.p.Terminate(octx, voter); err != nil {
		t.Fatal(err)
	}
	guard.Set(nil)
	if err := e.p.Terminate(ctx, other); err != nil {
		t.Fatalf("unprotected terminate: %v", err)
	}
}

func TestPagination(t *testing.T) {
	e := newEnv(t, hetznerfake.Options{}, hetzner.Options{})
	var seeds []hetznerfake.SeedServer
	for i := 0; i < 120; i++ {
		seeds = append(seeds, hetznerfake.SeedServer{Name: fmt.Sprintf("s%03d", i)})
	}
	e.fake.Seed(seeds...)
	list, err := e.p.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 120 {
		t.Fatalf("got %d, want 120", len(list))
	}
	seen := map[string]bool{}
	for _, in := range list {
		if seen[in.ID] {
			t.Fatalf("duplicate %s", in.ID)
		}
		seen[in.ID] = true
	}
	if n := e.fake.CountCalls("GET", "/v1/servers"); n != 3 {
		t.Errorf("pages = %d, want 3 (50+50+20)", n)
	}
}

func TestFaults(t *testing.T) {
	cases := []struct {
		name  string
		fault hetznerfake.Fault
		kind  providers.ErrorKind
	}{
		{"rate limit", hetznerfake.Fault{Kind: hetznerfake.RateLimit, Count: 1}, providers.KindRateLimited},
		{"server error", hetznerfake.Fault{Kind: hetznerfake.ServerError, Count: 1}, providers.KindTransient},
		{"malformed", hetznerfake.Fault{Kind: hetznerfake.Malformed, Count: 1}, providers.KindInvalid},
		{"auth", hetznerfake.Fault{Kind: hetznerfake.AuthError, Count: 1}, providers.KindAuth},
		{"timeout", hetznerfake.Fault{Kind: hetznerfake.Timeout, Count: 1}, providers.KindTransient},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, hetznerfake.Options{}, hetzner.Options{})
			e.fake.Seed(hetznerfake.SeedServer{})
			e.fake.Inject(c.fault)
			// Only the held request needs the client to give up soon;
			// the others get time for a busy machine.
			wait := 30 * time.Second
			if c.fault.Kind == hetznerfake.Timeout {
				wait = 300 * time.Millisecond
			}
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			_, err := e.p.List(ctx)
			if k := providers.KindOf(err); k != c.kind {
				t.Fatalf("kind = %q, want %q (%v)", k, c.kind, err)
			}
			if strings.Contains(err.Error(), token) {
				t.Fatal("error leaks the token")
			}
			if c.fault.Kind == hetznerfake.RateLimit {
				var pe *providers.Error
				errors.As(err, &pe)
				if pe.Status != 429 || pe.Code != "rate_limit_exceeded" {
					t.Errorf("429 error = %+v", pe)
				}
			}
			if _, err := e.p.List(context.Background()); err != nil {
				t.Fatalf("after fault: %v", err)
			}
		})
	}
}

func TestMutationFaultNotRetriedByClient(t *testing.T) {
	e := newEnv(t, hetznerfake.Options{}, hetzner.Options{})
	sid := id(e.fake.Seed(hetznerfake.SeedServer{Status: "off"})[0])
	e.fake.Inject(hetznerfake.Fault{Kind: hetznerfake.ServerError, Count: 1, Method: "POST", Path: "/v1/servers/*/actions/poweron", AfterApply: true})
	err := e.p.Start(context.Background(), sid)
	if providers.KindOf(err) != providers.KindTransient {
		t.Fatalf("err = %v", err)
	}
	if n := e.fake.CountCalls("POST", "/v1/servers/*/actions/poweron"); n != 1 {
		t.Fatalf("poweron sent %d times", n)
	}
	// The caller retries: the server is starting/running, so nothing is sent again.
	if err := e.p.Start(context.Background(), sid); err != nil {
		t.Fatal(err)
	}
	if n := e.fake.CountCalls("POST", "/v1/servers/*/actions/poweron"); n != 1 {
		t.Fatalf("poweron sent %d times after retry", n)
	}
}

func TestLockedIsConflictAndDeleteProtection(t *testing.T) {
	e := newEnv(t, hetznerfake.Options{ActionDelay: time.Hour}, hetzner.Options{ActionTimeout: 50 * time.Millisecond})
	ids := e.fake.Seed(hetznerfake.SeedServer{Status: "off"}, hetznerfake.SeedServer{ProtectDelete: true})
	// Poweron's action never finishes within ActionTimeout.
	if err := e.p.Start(context.Background(), id(ids[0])); providers.KindOf(err) != providers.KindTransient {
		t.Fatalf("action wait timeout: %v", err)
	}
	// The server is locked by the running action: a delete is a conflict.
	err := e.p.Terminate(context.Background(), id(ids[0]))
	if providers.KindOf(err) != providers.KindConflict {
		t.Fatalf("locked: %v", err)
	}
	err = e.p.Terminate(context.Background(), id(ids[1]))
	var pe *providers.Error
	if !errors.As(err, &pe) || pe.Kind != providers.KindInvalid || pe.Code != "protected" {
		t.Fatalf("delete protection: %v", err)
	}
}

func TestInvalidIDAndConfig(t *testing.T) {
	if _, err := hetzner.New(hetzner.Options{}); !errors.Is(err, providers.ErrNotConfigured) {
		t.Errorf("empty token: %v", err)
	}
	e := newEnv(t, hetznerfake.Options{}, hetzner.Options{})
	for _, bad := range []string{"", "abc", "-1", "0", "1/2"} {
		if _, err := e.p.Get(context.Background(), bad); providers.KindOf(err) != providers.KindInvalid {
			t.Errorf("Get(%q) = %v", bad, err)
		}
	}
	if _, err := e.p.Get(context.Background(), "999"); !errors.Is(err, providers.ErrNotFound) {
		t.Errorf("missing server: %v", err)
	}
	p, _ := hetzner.New(hetzner.Options{Token: "t", Endpoint: "http://127.0.0.1:1/v1"})
	if _, err := p.List(context.Background()); providers.KindOf(err) != providers.KindNotSent {
		t.Errorf("dial failure kind = %q (%v)", providers.KindOf(err), err)
	}
}

func TestOddStates(t *testing.T) {
	e := newEnv(t, hetznerfake.Options{}, hetzner.Options{})
	n := e.fake.Seed(hetznerfake.SeedServer{IPv4: "none", IPv6: "none", Location: "ash"})[0]
	for st, want := range map[string]providers.State{
		"initializing": providers.StatePending, "rebuilding": providers.StateStarting,
		"unknown": providers.StateUnknown, "deleting": providers.StateTerminated,
	} {
		e.fake.SetStatus(n, st)
		in, err := e.p.Get(context.Background(), id(n))
		if err != nil {
			t.Fatal(err)
		}
		if in.State != want || in.RawState != st {
			t.Errorf("%s -> %q", st, in.State)
		}
		if in.PublicIP != "" || len(in.SSH) != 0 {
			t.Errorf("no ipv4 -> endpoint %+v", in.SSH)
		}
		if in.Price.Known() {
			t.Errorf("location without price -> %+v", in.Price)
		}
	}
	// Terminate of a server already deleting sends nothing.
	e.fake.SetStatus(n, "deleting")
	if err := e.p.Terminate(context.Background(), id(n)); err != nil {
		t.Fatal(err)
	}
	if c := e.fake.CountCalls("DELETE", ""); c != 0 {
		t.Errorf("DELETE sent for a deleting server")
	}
}

// An IPv6-only server (public_net.ipv4 null) is reached on the ::1 address
// of its /64, as Hetzner configures it.
func TestIPv6OnlyServerGetsIPv6Endpoint(t *testing.T) {
	e := newEnv(t, hetznerfake.Options{}, hetzner.Options{})
	n := e.fake.Seed(hetznerfake.SeedServer{Name: "v6-only", IPv4: "none", IPv6: "2a01:4f8:c17:1234::/64"})[0]
	in, err := e.p.Get(context.Background(), id(n))
	if err != nil {
		t.Fatal(err)
	}
	want := "2a01:4f8:c17:1234::1"
	ep, ok := in.Endpoint(providers.EndpointDirect)
	if in.PublicIP != want || !ok || ep.Host != want || ep.Port != 22 || ep.User != "root" {
		t.Fatalf("IPv6-only server: ip %q endpoints %+v, want root@[%s]:22", in.PublicIP, in.SSH, want)
	}
	if ep.String() != "root@["+want+"]:22" {
		t.Errorf("endpoint renders as %q", ep.String())
	}
	list, err := e.p.List(context.Background())
	if err != nil || len(list) != 1 || list[0].PublicIP != want {
		t.Fatalf("list: %+v %v", list, err)
	}
}

// A server whose Hetzner labels mark it a voter, or with Hetzner's own
// delete/rebuild protection, is neither stopped nor terminated without an
// explicit override, and no mutating call reaches the API.
func TestLabelledVoterAndHetznerProtectionRefused(t *testing.T) {
	e := newEnv(t, hetznerfake.Options{}, hetzner.Options{})
	ids := e.fake.Seed(
		hetznerfake.SeedServer{Name: "cpu-a", Labels: map[string]string{hetzner.VoterLabel: "voter"}},
		hetznerfake.SeedServer{Name: "cpu-b", Labels: map[string]string{"role": " Voter "}},
		hetznerfake.SeedServer{Name: "cpu-c", ProtectDelete: true},
		hetznerfake.SeedServer{Name: "cpu-d", Labels: map[string]string{"role": "worker"}},
	)
	ctx := context.Background()
	for i, n := range ids[:3] {
		for _, op := range []struct {
			name string
			do   func(context.Context, string) error
		}{{"stop", e.p.Stop}, {"terminate", e.p.Terminate}} {
			err := op.do(ctx, id(n))
			if !errors.Is(err, hetzner.ErrProtected) || providers.KindOf(err) != providers.KindInvalid || !strings.Contains(err.Error(), "WithOverride") {
				t.Errorf("server %d %s: %v", i, op.name, err)
			}
		}
	}
	if c := e.fake.CountCalls("POST", "") + e.fake.CountCalls("DELETE", ""); c != 0 {
		t.Fatalf("%d mutating calls reached the API for protected servers", c)
	}
	// With the override: the labelled voter is stopped; Hetzner itself
	// still refuses to delete the delete-protected one.
	octx := hetzner.WithOverride(ctx, "operator replaces cpu-a")
	if err := e.p.Stop(octx, id(ids[0])); err != nil {
		t.Fatalf("override stop: %v", err)
	}
	var pe *providers.Error
	if err := e.p.Terminate(octx, id(ids[2])); !errors.As(err, &pe) || pe.Code != "protected" || pe.Status != http.StatusForbidden {
		t.Fatalf("override terminate of a delete-protected server: %v", err)
	}
	// An unrelated role label protects nothing.
	if err := e.p.Stop(ctx, id(ids[3])); err != nil {
		t.Fatalf("role=worker: %v", err)
	}
}
