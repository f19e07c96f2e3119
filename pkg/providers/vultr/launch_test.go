package vultr_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/pkg/providers"
	"github.com/ringmesh/ringmesh/pkg/providers/vultr/vultrfake"
)

func TestLaunchCreatesOneTaggedInstance(t *testing.T) {
	c, fake, _ := newPair(t, vultrfake.Options{}, 0)
	p := providers.Resilient(c, providers.Policy{BaseDelay: time.Millisecond, CallTimeout: 5 * time.Second}, zerolog.Nop(), nil)
	l, ok := providers.LauncherOf(p)
	if !ok {
		t.Fatal("vultr does not launch")
	}
	req := providers.LaunchRequest{RequestID: "vu-1", Node: "vultr-a40-9",
		Offer:         providers.Offer{Provider: "vultr", ID: "vcg-a40-24c-120g-48vram", Region: "ewr"},
		StartupScript: "#!/bin/sh\necho hi\n", Env: map[string]string{"RINGMESH_NATS_URL": "tls://203.0.113.1:4222"}}
	// Applied, answer lost: the resilient layer finds it by its tag.
	fake.Inject(vultrfake.Fault{Kind: vultrfake.ServerError, Status: 503, Method: "POST", Path: "/v2/instances", AfterApply: true})
	in, err := l.Launch(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if fake.Creates() != 1 || in.Labels[providers.LabelRequestID] != "vu-1" || in.Labels[providers.LabelNode] != "vultr-a40-9" {
		t.Fatalf("creates=%d instance=%+v", fake.Creates(), in)
	}
	got, _ := fake.Instance(in.ID)
	if got.Label != "vultr-a40-9" || got.OSID != 2284 {
		t.Errorf("fake instance %+v", got)
	}
	if _, err := l.Launch(context.Background(), req); err != nil || fake.Creates() != 1 {
		t.Fatalf("retry: %v, creates=%d", err, fake.Creates())
	}
	bad := req
	bad.RequestID, bad.Offer.Region = "vu-2", "ams"
	if _, err := l.Launch(context.Background(), bad); err == nil || !providers.LaunchNotApplied(err) || fake.Creates() != 1 {
		t.Fatalf("plan not in region: %v (creates %d)", err, fake.Creates())
	}
	if s := providers.ScriptWithEnv(req.Env, req.StartupScript); !strings.HasPrefix(s, "#!/bin/sh\nexport RINGMESH_NATS_URL='tls://203.0.113.1:4222'\n") {
		t.Errorf("user_data prelude: %q", s)
	}
}
