package bus

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
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
	nc, err := Connect(ConnConfig{URLs: c.URLs(), Name: "t"}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	start := time.Now()
	if err := EnsureStreams(ctx, js, Topology{Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	t.Logf("R3 streams created in %s", time.Since(start))
	c.Stop(1)
	pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
	defer pcancel()
	for {
		_, err := js.Publish(pctx, "mesh.v1.evt.n1.hello", []byte("{}"), jetstream.WithMsgID("x1"))
		if err == nil {
			break
		}
		if pctx.Err() != nil {
			t.Fatalf("publish with one server down: %v", err)
		}
		t.Logf("publish: %v", err)
		time.Sleep(time.Second)
	}
	if err := c.Restart(1); err != nil {
		t.Fatal(err)
	}
}
