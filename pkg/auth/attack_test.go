package auth_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/internal/testutil"
	"github.com/ringmesh/ringmesh/pkg/auth"
	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/bus/busserver"
)

// rig is an authenticated, TLS-only bus with the ringmesh streams, one
// record per node in KV, one command per node, one audit entry and one
// dead letter.
type rig struct {
	t     *testing.T
	iss   *auth.Issuer
	urls  []string
	creds map[string]string // user → creds file
	coord *nats.Conn
	js    jetstream.JetStream
}

func newRig(t *testing.T, urls []string, iss *auth.Issuer, dir string) *rig {
	r := &rig{t: t, iss: iss, urls: urls, creds: map[string]string{}}
	for _, u := range []struct {
		role auth.Role
		name string
	}{{auth.RoleCoordinator, "hetzner-cpu1"}, {auth.RoleNode, "node-a"}, {auth.RoleNode, "node-b"}, {auth.RoleViewer, "alice"}, {auth.RoleAdmin, "root"}, {auth.RoleBootstrap, auth.BootstrapName}} {
		p := filepath.Join(dir, "creds", u.name+".creds")
		if err := iss.IssueFile(u.role, u.name, p); err != nil {
			t.Fatal(err)
		}
		r.creds[u.name] = p
	}
	var err error
	r.coord, err = r.dial("hetzner-cpu1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.coord.Close)
	r.js, _ = jetstream.New(r.coord)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := bus.WaitJetStream(ctx, r.js); err != nil {
		t.Fatal(err)
	}
	if err := bus.EnsureStreams(ctx, r.js, bus.Topology{Replicas: len(urls)}); err != nil {
		t.Fatal(err)
	}
	kv, _ := r.js.KeyValue(ctx, bus.BucketNodes)
	for _, n := range []string{"node-a", "node-b"} {
		if _, err := kv.Put(ctx, n, []byte(`{"node":"`+n+`","secret":"host key of `+n+`"}`)); err != nil {
			t.Fatal(err)
		}
		subj, _ := bus.CommandSubject(n, "sync_targets")
		if _, err := r.js.Publish(ctx, subj, []byte(`{"targets":"for `+n+`"}`)); err != nil {
			t.Fatal(err)
		}
	}
	// node-b's command consumer exists (its agent made it), so deleting it would show.
	fb, _ := bus.CommandsFor("node-b")
	if _, err := r.js.CreateOrUpdateConsumer(ctx, bus.StreamCommands, jetstream.ConsumerConfig{Durable: bus.AgentConsumer("node-b"), FilterSubject: fb,
		AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy}); err != nil {
		t.Fatal(err)
	}
	lk, _ := r.js.KeyValue(ctx, bus.BucketLeader)
	if _, err := lk.Put(ctx, "leader", []byte("hetzner-cpu1")); err != nil {
		t.Fatal(err)
	}
	asub, _ := bus.AuditSubject("transition")
	if _, err := r.js.Publish(ctx, asub, []byte(`{"audit":1}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.js.Publish(ctx, bus.DeadLetterSubject(bus.StreamEvents), []byte(`{"dlq":1}`)); err != nil {
		t.Fatal(err)
	}
	// A coordinator answers the API, so that a request that got through would be seen.
	sub, err := r.coord.Subscribe(bus.APIPrefix+".>", func(m *nats.Msg) { _ = m.Respond([]byte(`{"data":"answered"}`)) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	_ = r.coord.Flush()
	return r
}

// dial connects as user ("" = no credentials) with the CA pinned; it fails when the server refuses.
func (r *rig) dial(user string, extra ...nats.Option) (*nats.Conn, error) {
	cfg := bus.ConnConfig{CAFile: r.iss.CAFile(), Timeout: 5 * time.Second}
	if user != "" {
		cfg.CredsFile = r.creds[user]
	}
	opts, err := cfg.Options()
	if err != nil {
		return nil, err
	}
	opts = append(opts, nats.MaxReconnects(0), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	return nats.Connect(strings.Join(r.urls, ","), append(opts, extra...)...)
}

// snapshot is every counter an attack could change.
type snapshot map[string]uint64

func (r *rig) snapshot() snapshot {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s := snapshot{}
	for _, name := range []string{bus.StreamEvents, bus.StreamCommands, bus.StreamAudit, bus.StreamDeadLetter, "KV_" + bus.BucketNodes, "KV_" + bus.BucketLeader, "KV_" + bus.BucketState} {
		st, err := r.js.Stream(ctx, name)
		if err != nil {
			r.t.Fatalf("stream %s: %v", name, err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			r.t.Fatal(err)
		}
		if name != "KV_"+bus.BucketLeader { // the lease key expires by TTL; its last sequence still shows any write
			s[name+".msgs"] = info.State.Msgs
		}
		s[name+".last"] = info.State.LastSeq
		s[name+".consumers"] = uint64(info.State.Consumers)
	}
	return s
}

type attack struct {
	name string
	// try performs the attack as nc (already connected) and returns nil
	// when it succeeded, an error when it was refused.
	try func(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) error
}

// subscribe returns nil when the server accepts a subscription to subject
// (the attack worked: it would receive what is published there).
func subscribe(nc *nats.Conn, subject string) error {
	sub, err := nc.SubscribeSync(subject)
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		return err
	}
	time.Sleep(200 * time.Millisecond) // a -ERR for the subscription arrives asynchronously
	return nc.LastError()
}

// request is a plain request; nil = answered (attack worked).
func request(nc *nats.Conn, subject string, body []byte) error {
	m, err := nc.Request(subject, body, 700*time.Millisecond)
	if err != nil {
		return err
	}
	if strings.Contains(string(m.Data), `"error"`) && !strings.Contains(string(m.Data), `"data"`) {
		return errors.New(string(m.Data))
	}
	return nil
}

// publish publishes and flushes; a permission violation shows as the connection's last error.
func publish(nc *nats.Conn, subject string, body []byte) error {
	if err := nc.Publish(subject, body); err != nil {
		return err
	}
	if err := nc.Flush(); err != nil {
		return err
	}
	time.Sleep(200 * time.Millisecond) // the -ERR arrives asynchronously
	if err := nc.LastError(); err != nil {
		return err
	}
	return errors.New("published; core publish has no ack, the snapshot decides")
}

// attacks are aimed at node-b's data and the control plane.
func attacks() []attack {
	cmdB, _ := bus.CommandSubject("node-b", "sync_targets")
	evtB, _ := bus.EventSubject("node-b", bus.KindHeartbeat)
	return []attack{
		{"read node-b's KV record", func(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) error {
			kv, err := js.KeyValue(ctx, bus.BucketNodes)
			if err != nil {
				return err
			}
			_, err = kv.Get(ctx, "node-b")
			return err
		}},
		{"direct get of node-b's KV record", func(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) error {
			return request(nc, "$JS.API.DIRECT.GET.KV_"+bus.BucketNodes+".$KV."+bus.BucketNodes+".node-b", nil)
		}},
		{"stream message get on MESH_CMD", func(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) error {
			return request(nc, "$JS.API.STREAM.MSG.GET."+bus.StreamCommands, []byte(`{"seq":1}`))
		}},
		{"read node-b's commands via own-named consumer", func(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) error {
			f, _ := bus.CommandsFor("node-b")
			_, err := js.CreateOrUpdateConsumer(ctx, bus.StreamCommands, jetstream.ConsumerConfig{Durable: bus.AgentConsumer("node-a"), FilterSubject: f})
			return err
		}},
		{"read node-b's commands via node-b's consumer", func(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) error {
			f, _ := bus.CommandsFor("node-b")
			c, err := js.CreateOrUpdateConsumer(ctx, bus.StreamCommands, jetstream.ConsumerConfig{Durable: bus.AgentConsumer("node-b"), FilterSubject: f})
			if err != nil {
				return err
			}
			_, err = c.Next(jetstream.FetchMaxWait(700 * time.Millisecond))
			return err
		}},
		{"ordered consumer on MESH_CMD", func(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) error {
			c, err := js.OrderedConsumer(ctx, bus.StreamCommands, jetstream.OrderedConsumerConfig{})
			if err != nil {
				return err
			}
			_, err = c.Next(jetstream.FetchMaxWait(700 * time.Millisecond))
			return err
		}},
		{"subscribe to commands", func(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) error {
			return subscribe(nc, bus.CommandsAll)
		}},
		{"subscribe to node-b's events", func(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) error {
			return subscribe(nc, bus.EventsAll)
		}},
		{"subscribe to node-b's KV record updates", func(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) error {
			return subscribe(nc, "$KV."+bus.BucketNodes+".>")
		}},
		{"subscribe to the API (answer as a fake coordinator)", func(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) error {
			return subscribe(nc, bus.APIPrefix+".>")
		}},
		{"subscribe to advisories", func(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) error {
			return subscribe(nc, "$JS.EVENT.>")
		}},
		{"subscribe to other users' inboxes", func(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) error {
			return subscribe(nc, "_INBOX_root.>")
		}},
		{"subscribe to the enrollment subject (read booting nodes' tokens)", func(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) error {
			return subscribe(nc, bus.EnrollSubject)
		}},
		{"publish a hello as a fresh node", func(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) error {
			s, _ := bus.EventSubject("node-new", bus.KindHello)
			_, err := js.Publish(ctx, s, []byte(`{"node":"node-new"}`))
			return err
		}},
		{"publish node-b's heartbeat", func(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) error {
			_, err := js.Publish(ctx, evtB, []byte(`{"rpo":0}`))
			return err
		}},
		{"publish a command", func(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) error {
			_, err := js.Publish(ctx, cmdB, []byte(`{"targets":"attacker"}`))
			return err
		}},
		{"core-publish a command", func(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) error {
			return publish(nc, cmdB, []byte(`{"targets":"attacker"}`))
		}},
		{"purge MESH_AUDIT", func(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) error {
			s, err := js.Stream(ctx, bus.StreamAudit)
			if err != nil {
				return err
			}
			return s.Purge(ctx)
		}},
		{"delete MESH_DLQ", func(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) error {
			return js.DeleteStream(ctx, bus.StreamDeadLetter)
		}},
		{"write an audit entry", func(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) error {
			s, _ := bus.AuditSubject("transition")
			_, err := js.Publish(ctx, s, []byte(`{"forged":1}`))
			return err
		}},
		{"write mesh_leader", func(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) error {
			kv, err := js.KeyValue(ctx, bus.BucketLeader)
			if err != nil {
				return err
			}
			_, err = kv.Put(ctx, "leader", []byte("attacker"))
			return err
		}},
		{"core-publish to mesh_leader", func(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) error {
			return publish(nc, "$KV."+bus.BucketLeader+".leader", []byte("attacker"))
		}},
		{"create a stream", func(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) error {
			_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "EVIL", Subjects: []string{"mesh.v1.evt.node-b.>"}})
			return err
		}},
		{"publish a gossip observation", func(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) error {
			g, _ := bus.GossipSubject("hetzner-cpu9")
			_, err := js.Publish(ctx, g, []byte(`{"member":"node-b","state":"alive"}`))
			return err
		}},
		{"delete node-b's command consumer", func(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) error {
			return js.DeleteConsumer(ctx, bus.StreamCommands, bus.AgentConsumer("node-b"))
		}},
		{"update node-b's command consumer to another filter", func(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) error {
			_, err := js.UpdateConsumer(ctx, bus.StreamCommands, jetstream.ConsumerConfig{Durable: bus.AgentConsumer("node-a"), FilterSubject: "mesh.v1.cmd.>"})
			return err
		}},
		{"call mesh.v1.api.act", func(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) error {
			return request(nc, bus.APISubject("act"), []byte(`{"node":"node-b","op":"terminate","force":true}`))
		}},
		{"call mesh.v1.api.sync", func(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) error {
			return request(nc, bus.APISubject("sync"), []byte(`{"node":"node-b","request_id":"x"}`))
		}},
		{"push an account JWT", func(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) error {
			return request(nc, "$SYS.REQ.CLAIMS.UPDATE", []byte("x"))
		}},
	}
}

func runMatrix(t *testing.T, r *rig, attackers []string) {
	for _, who := range attackers {
		for _, a := range attacks() {
			t.Run(fmt.Sprintf("%s/%s", label(who), a.name), func(t *testing.T) {
				before := r.snapshot()
				nc, err := r.dial(who)
				if who == "" {
					if err == nil {
						nc.Close()
						t.Fatal("a client without credentials was let in")
					}
					return // refused at the door; nothing to try
				}
				if err != nil {
					t.Fatalf("%s cannot connect: %v", who, err)
				}
				defer nc.Close()
				js, _ := jetstream.New(nc)
				ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
				defer cancel()
				if err := a.try(ctx, nc, js); err == nil {
					t.Errorf("%s: %s succeeded", who, a.name)
				}
				nc.Close()
				if after := r.snapshot(); !equal(before, after) {
					t.Errorf("%s: %s changed the bus: before %v after %v", who, a.name, before, after)
				}
			})
		}
	}
}

func label(who string) string {
	if who == "" {
		return "anonymous"
	}
	return who
}

func equal(a, b snapshot) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func startSecure(t *testing.T) (*busserver.Server, *auth.Issuer, string) {
	dir := t.TempDir()
	iss, err := auth.Open(filepath.Join(dir, "auth"))
	if err != nil {
		t.Fatal(err)
	}
	sec, err := iss.Security(nil)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := busserver.StartServer(busserver.ServerConfig{Name: "attack", Port: -1, StoreDir: filepath.Join(dir, "nats"), Security: sec}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	return srv, iss, dir
}

// TestAttackMatrix tries every attack of issue 11 against the embedded
// server with no credentials, with node-a's credentials against node-b,
// and with a viewer's, and checks each is refused and changed nothing.
func TestAttackMatrix(t *testing.T) {
	srv, iss, dir := startSecure(t)
	if !strings.HasPrefix(srv.ClientURL(), "tls://") {
		t.Fatalf("client URL %s is not TLS", srv.ClientURL())
	}
	r := newRig(t, []string{srv.ClientURL()}, iss, dir)
	runMatrix(t, r, []string{"", "node-a", "alice", auth.BootstrapName})
}

// The bootstrap user (shared by every self-booting node) can send an
// enrollment request and read its reply, and nothing else: no API call
// (not even a read), no other inbox, no message larger than
// auth.BootstrapMaxPayload. The matrix above covers events, streams, KV,
// commands and advisories.
func TestBootstrapUserOnlyEnrolls(t *testing.T) {
	srv, iss, dir := startSecure(t)
	r := newRig(t, []string{srv.ClientURL()}, iss, dir)
	sub, err := r.coord.Subscribe(bus.EnrollSubject, func(m *nats.Msg) { _ = m.Respond([]byte(`{"node":"x"}`)) })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	_ = r.coord.Flush()
	nc, err := r.dial(auth.BootstrapName)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := request(nc, bus.EnrollSubject, []byte(`{}`)); err != nil {
		t.Fatalf("bootstrap user cannot enroll: %v", err)
	}
	for _, op := range []string{"status", "token_create", "revoke"} {
		if err := request(nc, bus.APISubject(op), nil); err == nil {
			t.Errorf("bootstrap user called mesh.v1.api.%s", op)
		}
	}
	if err := subscribe(nc, bus.InboxPrefix("node-a")+".>"); err == nil {
		t.Error("bootstrap user subscribed to node-a's inbox")
	}
	nc.Close()
	closed := make(chan struct{})
	big, err := r.dial(auth.BootstrapName, nats.ClosedHandler(func(*nats.Conn) { close(closed) }))
	if err != nil {
		t.Fatal(err)
	}
	defer big.Close()
	// The server enforces the user's payload limit one of two ways, and
	// which one a test sees depends on timing: after authenticating the
	// user it sends an INFO whose max_payload is the JWT's limit, so a
	// client that has read it refuses locally; a message sent before that
	// makes the server close the connection. Either is the server's limit
	// (the server-wide one is 1 MiB). The close is waited for with a
	// deadline a loaded machine cannot miss instead of polling a state that
	// a reconnect could hide.
	err = big.Publish(bus.EnrollSubject, make([]byte, auth.BootstrapMaxPayload+1))
	if errors.Is(err, nats.ErrMaxPayload) {
		if got := big.MaxPayload(); got != auth.BootstrapMaxPayload {
			t.Fatalf("client refused to send with max payload %d, want the bootstrap user's %d from the server", got, auth.BootstrapMaxPayload)
		}
		return
	}
	if err != nil {
		t.Fatalf("publish over the payload limit: %v", err)
	}
	_ = big.Flush()
	select {
	case <-closed:
	case <-time.After(60 * time.Second):
		t.Fatal("server did not close a connection that broke its payload limit within 60s")
	}
	if le := big.LastError(); le == nil || !strings.Contains(strings.ToLower(le.Error()), "payload") {
		t.Errorf("connection closed, but not for the payload limit: %v", le)
	}
}

// The roles can do their own work: a node publishes its own events and
// consumes its own commands; a viewer reads status; an admin acts.
func TestRolesDoTheirWork(t *testing.T) {
	srv, iss, dir := startSecure(t)
	r := newRig(t, []string{srv.ClientURL()}, iss, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	nc, err := r.dial("node-b")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	evt, _ := bus.EventSubject("node-b", bus.KindHeartbeat)
	if _, err := js.Publish(ctx, evt, []byte(`{}`), jetstream.WithMsgID("b-1")); err != nil {
		t.Fatalf("node publishes its own event: %v", err)
	}
	f, _ := bus.CommandsFor("node-b")
	cons, err := js.CreateOrUpdateConsumer(ctx, bus.StreamCommands, jetstream.ConsumerConfig{Durable: bus.AgentConsumer("node-b"), FilterSubject: f,
		AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy})
	if err != nil {
		t.Fatalf("node creates its command consumer: %v", err)
	}
	m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		t.Fatalf("node reads its command: %v", err)
	}
	if !strings.Contains(string(m.Data()), "for node-b") {
		t.Fatalf("node-b got %s", m.Data())
	}
	if err := m.DoubleAck(ctx); err != nil {
		t.Fatalf("node acks its command: %v", err)
	}
	// The same consumer through Consume (what pkg/agent uses).
	got := make(chan struct{}, 1)
	cc, err := cons.Consume(func(m jetstream.Msg) { _ = m.Ack(); got <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Stop()
	cmdB, _ := bus.CommandSubject("node-b", "sync_now")
	if _, err := r.js.Publish(ctx, cmdB, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-got:
	case <-ctx.Done():
		t.Fatal("Consume got no command")
	}

	for _, who := range []string{"alice", "root"} {
		vc, err := r.dial(who)
		if err != nil {
			t.Fatal(err)
		}
		if err := request(vc, bus.APISubject("status"), nil); err != nil {
			t.Errorf("%s reads status: %v", who, err)
		}
		err = request(vc, bus.APISubject("act"), []byte(`{}`))
		if who == "root" && err != nil {
			t.Errorf("admin acts: %v", err)
		}
		if who == "alice" && err == nil {
			t.Error("viewer acted")
		}
		vc.Close()
	}
}

// A revoked node is dropped at once, refused on reconnect, also after a
// server restart; its records stay.
func TestRevokeDropsAndSurvivesRestart(t *testing.T) {
	srv, iss, dir := startSecure(t)
	r := newRig(t, []string{srv.ClientURL()}, iss, dir)
	nc, err := r.dial("node-b")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	before := r.snapshot()

	sysCreds, err := iss.SystemCreds()
	if err != nil {
		t.Fatal(err)
	}
	sysFile := filepath.Join(dir, "sys.creds")
	if err := writeTest(sysFile, sysCreds); err != nil {
		t.Fatal(err)
	}
	sc, err := nats.Connect(srv.ClientURL(), nats.UserCredentials(sysFile), nats.RootCAs(iss.CAFile()))
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	tok, revoked, err := iss.Revoke("node-b")
	if err != nil || len(revoked) != 1 {
		t.Fatalf("revoke: %v %v", revoked, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := auth.Push(ctx, sc, tok); err != nil {
		t.Fatal(err)
	}
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("revoked connection stays open")
	}
	if c, err := r.dial("node-b"); err == nil {
		c.Close()
		t.Fatal("revoked node reconnected")
	}
	if c, err := r.dial("node-a"); err != nil {
		t.Fatalf("node-a refused after node-b's revocation: %v", err)
	} else {
		c.Close()
	}
	kv, _ := r.js.KeyValue(ctx, bus.BucketNodes)
	if e, err := kv.Get(ctx, "node-b"); err != nil || !strings.Contains(string(e.Value()), "node-b") {
		t.Fatalf("node-b's record after revocation: %v", err)
	}
	if after := r.snapshot(); !equal(before, after) {
		t.Errorf("revocation changed the bus: %v → %v", before, after)
	}

	// Restart on the same store: the revocation holds.
	cfg := srv.Config()
	sc.Close()
	r.coord.Close()
	srv.Stop()
	sec, err := iss.Security(nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Security = sec
	srv2, err := busserver.StartServer(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer srv2.Stop()
	testutil.Eventually(t, 10*time.Second, func() error {
		c, err := r.dial("node-a")
		if err != nil {
			return err
		}
		c.Close()
		return nil
	})
	if c, err := r.dial("node-b"); err == nil {
		c.Close()
		t.Fatal("revoked node reconnected after a restart")
	}
}

func writeTest(path string, b []byte) error { return os.WriteFile(path, b, 0o600) }

// The same matrix (node-a against node-b, and the viewer) against a
// 3-voter cluster whose routes use mutual TLS: permissions hold on every
// server, and a server without a certificate of the CA cannot join.
func TestAttackMatrixCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts a 3-server cluster")
	}
	dir := t.TempDir()
	iss, err := auth.Open(filepath.Join(dir, "auth"))
	if err != nil {
		t.Fatal(err)
	}
	sec, err := iss.Security(nil)
	if err != nil {
		t.Fatal(err)
	}
	probe := filepath.Join(dir, "probe.creds")
	if err := iss.IssueFile(auth.RoleCoordinator, "coordinator-probe", probe); err != nil {
		t.Fatal(err)
	}
	popts, err := bus.ConnConfig{CredsFile: probe, CAFile: iss.CAFile()}.Options()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := busserver.StartClusterWith(3, "attack", filepath.Join(dir, "nats"), false, busserver.ClusterOptions{Security: sec, Client: popts}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Shutdown)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := cl.WaitReady(ctx, 3); err != nil {
		t.Fatal(err)
	}
	for _, u := range cl.URLs() {
		if !strings.HasPrefix(u, "tls://") {
			t.Fatalf("cluster URL %s is not TLS", u)
		}
	}
	r := newRig(t, cl.URLs(), iss, dir)
	// Each attacker connects to the last server, the data's leader may be any.
	r.urls = cl.URLs()[2:]
	runMatrix(t, r, []string{"", "node-a", "alice"})

	// A route from a server with a certificate of another CA is refused.
	other, err := auth.Open(filepath.Join(dir, "other-auth"))
	if err != nil {
		t.Fatal(err)
	}
	_, badRoute, err := other.ServerTLS(nil)
	if err != nil {
		t.Fatal(err)
	}
	rogue, err := busserver.StartServer(busserver.ServerConfig{Name: "rogue", Port: -1, StoreDir: filepath.Join(dir, "rogue"),
		ClusterName: "attack", ClusterHost: "127.0.0.1", ClusterPort: -1, Routes: routesOf(t, cl),
		Security: &bus.Security{OperatorJWT: sec.OperatorJWT, SystemAccount: sec.SystemAccount, AccountJWTs: sec.AccountJWTs, TLS: sec.TLS, RouteTLS: badRoute}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer rogue.Stop()
	time.Sleep(2 * time.Second) // give the routes time to (fail to) form
	if n := rogue.NumRoutes(); n != 0 {
		t.Errorf("a server with another CA's certificate formed %d routes", n)
	}
}

func routesOf(t *testing.T, cl *busserver.Cluster) []string {
	var out []string
	for i := 0; i < cl.Size(); i++ {
		out = append(out, fmt.Sprintf("nats-route://127.0.0.1:%d", cl.ClusterPort(i)))
	}
	return out
}
