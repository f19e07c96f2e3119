package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/auth"
	"github.com/ringmesh/ringmesh/pkg/events"
	"github.com/ringmesh/ringmesh/pkg/fleet"
	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/registry"
)

// apiEnroll issues a node credential for a trusted node (meshctl enroll):
// the reply holds the creds and the CA; the issue is audited (never the
// secret itself, only the user's public key).
func (c *Coordinator) apiEnroll(ctx context.Context, req []byte) (any, error) {
	var r api.EnrollRequest
	if err := json.Unmarshal(req, &r); err != nil || r.Node == "" {
		return nil, errors.New(`bad request: want {"node": "<node ID>"}`)
	}
	if err := mesh.ValidateNodeID(r.Node); err != nil {
		return nil, fmt.Errorf("bad request: %w", err)
	}
	if c.cfg.Auth == nil {
		return nil, errors.New("this coordinator has no issuer store (--auth-dir); issue the node's credential with `meshctl creds issue --role node --name NODE` on a voter")
	}
	rec, ok := c.reg.Get(r.Node)
	if !ok || rec.Quarantined {
		// A box rented under its node ID: its provider's listing vouches
		// for it (the same admission as for an agent that names itself so).
		rep := c.report.Load()
		var iv fleet.InstanceView
		found := false
		if rep != nil {
			_, iv, found = fleet.NamedInstanceEntry(*rep, r.Node)
		}
		if !found {
			return nil, fmt.Errorf("node %s is not known to the coordinator: add it to the inventory (distributed_hosts.yaml) or name its instance %s at its provider first (meshctl instances shows what the providers list)", r.Node, r.Node)
		}
		c.reg.Admit(r.Node, "provider:"+iv.Provider+"/"+iv.ID)
	}
	if r.CurrentKey != "" && c.validNodeKey(r.Node, r.CurrentKey) {
		return api.Enrolled{Node: r.Node, PublicKey: r.CurrentKey, Valid: true, Sync: c.syncSettings()}, nil
	}
	creds, err := c.cfg.Auth.Issue(auth.RoleNode, r.Node)
	if err != nil {
		return nil, err
	}
	tok, err := jwt.ParseDecoratedJWT(creds)
	if err != nil {
		return nil, fmt.Errorf("issued credential: %w", err)
	}
	uc, err := jwt.DecodeUserClaims(tok)
	if err != nil {
		return nil, fmt.Errorf("issued credential: %w", err)
	}
	ca, err := os.ReadFile(c.cfg.Auth.CAFile())
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	c.reg.Admit(r.Node, "enrolled")
	c.audit(ctx, "enroll", "enroll:"+r.Node+":"+uc.Subject, events.Audit{Kind: "enroll", Node: r.Node,
		Cause: "node credential issued for enrollment", Actor: actor(ctx, ""), Detail: map[string]string{"key": uc.Subject}})
	return api.Enrolled{Node: r.Node, PublicKey: uc.Subject, Creds: string(creds), CAPEM: string(ca), Sync: c.syncSettings()}, nil
}

// validNodeKey reports whether key is an unrevoked node credential issued to node.
func (c *Coordinator) validNodeKey(node, key string) bool {
	users, err := c.cfg.Auth.Users()
	if err != nil {
		return false
	}
	for _, u := range users {
		if u.PublicKey == key {
			return u.Name == node && u.Role == auth.RoleNode && u.RevokedAt.IsZero()
		}
	}
	return false
}

// credentialsOf returns the issued credentials (live and revoked) named
// name in the issuer store; an error when the store cannot be read.
func (c *Coordinator) credentialsOf(name string) ([]auth.Issued, error) {
	users, err := c.cfg.Auth.Users()
	if err != nil {
		return nil, err
	}
	var out []auth.Issued
	for _, u := range users {
		if u.Name == name {
			out = append(out, u)
		}
	}
	return out, nil
}

// revokedName reports whether name has credentials and all are revoked.
func (c *Coordinator) revokedName(name string) bool {
	if c.cfg.Auth == nil {
		return false
	}
	creds, err := c.credentialsOf(name)
	if err != nil {
		return false
	}
	for _, u := range creds {
		if u.RevokedAt.IsZero() {
			return false
		}
	}
	return len(creds) > 0
}

// apiForget removes a departed node from the registry and from KV
// mesh_nodes (meshctl forget); a node still in the inventory gets a fresh
// record (state unknown) instead. A node with a live agent is refused
// unless its credentials are revoked (then it can no longer speak);
// voters and this coordinator are never forgotten. Audited.
func (c *Coordinator) apiForget(ctx context.Context, req []byte) (any, error) {
	var r api.ForgetRequest
	if err := json.Unmarshal(req, &r); err != nil || r.Node == "" {
		return nil, errors.New(`bad request: want {"node": "<node ID>"}`)
	}
	if err := mesh.ValidateNodeID(r.Node); err != nil {
		return nil, fmt.Errorf("bad request: %w", err)
	}
	rec, ok := c.reg.Get(r.Node)
	if !ok {
		return nil, fmt.Errorf("node %s is not in the registry", r.Node)
	}
	if rec.Voter || r.Node == c.cfg.Name {
		return nil, fmt.Errorf("refusing to forget %s: it is a voter/coordinator; remove it from p2p_voters in the inventory instead", r.Node)
	}
	revoked := c.revokedName(r.Node)
	if (registry.Live(rec.State) || rec.State == mesh.StatePreempting) && !revoked {
		return nil, fmt.Errorf("refusing to forget %s: it is %s (its agent is live); stop it, or revoke it first with `meshctl revoke %s`", r.Node, rec.State, r.Node)
	}
	if _, ok := c.reg.Remove(r.Node); !ok {
		return nil, fmt.Errorf("node %s is not in the registry", r.Node)
	}
	if rec.Configured {
		// Still in the inventory: start its record afresh, as a restart
		// would (Seed adds only what is missing, and stores it).
		c.reg.Seed(c.cfg.Inventory, c.cfg.Now())
	} else if c.kv != nil {
		if err := c.kv.Delete(ctx, r.Node); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, fmt.Errorf("removed from the registry, but not from KV: %w (it comes back on restart; try again)", err)
		}
	}
	d := map[string]string{"state": string(rec.State)}
	if revoked {
		d["revoked"] = "true"
	}
	c.audit(ctx, "forget", "forget:"+r.Node+":"+c.cfg.Now().UTC().Format("20060102T150405.000000000"), events.Audit{Kind: "forget", Node: r.Node,
		Cause: "departed node removed from the registry", Actor: actor(ctx, ""), Detail: d})
	return api.Forgotten{Node: r.Node, State: string(rec.State), Configured: rec.Configured}, nil
}

// syncSettings are the inventory's data-protection settings for enrolled
// agents (nil when it sets none).
func (c *Coordinator) syncSettings() *api.SyncSettings {
	inv := c.cfg.Inventory
	if inv == nil {
		return nil
	}
	s := api.SyncSettings{ReplicationTarget: inv.SyncRouting.ReplicationTarget, MaxConcurrentSyncs: inv.AutoSync.MaxConcurrentSyncs,
		DataClasses: inv.AutoSync.DataClasses}
	if s.ReplicationTarget == 0 && s.MaxConcurrentSyncs == 0 && len(s.DataClasses) == 0 {
		return nil
	}
	return &s
}
