// Package api is the request/reply contract between meshctl and the
// coordinator on mesh.v1.api.<op> (NATS micro service "ringmesh"). Every
// reply is a JSON Reply; Error is set when the operation failed.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/cost"
	"github.com/ringmesh/ringmesh/pkg/events"
	"github.com/ringmesh/ringmesh/pkg/fleet"
	"github.com/ringmesh/ringmesh/pkg/gossip/gossipview"
	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/paths"
	"github.com/ringmesh/ringmesh/pkg/registry"
	"github.com/ringmesh/ringmesh/pkg/sync/route"
)

// Operation names (the <op> of mesh.v1.api.<op>).
const (
	OpStatus      = "status"
	OpDeadLetters = "dead_letters"
)

// Reply wraps every answer.
type Reply struct {
	Error string          `json:"error,omitempty"`
	Data  json.RawMessage `json:"data,omitempty"`
}

// StatusRequest asks for one page of OpStatus: the node rows from Offset
// (in node ID order), at most Limit of them (0 = as many as fit). A reply
// never exceeds the bus's max payload: the coordinator stops a page early
// when the next row would not fit, and says where to go on.
type StatusRequest struct {
	Offset int `json:"offset,omitempty"`
	Limit  int `json:"limit,omitempty"`
	// States and Providers, when not empty, keep only nodes in one of those
	// states / of one of those providers (at most 32 each).
	States    []mesh.NodeState `json:"states,omitempty"`
	Providers []string         `json:"providers,omitempty"`
	// Nodes, when not empty, keeps only these node IDs (at most 32): one
	// node's detail without the whole table (meshctl status NODE).
	Nodes []string `json:"nodes,omitempty"`
	// ProblemsFirst orders nodes by how much they need attention (see
	// mesh.StateSeverity), then by name, instead of by name alone.
	ProblemsFirst bool `json:"problems_first,omitempty"`
}

// Status is the answer to OpStatus. Nodes holds one page of rows; Counts
// and Total cover the whole registry.
type Status struct {
	Coordinator string `json:"coordinator"`
	// Version is the answering coordinator's release (pkg/version; meshctl
	// enroll installs agents of this version).
	Version     string                 `json:"version,omitempty"`
	Leader      string                 `json:"leader,omitempty"`
	Voters      []VoterStatus          `json:"voters,omitempty"`
	GeneratedAt time.Time              `json:"generated_at"`
	Thresholds  ThresholdsView         `json:"thresholds"`
	Counts      map[mesh.NodeState]int `json:"counts"`
	Nodes       []registry.Record      `json:"nodes"`
	// Total is the number of nodes in the registry; Offset is the index of
	// Nodes[0]; NextOffset is where the next page starts (0 = this is the last).
	Total      int `json:"total"`
	Offset     int `json:"offset,omitempty"`
	NextOffset int `json:"next_offset,omitempty"`
	// Quarantined counts nodes neither in the inventory nor admitted.
	Quarantined int `json:"quarantined,omitempty"`
	// ProviderCounts counts the whole registry's nodes by provider.
	ProviderCounts map[string]int `json:"provider_counts,omitempty"`
	// Matched is how many nodes the request's filters kept (= Total
	// without filters); pages cover these.
	Matched int `json:"matched"`
}

// VoterStatus is one voter's health as the answering coordinator sees it.
type VoterStatus struct {
	Name    string `json:"name"`
	State   string `json:"state"`
	Leader  bool   `json:"leader"`
	Server  string `json:"server,omitempty"`  // the NATS server its coordinator is connected to
	Pending uint64 `json:"pending,omitempty"` // events its consumer has not received yet
}

// ThresholdsView reports the liveness rules in seconds.
type ThresholdsView struct {
	SuspectAfterSeconds float64 `json:"suspect_after_seconds"`
	DeadAfterSeconds    float64 `json:"dead_after_seconds"`
}

// DeadLettersRequest asks for the newest Limit dead letters.
type DeadLettersRequest struct {
	Limit int `json:"limit"`
}

// DeadLetters is the answer to OpDeadLetters, oldest first.
type DeadLetters struct {
	Items []events.DeadLetter `json:"items"`
}

// Client calls the coordinator API over a NATS connection.
type Client struct {
	NC *nats.Conn
	// Sign, when set, adds the headers that prove who asks (auth.Signer);
	// a coordinator with authentication refuses unsigned requests.
	Sign func(subject string, body []byte) (nats.Header, error)
}

// ErrRefused means the bus refused the request: the credentials' role may
// not publish to that operation's subject (e.g. a node's own creds).
var ErrRefused = errors.New("refused by the bus")

// ErrNoCoordinator means no coordinator answered.
var ErrNoCoordinator = errors.New("no coordinator answered (is it running, and is --nats-url right?)")

// Call sends req to op and decodes the reply's data into out.
func (c Client) Call(ctx context.Context, op string, req, out any) error {
	var body []byte
	if req != nil {
		var err error
		if body, err = json.Marshal(req); err != nil {
			return err
		}
	}
	m := &nats.Msg{Subject: bus.APISubject(op), Data: body}
	if c.Sign != nil {
		h, err := c.Sign(m.Subject, body)
		if err != nil {
			return fmt.Errorf("%s: sign request: %w", op, err)
		}
		m.Header = h
	}
	msg, err := c.NC.RequestMsgWithContext(ctx, m)
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
			// A request the bus refused never reaches a coordinator either;
			// say which it was.
			if le := c.NC.LastError(); le != nil && errors.Is(le, nats.ErrPermissionViolation) && strings.Contains(le.Error(), m.Subject) {
				return fmt.Errorf("%s: %w: %v (the role of these credentials does not allow this operation)", op, ErrRefused, le)
			}
			return fmt.Errorf("%s: %w", op, ErrNoCoordinator)
		}
		return fmt.Errorf("%s: %w", op, err)
	}
	var rep Reply
	if err := json.Unmarshal(msg.Data, &rep); err != nil {
		return fmt.Errorf("%s: bad reply: %w", op, err)
	}
	if rep.Error != "" {
		return fmt.Errorf("%s: %s", op, rep.Error)
	}
	if out != nil && len(rep.Data) > 0 {
		if err := json.Unmarshal(rep.Data, out); err != nil {
			return fmt.Errorf("%s: bad reply data: %w", op, err)
		}
	}
	return nil
}

