package bus

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

func TestSubjectsRejectInvalidNodeIDs(t *testing.T) {
	if s, err := EventSubject("vast-29129529", KindHeartbeat); err != nil || s != "mesh.v1.evt.vast-29129529.heartbeat" {
		t.Fatalf("%q %v", s, err)
	}
	for _, bad := range []string{"", "a.b", "a*", "a>", "with space", "ünï", string(make([]byte, 65))} {
		if _, err := EventSubject(bad, KindHello); err == nil {
			t.Errorf("EventSubject(%q) accepted", bad)
		}
		if _, err := CommandSubject(bad, "sync"); err == nil {
			t.Errorf("CommandSubject(%q) accepted", bad)
		}
		if _, err := GossipSubject(bad); err == nil {
			t.Errorf("GossipSubject(%q) accepted", bad)
		}
	}
	if _, err := EventSubject("n1", "telemetry"); err == nil {
		t.Error("unknown kind accepted")
	}
	if _, err := CommandSubject("n1", "sync.now"); err == nil {
		t.Error("verb with a dot accepted")
	}
	node, kind, err := ParseEventSubject("mesh.v1.evt.runpod-1.preempt")
	if err != nil || node != "runpod-1" || kind != "preempt" {
		t.Fatalf("parse: %q %q %v", node, kind, err)
	}
	if _, _, err := ParseEventSubject("mesh.v1.evt.a.b.c"); err == nil {
		t.Error("5+ tokens accepted")
	}
	id := MessageID("n1", "boot7", 42)
	n, b, s, err := ParseMessageID(id)
	if err != nil || n != "n1" || b != "boot7" || s != 42 {
		t.Fatalf("id round trip: %s → %s %s %d %v", id, n, b, s, err)
	}
}

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
	nc, err := Connect(ConnConfig{URLs: []string{s.ClientURL()}, Name: "test"}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := 0; i < 2; i++ {
		if err := EnsureStreams(ctx, js, Topology{}); err != nil {
			t.Fatalf("ensure #%d: %v", i, err)
		}
	}
	ack, err := js.Publish(ctx, "mesh.v1.evt.n1.hello", []byte("{}"), jetstream.WithMsgID("n1:b:1"))
	if err != nil || ack.Stream != StreamEvents {
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
	if err := WaitJetStream(ctx, js); err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil || info.State.Msgs != 1 {
		t.Fatalf("after restart: %+v %v", info, err)
	}
	if err := EnsureStreams(ctx, js, Topology{}); err != nil {
		t.Fatalf("ensure after restart: %v", err)
	}
}
