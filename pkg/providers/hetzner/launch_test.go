package hetzner_test

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/pkg/providers"
	"github.com/ringmesh/ringmesh/pkg/providers/hetzner"
	"github.com/ringmesh/ringmesh/pkg/providers/hetzner/hetznerfake"
)

func TestLaunchCreatesOneLabelledServer(t *testing.T) {
	e := newEnv(t, hetznerfake.Options{}, hetzner.Options{})
	p := providers.Resilient(e.p, providers.Policy{BaseDelay: time.Millisecond, CallTimeout: 5 * time.Second}, zerolog.Nop(), nil)
	l, ok := providers.LauncherOf(p)
	if !ok {
		t.Fatal("hetzner does not launch")
	}
	req := providers.LaunchRequest{RequestID: "hz-1", Node: "hetzner-cpu9",
		Offer: providers.Offer{Provider: "hetzner", ID: "cx22", Region: "fsn1"}, StartupScript: "#!/bin/sh\necho hi\n"}
	e.fake.Inject(hetznerfake.Fault{Kind: hetznerfake.ServerError, Status: 502, Method: "POST", Path: "/v1/servers", AfterApply: true})
	in, err := l.Launch(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if e.fake.Creates() != 1 || in.Labels[providers.LabelRequestID] != "hz-1" || in.Name != "hetzner-cpu9" {
		t.Fatalf("creates=%d instance=%+v", e.fake.Creates(), in)
	}
	if _, err := l.Launch(context.Background(), req); err != nil || e.fake.Creates() != 1 {
		t.Fatalf("retry: %v, creates=%d", err, e.fake.Creates())
	}
	other := req
	other.RequestID = "hz-2"
	if _, err := l.Launch(context.Background(), other); err == nil || !providers.LaunchNotApplied(err) || e.fake.Creates() != 1 {
		t.Fatalf("a second server of the same name: %v (creates %d)", err, e.fake.Creates())
	}
}
