// Package events defines the body of every ringmesh bus message. The JSON
// Schemas in schemas/ are generated from these types (go generate ./schemas)
// and checked for drift by a test; the coordinator validates every incoming
// message against them.
package events

import (
	"time"

	"github.com/ringmesh/ringmesh/pkg/health"
	"github.com/ringmesh/ringmesh/pkg/paths"
)

// Endpoint is an explicit SSH (host, port, user) triple; Kind is "direct" or "proxy".
type Endpoint struct {
	Kind string `json:"kind" jsonschema:"enum=direct,enum=proxy,enum=config"`
	Host string `json:"host" jsonschema:"minLength=1"`
	Port int    `json:"port" jsonschema:"minimum=1,maximum=65535"`
	User string `json:"user"`
}

// Hello is published once per agent start on mesh.v1.evt.<node>.hello.
type Hello struct {
	AgentVersion string `json:"agent_version" jsonschema:"minLength=1"`
	Boot         string `json:"boot" jsonschema:"minLength=1"` // changes on every agent start
	Hostname     string `json:"hostname"`
	// Provider is the detected or configured provider name; ProviderSource says which ("config", "env:CONTAINER_ID", "imds:hetzner", "none").
	Provider       string `json:"provider" jsonschema:"enum=vast,enum=runpod,enum=lambda,enum=vultr,enum=hetzner,enum=nebius,enum=local,enum=unknown"`
	ProviderSource string `json:"provider_source"`
	InstanceID     string `json:"instance_id,omitempty"`
	Role           string `json:"role,omitempty"`
	Ephemeral      bool   `json:"ephemeral"`
	// Paths is the node's ringrift path and data sub-paths (remote form).
	Paths paths.Layout `json:"paths"`
	SSH   []Endpoint   `json:"ssh,omitempty"`
	// HostKeyFingerprint is the node's SSH host key, "SHA256:<base64>", empty if unknown.
	HostKeyFingerprint string `json:"host_key_fingerprint,omitempty"`
	// FilesystemIDs are the shared filesystems mounted on the node (NFS exports), for sync routing.
	FilesystemIDs []string `json:"filesystem_ids,omitempty"`
	// GossipAddr is the node's memberlist address "host:port", empty if it does not gossip.
	GossipAddr string `json:"gossip_addr,omitempty"`
	// SyncEnabled is true when the agent protects its data (continuous sync, final flush).
	SyncEnabled bool `json:"sync_enabled,omitempty"`
	// HeartbeatIntervalSeconds is the agent's heartbeat interval, seconds.
	HeartbeatIntervalSeconds float64 `json:"heartbeat_interval_seconds" jsonschema:"exclusiveMinimum=0"`
	GoVersion                string  `json:"go_version"`
	OS                       string  `json:"os"`
	Arch                     string  `json:"arch"`
}

// RPO is a node's recovery point: the data that exists only on it.
// Nil pointers mean unknown (no sync engine running or not yet measured).
type RPO struct {
	// UnsyncedBytes is the size of files without enough verified copies, bytes.
	UnsyncedBytes *int64 `json:"unsynced_bytes"`
	// UnsyncedFiles is the number of such files.
	UnsyncedFiles *int `json:"unsynced_files"`
	// OldestUnsyncedSeconds is the age of the oldest such file, seconds.
	OldestUnsyncedSeconds *float64 `json:"oldest_unsynced_seconds"`
}

// Heartbeat is published on an interval on mesh.v1.evt.<node>.heartbeat.
type Heartbeat struct {
	// Status is the agent's own verdict from its thresholds: healthy or degraded.
	Status  string        `json:"status" jsonschema:"enum=healthy,enum=degraded"`
	Reasons []string      `json:"reasons,omitempty"`
	Health  health.Sample `json:"health"`
	RPO     RPO           `json:"rpo"`
	// IntervalSeconds is the heartbeat interval in force, seconds.
	IntervalSeconds float64 `json:"interval_seconds" jsonschema:"exclusiveMinimum=0"`
	// BusConnected is false when the heartbeat was queued in the outbox while the bus was down.
	BusConnected bool `json:"bus_connected"`
}

// Health is published on a change of the agent's health status.
type Health struct {
	Status   string   `json:"status" jsonschema:"enum=healthy,enum=degraded"`
	Previous string   `json:"previous"`
	Reasons  []string `json:"reasons,omitempty"`
}

