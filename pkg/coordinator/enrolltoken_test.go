package coordinator_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/internal/testutil"
	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/auth"
	"github.com/ringmesh/ringmesh/pkg/bootstrap"
	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/bus/busserver"
	"github.com/ringmesh/ringmesh/pkg/coordinator"
	"github.com/ringmesh/ringmesh/pkg/events"
)

// offsetClock is the coordinator's clock, moved forward by tests (no sleeping).
type offsetClock struct{ off atomic.Int64 }

func (c *offsetClock) now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *offsetClock) advance(d time.Duration) { c.off.Add(int64(d)) }

type enrollRig struct {
	t     *testing.T
	h     *harness
	sb    *testutil.SecureBus
	clock *offsetClock
	admin api.Client
}

func startEnrollRig(t *testing.T) *enrollRig {
	t.Helper()
	clk := &offsetClock{}
	h := startCoordinator(t, coordinator.Config{Now: clk.now})
	sb := testutil.Lookup(h.url)
	if sb == nil {
		t.Fatal("the test coordinator runs without authentication")
	}
	nc, err := sb.Connect(t, []string{h.url}, auth.RoleAdmin, "test-admin")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return &enrollRig{t: t, h: h, sb: sb, clock: clk, admin: sb.Client(t, nc)}
}

func (r *enrollRig) create(req api.TokenCreateRequest) api.TokenCreated {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out api.TokenCreated
	if err := r.admin.Call(ctx, api.OpTokenCreate, req, &out); err != nil {
		r.t.Fatalf("token create: %v", err)
	}
	return out
}

// enroll presents token as a fresh node (own key, own creds path).
func (r *enrollRig) enroll(token, instance, provider string) (string, string, error) {
	r.t.Helper()
	out := filepath.Join(r.t.TempDir(), "node.creds")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	node, err := bootstrap.Enroll(ctx, bootstrap.Config{URLs: []string{r.h.url}, BootstrapCreds: r.sb.Creds(r.t, auth.RoleBootstrap, auth.BootstrapName),
		CAFile: r.sb.CAFile(), Token: token, InstanceID: instance, Provider: provider, CredsOut: out, RetryWait: 100 * time.Millisecond}, zerolog.Nop())
	return node, out, err
}

func refusedWith(t *testing.T, err error, want string) {
	t.Helper()
	if !errors.Is(err, bootstrap.ErrRefused) || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want a refusal saying %q", err, want)
	}
}

// enrollAudits returns the causes of the "enroll" audit entries, oldest first.
func enrollAudits(t *testing.T, url string) []events.Audit {
	t.Helper()
	nc, err := natsConnect(t, url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, bus.StreamAudit, jetstream.OrderedConsumerConfig{FilterSubjects: []string{bus.Prefix + ".audit.enroll"}})
	if err != nil {
		t.Fatal(err)
	}
	var out []events.Audit
	for {
		m, err := cons.Next(jetstream.FetchMaxWait(500 * time.Millisecond))
		if err != nil {
			return out
		}
		var env bus.Envelope
		var a events.Audit
		if json.Unmarshal(m.Data(), &env) == nil && json.Unmarshal(env.Body, &a) == nil {
			out = append(out, a)
		}
	}
}

