// Package registry keeps the coordinator's picture of the cluster: one
// merged record per node, fed by agent events (hello, heartbeat, health,
// preempt, sync, bye), gossip observations and provider instances, and a
// state machine with a stated rule for every transition (docs/ARCHITECTURE.md §5):
//
//	unknown ─hello→ joining ─heartbeat→ healthy ⇄ degraded
//	healthy/degraded/joining ─no heartbeat for SuspectAfter→ suspect
//	suspect ─no heartbeat for DeadAfter, gossip not alive→ dead
//	suspect ─no heartbeat for DeadAfter, gossip alive→ bus-partitioned
//	suspect ─gossip reports failed→ dead (both signals agree)
//	any ─preempt→ preempting ─bye / deadline / silence→ preempted
//	any ─bye→ left
//	suspect/dead/bus-partitioned/left ─heartbeat→ healthy/degraded ("heartbeat resumed")
//
// A node is dead only when its heartbeats stopped and gossip does not
// contradict it; a node alive in gossip but silent on the bus is
// bus-partitioned; a node that announced preemption is preempted, never dead.
//
// Every event is applied at most once: the registry remembers the highest
// sequence applied per agent boot (message ID "<node>:<boot>:<seq>").
package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/config"
	"github.com/ringmesh/ringmesh/pkg/events"
	"github.com/ringmesh/ringmesh/pkg/health"
	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/paths"
	"github.com/ringmesh/ringmesh/pkg/wire"
)

// Thresholds are the liveness rules. Defaults suit a 5 s heartbeat.
type Thresholds struct {
	// SuspectAfter: no heartbeat for this long makes a live node suspect (default 15 s).
	SuspectAfter time.Duration
	// DeadAfter: no heartbeat for this long makes it dead, or bus-partitioned
	// when gossip still sees it (default 45 s).
	DeadAfter time.Duration
	// PreemptGrace: a preempting node that neither said bye nor was heard
	// from for this long after its deadline is preempted (default 5 s).
	PreemptGrace time.Duration
}

// WithDefaults fills zero fields.
func (t Thresholds) WithDefaults() Thresholds {
	if t.SuspectAfter == 0 {
		t.SuspectAfter = 15 * time.Second
	}
	if t.DeadAfter == 0 {
		t.DeadAfter = 45 * time.Second
	}
	if t.PreemptGrace == 0 {
		t.PreemptGrace = 5 * time.Second
	}
	return t
}

// Validate checks the thresholds are ordered.
func (t Thresholds) Validate() error {
	if t.SuspectAfter <= 0 || t.DeadAfter <= t.SuspectAfter {
		return fmt.Errorf("liveness thresholds: need 0 < suspect-after (%s) < dead-after (%s)", t.SuspectAfter, t.DeadAfter)
	}
	return nil
}

// GossipView is what memberlist says of a node, as reported by voters.
type GossipView struct {
	// State merges the voters' views: "left" if a voter saw it leave,
	// else "alive" if any voter sees it alive, else "suspect" if a voter
	// suspects it (a probe failed, not yet declared failed), else
	// "failed"; "" = never seen.
	State string    `json:"state"`
	Since time.Time `json:"since"`
	Voter string    `json:"voter"` // who reported last
	Addr  string    `json:"addr,omitempty"`
	// ByVoter is each voter's latest view ("alive", "suspect", "failed", "left").
	ByVoter map[string]string `json:"by_voter,omitempty"`
}

