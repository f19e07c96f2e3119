package bus_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/internal/testutil"
	"github.com/ringmesh/ringmesh/pkg/auth"
	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/bus/busserver"
)

// MESH_EVT on the authenticated server: its limits come from the fleet size
// and the heartbeat size, and a node's heartbeats are trimmed to the
// per-subject history while its hello and health transition stay.
func TestEventStreamLimitsTrimHeartbeatsKeepTransitions(t *testing.T) {
	sb := testutil.NewSecureBus(t)
	srv, err := busserver.StartServer(busserver.ServerConfig{Name: "limits", Port: -1, StoreDir: t.TempDir(), Security: sb.Security(t)}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	coord, err := sb.Connect(t, []string{srv.ClientURL()}, auth.RoleCoordinator, "coord-1")
	if err != nil {
		t.Fatal(err)
	}
	defer coord.Close()
	cjs, err := jetstream.New(coord)
	if err != nil {
		t.Fatal(err)
	}
	topo := bus.Topology{Nodes: 50, HeartbeatBytes: 4000, EventHistory: 3}
	if err := bus.EnsureStreams(ctx, cjs, topo); err != nil {
		t.Fatal(err)
	}
	st, err := cjs.Stream(ctx, bus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	if want := bus.EventBudget(50, 4000, 3); cfg.MaxBytes != want || cfg.MaxMsgsPerSubject != 3 || cfg.Discard != jetstream.DiscardOld {
		t.Fatalf("MESH_EVT limits: max_bytes %d (want %d), max_msgs_per_subject %d (want 3), discard %v",
			cfg.MaxBytes, want, cfg.MaxMsgsPerSubject, cfg.Discard)
	}
	if def := bus.StreamConfigs(bus.Topology{})[0]; def.MaxBytes != bus.EventBudget(1000, 4<<10, 60) || def.MaxMsgsPerSubject != 60 {
		t.Errorf("default MESH_EVT limits: %d bytes, %d per subject", def.MaxBytes, def.MaxMsgsPerSubject)
	}
	// Changing the limits updates the existing stream.
	if err := bus.EnsureStreams(ctx, cjs, bus.Topology{Nodes: 50, HeartbeatBytes: 4000, EventHistory: 4}); err != nil {
		t.Fatal(err)
	}
	if info, err := st.Info(ctx); err != nil || info.Config.MaxMsgsPerSubject != 4 {
		t.Fatalf("limits not updated: %v %v", info, err)
	}
	if err := bus.EnsureStreams(ctx, cjs, topo); err != nil {
		t.Fatal(err)
	}

	// The node publishes under its own credentials.
	node, err := sb.Connect(t, []string{srv.ClientURL()}, auth.RoleNode, "n1")
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	njs, err := jetstream.New(node)
	if err != nil {
		t.Fatal(err)
	}
	seq := uint64(0)
	pub := func(kind string) {
		t.Helper()
		subj, err := bus.EventSubject("n1", kind)
		if err != nil {
			t.Fatal(err)
		}
		seq++
		if _, err := njs.Publish(ctx, subj, []byte(fmt.Sprintf(`{"seq":%d}`, seq)), jetstream.WithMsgID(bus.MessageID("n1", "boot1", seq))); err != nil {
			t.Fatalf("publish %s: %v", subj, err)
		}
	}
	pub(bus.KindHello)
	pub(bus.KindHealth)
	for i := 0; i < 10; i++ {
		pub(bus.KindHeartbeat)
	}
	count := func(subj string) uint64 {
		t.Helper()
		info, err := st.Info(ctx, jetstream.WithSubjectFilter(subj))
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Subjects[subj]
	}
	if n := count("mesh.v1.evt.n1.heartbeat"); n != 3 {
		t.Errorf("heartbeats kept: %d, want the last 3", n)
	}
	if n := count("mesh.v1.evt.n1.hello"); n != 1 {
		t.Errorf("hello kept: %d, want 1", n)
	}
	if n := count("mesh.v1.evt.n1.health"); n != 1 {
		t.Errorf("health transition kept: %d, want 1", n)
	}
	last, err := st.GetLastMsgForSubject(ctx, "mesh.v1.evt.n1.heartbeat")
	if err != nil || string(last.Data) != `{"seq":12}` {
		t.Fatalf("newest heartbeat: %v %v", last, err)
	}
	first, err := st.GetMsg(ctx, 1)
	if err != nil || first.Subject != "mesh.v1.evt.n1.hello" {
		t.Fatalf("the hello, first message, must survive the heartbeats: %v %v", first, err)
	}
}