// Status fetches the whole cluster picture, every page (StatusAll).
func (c Client) Status(ctx context.Context) (Status, error) { return c.StatusAll(ctx) }

// maxStatusPages bounds StatusAll (a registry of 1000 pages is not a cluster).
const maxStatusPages = 1000

// StatusAll fetches every page of OpStatus and returns them merged.
func (c Client) StatusAll(ctx context.Context) (Status, error) {
	return c.StatusMatching(ctx, StatusRequest{})
}

// StatusMatching fetches every page of OpStatus for req's filters and
// order (req.Offset and req.Limit are ignored) and returns them merged.
func (c Client) StatusMatching(ctx context.Context, req StatusRequest) (Status, error) {
	var all Status
	offset := 0
	for page := 0; page < maxStatusPages; page++ {
		var s Status
		req.Offset, req.Limit = offset, 0
		if err := c.Call(ctx, OpStatus, req, &s); err != nil {
			return Status{}, err
		}
		nodes := append(all.Nodes, s.Nodes...)
		all = s
		all.Nodes, all.Offset, all.NextOffset = nodes, 0, 0
		if s.NextOffset <= offset {
			return all, nil
		}
		offset = s.NextOffset
	}
	return Status{}, fmt.Errorf("%s: more than %d pages", OpStatus, maxStatusPages)
}

// DeadLetters fetches the newest limit invalid messages.
func (c Client) DeadLetters(ctx context.Context, limit int) (DeadLetters, error) {
	var d DeadLetters
	err := c.Call(ctx, OpDeadLetters, DeadLettersRequest{Limit: limit}, &d)
	return d, err
}

// More operations.
const (
	OpInstances = "instances"
	OpAct       = "act" // answered by the leader only
	OpSSHConfig = "ssh_config"
	OpPaths     = "paths"
	OpCost      = "cost"
)

// InstancesRequest filters OpInstances by provider ("" = all).
type InstancesRequest struct {
	Provider string `json:"provider,omitempty"`
}

// NodeRequest names one node.
type NodeRequest struct {
	Node string `json:"node"`
}

// SSHConfig is the answer to OpSSHConfig.
type SSHConfig struct {
	Entries []fleet.SSHEntry `json:"entries"`
	Text    string           `json:"text"`
}

// Paths is the answer to OpPaths.
type Paths struct {
	Node   string       `json:"node"`
	Layout paths.Layout `json:"layout"`
	Source string       `json:"source"` // "agent" (reported by the node) or "inventory"
}

// CostRequest filters OpCost's accrued history: Since (UTC day
// granularity) keeps the days from Since's day on; zero = everything kept.
type CostRequest struct {
	Since time.Time `json:"since,omitempty"`
}

// Cost is the answer to OpCost. Amounts are per currency (USD and EUR are never added).
type Cost struct {
	Current       []cost.InstanceCost    `json:"current"`
	BurnRate      map[string]float64     `json:"burn_rate_per_hour"`
	UnknownPriced int                    `json:"unknown_priced_instances"`
	Total         cost.Totals            `json:"total"`
	ByNode        map[string]cost.Totals `json:"by_node"`
	ByProvider    map[string]cost.Totals `json:"by_provider"`
	ByDay         map[string]cost.Totals `json:"by_day"`
	// Since echoes the request's filter (zero = all history); Budget is the
	// inventory's budget caps with today's spend against them (nil = none).
	Since  time.Time   `json:"since,omitempty"`
	Budget *CostBudget `json:"budget,omitempty"`
}

// OpMembers lists the gossip members as the answering voter sees them.
const OpMembers = "members"

// Members is the answer to OpMembers.
type Members struct {
	Voter   string                  `json:"voter"`
	Members []gossipview.MemberInfo `json:"members"`
}

// Sync-related operations.
const (
	OpSync   = "sync"              // push now (leader)
	OpSafe   = "safe_to_terminate" // the gate every destructive action passes
	OpRoutes = "routes"            // the router's plan per ephemeral node, with reasons
)

// SyncRequest asks node's agent to push now; progress arrives on
// mesh.v1.evt.<node>.sync with trigger "command:<request_id>".
type SyncRequest struct {
	Node      string `json:"node"`
	RequestID string `json:"request_id"`
}

// SyncAccepted answers OpSync.
type SyncAccepted struct {
	Node    string `json:"node"`
	Trigger string `json:"trigger"`
}

// Safe answers OpSafe.
type Safe struct {
	Node   string `json:"node"`
	Safe   bool   `json:"safe"`
	Reason string `json:"reason"`
}

// Routes answers OpRoutes.
type Routes struct {
	Plans map[string][]route.Choice `json:"plans"`
}

// OpRevoke revokes every credential issued to a node, coordinator or
// operator (admin only, leader): the bus drops its connections at once.
const OpRevoke = "revoke"

// RevokeRequest names whose credentials to revoke.
type RevokeRequest struct {
	Name string `json:"name"`
}

// Revoked answers OpRevoke: the public keys revoked.
type Revoked struct {
	Name       string   `json:"name"`
	PublicKeys []string `json:"public_keys"`
}