// Record is the merged picture of one node.
type Record struct {
	Node         string `json:"node"`
	Provider     string `json:"provider"`
	Role         string `json:"role,omitempty"`
	InstanceID   string `json:"instance_id,omitempty"`
	AgentVersion string `json:"agent_version,omitempty"`
	Hostname     string `json:"hostname,omitempty"`
	Configured   bool   `json:"configured"` // listed in distributed_hosts.yaml
	// Admitted names the trusted source, other than the inventory, that
	// vouches for the node: "provider:<name>/<instance>" (a provider
	// listing) or "enrolled". Empty for configured and quarantined nodes.
	Admitted string `json:"admitted,omitempty"`
	// Quarantined is true for a node that is neither in the inventory nor
	// admitted: it is shown, never routed to or acted on, and the registry
	// holds at most MaxQuarantined of them.
	Quarantined       bool              `json:"quarantined,omitempty"`
	Voter             bool              `json:"voter,omitempty"`
	Ephemeral         bool              `json:"ephemeral"`
	State             mesh.NodeState    `json:"state"`
	StateSince        time.Time         `json:"state_since"`
	Cause             string            `json:"cause,omitempty"`
	Boot              string            `json:"boot,omitempty"`
	Applied           map[string]uint64 `json:"applied,omitempty"` // boot → highest seq applied (last few boots)
	LastSeen          time.Time         `json:"last_seen"`         // coordinator clock, last event from the agent
	HeartbeatInterval float64           `json:"heartbeat_interval_seconds,omitempty"`
	HealthStatus      string            `json:"health_status,omitempty"`
	Reasons           []string          `json:"reasons,omitempty"`
	Health            *health.Sample    `json:"health,omitempty"`
	RPO               events.RPO        `json:"rpo"`
	Paths             *paths.Layout     `json:"paths,omitempty"`
	SSH               []events.Endpoint `json:"ssh,omitempty"`
	HostKey           string            `json:"host_key_fingerprint,omitempty"`
	// HostKeyConflict is a different host key a configured node reported
	// after its first one was pinned; it is not used for anything.
	HostKeyConflict string          `json:"host_key_conflict,omitempty"`
	FilesystemIDs   []string        `json:"filesystem_ids,omitempty"`
	GossipAddr      string          `json:"gossip_addr,omitempty"`
	SyncEnabled     bool            `json:"sync_enabled,omitempty"`
	Gossip          GossipView      `json:"gossip"`
	Preempt         *events.Preempt `json:"preempt,omitempty"`
	LastSync        *events.Sync    `json:"last_sync,omitempty"`
	Instance        *InstanceInfo   `json:"instance,omitempty"`
	// SyncKey is the node's own sync public key from its last hello
	// ("ssh-ed25519 AAAA..."): what the leader certifies for sync targets.
	SyncKey string `json:"sync_key,omitempty"`
}

// clone copies r; maps are copied, other reference fields are replaced
// (never mutated in place) by the registry, so sharing them is safe.
func (r *Record) clone() Record {
	c := *r
	if r.Instance != nil {
		in := *r.Instance
		c.Instance = &in
	}
	if r.Gossip.ByVoter != nil {
		c.Gossip.ByVoter = make(map[string]string, len(r.Gossip.ByVoter))
		for k, v := range r.Gossip.ByVoter {
			c.Gossip.ByVoter[k] = v
		}
	}
	if r.Applied != nil {
		c.Applied = make(map[string]uint64, len(r.Applied))
		for k, v := range r.Applied {
			c.Applied[k] = v
		}
	}
	return c
}

// Transition is one state change with its cause.
type Transition struct {
	Node  string         `json:"node"`
	From  mesh.NodeState `json:"from"`
	To    mesh.NodeState `json:"to"`
	Cause string         `json:"cause"`
	At    time.Time      `json:"at"`
}

// Registry is safe for concurrent use.
type Registry struct {
	th    Thresholds
	mu    sync.RWMutex
	nodes map[string]*Record
	dirty map[string]bool
	// maxQuarantined bounds the quarantined records (DefaultMaxQuarantined).
	maxQuarantined int
	quarantined    int
	// protected are node IDs whose identity fields only the coordinators
	// write (voters, this coordinator): an agent's hello may refresh their
	// liveness, never their provider, instance, endpoints or host key.
	protected map[string]bool
	// admitted holds Admit's sources, also for nodes not heard from yet.
	admitted map[string]string
}

// DefaultMaxQuarantined is how many quarantined nodes the registry holds
// at most; events of further unknown nodes are refused (ErrQuarantineFull).
const DefaultMaxQuarantined = 256

// ErrQuarantineFull is returned for an event of an unknown node when the
// quarantine holds DefaultMaxQuarantined (SetMaxQuarantined) nodes already.
var ErrQuarantineFull = errors.New("quarantine full: event of an unknown node dropped")

