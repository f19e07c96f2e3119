package gossip

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/hashicorp/memberlist"
)

// MetaMaxSize is the largest encoded node metadata memberlist carries,
// in bytes (memberlist.MetaMaxSize, 512).
const MetaMaxSize = memberlist.MetaMaxSize

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
	// Token binds the member's name to its bus identity (see
	// [Config.Sign]); set by the member itself, empty without one.
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
	return Meta{Version: *w.V, Role: w.R, Provider: w.P, AgentVersion: w.AV, Token: w.T}, nil
}