// A token works once, for the instance it names: the node gets a node
// credential for its own key under the token's node ID; a wrong instance or
// provider does not burn it; a second use is refused; every outcome is
// audited; the token itself is never stored or listed.
func TestEnrollTokenWorksOnce(t *testing.T) {
	r := startEnrollRig(t)
	tok := r.create(api.TokenCreateRequest{Node: "vast-4242", InstanceID: "4242", Provider: "vast"})
	if !bootstrap.ValidToken(tok.Token) || tok.Info.State != "pending" || tok.Info.Node != "vast-4242" {
		t.Fatalf("created %+v", tok)
	}

	_, _, err := r.enroll(tok.Token, "4243", "vast")
	refusedWith(t, err, "instance ID does not match")
	_, _, err = r.enroll(tok.Token, "4242", "runpod")
	refusedWith(t, err, "provider does not match")
	_, _, err = r.enroll("rme_"+strings.Repeat("A", 43), "4242", "vast")
	refusedWith(t, err, "unknown token")

	node, creds, err := r.enroll(tok.Token, "4242", "vast")
	if err != nil || node != "vast-4242" {
		t.Fatalf("enroll: node %q, %v", node, err)
	}
	st, err := os.Stat(creds)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("creds file %v, mode %v", err, st)
	}
	if _, err := os.Stat(creds + ".seed"); !os.IsNotExist(err) {
		t.Fatalf("the pending seed was left behind: %v", err)
	}
	b, _ := os.ReadFile(creds)
	j, _ := jwt.ParseDecoratedJWT(b)
	uc, err := jwt.DecodeUserClaims(j)
	if err != nil || uc.Name != "vast-4242" || !uc.Tags.Contains("role:node") || uc.Issuer != r.sb.Issuer.AccountPublicKey() {
		t.Fatalf("issued %+v, %v", uc, err)
	}
	// The node's own credential works on the bus, as that node.
	nc, err := nats.Connect(r.h.url, nats.UserCredentials(creds), nats.RootCAs(r.sb.CAFile()), nats.CustomInboxPrefix(bus.InboxPrefix("vast-4242")))
	if err != nil {
		t.Fatalf("connect with the enrolled credential: %v", err)
	}
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	subj, _ := bus.EventSubject("vast-4242", bus.KindHealth)
	if _, err := js.Publish(ctx, subj, []byte(`{}`)); err != nil {
		t.Fatalf("the enrolled node publishes its own events: %v", err)
	}
	nc.Close()

	_, _, err = r.enroll(tok.Token, "4242", "vast")
	refusedWith(t, err, "already used")

	var list api.TokenList
	if err := r.admin.Call(ctx, api.OpTokenList, nil, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Tokens) != 1 || list.Tokens[0].State != "used" || list.Tokens[0].UsedKey != uc.Subject {
		t.Fatalf("list %+v", list)
	}
	raw, _ := json.Marshal(list)
	if strings.Contains(string(raw), tok.Token) || strings.Contains(string(raw), bootstrap.HashToken(tok.Token)[12:]) {
		t.Fatal("the token list shows the token or its whole hash")
	}

	var causes []string
	for _, a := range enrollAudits(t, r.h.url) {
		causes = append(causes, a.Cause)
		if strings.Contains(a.Cause+a.Actor+strings.Join(mapValues(a.Detail), " "), tok.Token) {
			t.Fatalf("an audit entry holds the token: %+v", a)
		}
	}
	want := []string{"enrollment token created", "instance ID does not match", "provider does not match", "unknown token", "accepted: node credentials issued", "already used"}
	if len(causes) != len(want) {
		t.Fatalf("audit causes %q, want %d entries like %q", causes, len(want), want)
	}
	for i, w := range want {
		if !strings.Contains(causes[i], w) {
			t.Errorf("audit %d: %q, want %q", i, causes[i], w)
		}
	}
}

func mapValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// Expiry is checked against the coordinator's clock (moved, not slept);
// revocation stops a pending token.
func TestEnrollTokenExpiresAndRevokes(t *testing.T) {
	r := startEnrollRig(t)
	old := r.create(api.TokenCreateRequest{Node: "runpod-a1", InstanceID: "abc123xyz", TTLSeconds: 600})
	revoked := r.create(api.TokenCreateRequest{Node: "runpod-a2", InstanceID: "def456"})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var rv api.TokenRevoked
	if err := r.admin.Call(ctx, api.OpTokenRevoke, api.TokenRevokeRequest{Node: "runpod-a2"}, &rv); err != nil || len(rv.IDs) != 1 || rv.IDs[0] != revoked.Info.ID {
		t.Fatalf("revoke: %+v %v", rv, err)
	}
	_, _, err := r.enroll(revoked.Token, "def456", "runpod")
	refusedWith(t, err, "revoked")

	r.clock.advance(11 * time.Minute)
	_, _, err = r.enroll(old.Token, "abc123xyz", "runpod")
	refusedWith(t, err, "expired")

	// Bad requests are refused with a reason, before anything is stored.
	for _, bad := range []api.TokenCreateRequest{{Node: "x y", InstanceID: "1"}, {Node: "n", InstanceID: "a b"}, {Node: "n", InstanceID: "1", Provider: "aws"},
		{Node: "n", InstanceID: "1", TTLSeconds: 10}, {Node: "hetzner-cpu1", InstanceID: "1"}, {Node: "test-admin", InstanceID: "1"}} {
		if err := r.admin.Call(ctx, api.OpTokenCreate, bad, nil); err == nil || !strings.Contains(err.Error(), "bad request") {
			t.Errorf("create %+v: %v", bad, err)
		}
	}
	// A viewer may not create tokens.
	nc, err := r.sb.Connect(t, []string{r.h.url}, auth.RoleViewer, "vera")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	vs, _ := auth.LoadSigner(r.sb.Creds(t, auth.RoleViewer, "vera"))
	if err := (api.Client{NC: nc, Sign: vs.Sign}).Call(ctx, api.OpTokenCreate, api.TokenCreateRequest{Node: "n1", InstanceID: "1"}, nil); err == nil {
		t.Fatal("a viewer created a token")
	}
}

// Two nodes presenting the same token at once: exactly one gets
// credentials (the claim is a compare-and-set on the KV revision).
func TestEnrollTokenConcurrentUseOneWins(t *testing.T) {
	r := startEnrollRig(t)
	tok := r.create(api.TokenCreateRequest{Node: "vast-777", InstanceID: "777"})
	const n = 8
	var wg sync.WaitGroup
	var ok, used atomic.Int32
	errs := make(chan error, n)
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			_, _, err := r.enroll(tok.Token, "777", "vast")
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, bootstrap.ErrRefused) && strings.Contains(err.Error(), "already used"):
				used.Add(1)
			default:
				errs <- err
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("unexpected outcome: %v", err)
	}
	if ok.Load() != 1 || used.Load() != n-1 {
		t.Fatalf("%d succeeded and %d were refused as used; want 1 and %d", ok.Load(), used.Load(), n-1)
	}
}

// The same key asking again (its reply was lost) gets the same credential;
// the token stays bound to that key. Requests are bounded in size and
// every field is checked.
func TestEnrollRepeatAndBadRequests(t *testing.T) {
	r := startEnrollRig(t)
	tok := r.create(api.TokenCreateRequest{Node: "vast-9", InstanceID: "9"})
	nc, err := r.sb.Connect(t, []string{r.h.url}, auth.RoleBootstrap, auth.BootstrapName)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	ask := func(body []byte) bootstrap.Reply {
		t.Helper()
		m, err := nc.Request(bus.EnrollSubject, body, 10*time.Second)
		if err != nil {
			t.Fatalf("request: %v", err)
		}
		var rep bootstrap.Reply
		if err := json.Unmarshal(m.Data, &rep); err != nil {
			t.Fatal(err)
		}
		return rep
	}
	req, _ := json.Marshal(bootstrap.Request{Token: tok.Token, InstanceID: "9", PublicKey: pub})
	first := ask(req)
	second := ask(req)
	if first.Error != "" || first.JWT == "" || second.JWT != first.JWT {
		t.Fatalf("first %+v second %+v", first, second)
	}
	for _, bad := range []string{
		`not json`,
		`{"token":"rme_short","instance_id":"9","public_key":"` + pub + `"}`,
		`{"token":"` + tok.Token + `","instance_id":"9; rm -rf /","public_key":"` + pub + `"}`,
		`{"token":"` + tok.Token + `","instance_id":"9","public_key":"Xnotakey"}`,
		`{"token":"` + tok.Token + `","instance_id":"9","node":"../etc","public_key":"` + pub + `"}`,
		`{"pad":"` + strings.Repeat("x", 2000) + `"}`,
	} {
		rep := ask([]byte(bad))
		if rep.Error == "" || rep.JWT != "" || strings.Contains(rep.Error, tok.Token) {
			t.Errorf("%.40s…: %+v", bad, rep)
		}
	}
}