// New returns an empty registry.
func New(th Thresholds) *Registry {
	return &Registry{th: th.WithDefaults(), nodes: map[string]*Record{}, dirty: map[string]bool{},
		maxQuarantined: DefaultMaxQuarantined, protected: map[string]bool{}, admitted: map[string]string{}}
}

// SetMaxQuarantined changes the quarantine bound (n <= 0 restores the default).
func (r *Registry) SetMaxQuarantined(n int) {
	if n <= 0 {
		n = DefaultMaxQuarantined
	}
	r.mu.Lock()
	r.maxQuarantined = n
	r.mu.Unlock()
}

// Protect marks node IDs (the voters, the coordinator itself) whose
// identity fields agent events never rewrite.
func (r *Registry) Protect(nodes ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range nodes {
		r.protected[n] = true
	}
}

// Admit takes node out of quarantine on the word of a trusted source
// ("provider:<name>/<instance>", "launch:<name>/<instance>", "enrolled",
// "coordinator"), now or when it is first heard from; it creates no
// record. An admission that names an instance is kept over a later one
// that does not (an enrollment after the listing vouched): provider calls
// on the node trust that instance, never the node's own report.
func (r *Registry) Admit(node, source string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if namesInstance(r.admitted[node]) && !namesInstance(source) {
		return
	}
	r.admitted[node] = source
	rec, ok := r.nodes[node]
	if !ok || rec.Configured || rec.Admitted == source {
		return
	}
	rec.Admitted = source
	r.setQuarantine(rec)
	r.dirty[node] = true
}

// setQuarantine recomputes rec.Quarantined and the count.
func (r *Registry) setQuarantine(rec *Record) {
	q := !rec.Configured && rec.Admitted == ""
	if q != rec.Quarantined {
		if q {
			r.quarantined++
		} else {
			r.quarantined--
		}
	}
	rec.Quarantined = q
}

// Quarantined returns how many quarantined nodes the registry holds.
func (r *Registry) Quarantined() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.quarantined
}

// newRecord adds a record for an unknown node, quarantined; it fails
// when the quarantine is full. Called with r.mu held.
func (r *Registry) newRecord(node string, at time.Time) (*Record, error) {
	if r.admitted[node] == "" && r.quarantined >= r.maxQuarantined {
		return nil, ErrQuarantineFull
	}
	rec := &Record{Node: node, State: mesh.StateUnknown, StateSince: at, Provider: mesh.ProviderUnknown, Admitted: r.admitted[node]}
	r.nodes[node] = rec
	r.setQuarantine(rec)
	return rec, nil
}

// Thresholds returns the rules in force.
func (r *Registry) Thresholds() Thresholds { return r.th }

// Seed adds every configured host that the registry does not know yet,
// in state unknown (or retired when its status says so).
func (r *Registry) Seed(inv *config.Inventory, now time.Time) {
	if inv == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, name := range inv.Names() {
		h := inv.Hosts[name]
		rec, ok := r.nodes[name]
		if !ok {
			rec = &Record{Node: name, State: mesh.StateUnknown, StateSince: now, Cause: "listed in inventory"}
			if h.Inactive() {
				rec.State, rec.Cause = mesh.StateRetired, "inventory status "+h.Status
			}
			r.nodes[name] = rec
		}
		rec.Configured = true
		r.setQuarantine(rec)
		rec.Voter = inv.IsVoter(name)
		if rec.Voter {
			r.protected[name] = true
		}
		if rec.Provider == "" || rec.Provider == mesh.ProviderUnknown {
			rec.Provider = h.Provider
		}
		if rec.InstanceID == "" {
			rec.InstanceID = h.InstanceID()
		}
		if rec.Role == "" {
			rec.Role = h.Role
		}
		rec.Ephemeral = h.Ephemeral()
		r.dirty[name] = true
	}
}

// Restore loads records (from KV) and gives every live node a fresh
// LastSeen so that the coordinator's own downtime is not counted against
// the agents: a node silent since then becomes suspect SuspectAfter later.
func (r *Registry) Restore(recs []Record, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range recs {
		rec := recs[i]
		if live(rec.State) {
			rec.LastSeen = now
		}
		if old, ok := r.nodes[rec.Node]; ok && old.Quarantined {
			r.quarantined--
		}
		rec.Quarantined = false
		if src, ok := r.admitted[rec.Node]; ok {
			rec.Admitted = src
		}
		r.setQuarantine(&rec)
		r.nodes[rec.Node] = &rec
	}
}

