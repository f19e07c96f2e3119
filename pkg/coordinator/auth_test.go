package coordinator_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ringmesh/ringmesh/internal/testutil"
	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/auth"
	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/config"
	"github.com/ringmesh/ringmesh/pkg/coordinator"
	"github.com/ringmesh/ringmesh/pkg/events"
	"github.com/ringmesh/ringmesh/pkg/fleet"
	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/meshctl"
)

// providerAudits returns the actors of provider_call audit entries for node.
func providerAudits(t testing.TB, url, node string) []string {
	t.Helper()
	nc, err := natsConnect(t, url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, bus.StreamAudit, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for {
		m, err := cons.Next(jetstream.FetchMaxWait(300 * time.Millisecond))
		if err != nil {
			return out
		}
		var env bus.Envelope
		var a events.Audit
		if json.Unmarshal(m.Data(), &env) == nil && json.Unmarshal(env.Body, &a) == nil && a.Node == node && a.Kind == "provider_call" {
			out = append(out, a.Actor)
		}
	}
}

// The coordinator answers only signed requests, from users whose role
// allows the operation, once per signature; the audit names the verified
// user, never the actor string the request carries.
func TestAPIRequestsAreSignedAndAuditedByIdentity(t *testing.T) {
	h, _, _ := startFleet(t)
	sb := testutil.Lookup(h.url)
	if sb == nil {
		t.Fatal("the test coordinator runs without authentication")
	}
	// A coordinator-role connection: the bus lets it publish anywhere, so
	// only the coordinator's own signature check stands in the way.
	nc, err := natsConnect(t, h.url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	act := fleet.ActionRequest{Node: "vast-29129529", Op: "terminate", DryRun: true, Force: true, Reason: "test", Actor: "meshctl:mallory"}

	if err := (api.Client{NC: nc}).Call(ctx, api.OpAct, act, nil); err == nil || !strings.Contains(err.Error(), "not signed") {
		t.Fatalf("unsigned act: %v", err)
	}
	if err := (api.Client{NC: nc}).Call(ctx, api.OpStatus, nil, nil); err == nil {
		t.Fatal("unsigned status answered")
	}
	viewer, err := auth.LoadSigner(sb.Creds(t, auth.RoleViewer, "vera"))
	if err != nil {
		t.Fatal(err)
	}
	vc := api.Client{NC: nc, Sign: viewer.Sign}
	if err := vc.Call(ctx, api.OpStatus, nil, nil); err != nil {
		t.Fatalf("viewer status: %v", err)
	}
	if err := vc.Call(ctx, api.OpAct, act, nil); err == nil || !strings.Contains(err.Error(), "forbidden") {
		t.Fatalf("viewer act: %v", err)
	}
	node, err := auth.LoadSigner(sb.Creds(t, auth.RoleNode, "vast-29129529"))
	if err != nil {
		t.Fatal(err)
	}
	if err := (api.Client{NC: nc, Sign: node.Sign}).Call(ctx, api.OpStatus, nil, nil); err == nil {
		t.Fatal("a node's signature was accepted for the API")
	}
	// A key not issued by this cluster's account.
	other := testutil.NewSecureBus(t)
	stranger, err := auth.LoadSigner(other.Creds(t, auth.RoleAdmin, "root"))
	if err != nil {
		t.Fatal(err)
	}
	if err := (api.Client{NC: nc, Sign: stranger.Sign}).Call(ctx, api.OpAct, act, nil); err == nil || !strings.Contains(err.Error(), "not issued by this cluster") {
		t.Fatalf("foreign admin act: %v", err)
	}

	before := len(providerAudits(t, h.url, act.Node))
	admin := sb.Client(t, nc)
	var res fleet.ActionResult
	if err := admin.Call(ctx, api.OpAct, act, &res); err != nil {
		t.Fatalf("admin dry-run act: %v", err)
	}
	actors := providerAudits(t, h.url, act.Node)[before:]
	if len(actors) == 0 {
		t.Fatal("the act was not audited")
	}
	for _, a := range actors {
		if !strings.Contains(a, "admin:test-admin") || strings.Contains(a, "mallory") {
			t.Errorf("audit actor %q: want the verified admin:test-admin, not the claimed actor", a)
		}
	}

	// The same signed message again is a replay.
	body, _ := json.Marshal(api.NodeRequest{Node: "vast-29129529"})
	hdr, err := viewer.Sign(bus.APISubject(api.OpSafe), body)
	if err != nil {
		t.Fatal(err)
	}
	msg := &nats.Msg{Subject: bus.APISubject(api.OpSafe), Data: body, Header: hdr}
	var replies []string
	for i := 0; i < 2; i++ {
		m, err := nc.RequestMsgWithContext(ctx, msg)
		if err != nil {
			t.Fatal(err)
		}
		replies = append(replies, string(m.Data))
	}
	if strings.Contains(replies[0], "replayed") || !strings.Contains(replies[1], "replayed") {
		t.Errorf("replay: first %s, second %s", replies[0], replies[1])
	}
}

// meshctl revoke drops a node's agent at once; it cannot reconnect, its
// record stays, and the revocation is audited with who asked.
func TestMeshctlRevokeDropsNode(t *testing.T) {
	h := startCoordinator(t, coordinator.Config{})
	startAgent(t, []string{h.url}, fakeNode{id: "vast-5", provider: "vast", instance: "5", root: t.TempDir()}, "")
	startAgent(t, []string{h.url}, fakeNode{id: "vast-6", provider: "vast", instance: "6", root: t.TempDir()}, "")
	waitState(t, h.url, "vast-5", mesh.StateHealthy, 10*time.Second)
	waitState(t, h.url, "vast-6", mesh.StateHealthy, 10*time.Second)
	out, err := run(t, h.url, "", "revoke", "vast-5")
	if err != nil || !strings.Contains(out, "revoked vast-5") {
		t.Fatalf("meshctl revoke: %v %s", err, out)
	}
	// Its heartbeats stop reaching the bus (the agent is dropped and refused).
	waitState(t, h.url, "vast-5", mesh.StateDead, 15*time.Second)
	sb := testutil.Lookup(h.url)
	if nc, err := sb.Connect(t, []string{h.url}, auth.RoleNode, "vast-5", nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Fatal("revoked node reconnected")
	}
	st := status(t, h.url)
	if _, ok := nodeIn(st, "vast-5"); !ok {
		t.Fatal("the revoked node's record is gone")
	}
	if r, _ := nodeIn(st, "vast-6"); r.State != mesh.StateHealthy {
		t.Errorf("vast-6 is %s after vast-5's revocation", r.State)
	}
	// Revoking needs the admin role.
	viewerArgs := []string{"revoke", "vast-6", "--nats-url", h.url, "--creds", sb.Creds(t, auth.RoleViewer, "vera"), "--ca", sb.CAFile()}
	var buf strings.Builder
	root := meshctl.NewRoot(&buf, &buf)
	root.SetArgs(viewerArgs)
	if err := root.Execute(); err == nil {
		t.Fatal("a viewer revoked")
	}
	waitState(t, h.url, "vast-6", mesh.StateHealthy, 5*time.Second)
}

// TestRetiredNodeRevoked: a host the inventory marks `status: retired`
// keeps no working credential. When its agent (with a credential issued
// earlier) speaks, the leader revokes it by itself: the connection is
// dropped, a reconnect is refused, the revoke is audited with the
// inventory's reason, and the record stays. A host marked offline keeps
// its credential (it comes back).
func TestRetiredNodeRevoked(t *testing.T) {
	inv, err := config.Parse("inv.yaml", []byte("hosts:\n  vast-old: {provider: vast, status: retired}\n  vast-off: {provider: vast, status: offline}\n"))
	if err != nil {
		t.Fatal(err)
	}
	h := startCoordinator(t, coordinator.Config{Inventory: inv})
	sb := testutil.Lookup(h.url)
	for _, node := range []string{"vast-old", "vast-off"} {
		a := newAttacker(t, h.url, node)
		a.publish(node, bus.KindHello, 1, hello("198.51.100.7", "root", ""))
	}
	testutil.Eventually(t, 30*time.Second, func() error {
		nc, err := sb.Connect(t, []string{h.url}, auth.RoleNode, "vast-old", nats.MaxReconnects(0))
		if err == nil {
			nc.Close()
			return errors.New("vast-old still connects")
		}
		return nil
	})
	nc, err := sb.Connect(t, []string{h.url}, auth.RoleNode, "vast-off", nats.MaxReconnects(0))
	if err != nil {
		t.Fatalf("an offline host lost its credential: %v", err)
	}
	nc.Close()
	out, err := run(t, h.url, "", "audit", "--kind", "revoke", "--json")
	if err != nil || !strings.Contains(out, "the inventory says status retired") || strings.Contains(out, "vast-off") {
		t.Fatalf("revoke audit: %v\n%s", err, out)
	}
	if _, ok := nodeIn(status(t, h.url), "vast-old"); !ok {
		t.Fatal("the retired node's record is gone")
	}
}
