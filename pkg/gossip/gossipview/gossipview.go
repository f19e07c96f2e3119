// Package gossipview holds the gossip types that leave a member: the node
// metadata (Meta, its wire form and limits), a member's liveness State and
// MemberInfo, one member as another sees it. They depend on the standard
// library only, so the API (pkg/api) and meshctl can carry a gossip view
// without linking memberlist; pkg/gossip re-exports them.
package gossipview

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ringmesh/ringmesh/pkg/events"
)

// State is a member's liveness as seen by this member.
type State string

// Member states.
const (
	// StateAlive: reachable as far as we know.
	StateAlive State = "alive"
	// StateSuspect: our own probe of it failed recently; not yet declared
	// dead (a hint, see the package documentation).
	StateSuspect State = "suspect"
	// StateDead: declared failed by failure detection.
	StateDead State = "dead"
	// StateLeft: left gracefully.
	StateLeft State = "left"
)

// MemberInfo describes one member in this member's view.
type MemberInfo struct {
	// Name is the node ID.
	Name string `json:"name"`
	// Addr is the gossip address, "ip:port".
	Addr string `json:"addr"`
	// State is alive, suspect, dead or left.
	State State `json:"state"`
	// Meta is the decoded node metadata (zero if undecodable).
	Meta Meta `json:"meta"`
	// Since is when this member observed the current state (local clock).
	Since time.Time `json:"since"`
}

// MetaMaxSize is the largest encoded node metadata memberlist carries,
// in bytes: memberlist.MetaMaxSize, 512 (pkg/gossip's tests check that they
// agree; it is repeated here so this package does not link memberlist).
const MetaMaxSize = 512

// MetaVersion is the metadata format version written by [Meta.Encode].
// Decoders accept any version >= 1 and ignore fields they do not know, so a
// newer agent can add fields without breaking older coordinators.
const MetaVersion uint8 = 1

// Meta is the small, versioned node metadata gossiped with every member:
// role, provider, agent version and identity token only (rich state goes
// over JetStream).
//
// Wire format: compact JSON with short keys, e.g.
// {"v":1,"r":"agent","p":"vast","av":"0.3.1"}; at most [MetaMaxSize] bytes.
type Meta struct {
	// Version is the format version; 0 means [MetaVersion] when encoding.
	Version uint8 `json:"version"`
	// Role is what the node runs, e.g. "agent" or "coordinator".
	Role string `json:"role,omitempty"`
	// Provider is the node's provider: vast, runpod, vultr, hetzner,
	// lambda, nebius, local or unknown.
	Provider string `json:"provider,omitempty"`
	// AgentVersion is the version of the ringmesh binary.
	AgentVersion string `json:"agent_version,omitempty"`
	// Token binds the member's name to its bus identity (gossip.Config.Sign);
	// set by the member itself, empty without one.
	Token string `json:"token,omitempty"`
}

// metaWire is the on-the-wire form of Meta (short keys keep it compact).
type metaWire struct {
	V  *uint8 `json:"v"`
	R  string `json:"r,omitempty"`
	P  string `json:"p,omitempty"`
	AV string `json:"av,omitempty"`
	T  string `json:"t,omitempty"`
}

// ErrMetaTooLarge is wrapped by the error [Meta.Encode] returns when the
// encoded metadata exceeds [MetaMaxSize].
var ErrMetaTooLarge = errors.New("node meta too large")

// metaTooLargeError reports the size of oversized metadata.
type metaTooLargeError struct{ n int }

func (e metaTooLargeError) Error() string {
	return fmt.Sprintf("gossip: node meta is %d bytes, limit %d", e.n, MetaMaxSize)
}

func (e metaTooLargeError) Unwrap() error { return ErrMetaTooLarge }

// Encode returns the wire form of m. It fails with
// "gossip: node meta is N bytes, limit 512" (wrapping [ErrMetaTooLarge])
// when the result would not fit in memberlist's node metadata.
func (m Meta) Encode() ([]byte, error) {
	v := m.Version
	if v == 0 {
		v = MetaVersion
	}
	b, err := json.Marshal(metaWire{V: &v, R: m.Role, P: m.Provider, AV: m.AgentVersion, T: m.Token})
	if err != nil {
		return nil, fmt.Errorf("gossip: encode node meta: %w", err)
	}
	if len(b) > MetaMaxSize {
		return nil, metaTooLargeError{n: len(b)}
	}
	return b, nil
}

// DecodeMeta parses node metadata written by [Meta.Encode] of this or a
// newer version (unknown fields are ignored). Empty input, input that is not
// a JSON object, a missing or zero version and oversized input are errors.
func DecodeMeta(b []byte) (Meta, error) {
	if len(b) == 0 {
		return Meta{}, errors.New("gossip: node meta is empty")
	}
	if len(b) > MetaMaxSize {
		return Meta{}, metaTooLargeError{n: len(b)}
	}
	if b = bytes.TrimSpace(b); len(b) == 0 || b[0] != '{' {
		return Meta{}, errors.New("gossip: node meta is not a JSON object")
	}
	var w metaWire
	if err := json.Unmarshal(b, &w); err != nil {
		return Meta{}, fmt.Errorf("gossip: decode node meta: %w", err)
	}
	if w.V == nil || *w.V == 0 {
		return Meta{}, errors.New("gossip: node meta has no version")
	}
	// Any member may write its meta: every string is checked against the
	// bus patterns (pkg/events) before it reaches a log, a terminal or a label.
	for _, f := range []struct {
		name, pattern, v string
		max              int
	}{{"role", "token", w.R, 32}, {"provider", "token", w.P, 32}, {"agent version", "text", w.AV, 128}, {"token", "token", w.T, MetaMaxSize}} {
		if len(f.v) > f.max {
			return Meta{}, fmt.Errorf("gossip: node meta %s is %d bytes (at most %d)", f.name, len(f.v), f.max)
		}
		if err := events.Check("gossip: node meta "+f.name, f.pattern, f.v); err != nil {
			return Meta{}, err
		}
	}
	return Meta{Version: *w.V, Role: w.R, Provider: w.P, AgentVersion: w.AV, Token: w.T}, nil
}