func live(s mesh.NodeState) bool {
	switch s {
	case mesh.StateJoining, mesh.StateHealthy, mesh.StateDegraded, mesh.StateSuspect, mesh.StateBusPartitioned:
		return true
	}
	return false
}

// Live reports whether a node in state s counts as having a running
// agent: joining, healthy, degraded, suspect or bus-partitioned.
func Live(s mesh.NodeState) bool { return live(s) }

// Remove drops node's record (meshctl forget): it returns the record
// removed and false when there was none. An admission is forgotten too; a
// later event of the node starts a new record as for an unknown node.
func (r *Registry) Remove(node string) (Record, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec, ok := r.nodes[node]
	if !ok {
		return Record{}, false
	}
	if rec.Quarantined {
		r.quarantined--
	}
	delete(r.nodes, node)
	delete(r.dirty, node)
	delete(r.admitted, node)
	return rec.clone(), true
}

// Get returns a copy of one record.
func (r *Registry) Get(node string) (Record, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	rec, ok := r.nodes[node]
	if !ok {
		return Record{}, false
	}
	return rec.clone(), true
}

// Snapshot returns copies of every record, sorted by node.
func (r *Registry) Snapshot() []Record {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]Record, 0, len(r.nodes))
	for _, rec := range r.nodes {
		out = append(out, rec.clone())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out
}

// Trusted returns copies of the records that are not quarantined, sorted
// by node: what routing, provider reconciles, ssh-config and actions see.
func (r *Registry) Trusted() []Record {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]Record, 0, len(r.nodes))
	for _, rec := range r.nodes {
		if !rec.Quarantined {
			out = append(out, rec.clone())
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out
}

// Counts returns the number of nodes per state.
func (r *Registry) Counts() map[mesh.NodeState]int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := map[mesh.NodeState]int{}
	for _, rec := range r.nodes {
		out[rec.State]++
	}
	return out
}

// TakeDirty returns copies of the records changed since the last call.
func (r *Registry) TakeDirty() []Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Record, 0, len(r.dirty))
	for n := range r.dirty {
		if rec, ok := r.nodes[n]; ok {
			out = append(out, rec.clone())
		}
	}
	r.dirty = map[string]bool{}
	return out
}

// MarkDirty flags a node for the next TakeDirty (after a failed store).
func (r *Registry) MarkDirty(node string) {
	r.mu.Lock()
	r.dirty[node] = true
	r.mu.Unlock()
}

// Result says what Apply did.
type Result struct {
	Duplicate   bool
	Transitions []Transition
}

// Apply decodes env's body and applies it (tests and tools that hold an
// envelope); the coordinator applies what pkg/wire decoded with
// ApplyMessage and parses nothing twice.
func (r *Registry) Apply(env bus.Envelope, kind string, at time.Time) (Result, error) {
	node, boot, seq, err := bus.ParseMessageID(env.ID)
	if err != nil {
		return Result{}, err
	}
	if node != env.Node {
		return Result{}, fmt.Errorf("message id node %q differs from envelope node %q", node, env.Node)
	}
	m := wire.Message{Kind: kind, Node: node, ID: env.ID, Boot: boot, Seq: seq, TS: env.TS}
	var target any
	switch kind {
	case bus.KindHello:
		m.Hello = &events.Hello{}
		target = m.Hello
	case bus.KindHeartbeat:
		m.Heartbeat = &events.Heartbeat{}
		target = m.Heartbeat
	case bus.KindHealth:
		m.Health = &events.Health{}
		target = m.Health
	case bus.KindPreempt:
		m.Preempt = &events.Preempt{}
		target = m.Preempt
	case bus.KindSync:
		m.Sync = &events.Sync{}
		target = m.Sync
	case bus.KindBye:
		m.Bye = &events.Bye{}
		target = m.Bye
	default:
		return Result{}, fmt.Errorf("unknown event kind %q", kind)
	}
	if err := json.Unmarshal(env.Body, target); err != nil {
		return Result{}, fmt.Errorf("%s body: %w", kind, err)
	}
	return r.ApplyMessage(m, at)
}

