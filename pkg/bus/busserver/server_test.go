package busserver

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/rs/zerolog"
)

func TestServerRequiresNameAndStore(t *testing.T) {
	if _, err := StartServer(ServerConfig{StoreDir: t.TempDir()}, zerolog.Nop()); err == nil {
		t.Error("no name accepted")
	}
	if _, err := StartServer(ServerConfig{Name: "x"}, zerolog.Nop()); err == nil {
		t.Error("no store dir accepted")
	}
}

// Streams and buckets are created idempotently, and survive a restart on the same store and port.
func TestEnsureStreamsIdempotentAcrossRestart(t *testing.T) {
	store := t.TempDir()
	s, err := StartServer(ServerConfig{Name: "t1", Port: -1, StoreDir: store}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.Config()
	nc, err := bus.Connect(bus.ConnConfig{URLs: []string{s.ClientURL()}, Name: "test"}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := 0; i < 2; i++ {
		if err := bus.EnsureStreams(ctx, js, bus.Topology{}); err != nil {
			t.Fatalf("ensure #%d: %v", i, err)
		}
	}
	ack, err := js.Publish(ctx, "mesh.v1.evt.n1.hello", []byte("{}"), jetstream.WithMsgID("n1:b:1"))
	if err != nil || ack.Stream != bus.StreamEvents {
		t.Fatalf("publish: %+v %v", ack, err)
	}
	dup, err := js.Publish(ctx, "mesh.v1.evt.n1.hello", []byte("{}"), jetstream.WithMsgID("n1:b:1"))
	if err != nil || !dup.Duplicate {
		t.Fatalf("same Nats-Msg-Id must be a duplicate: %+v %v", dup, err)
	}
	s.Stop()
	s, err = StartServer(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if err := bus.WaitJetStream(ctx, js); err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, bus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil || info.State.Msgs != 1 {
		t.Fatalf("after restart: %+v %v", info, err)
	}
	if err := bus.EnsureStreams(ctx, js, bus.Topology{}); err != nil {
		t.Fatalf("ensure after restart: %v", err)
	}
}
