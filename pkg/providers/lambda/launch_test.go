package lambda

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/pkg/providers"
	"github.com/ringmesh/ringmesh/pkg/providers/lambda/lambdafake"
)

func TestLaunchTagsTheInstanceAndNeedsAKey(t *testing.T) {
	f := lambdafake.New(lambdafake.Options{})
	t.Cleanup(f.Close)
	f.AddInstanceType(lambdafake.TypeOffer{InstanceType: lambdafake.InstanceType{Name: "gpu_1x_gh200", GPUDescription: "GH200 (96 GB)", PriceCentsPerHour: 149,
		Specs: lambdafake.Specs{GPUs: 1}}, Regions: []lambdafake.Region{{Name: "us-east-3"}}})
	c, err := New(Options{BaseURL: f.URL(), APIKey: f.APIKey(), Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	p := providers.Resilient(c, providers.Policy{BaseDelay: time.Millisecond, CallTimeout: 5 * time.Second}, zerolog.Nop(), nil)
	l, _ := providers.LauncherOf(p)
	req := providers.LaunchRequest{RequestID: "lam-1", Node: "lambda-gh200-9",
		Offer: providers.Offer{Provider: Name, ID: "gpu_1x_gh200", Region: "us-east-3"}, StartupScript: "#!/bin/sh\necho hi\n"}
	if _, err := l.Launch(context.Background(), req); err == nil || !strings.Contains(err.Error(), "--ssh-key") || f.Creates() != 0 {
		t.Fatalf("launch without a key: %v (creates %d)", err, f.Creates())
	}
	req.SSHKeyName = "fleet"
	in, err := l.Launch(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := providers.FindByRequestID(context.Background(), p, "lam-1")
	if err != nil || got.ID != in.ID || got.Labels[providers.LabelNode] != "lambda-gh200-9" || f.LastUserData() != req.StartupScript {
		t.Fatalf("listed %+v, %v; user_data %q", got, err, f.LastUserData())
	}
	if _, err := l.Launch(context.Background(), req); err != nil || f.Creates() != 1 {
		t.Fatalf("retry: %v, creates=%d", err, f.Creates())
	}
}