// ApplyMessage folds one agent event, decoded and validated by pkg/wire,
// into the registry. at is the coordinator's clock at arrival. It returns
// Duplicate for an event whose (boot, seq) was already applied, and
// ErrQuarantineFull for an event of an unknown node when the quarantine is full.
func (r *Registry) ApplyMessage(m wire.Message, at time.Time) (Result, error) {
	node, boot, seq := m.Node, m.Boot, m.Seq
	r.mu.Lock()
	defer r.mu.Unlock()
	rec, ok := r.nodes[node]
	if !ok {
		var err error
		if rec, err = r.newRecord(node, at); err != nil {
			return Result{}, err
		}
	}
	if last, seen := rec.Applied[boot]; seen && seq <= last {
		return Result{Duplicate: true}, nil
	}
	var res Result
	tr := func(to mesh.NodeState, cause string) {
		if t, ok := r.transition(rec, to, cause, at); ok {
			res.Transitions = append(res.Transitions, t)
		}
	}
	switch {
	case m.Hello != nil:
		b := *m.Hello
		rec.Boot = boot
		rec.AgentVersion, rec.Hostname = b.AgentVersion, b.Hostname
		if !r.protected[node] {
			if b.Provider != "" && (b.Provider != mesh.ProviderUnknown || rec.Provider == "") {
				rec.Provider = b.Provider
			}
			if b.InstanceID != "" {
				rec.InstanceID = b.InstanceID
			}
			if b.Role != "" {
				rec.Role = b.Role
			}
			if !rec.Configured {
				rec.Ephemeral = b.Ephemeral
			}
			lay := b.Paths
			rec.Paths = &lay
			rec.SSH, rec.FilesystemIDs, rec.GossipAddr = b.SSH, b.FilesystemIDs, b.GossipAddr
		} else {
			// A voter's or the coordinator's own record: an agent's hello
			// fills what is unknown (provider, instance, paths, the first
			// host key), never rewrites what is recorded, and never sets
			// its endpoints or role (those come from the inventory).
			if rec.Provider == "" || rec.Provider == mesh.ProviderUnknown {
				rec.Provider = b.Provider
			}
			if rec.InstanceID == "" {
				rec.InstanceID = b.InstanceID
			}
			if rec.Paths == nil {
				lay := b.Paths
				rec.Paths = &lay
			}
		}
		r.pinHostKey(rec, b.HostKeyFingerprint, r.protected[node])
		rec.HeartbeatInterval = b.HeartbeatIntervalSeconds
		rec.SyncEnabled = b.SyncEnabled
		rec.SyncKey = b.SyncKey
		rec.Preempt = nil
		rec.LastSeen = at
		tr(mesh.StateJoining, "hello from boot "+boot)
	case m.Heartbeat != nil:
		b := *m.Heartbeat
		rec.LastSeen = at
		h := b.Health
		rec.Health, rec.RPO, rec.HealthStatus, rec.Reasons = &h, b.RPO, b.Status, b.Reasons
		rec.HeartbeatInterval = b.IntervalSeconds
		if rec.Boot == "" {
			rec.Boot = boot
		}
		r.heartbeatState(rec, b.Status, b.Reasons, tr)
	case m.Health != nil:
		b := *m.Health
		rec.LastSeen = at
		rec.HealthStatus, rec.Reasons = b.Status, b.Reasons
		r.heartbeatState(rec, b.Status, b.Reasons, tr)
	case m.Preempt != nil:
		b := *m.Preempt
		rec.LastSeen = at
		rec.Preempt = &b
		tr(mesh.StatePreempting, fmt.Sprintf("preempt notice from %s, deadline %s", b.Source, b.Deadline.UTC().Format(time.RFC3339)))
	case m.Sync != nil:
		b := *m.Sync
		rec.LastSeen = at
		if b.Phase != "rpo" { // an RPO answer is no sync result
			rec.LastSync = &b
		}
		rec.RPO = b.RPO
	case m.Bye != nil:
		b := *m.Bye
		rec.LastSeen = at
		if rec.State == mesh.StatePreempting || rec.Preempt != nil {
			tr(mesh.StatePreempted, "bye after preempt notice: "+b.Reason)
		} else {
			tr(mesh.StateLeft, "bye: "+b.Reason)
		}
	default:
		return Result{}, fmt.Errorf("unknown event kind %q", m.Kind)
	}
	if rec.Applied == nil {
		rec.Applied = map[string]uint64{}
	}
	rec.Applied[boot] = seq
	if len(rec.Applied) > 4 { // keep the current boot and a few before it
		for b := range rec.Applied {
			if b != boot && b != rec.Boot {
				delete(rec.Applied, b)
				break
			}
		}
	}
	r.dirty[node] = true
	return res, nil
}