// Tokens live in KV, not in the coordinator's memory: one created before a
// restart is redeemed after it (as after a fail-over to another voter).
func TestEnrollTokenSurvivesRestart(t *testing.T) {
	store := filepath.Join(t.TempDir(), "nats")
	clk := &offsetClock{}
	start := func() *enrollRig {
		h := startCoordinator(t, coordinator.Config{Now: clk.now, Embedded: busserver.ServerConfig{Port: -1, StoreDir: store}})
		sb := testutil.Lookup(h.url)
		nc, err := sb.Connect(t, []string{h.url}, auth.RoleAdmin, "test-admin")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return &enrollRig{t: t, h: h, sb: sb, clock: clk, admin: sb.Client(t, nc)}
	}
	r1 := start()
	tok := r1.create(api.TokenCreateRequest{Node: "runpod-z9", InstanceID: "z9pod"})
	r1.h.stop()
	r2 := start()
	if node, _, err := r2.enroll(tok.Token, "z9pod", ""); err != nil || node != "runpod-z9" {
		t.Fatalf("after a restart: %q %v", node, err)
	}
	_, _, err := r2.enroll(tok.Token, "z9pod", "")
	refusedWith(t, err, "already used")
}

// switchLeadership is a leader lease the test hands out and takes back.
type switchLeadership struct{ on atomic.Bool }

func (s *switchLeadership) IsLeader() bool { return s.on.Load() }
func (s *switchLeadership) Leader() (string, uint64, bool) {
	if s.on.Load() {
		return "hetzner-cpu1", 1, true
	}
	return "hetzner-cpu2", 2, true
}

// Only the leader redeems tokens: a follower hears the request and stays
// silent (the node asks again), so two coordinators never both issue.
func TestEnrollOnlyTheLeaderAnswers(t *testing.T) {
	lead := &switchLeadership{}
	lead.on.Store(true)
	h := startCoordinator(t, coordinator.Config{Leadership: lead})
	sb := testutil.Lookup(h.url)
	nc, err := sb.Connect(t, []string{h.url}, auth.RoleAdmin, "test-admin")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	r := &enrollRig{t: t, h: h, sb: sb, clock: &offsetClock{}, admin: sb.Client(t, nc)}
	tok := r.create(api.TokenCreateRequest{Node: "vast-5", InstanceID: "5"})

	lead.on.Store(false)
	bc, err := sb.Connect(t, []string{h.url}, auth.RoleBootstrap, auth.BootstrapName)
	if err != nil {
		t.Fatal(err)
	}
	defer bc.Close()
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	body, _ := json.Marshal(bootstrap.Request{Token: tok.Token, InstanceID: "5", PublicKey: pub})
	if m, err := bc.Request(bus.EnrollSubject, body, time.Second); err == nil {
		t.Fatalf("a follower answered: %s", m.Data)
	}
	lead.on.Store(true)
	m, err := bc.Request(bus.EnrollSubject, body, 10*time.Second)
	if err != nil {
		t.Fatalf("the leader did not answer: %v", err)
	}
	var rep bootstrap.Reply
	if err := json.Unmarshal(m.Data, &rep); err != nil || rep.Node != "vast-5" || rep.JWT == "" {
		t.Fatalf("leader's reply %+v %v", rep, err)
	}
}
