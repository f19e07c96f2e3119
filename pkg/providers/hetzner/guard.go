package hetzner

import (
	"context"
	"errors"
	"sort"
	"strings"
	"sync"

	"github.com/ringmesh/ringmesh/pkg/providers"
)

// ErrProtected is returned (wrapped in a *providers.Error of KindInvalid, Code
// "voter_protected") when Stop or Terminate targets a server in the VoterGuard
// set and the context carries no override. Match with errors.Is.
var ErrProtected = errors.New("server is a protected voter")

// VoterGuard is the set of Hetzner servers that must not be stopped or
// terminated by automation: the always-on CPU voters that run the NATS cluster
// members, gossip seeds and coordinator replicas (docs/ARCHITECTURE.md §2, "voter"; the
// original system kept 3 Hetzner nodes for voter quorum). Entries match a
// server's numeric ID ("42") or its name ("hetzner-cpu1"). The coordinator
// owns the set and may replace it at any time (Set); it is safe for
// concurrent use. A nil *VoterGuard protects nothing.
type VoterGuard struct {
	mu  sync.RWMutex
	ids map[string]struct{}
}

// NewVoterGuard returns a guard protecting the given server IDs or names.
func NewVoterGuard(idsOrNames ...string) *VoterGuard {
	g := &VoterGuard{}
	g.Set(idsOrNames)
	return g
}

// Set replaces the protected set (server IDs and/or names; blanks ignored).
func (g *VoterGuard) Set(idsOrNames []string) {
	m := make(map[string]struct{}, len(idsOrNames))
	for _, v := range idsOrNames {
		if v = strings.TrimSpace(v); v != "" {
			m[v] = struct{}{}
		}
	}
	g.mu.Lock()
	g.ids = m
	g.mu.Unlock()
}

// Protected reports whether any of the keys (server ID, server name) is protected.
func (g *VoterGuard) Protected(keys ...string) bool {
	if g == nil {
		return false
	}
	g.mu.RLock()
	defer g.mu.RUnlock()
	for _, k := range keys {
		if k == "" {
			continue
		}
		if _, ok := g.ids[k]; ok {
			return true
		}
	}
	return false
}

// List returns the protected IDs/names, sorted.
func (g *VoterGuard) List() []string {
	if g == nil {
		return nil
	}
	g.mu.RLock()
	defer g.mu.RUnlock()
	out := make([]string, 0, len(g.ids))
	for k := range g.ids {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// The Hetzner server label that marks a voter, for servers the inventory
// does not list in p2p_voters (or lists under another name):
//
//	ringmesh.io/role=voter   (the documented form)
//	role=voter               (also accepted: the plain form operators use)
//
// A server so labelled is protected like a p2p_voters member: no stop or
// terminate without an explicit override. Values are compared
// case-insensitively after trimming.
const (
	VoterLabel      = "ringmesh.io/role"
	VoterLabelShort = "role"
	VoterLabelValue = "voter"
)

// IsVoterLabelled reports whether Hetzner labels mark a server a voter
// (VoterLabel or VoterLabelShort = VoterLabelValue).
func IsVoterLabelled(labels map[string]string) bool {
	for _, k := range []string{VoterLabel, VoterLabelShort} {
		if v, ok := labels[k]; ok && strings.EqualFold(strings.TrimSpace(v), VoterLabelValue) {
			return true
		}
	}
	return false
}

// WithOverride returns a context that lets Stop and Terminate act on a
// protected voter: providers.WithOverride (reason required, logged with the
// action).
func WithOverride(ctx context.Context, reason string) context.Context {
	return providers.WithOverride(ctx, reason)
}

// OverrideReason returns the override reason carried by ctx, if any
// (providers.OverrideReason).
func OverrideReason(ctx context.Context) (string, bool) { return providers.OverrideReason(ctx) }