// pinHostKey records the host key a node reports. For a configured or
// protected node the first report is pinned: a later, different one is not taken (a forged
// hello cannot swap the key the router and ssh-config trust) and is kept in
// HostKeyConflict for the operator to see.
func (r *Registry) pinHostKey(rec *Record, fp string, protected bool) {
	switch {
	case fp == "" || fp == rec.HostKey:
		rec.HostKeyConflict = ""
	case rec.HostKey == "" || (!rec.Configured && !protected):
		rec.HostKey, rec.HostKeyConflict = fp, ""
	default:
		rec.HostKeyConflict = fp
	}
}

func (r *Registry) heartbeatState(rec *Record, status string, reasons []string, tr func(mesh.NodeState, string)) {
	if rec.State == mesh.StatePreempting {
		return // still reporting while it flushes; the notice stands
	}
	to := mesh.StateHealthy
	cause := "heartbeat: healthy"
	if status == "degraded" {
		to, cause = mesh.StateDegraded, "heartbeat: degraded"
		if len(reasons) > 0 {
			cause += " (" + joinMax(reasons, 3) + ")"
		}
	}
	switch rec.State {
	case mesh.StateSuspect, mesh.StateDead, mesh.StateBusPartitioned, mesh.StateLeft, mesh.StatePreempted:
		cause = "heartbeat resumed; " + cause
	}
	tr(to, cause)
}

func joinMax(s []string, n int) string {
	out := ""
	for i, v := range s {
		if i == n {
			out += fmt.Sprintf(", +%d more", len(s)-n)
			break
		}
		if i > 0 {
			out += ", "
		}
		out += v
	}
	return out
}

func (r *Registry) transition(rec *Record, to mesh.NodeState, cause string, at time.Time) (Transition, bool) {
	if rec.State == to {
		if to == mesh.StateDegraded && cause != rec.Cause { // reasons changed: keep the cause fresh, no transition
			rec.Cause = cause
		}
		return Transition{}, false
	}
	t := Transition{Node: rec.Node, From: rec.State, To: to, Cause: cause, At: at}
	rec.State, rec.StateSince, rec.Cause = to, at, cause
	r.dirty[rec.Node] = true
	return t, true
}

// gossipCorroboration is how long a node's heartbeats must have been
// silent before a gossip suspicion makes it suspect: one and a half of its
// heartbeat intervals (5 s when it never said), at most SuspectAfter. A
// suspicion is a hint any key holder can spread; an overdue heartbeat is
// the node's own silence.
func (r *Registry) gossipCorroboration(rec *Record) time.Duration {
	iv := time.Duration(rec.HeartbeatInterval * float64(time.Second))
	if iv <= 0 {
		iv = 5 * time.Second
	}
	return min(iv+iv/2, r.th.SuspectAfter)
}

