package busserver

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/rs/zerolog"
)

// A 3-server cluster on loopback takes the R3 streams and buckets, and keeps
// serving with one server down.
func TestClusterR3StreamsSurviveOneServer(t *testing.T) {
	log := zerolog.Nop()
	if os.Getenv("RINGMESH_TEST_LOG") != "" {
		log = zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr})
	}
	c, err := StartCluster(3, "tc", t.TempDir(), true, log)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := c.WaitReady(ctx, 3); err != nil {
		t.Fatal(err)
	}
	nc, err := bus.Connect(bus.ConnConfig{URLs: c.URLs(), Name: "t"}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	start := time.Now()
	if err := bus.EnsureStreams(ctx, js, bus.Topology{Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	t.Logf("R3 streams created in %s", time.Since(start))
	c.Stop(1)
	// Publish until one attempt succeeds. Each attempt gets its own short
	// timeout: an attempt that hangs (its request went to the stopped
	// server, or the stream is electing a new leader) must not eat the whole
	// budget, so the next attempt goes out on the surviving servers.
	budget := time.Now().Add(2 * time.Minute)
	for attempt := 1; ; attempt++ {
		actx, acancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := js.Publish(actx, "mesh.v1.evt.n1.hello", []byte("{}"), jetstream.WithMsgID("x1"))
		acancel()
		if err == nil {
			t.Logf("published with one server down on attempt %d", attempt)
			break
		}
		if time.Now().After(budget) {
			t.Fatalf("publish with one server down: %d attempts in 2m, last: %v", attempt, err)
		}
		t.Logf("publish attempt %d: %v", attempt, err)
		time.Sleep(500 * time.Millisecond)
	}
	if err := c.Restart(1); err != nil {
		t.Fatal(err)
	}
}
