package runpod

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/pkg/providers"
	"github.com/ringmesh/ringmesh/pkg/providers/runpod/runpodfake"
)

func TestLaunchCreatesOnePodWithMarkers(t *testing.T) {
	f := runpodfake.New(runpodfake.Options{})
	t.Cleanup(f.Close)
	price := 0.34
	f.AddGPUType(runpodfake.GPUType{ID: "NVIDIA GeForce RTX 4090", DisplayName: "RTX 4090", CommunityCloud: true, CommunityPrice: &price})
	c, err := New(Options{BaseURL: f.URL(), APIKey: f.APIKey(), Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	p := providers.Resilient(c, providers.Policy{BaseDelay: time.Millisecond, CallTimeout: 2 * time.Second}, zerolog.Nop(), nil)
	l, ok := providers.LauncherOf(p)
	if !ok {
		t.Fatal("runpod does not launch")
	}
	req := providers.LaunchRequest{RequestID: "rp-1", Node: "runpod-4090-9",
		Offer:         providers.Offer{Provider: Name, ID: "NVIDIA GeForce RTX 4090", Region: "COMMUNITY", GPUCount: providers.Ptr(1)},
		StartupScript: "echo hi"}
	// The create is applied but its answer is lost (502).
	f.Inject(runpodfake.Fault{Kind: runpodfake.ServerError, Status: 502, Method: "POST", Path: "/v2/pods", AfterApply: true})
	in, err := l.Launch(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if f.Creates() != 1 || in.Labels[providers.LabelRequestID] != "rp-1" || in.Labels[providers.LabelNode] != "runpod-4090-9" {
		t.Fatalf("creates=%d labels=%v", f.Creates(), in.Labels)
	}
	pod, _ := f.Pod(in.ID)
	if pod.Cloud != "COMMUNITY" || len(pod.Args) != 3 || pod.Args[2] != "echo hi" {
		t.Errorf("pod cloud=%q args=%q", pod.Cloud, pod.Args)
	}
	if _, err := l.Launch(context.Background(), req); err != nil || f.Creates() != 1 {
		t.Fatalf("retry: %v, creates=%d", err, f.Creates())
	}
}
