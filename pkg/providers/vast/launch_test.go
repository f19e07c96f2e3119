package vast

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/pkg/providers"
	"github.com/ringmesh/ringmesh/pkg/providers/vast/vastfake"
)

func launchFixture(t *testing.T) (*vastfake.Server, providers.Provider, providers.LaunchRequest) {
	t.Helper()
	f := newFake(t, vastfake.Options{})
	price := 0.35
	f.AddOffer(vastfake.Offer{ID: 7001, NumGPUs: 1, GPUName: "RTX 4090", DphTotal: &price, Rentable: true, Geolocation: "Texas, US", Verification: "verified", Verified: true})
	c := newClient(t, f, nil)
	pol := providers.Policy{BaseDelay: time.Millisecond, MaxDelay: time.Millisecond, CallTimeout: 2 * time.Second}
	p := providers.Resilient(c, pol, zerolog.Nop(), nil)
	req := providers.LaunchRequest{RequestID: "launch-test-1", Node: "vast-new-1",
		Offer:         providers.Offer{Provider: Name, ID: "7001", GPUModel: "RTX 4090", GPUCount: providers.Ptr(1), Price: providers.Price{PerHour: price, Currency: "USD", Source: "vast:dph_total"}},
		StartupScript: "#!/bin/sh\necho hello\n", Env: map[string]string{"RINGMESH_COORDINATOR": "nats://203.0.113.1:4222"}}
	return f, p, req
}

func TestLaunchRentsTheAskWithMarkers(t *testing.T) {
	f, p, req := launchFixture(t)
	l, ok := providers.LauncherOf(p)
	if !ok {
		t.Fatal("the resilient vast client does not launch")
	}
	in, err := l.Launch(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if f.Creates() != 1 || in.ID == "" || in.Labels[providers.LabelRequestID] != req.RequestID {
		t.Fatalf("creates=%d instance=%+v", f.Creates(), in)
	}
	id := mustInt(t, in.ID)
	got, _ := f.Instance(id)
	if got.Label == nil || *got.Label != "vast-new-1" || got.Onstart != req.StartupScript {
		t.Errorf("fake instance label=%v onstart=%q", got.Label, got.Onstart)
	}
	listed, found, err := providers.FindByRequestID(context.Background(), p, req.RequestID)
	if err != nil || !found || listed.ID != in.ID || listed.Labels[providers.LabelNode] != "vast-new-1" {
		t.Fatalf("FindByRequestID = %+v, %v, %v", listed, found, err)
	}
	// The same request again returns the same instance.
	again, err := l.Launch(context.Background(), req)
	if err != nil || again.ID != in.ID || f.Creates() != 1 {
		t.Fatalf("second launch: %+v, %v, creates=%d", again, err, f.Creates())
	}
}

func TestLaunchAnswerLostCreatesOnce(t *testing.T) {
	f, p, req := launchFixture(t)
	// The create is applied, its answer is a 504 after a while: outcome unknown.
	f.Inject(vastfake.Fault{Kind: vastfake.ServerError, Status: 504, Method: "PUT", Path: "/api/v0/asks/", AfterApply: true})
	l, _ := providers.LauncherOf(p)
	in, err := l.Launch(context.Background(), req)
	if err != nil {
		t.Fatalf("launch whose answer was lost: %v (the instance exists and carries the request ID)", err)
	}
	if f.Creates() != 1 || f.CountCalls("PUT", "/api/v0/asks/*/") != 1 {
		t.Fatalf("creates=%d PUT calls=%d, want 1 and 1", f.Creates(), f.CountCalls("PUT", "/api/v0/asks/*/"))
	}
	again, err := l.Launch(context.Background(), req)
	if err != nil || again.ID != in.ID || f.Creates() != 1 {
		t.Fatalf("retried launch: %+v, %v, creates=%d", again, err, f.Creates())
	}
}

func TestLaunchRateLimitedIsRetriedOnce(t *testing.T) {
	f, p, req := launchFixture(t)
	f.Inject(vastfake.Fault{Kind: vastfake.RateLimit, Method: "PUT", Path: "/api/v0/asks/"})
	l, _ := providers.LauncherOf(p)
	if _, err := l.Launch(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if f.Creates() != 1 || f.CountCalls("PUT", "/api/v0/asks/*/") != 2 {
		t.Fatalf("creates=%d PUT calls=%d, want 1 and 2", f.Creates(), f.CountCalls("PUT", "/api/v0/asks/*/"))
	}
}

func TestLaunchRefusesUnsafeEnvAndGoneAsk(t *testing.T) {
	f, p, req := launchFixture(t)
	l, _ := providers.LauncherOf(p)
	bad := req
	bad.Env = map[string]string{"RINGMESH_X": "a b"}
	if _, err := l.Launch(context.Background(), bad); err == nil || !strings.Contains(err.Error(), "RINGMESH_X") {
		t.Fatalf("env with a space: %v", err)
	}
	gone := req
	gone.Offer.ID = "999"
	_, err := l.Launch(context.Background(), gone)
	if err == nil || !providers.LaunchNotApplied(err) {
		t.Fatalf("unknown ask: %v (want a not-applied error)", err)
	}
	if f.Creates() != 0 {
		t.Fatalf("creates=%d", f.Creates())
	}
}

func mustInt(t *testing.T, s string) int64 {
	t.Helper()
	var n int64
	for _, r := range s {
		if r < '0' || r > '9' {
			t.Fatalf("id %q is not numeric", s)
		}
		n = n*10 + int64(r-'0')
	}
	return n
}
