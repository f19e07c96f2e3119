// Package wire is ringmesh's trust boundary for the bus: every inbound
// message (agent events on mesh.v1.evt.<node>.<kind>, voter gossip
// observations on mesh.v1.gossip.<voter>, coordinator commands on
// mesh.v1.cmd.<node>.<verb>) is bounded in size, validated against its JSON
// Schema (schemas/, which carries the patterns, lengths, item counts and
// numeric ranges of pkg/events) and decoded exactly once here, then checked
// for what a schema cannot say: the subject's node, the envelope's node and
// the message ID's node are the same; a gossip observation is on its
// voter's own subject; timestamps are near the bus's clock.
//
// It depends only on the standard library, pkg/events (types), pkg/paths
// and the schema validator, so it can be fuzzed and audited on its own.
package wire

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/ringmesh/ringmesh/pkg/events"
	"github.com/ringmesh/ringmesh/schemas"
)

// Subject prefixes the boundary parses (the same as pkg/bus's).
const (
	prefix        = "mesh.v1"
	eventsPrefix  = prefix + ".evt."
	gossipPrefix  = prefix + ".gossip."
	commandPrefix = prefix + ".cmd."
)

// Limits bound what Decode accepts.
type Limits struct {
	// MaxBytes is the largest message accepted (default DefaultMaxBytes).
	MaxBytes int
	// MaxAge is how far before the bus time an envelope's ts may lie
	// (default 7 days: an agent's outbox replays what it queued while the
	// bus was away).
	MaxAge time.Duration
	// MaxAhead is how far after the bus time it may lie (default 5 min of clock skew).
	MaxAhead time.Duration
}

// DefaultMaxBytes is the default message size limit: a heartbeat of a
// 64-GPU box is under 40 KiB.
const DefaultMaxBytes = 128 << 10

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	if l.MaxAge <= 0 {
		l.MaxAge = 7 * 24 * time.Hour
	}
	if l.MaxAhead <= 0 {
		l.MaxAhead = 5 * time.Minute
	}
	return l
}

// Message is one decoded, validated inbound message. Exactly one body
// pointer is set, the one of Kind.
type Message struct {
	Subject string
	// Kind is the event kind ("hello", ..., "bye"), "gossip" or "command".
	Kind string
	// Node is the node the subject names: the agent of an event, the voter
	// of a gossip observation, the addressee of a command.
	Node string
	// ID is the envelope ID; Boot and Seq are parsed from an event's ID
	// ("<node>:<boot>:<seq>").
	ID   string
	Boot string
	Seq  uint64
	// TS is the envelope's timestamp (the sender's clock).
	TS time.Time
	// Sender is the envelope's node: the subject's node for events and
	// gossip, the issuing coordinator for a command.
	Sender string

	Hello     *events.Hello
	Heartbeat *events.Heartbeat
	Health    *events.Health
	Preempt   *events.Preempt
	Sync      *events.Sync
	Bye       *events.Bye
	Gossip    *events.Gossip
	Command   *events.Command
}

// Error is a refused message; Reason names the place and the cause.
type Error struct{ Reason string }

func (e *Error) Error() string { return e.Reason }

func refuse(format string, args ...any) error { return &Error{Reason: fmt.Sprintf(format, args...)} }

// Decoder decodes inbound messages; it is safe for concurrent use.
type Decoder struct {
	val *schemas.Validator
	lim Limits
}

// NewDecoder compiles the committed schemas.
func NewDecoder(lim Limits) (*Decoder, error) {
	v, err := schemas.NewValidator()
	if err != nil {
		return nil, err
	}
	return &Decoder{val: v, lim: lim.withDefaults()}, nil
}

// Limits returns the limits in force.
func (d *Decoder) Limits() Limits { return d.lim }

// eventKinds are the kinds agents publish on mesh.v1.evt.<node>.<kind>.
var eventKinds = map[string]bool{"hello": true, "heartbeat": true, "health": true, "preempt": true, "sync": true, "bye": true}

// ParseSubject splits an inbound subject into its kind and node.
func ParseSubject(subj string) (kind, node string, err error) {
	switch {
	case strings.HasPrefix(subj, eventsPrefix):
		rest := strings.Split(strings.TrimPrefix(subj, eventsPrefix), ".")
		if len(rest) != 2 {
			return "", "", refuse("bad subject %q: want mesh.v1.evt.<node>.<kind>", clip(subj))
		}
		if !eventKinds[rest[1]] {
			return "", "", refuse("bad subject %q: unknown event kind %q", clip(subj), clip(rest[1]))
		}
		node, kind = rest[0], rest[1]
	case strings.HasPrefix(subj, gossipPrefix):
		node, kind = strings.TrimPrefix(subj, gossipPrefix), "gossip"
	case strings.HasPrefix(subj, commandPrefix):
		rest := strings.Split(strings.TrimPrefix(subj, commandPrefix), ".")
		if len(rest) != 2 {
			return "", "", refuse("bad subject %q: want mesh.v1.cmd.<node>.<verb>", clip(subj))
		}
		node, kind = rest[0], "command"
	default:
		return "", "", refuse("bad subject %q: not an inbound ringmesh subject", clip(subj))
	}
	if !events.Match("node", node) {
		return "", "", refuse("bad subject %q: invalid node ID %q", clip(subj), clip(node))
	}
	return kind, node, nil
}

// ParseMessageID splits "<node>:<boot>:<seq>".
func ParseMessageID(id string) (node, boot string, seq uint64, err error) {
	parts := strings.Split(id, ":")
	if len(parts) != 3 || !events.Match("node", parts[0]) || parts[1] == "" {
		return "", "", 0, refuse("message id %q: want <node>:<boot>:<seq>", clip(id))
	}
	seq, perr := strconv.ParseUint(parts[2], 10, 64)
	if perr != nil {
		return "", "", 0, refuse("message id %q: bad seq", clip(id))
	}
	return parts[0], parts[1], seq, nil
}