// ApplyGossip folds a voter's memberlist observation of member into the
// registry. g.Type is "join", "update", "alive", "suspect", "leave" or
// "fail". Gossip moves a node ahead of its heartbeat timeouts: a joining,
// healthy or degraded node becomes suspect once the merged gossip view is
// suspect or failed and its heartbeat is overdue (gossipCorroboration:
// 7.5 s at 5 s heartbeats, instead of SuspectAfter; here or in Tick), and
// a suspect node becomes dead when gossip reports it failed. A node
// gossip still sees alive is never made dead by gossip: without heartbeats
// it becomes bus-partitioned (Tick), as before. The next heartbeat makes a
// node healthy again whatever gossip said.
func (r *Registry) ApplyGossip(g events.Gossip, at time.Time) []Transition {
	if mesh.ValidateNodeID(g.Member) != nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	rec, ok := r.nodes[g.Member]
	if !ok {
		var err error
		if rec, err = r.newRecord(g.Member, at); err != nil {
			return nil
		}
		if g.Provider != "" && mesh.KnownProvider(g.Provider) {
			rec.Provider = g.Provider
		}
	}
	view, known := map[string]string{"join": "alive", "update": "alive", "alive": "alive", "suspect": "suspect", "leave": "left", "fail": "failed"}[g.Type]
	if !known {
		return nil
	}
	if rec.Gossip.ByVoter == nil {
		rec.Gossip.ByVoter = map[string]string{}
	}
	rec.Gossip.ByVoter[g.Voter] = view
	state := mergeGossip(rec.Gossip.ByVoter)
	if rec.Gossip.State != state {
		rec.Gossip.Since = at
	}
	rec.Gossip.State, rec.Gossip.Voter, rec.Gossip.Addr = state, g.Voter, g.Addr
	r.dirty[g.Member] = true
	var out []Transition
	silent := at.Sub(rec.LastSeen)
	switch rec.Gossip.State {
	case "suspect", "failed":
		switch rec.State {
		case mesh.StateJoining, mesh.StateHealthy, mesh.StateDegraded:
			// Gossip alone never overrules heartbeats that still arrive: any
			// member holding the gossip key can spread a suspicion, so it
			// counts once a heartbeat is overdue (Tick rechecks every second).
			if silent < r.gossipCorroboration(rec) {
				return out
			}
			what := "suspects it (a probe failed)"
			if rec.Gossip.State == "failed" {
				what = "reports failed"
			}
			if t, ok := r.transition(rec, mesh.StateSuspect, fmt.Sprintf("gossip: %s %s; last heartbeat %s ago", g.Voter, what, silent.Round(time.Second)), at); ok {
				out = append(out, t)
			}
			return out
		}
		if rec.Gossip.State != "failed" {
			break
		}
		if (rec.State == mesh.StateSuspect || rec.State == mesh.StateBusPartitioned) && silent >= r.gossipCorroboration(rec) {
			if t, ok := r.transition(rec, mesh.StateDead, fmt.Sprintf("gossip: %s reports failed and no heartbeat for %s", g.Voter, silent.Round(time.Second)), at); ok {
				out = append(out, t)
			}
		}
	case "alive":
		if rec.State == mesh.StateDead && silent > r.th.SuspectAfter {
			if t, ok := r.transition(rec, mesh.StateBusPartitioned, fmt.Sprintf("gossip: %s sees it alive, but no heartbeat for %s", g.Voter, silent.Round(time.Second)), at); ok {
				out = append(out, t)
			}
		}
	}
	return out
}

func mergeGossip(by map[string]string) string {
	alive := false
	for _, v := range by {
		if v == "left" {
			return "left"
		}
		if v == "alive" {
			alive = true
		}
	}
	if alive {
		return "alive"
	}
	for _, v := range by {
		if v == "suspect" {
			return "suspect"
		}
	}
	return "failed"
}

