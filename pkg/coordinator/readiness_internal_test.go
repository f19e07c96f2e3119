package coordinator

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/bus/busserver"
)

// readiness: a running, connected coordinator is ready only while its
// quorum probe succeeds; the probe runs at most once per quorumCacheFor.
func TestReadinessNeedsQuorum(t *testing.T) {
	srv, err := busserver.StartServer(busserver.ServerConfig{Name: "q", Port: -1, StoreDir: t.TempDir()}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c, err := New(Config{Name: "hetzner-cpu1"}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if why := c.readiness(ctx); !strings.Contains(why, "consumer not running") {
		t.Fatalf("before start: %q", why)
	}
	c.nc = nc
	c.ready.Store(true)
	var calls atomic.Int32
	var fail atomic.Bool
	c.quorumSt.probe = func(context.Context) error {
		calls.Add(1)
		if fail.Load() {
			return errors.New("JetStream account info: context deadline exceeded")
		}
		return nil
	}
	if why := c.readiness(ctx); why != "" {
		t.Fatalf("with quorum: %q", why)
	}
	fail.Store(true)
	c.quorumSt.at = c.quorumSt.at.Add(-quorumCacheFor) // expire the cached answer
	why := c.readiness(ctx)
	if !strings.Contains(why, "no quorum") || !strings.Contains(why, "deadline exceeded") {
		t.Fatalf("without quorum: %q", why)
	}
	for range 10 {
		c.readiness(ctx)
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("probe ran %d times, want 2 (cached within %s)", n, quorumCacheFor)
	}
}

// The real probe on a standalone server: quorum while the streams answer,
// none once the server is gone.
func TestProbeQuorumStandalone(t *testing.T) {
	srv, err := busserver.StartServer(busserver.ServerConfig{Name: "q", Port: -1, StoreDir: t.TempDir()}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c, err := New(Config{Name: "hetzner-cpu1"}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.probeQuorum(ctx); err == nil {
		t.Fatal("no JetStream yet: the probe must fail")
	}
	if c.js, err = jetstream.New(nc); err != nil {
		t.Fatal(err)
	}
	if err := c.probeQuorum(ctx); err == nil || !strings.Contains(err.Error(), "MESH_EVT") {
		t.Fatalf("no MESH_EVT stream: %v", err)
	}
	if err := bus.EnsureStreams(ctx, c.js, bus.Topology{Replicas: 1}); err != nil {
		t.Fatal(err)
	}
	if err := c.probeQuorum(ctx); err != nil {
		t.Fatalf("standalone server with streams: %v", err)
	}
	srv.Stop()
	pctx, pcancel := context.WithTimeout(ctx, time.Second)
	defer pcancel()
	if err := c.probeQuorum(pctx); err == nil {
		t.Fatal("server gone: the probe must fail")
	}
}
