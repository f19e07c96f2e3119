package main

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// The benchmark's simulator child is this test binary started again.
func TestMain(m *testing.M) {
	if os.Getenv(simEnv) == "1" {
		os.Exit(simMain(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// A tiny run of the whole benchmark, so that it cannot rot: 20 nodes for
// 3 s, then the mass failure with short thresholds, then the anchor. It
// checks that every figure was measured, never how fast.
func TestScaleSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts a coordinator and 20 simulated nodes for about 15 s; run without -short: go test ./bench/scale -run TestScaleSmoke")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var out bytes.Buffer
	res, err := Run(ctx, Options{Nodes: 20, Heartbeat: 500 * time.Millisecond, For: 3 * time.Second,
		SuspectAfter: 2 * time.Second, DeadAfter: 4 * time.Second, GPUs: 8, Log: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)}, &out)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case res.GPUNodes == 0 || res.HeartbeatBytes < 1000 || res.HelloBytes == 0:
		t.Errorf("messages not measured: %d GPU nodes, heartbeat %d B, hello %d B", res.GPUNodes, res.HeartbeatBytes, res.HelloBytes)
	case res.Applied <= 0 || res.CPU <= 0 || res.RSSMiB <= 0:
		t.Errorf("coordinator figures missing: applied %.1f/s, CPU %.3f, RSS %.1f MiB", res.Applied, res.CPU, res.RSSMiB)
	case res.StatusRows != 20 || res.StatusBytes == 0:
		t.Errorf("status first page: %d rows, %d bytes; want all 20 nodes", res.StatusRows, res.StatusBytes)
	case res.AllSuspect <= 0 || res.AllDead < res.AllSuspect:
		t.Errorf("mass failure: all suspect %s, all dead %s", res.AllSuspect, res.AllDead)
	case res.Raw <= 0:
		t.Errorf("no anchor: %.1f/s", res.Raw)
	}
}

func TestOptionsChecked(t *testing.T) {
	good := Options{Nodes: 10, Heartbeat: time.Second, For: time.Second, SuspectAfter: time.Second, DeadAfter: 2 * time.Second, GPUs: 8}
	if err := good.check(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []func(*Options){
		func(o *Options) { o.Nodes = 0 },
		func(o *Options) { o.Heartbeat = time.Millisecond },
		func(o *Options) { o.DeadAfter = o.SuspectAfter },
		func(o *Options) { o.GPUs = 9 },
	} {
		o := good
		bad(&o)
		if err := o.check(); err == nil {
			t.Errorf("accepted %+v", o)
		}
	}
}