// Tick applies the time-based rules at now and returns the transitions.
func (r *Registry) Tick(now time.Time) []Transition {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Transition
	for _, rec := range r.nodes {
		silent := now.Sub(rec.LastSeen)
		var to mesh.NodeState
		var cause string
		switch rec.State {
		case mesh.StateJoining, mesh.StateHealthy, mesh.StateDegraded:
			if silent > r.th.SuspectAfter {
				to, cause = mesh.StateSuspect, fmt.Sprintf("no heartbeat for %s (suspect after %s)", silent.Round(time.Second), r.th.SuspectAfter)
			} else if (rec.Gossip.State == "suspect" || rec.Gossip.State == "failed") && silent >= r.gossipCorroboration(rec) {
				to, cause = mesh.StateSuspect, fmt.Sprintf("gossip: %s %s; last heartbeat %s ago", rec.Gossip.Voter, map[string]string{"suspect": "suspects it (a probe failed)", "failed": "reports failed"}[rec.Gossip.State], silent.Round(time.Second))
			}
		case mesh.StateSuspect:
			if silent > r.th.DeadAfter {
				switch rec.Gossip.State {
				case "alive":
					to, cause = mesh.StateBusPartitioned, fmt.Sprintf("no heartbeat for %s but gossip (%s) sees it alive", silent.Round(time.Second), rec.Gossip.Voter)
				case "failed":
					to, cause = mesh.StateDead, fmt.Sprintf("no heartbeat for %s and gossip reports failed", silent.Round(time.Second))
				case "suspect":
					to, cause = mesh.StateDead, fmt.Sprintf("no heartbeat for %s and gossip suspects it", silent.Round(time.Second))
				default:
					to, cause = mesh.StateDead, fmt.Sprintf("no heartbeat for %s (dead after %s); no gossip view", silent.Round(time.Second), r.th.DeadAfter)
				}
			}
		case mesh.StateBusPartitioned:
			if rec.Gossip.State == "failed" || rec.Gossip.State == "left" {
				to, cause = mesh.StateDead, "gossip no longer sees it and no heartbeat for "+silent.Round(time.Second).String()
			}
		case mesh.StatePreempting:
			if rec.Preempt != nil && now.After(rec.Preempt.Deadline.Add(r.th.PreemptGrace)) && silent > r.th.PreemptGrace {
				to, cause = mesh.StatePreempted, "preempt deadline passed"
			}
		}
		if to != "" {
			if t, ok := r.transition(rec, to, cause, now); ok {
				out = append(out, t)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out
}

// InstanceInfo is the provider's view of a node's instance, as the reconciler saw it.
type InstanceInfo struct {
	Provider    string    `json:"provider"`
	ID          string    `json:"id"`
	State       string    `json:"state"`
	RawState    string    `json:"raw_state"`
	Interrupted bool      `json:"interrupted,omitempty"`
	Gone        bool      `json:"gone,omitempty"` // not in the provider's (successful) list
	SeenAt      time.Time `json:"seen_at"`
}

// ApplyInstance folds the provider's view of node's instance into the
// registry. Provider facts move a node only where the agent cannot speak
// for itself: a node whose agent is silent (suspect, dead, bus-partitioned,
// unknown, left, preempting) becomes preempted when the provider reports
// it preempted/interrupted, terminated when it is gone or terminated, and
// stopped when it is stopped. A node still heartbeating keeps its state.
func (r *Registry) ApplyInstance(node string, info InstanceInfo, at time.Time) []Transition {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec, ok := r.nodes[node]
	if !ok {
		return nil
	}
	prev := rec.Instance
	rec.Instance = &info
	if prev == nil || *prev != info {
		r.dirty[node] = true
	}
	silent := false
	switch rec.State {
	case mesh.StateSuspect, mesh.StateDead, mesh.StateBusPartitioned, mesh.StateUnknown, mesh.StateLeft, mesh.StatePreempting, mesh.StateStopped:
		silent = true
	}
	var to mesh.NodeState
	var cause string
	switch {
	case info.State == "preempted" || info.Interrupted:
		if silent || rec.State == mesh.StatePreempting {
			to, cause = mesh.StatePreempted, fmt.Sprintf("provider %s reports instance %s preempted (state %q)", info.Provider, info.ID, info.RawState)
		}
	case info.Gone || info.State == "terminated":
		if silent && rec.State != mesh.StatePreempted {
			to, cause = mesh.StateTerminated, fmt.Sprintf("provider %s no longer has instance %s", info.Provider, info.ID)
		}
	case info.State == "stopped":
		if silent && rec.State != mesh.StatePreempted {
			to, cause = mesh.StateStopped, fmt.Sprintf("provider %s reports instance %s stopped", info.Provider, info.ID)
		}
	}
	if to == "" {
		return nil
	}
	if t, ok := r.transition(rec, to, cause, at); ok {
		return []Transition{t}
	}
	return nil
}

// namesInstance reports whether an admission source names the instance
// ("provider:" or "launch:" followed by <name>/<instance>).
func namesInstance(src string) bool {
	return (strings.HasPrefix(src, "provider:") || strings.HasPrefix(src, "launch:")) && strings.Contains(src, "/")
}
