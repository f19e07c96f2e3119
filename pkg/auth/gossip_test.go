package auth_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/pkg/auth"
	"github.com/ringmesh/ringmesh/pkg/gossip"
)

// signerFor issues role/name in iss and loads its creds as a Signer.
func signerFor(t *testing.T, iss *auth.Issuer, r auth.Role, name string) *auth.Signer {
	t.Helper()
	p := filepath.Join(t.TempDir(), name+".creds")
	if err := iss.EnsureCreds(r, name, p); err != nil {
		t.Fatal(err)
	}
	s, err := auth.LoadSigner(p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestGossipVerifierBindsNameRoleAndAddress checks the verifier alone:
// each way a node's credential could be used to claim another gossip
// identity is refused with ErrBadGossipToken.
func TestGossipVerifierBindsNameRoleAndAddress(t *testing.T) {
	iss, err := auth.Open(filepath.Join(t.TempDir(), "auth"))
	if err != nil {
		t.Fatal(err)
	}
	v := auth.NewGossipVerifier(iss)
	node := signerFor(t, iss, auth.RoleNode, "vast-1")
	coord := signerFor(t, iss, auth.RoleCoordinator, "coordinator-hetzner-1")
	other, err := auth.Open(filepath.Join(t.TempDir(), "other"))
	if err != nil {
		t.Fatal(err)
	}
	foreign := signerFor(t, other, auth.RoleCoordinator, "coordinator-hetzner-1")
	tok := func(s *auth.Signer, name, addr string, port int) string {
		x, err := s.GossipToken("c1", name, addr, port)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	if err := v.Verify("c1", "vast-1", "agent", "10.0.0.5", 7946, tok(node, "vast-1", "10.0.0.5", 7946)); err != nil {
		t.Fatalf("honest node refused: %v", err)
	}
	if err := v.Verify("c1", "hetzner-1", "coordinator", "10.0.0.1", 7946, tok(coord, "hetzner-1", "10.0.0.1", 7946)); err != nil {
		t.Fatalf("honest coordinator refused: %v", err)
	}
	for _, c := range []struct {
		what                 string
		cluster, name, role  string
		addr                 string
		port                 int
		token                string
		wantNoToken, wantBad bool
	}{
		{what: "no token", cluster: "c1", name: "vast-1", role: "agent", addr: "10.0.0.5", port: 7946, wantNoToken: true},
		{what: "node claims a voter's name", cluster: "c1", name: "hetzner-1", role: "coordinator", addr: "10.0.0.5", port: 7946, token: tok(node, "hetzner-1", "10.0.0.5", 7946), wantBad: true},
		{what: "node claims role coordinator", cluster: "c1", name: "vast-1", role: "coordinator", addr: "10.0.0.5", port: 7946, token: tok(node, "vast-1", "10.0.0.5", 7946), wantBad: true},
		{what: "replayed from another address", cluster: "c1", name: "vast-1", role: "agent", addr: "192.0.2.9", port: 7946, token: tok(node, "vast-1", "10.0.0.5", 7946), wantBad: true},
		{what: "another cluster", cluster: "c2", name: "vast-1", role: "agent", addr: "10.0.0.5", port: 7946, token: tok(node, "vast-1", "10.0.0.5", 7946), wantBad: true},
		{what: "another issuer's key", cluster: "c1", name: "hetzner-1", role: "coordinator", addr: "10.0.0.1", port: 7946, token: tok(foreign, "hetzner-1", "10.0.0.1", 7946), wantBad: true},
		{what: "garbage", cluster: "c1", name: "vast-1", role: "agent", addr: "10.0.0.5", port: 7946, token: "x.y", wantBad: true},
	} {
		err := v.Verify(c.cluster, c.name, c.role, c.addr, c.port, c.token)
		switch {
		case c.wantNoToken && !errors.Is(err, auth.ErrNoGossipToken):
			t.Errorf("%s: %v, want ErrNoGossipToken", c.what, err)
		case c.wantBad && !errors.Is(err, auth.ErrBadGossipToken):
			t.Errorf("%s: %v, want ErrBadGossipToken", c.what, err)
		}
	}
	good := tok(node, "vast-1", "10.0.0.5", 7946)
	if _, _, err := iss.Revoke("vast-1"); err != nil {
		t.Fatal(err)
	}
	if err := v.Verify("c1", "vast-1", "agent", "10.0.0.5", 7946, good); !errors.Is(err, auth.ErrBadGossipToken) {
		t.Fatalf("revoked node: %v, want ErrBadGossipToken", err)
	}
}

// TestGossipIdentityOnRealMembers: a voter with the verifier admits an
// agent holding its own credential and keeps out a GPU node that holds the
// shared gossip key and a valid node credential but claims to be another
// voter with role coordinator (the attack in the trust issue).
func TestGossipIdentityOnRealMembers(t *testing.T) {
	iss, err := auth.Open(filepath.Join(t.TempDir(), "auth"))
	if err != nil {
		t.Fatal(err)
	}
	key := []byte("0123456789abcdef0123456789abcdef")
	member := func(name, role string, s *auth.Signer, verify bool, seeds ...string) (*gossip.Member, *prometheus.Registry) {
		cfg := gossip.Config{NodeName: name, BindAddr: "127.0.0.1", Profile: gossip.ProfileLocal, ClusterLabel: "c1",
			Keys: [][]byte{key}, Seeds: seeds, RejoinInterval: time.Second, LeaveTimeout: time.Second,
			Meta: gossip.Meta{Role: role, Provider: "local", AgentVersion: "test"}, Sign: s.GossipToken}
		if verify {
			cfg.VerifyPeer = auth.NewGossipVerifier(iss).Verify
		}
		reg := prometheus.NewRegistry()
		m, err := gossip.New(cfg, zerolog.Nop(), reg)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- m.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		return m, reg
	}
	voter, reg := member("hetzner-1", "coordinator", signerFor(t, iss, auth.RoleCoordinator, "coordinator-hetzner-1"), true)
	member("vast-1", "agent", signerFor(t, iss, auth.RoleNode, "vast-1"), false, voter.Addr())
	member("hetzner-2", "coordinator", signerFor(t, iss, auth.RoleNode, "vast-2"), false, voter.Addr())
	deadline := time.Now().Add(30 * time.Second)
	for {
		mi, ok := voter.Member("vast-1")
		rejected := counter(t, reg, "ringmesh_gossip_rejected_total", gossip.ReasonIdentity)
		if ok && mi.State == gossip.StateAlive && rejected >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("voter: vast-1 seen=%v (%s), identity rejections %v", ok, mi.State, rejected)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if mi, ok := voter.Member("hetzner-2"); ok {
		t.Fatalf("the impostor voter is in the voter's view: %+v", mi)
	}
}

func counter(t *testing.T, reg *prometheus.Registry, name, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no series %s{reason=%q}", name, reason)
	return 0
}
