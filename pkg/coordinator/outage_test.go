package coordinator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ringmesh/ringmesh/internal/testutil"
	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/bus/busserver"
	"github.com/ringmesh/ringmesh/pkg/coordinator"
	"github.com/ringmesh/ringmesh/pkg/events"
	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/meshctl"
	"github.com/ringmesh/ringmesh/pkg/paths"
)

// Stop the server for a while; agents keep sampling and queueing; start it
// again: every non-heartbeat event published during the outage arrives
// exactly once.
func TestBusOutageLosesNothing(t *testing.T) {
	sb := testutil.NewSecureBus(t)
	srv, err := busserver.StartServer(busserver.ServerConfig{Name: "outage", Port: -1, StoreDir: t.TempDir(), Security: sb.Security(t)}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg := srv.Config()
	url := srv.ClientURL()
	sb.Register(t, url)
	defer func() { srv.Stop() }()
	h := startCoordinator(t, coordinator.Config{NATSURLs: []string{url},
		Thresholds: fastThresholds})
	a1, _ := startAgent(t, []string{url}, fakeNode{id: "vast-7", provider: "vast", instance: "7", root: t.TempDir()}, "")
	a2, _ := startAgent(t, []string{url}, fakeNode{id: "runpod-7", provider: "runpod", instance: "p7", root: t.TempDir()}, "")
	waitState(t, url, "vast-7", mesh.StateHealthy, 10*time.Second)
	waitState(t, url, "runpod-7", mesh.StateHealthy, 10*time.Second)

	srv.Stop()
	const perAgent = 20
	for i := 0; i < perAgent; i++ {
		for _, a := range []interface {
			Publish(string, any) error
		}{a1, a2} {
			if err := a.Publish(bus.KindSync, events.Sync{Phase: "result", Trigger: "continuous", BytesSent: int64(i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Agents keep sampling: the queued heartbeat is replaced, events stay.
	testutil.Eventually(t, 5*time.Second, func() error {
		if n, _ := a1.Outbox(); n < perAgent+1 {
			return fmt.Errorf("vast-7 outbox holds %d, want ≥ %d (events + latest heartbeat)", n, perAgent+1)
		}
		return nil
	})
	time.Sleep(1500 * time.Millisecond) // the outage itself: long enough for publishes to fail and retry

	srv, err = busserver.StartServer(cfg, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []interface{ Outbox() (int, int64) }{a1, a2} {
		a := a
		testutil.Eventually(t, 20*time.Second, func() error {
			if n, _ := a.Outbox(); n > 1 {
				return fmt.Errorf("outbox still holds %d", n)
			}
			return nil
		})
	}
	// Count sync events by ID in the stream: each exactly once.
	nc, err := natsConnect(t, url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	counts := map[string]int{}
	testutil.Eventually(t, 10*time.Second, func() error {
		counts = map[string]int{}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		cons, err := js.OrderedConsumer(ctx, bus.StreamEvents, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"mesh.v1.evt.*.sync"}})
		if err != nil {
			return err
		}
		for {
			m, err := cons.Next(jetstream.FetchMaxWait(300 * time.Millisecond))
			if err != nil {
				break
			}
			counts[m.Headers().Get(jetstream.MsgIDHeader)]++
		}
		if len(counts) != 2*perAgent {
			return fmt.Errorf("%d distinct sync events in the stream, want %d", len(counts), 2*perAgent)
		}
		return nil
	})
	for id, n := range counts {
		if n != 1 {
			t.Errorf("event %s stored %d times", id, n)
		}
	}
	// The coordinator applied the last one of each node and both are healthy again.
	testutil.Eventually(t, 10*time.Second, func() error {
		for _, node := range []string{"vast-7", "runpod-7"} {
			rec, ok := h.coord.Registry().Get(node)
			if !ok || rec.LastSync == nil || rec.LastSync.BytesSent != perAgent-1 {
				return fmt.Errorf("%s: last sync %+v", node, rec.LastSync)
			}
			if rec.State != mesh.StateHealthy {
				return fmt.Errorf("%s: %s", node, rec.State)
			}
		}
		return nil
	})
}

// An invalid message is terminated with its reason and listed in the
// dead-letter view; it never blocks the consumer.
func TestInvalidMessagesAreDeadLettered(t *testing.T) {
	h := startCoordinator(t, coordinator.Config{})
	nc, err := natsConnect(t, h.url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pub := func(subj string, data []byte) {
		t.Helper()
		if _, err := js.Publish(ctx, subj, data); err != nil {
			t.Fatal(err)
		}
	}
	pub("mesh.v1.evt.vast-9.heartbeat", []byte("{not json"))
	pub("mesh.v1.evt.vast-9.heartbeat", []byte(`{"schema":"mesh.v1.heartbeat","id":"vast-9:b:1","node":"vast-9","ts":"2026-11-29T14:00:00Z","body":{"status":"on fire","interval_seconds":5,"health":{}}}`))
	env, _ := bus.NewEnvelope("bye", bus.MessageID("vast-8", "b", 1), "vast-8", time.Now(), events.Bye{Reason: "spoofed"})
	spoof, _ := json.Marshal(env)
	pub("mesh.v1.evt.vast-9.bye", spoof) // envelope node differs from the subject's
	// A valid message after the bad ones is still applied.
	hello, _ := bus.NewEnvelope("hello", bus.MessageID("vast-10", "b", 1), "vast-10", time.Now(), events.Hello{AgentVersion: "x", Boot: "b", Hostname: "h", Provider: "vast", ProviderSource: "config",
		Paths: paths.For("vast", "", nil), HeartbeatIntervalSeconds: 5, GoVersion: "go1.26", OS: "linux", Arch: "amd64"})
	hb, _ := json.Marshal(hello)
	pub("mesh.v1.evt.vast-10.hello", hb)

	testutil.Eventually(t, 10*time.Second, func() error {
		rec, ok := h.coord.Registry().Get("vast-10")
		if !ok || rec.State != mesh.StateJoining {
			return fmt.Errorf("valid hello not applied: %+v", rec)
		}
		return nil
	})
	var dl api.DeadLetters
	testutil.Eventually(t, 10*time.Second, func() error {
		var err error
		dl, err = testutil.APIClient(t, h.url, nc).DeadLetters(ctx, 10)
		if err != nil {
			return err
		}
		if len(dl.Items) != 3 {
			return fmt.Errorf("%d dead letters, want 3", len(dl.Items))
		}
		return nil
	})
	wants := []string{"not JSON", "/body/status", "does not match subject node"}
	for i, w := range wants {
		if !strings.Contains(dl.Items[i].Reason, w) {
			t.Errorf("dead letter %d reason %q lacks %q", i, dl.Items[i].Reason, w)
		}
	}
	if _, ok := h.coord.Registry().Get("vast-9"); ok {
		t.Error("invalid messages must not create registry records")
	}
	var out bytes.Buffer
	root := meshctl.NewRoot(&out, &out)
	root.SetArgs(meshctlArgs(t, h.url, "events", "--invalid", "--nats-url", h.url))
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "mesh.v1.evt.vast-9.heartbeat") || !strings.Contains(out.String(), "not JSON") {
		t.Errorf("meshctl events --invalid:\n%s", out.String())
	}
}