// Preempt says termination is imminent (published by the agent, or by the
// coordinator on a provider notice).
type Preempt struct {
	// Source is what told: "signal:SIGTERM", "vast:api", "vast:webhook", "lambda:api", "nebius:event", "operator".
	Source string `json:"source" jsonschema:"minLength=1"`
	// Deadline is when the node is expected to vanish.
	Deadline time.Time `json:"deadline"`
	// NoticeSeconds is the notice the source gave, seconds.
	NoticeSeconds float64 `json:"notice_seconds" jsonschema:"minimum=0"`
}

// FileRef names one file in a sync result.
type FileRef struct {
	Path    string   `json:"path"`
	Size    int64    `json:"size" jsonschema:"minimum=0"`
	SHA256  string   `json:"sha256,omitempty"`
	Targets []string `json:"targets,omitempty"`
	Reason  string   `json:"reason,omitempty"` // why it did not make it
}

// Sync reports sync progress or a result (continuous pass, sync-now, final
// flush), or answers an "rpo" command: Phase "rpo", Trigger
// "rpo:<request_id>" of the command, RPO the figure measured just now (all
// fields nil and Error set when it could not be measured).
type Sync struct {
	Phase      string    `json:"phase" jsonschema:"enum=progress,enum=result,enum=flush,enum=rpo"`
	Trigger    string    `json:"trigger"` // "continuous", "command:<id>", "preempt:<why>", "stop:<why>", "rpo:<id>"
	BytesSent  int64     `json:"bytes_sent" jsonschema:"minimum=0"`
	BytesTotal int64     `json:"bytes_total" jsonschema:"minimum=0"`
	Made       []FileRef `json:"made,omitempty"`
	Missed     []FileRef `json:"missed,omitempty"`
	RPO        RPO       `json:"rpo"`
	Error      string    `json:"error,omitempty"`
}

// Bye is published on a clean shutdown.
type Bye struct {
	Reason string `json:"reason"`
}

// Gossip is one memberlist event as seen by a voter, on mesh.v1.gossip.<voter>.
type Gossip struct {
	Voter        string `json:"voter" jsonschema:"minLength=1"`
	Type         string `json:"type" jsonschema:"enum=join,enum=leave,enum=fail,enum=update"`
	Member       string `json:"member" jsonschema:"minLength=1"`
	Addr         string `json:"addr"`
	Role         string `json:"role,omitempty"`
	Provider     string `json:"provider,omitempty"`
	AgentVersion string `json:"agent_version,omitempty"`
}

// Command is work for one agent on mesh.v1.cmd.<node>.<verb>.
type Command struct {
	Verb        string            `json:"verb" jsonschema:"minLength=1"`
	Args        map[string]string `json:"args,omitempty"`
	RequestedBy string            `json:"requested_by"`
	Reason      string            `json:"reason"`
}

// Audit records a decision, transition or provider call on mesh.v1.audit.<kind>.
type Audit struct {
	Kind   string `json:"kind"` // "transition", "provider_call", "command", "policy", "lease"
	Node   string `json:"node,omitempty"`
	From   string `json:"from,omitempty"`
	To     string `json:"to,omitempty"`
	Cause  string `json:"cause"`
	Actor  string `json:"actor"` // coordinator name, or "meshctl:<user>"
	DryRun bool   `json:"dry_run"`
	// Detail carries kind-specific fields (provider, instance, op, result).
	Detail map[string]string `json:"detail,omitempty"`
}

// DeadLetter records a message the coordinator terminated as invalid.
type DeadLetter struct {
	Stream   string    `json:"stream"`
	Subject  string    `json:"subject"`
	Sequence uint64    `json:"sequence"`
	Reason   string    `json:"reason"`
	Payload  string    `json:"payload"` // first 4 KiB of the raw message
	At       time.Time `json:"at"`
}

// Kinds maps each schema kind ("hello", ...) to a zero value of its body
// type, for schema generation and validation.
func Kinds() map[string]any {
	return map[string]any{
		"hello":       Hello{},
		"heartbeat":   Heartbeat{},
		"health":      Health{},
		"preempt":     Preempt{},
		"sync":        Sync{},
		"bye":         Bye{},
		"gossip":      Gossip{},
		"command":     Command{},
		"audit":       Audit{},
		"dead_letter": DeadLetter{},
	}
}