type envelope[T any] struct {
	Schema string    `json:"schema"`
	ID     string    `json:"id"`
	Node   string    `json:"node"`
	TS     time.Time `json:"ts"`
	Body   T         `json:"body"`
}

func decodeBody[T any](data []byte, m *Message) (*T, error) {
	var env envelope[T]
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&env); err != nil {
		return nil, refuse("decode %s: %v", m.Kind, err)
	}
	m.ID, m.TS, m.Sender = env.ID, env.TS, env.Node
	if m.Kind != "command" && env.Node != m.Node {
		return nil, refuse("envelope node %q does not match subject node %q", clip(env.Node), m.Node)
	}
	return &env.Body, nil
}

// Decode bounds, validates and decodes one inbound message. busTime is
// when the bus stored it (zero = do not check timestamps). The error is an
// *Error naming the reason; nothing in data is trusted before it returns nil.
func (d *Decoder) Decode(subject string, data []byte, busTime time.Time) (Message, error) {
	if len(data) > d.lim.MaxBytes {
		return Message{}, refuse("message of %d bytes exceeds the %d-byte limit", len(data), d.lim.MaxBytes)
	}
	kind, node, err := ParseSubject(subject)
	if err != nil {
		return Message{}, err
	}
	if err := d.val.Validate(kind, data); err != nil {
		return Message{}, refuse("schema %s.%s: %v", prefix, kind, err)
	}
	m := Message{Subject: subject, Kind: kind, Node: node}
	switch kind {
	case "hello":
		m.Hello, err = decodeBody[events.Hello](data, &m)
	case "heartbeat":
		m.Heartbeat, err = decodeBody[events.Heartbeat](data, &m)
	case "health":
		m.Health, err = decodeBody[events.Health](data, &m)
	case "preempt":
		m.Preempt, err = decodeBody[events.Preempt](data, &m)
	case "sync":
		m.Sync, err = decodeBody[events.Sync](data, &m)
	case "bye":
		m.Bye, err = decodeBody[events.Bye](data, &m)
	case "gossip":
		m.Gossip, err = decodeBody[events.Gossip](data, &m)
	case "command":
		m.Command, err = decodeBody[events.Command](data, &m)
	}
	if err != nil {
		return Message{}, err
	}
	if eventKinds[kind] {
		idNode, boot, seq, err := ParseMessageID(m.ID)
		if err != nil {
			return Message{}, err
		}
		if idNode != node {
			return Message{}, refuse("message id node %q differs from subject node %q", idNode, node)
		}
		m.Boot, m.Seq = boot, seq
	}
	if kind == "gossip" && m.Gossip.Voter != node {
		return Message{}, refuse("gossip observation by voter %q published on %q: a voter reports on its own subject only", m.Gossip.Voter, clip(subject))
	}
	if !busTime.IsZero() {
		if err := d.near("ts", m.TS, busTime); err != nil {
			return Message{}, err
		}
		switch {
		case m.Heartbeat != nil && !m.Heartbeat.Health.Time.IsZero():
			if err := d.near("body.health.time", m.Heartbeat.Health.Time, busTime); err != nil {
				return Message{}, err
			}
		case m.Preempt != nil:
			if m.Preempt.Deadline.Before(m.TS.Add(-time.Hour)) || m.Preempt.Deadline.After(m.TS.Add(48*time.Hour)) {
				return Message{}, refuse("body.deadline %s is not within [ts-1h, ts+48h] of ts %s", m.Preempt.Deadline.UTC().Format(time.RFC3339), m.TS.UTC().Format(time.RFC3339))
			}
		}
	}
	return m, nil
}

func (d *Decoder) near(what string, t, bus time.Time) error {
	if t.Before(bus.Add(-d.lim.MaxAge)) || t.After(bus.Add(d.lim.MaxAhead)) {
		return refuse("%s %s is not within [-%s, +%s] of the bus time %s", what, t.UTC().Format(time.RFC3339), d.lim.MaxAge, d.lim.MaxAhead, bus.UTC().Format(time.RFC3339))
	}
	return nil
}

// CheckRemoteDir accepts a sync target's remote directory only when it is
// clean (path.Clean leaves it unchanged), has no ".." element, matches the
// path pattern and lies under base ("" = any such directory): a coordinator
// (or whoever forged its command) cannot make an agent write outside the
// target's incoming directory.
func CheckRemoteDir(dir, base string) error {
	if dir == "" || !events.ValidPath(dir) || len(dir) > 1024 {
		return fmt.Errorf("remote_dir %q: want a path of [A-Za-z0-9._+@~/=,-] (at most 1024 bytes)", clip(dir))
	}
	if path.Clean(dir) != dir || dir == "." || dir == "/" || strings.HasPrefix(dir, "~") {
		return fmt.Errorf("remote_dir %q is not a clean directory path (want %q)", clip(dir), path.Clean(dir))
	}
	for _, el := range strings.Split(dir, "/") {
		if el == ".." {
			return fmt.Errorf("remote_dir %q climbs out with \"..\"", clip(dir))
		}
	}
	if base != "" && dir != base && !strings.HasPrefix(dir, strings.TrimSuffix(base, "/")+"/") {
		return fmt.Errorf("remote_dir %q is not under the target's incoming directory %q", clip(dir), base)
	}
	return nil
}

func clip(s string) string {
	s = events.StripControl(s)
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
