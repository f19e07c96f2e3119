package bus

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ringmesh/ringmesh/pkg/mesh"
)

// Envelope wraps every bus message (docs/ARCHITECTURE.md §3). ID is also the
// Nats-Msg-Id header (JetStream de-duplication) and the handler's
// idempotency key: "<node>:<boot>:<seq>".
type Envelope struct {
	Schema string          `json:"schema"` // "mesh.v1.<kind>"
	ID     string          `json:"id"`
	Node   string          `json:"node"`
	TS     time.Time       `json:"ts"`
	Body   json.RawMessage `json:"body"`
}

// SchemaName returns "mesh.v1.<kind>".
func SchemaName(kind string) string { return Prefix + "." + kind }

// MessageID builds "<node>:<boot>:<seq>".
func MessageID(node, boot string, seq uint64) string {
	return node + ":" + boot + ":" + strconv.FormatUint(seq, 10)
}

// ParseMessageID splits an ID built by MessageID.
func ParseMessageID(id string) (node, boot string, seq uint64, err error) {
	parts := strings.Split(id, ":")
	if len(parts) != 3 {
		return "", "", 0, fmt.Errorf("message id %q: want <node>:<boot>:<seq>", id)
	}
	if err := mesh.ValidateNodeID(parts[0]); err != nil {
		return "", "", 0, fmt.Errorf("message id %q: %w", id, err)
	}
	seq, err = strconv.ParseUint(parts[2], 10, 64)
	if err != nil {
		return "", "", 0, fmt.Errorf("message id %q: bad seq: %w", id, err)
	}
	return parts[0], parts[1], seq, nil
}

// NewEnvelope marshals body into an envelope stamped with ts (UTC, ms).
func NewEnvelope(kind, id, node string, ts time.Time, body any) (Envelope, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return Envelope{}, fmt.Errorf("marshal %s body: %w", kind, err)
	}
	return Envelope{Schema: SchemaName(kind), ID: id, Node: node, TS: ts.UTC().Truncate(time.Millisecond), Body: b}, nil
}
