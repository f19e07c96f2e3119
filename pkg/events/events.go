// Package events defines the body of every ringmesh bus message. The JSON
// Schemas in schemas/ are generated from these types (go generate ./schemas)
// and checked for drift by a test; the coordinator validates every incoming
// message against them.
package events

import (
	"time"

	"github.com/ringmesh/ringmesh/pkg/paths"
)

// Endpoint is an explicit SSH (host, port, user) triple; Kind is "direct" or "proxy".
type Endpoint struct {
	Kind string `json:"kind" jsonschema:"enum=direct,enum=proxy,enum=config"`
	Host string `json:"host" jsonschema:"minLength=1,maxLength=253" pattern:"host"`
	Port int    `json:"port" jsonschema:"minimum=1,maximum=65535"`
	User string `json:"user" jsonschema:"maxLength=32" pattern:"user"`
}

// Hello is published once per agent start on mesh.v1.evt.<node>.hello.
type Hello struct {
	AgentVersion string `json:"agent_version" jsonschema:"minLength=1,maxLength=128" pattern:"text"`
	Boot         string `json:"boot" jsonschema:"minLength=1,maxLength=64" pattern:"token"` // changes on every agent start
	Hostname     string `json:"hostname" jsonschema:"maxLength=253" pattern:"text"`
	// Provider is the detected or configured provider name; ProviderSource says which ("config", "env:CONTAINER_ID", "imds:hetzner", "none").
	Provider       string `json:"provider" jsonschema:"enum=vast,enum=runpod,enum=lambda,enum=vultr,enum=hetzner,enum=nebius,enum=local,enum=unknown"`
	ProviderSource string `json:"provider_source" jsonschema:"maxLength=128" pattern:"token"`
	InstanceID     string `json:"instance_id,omitempty" jsonschema:"maxLength=128" pattern:"token"`
	Role           string `json:"role,omitempty" jsonschema:"maxLength=32" pattern:"token"`
	Ephemeral      bool   `json:"ephemeral"`
	// Paths is the node's ringrift path and data sub-paths (remote form).
	Paths paths.Layout `json:"paths" pattern:"path" maxLength:"1024" maxProperties:"16"`
	SSH   []Endpoint   `json:"ssh,omitempty" jsonschema:"maxItems=8"`
	// HostKeyFingerprint is the node's SSH host key, "SHA256:<base64>", empty if unknown.
	HostKeyFingerprint string `json:"host_key_fingerprint,omitempty" pattern:"fingerprint_opt"`
	// FilesystemIDs are the shared filesystems mounted on the node (NFS exports), for sync routing.
	FilesystemIDs []string `json:"filesystem_ids,omitempty" jsonschema:"maxItems=16" pattern:"token" maxLength:"256"`
	// GossipAddr is the node's memberlist address "host:port", empty if it does not gossip.
	GossipAddr string `json:"gossip_addr,omitempty" jsonschema:"maxLength=300" pattern:"hostport"`
	// SyncKey is the node's own sync public key ("ssh-ed25519 AAAA...",
	// from <state-dir>/sync_ed25519), which the leader signs into a
	// short-lived SSH certificate for the targets set up with `meshctl
	// target setup`; empty when the agent does not sync.
	SyncKey string `json:"sync_key,omitempty" pattern:"sshkey_opt"`
	// SyncEnabled is true when the agent protects its data (continuous sync, final flush).
	SyncEnabled bool `json:"sync_enabled,omitempty"`
	// HeartbeatIntervalSeconds is the agent's heartbeat interval, seconds.
	HeartbeatIntervalSeconds float64 `json:"heartbeat_interval_seconds" jsonschema:"exclusiveMinimum=0,maximum=3600"`
	GoVersion                string  `json:"go_version" jsonschema:"maxLength=64" pattern:"token"`
	OS                       string  `json:"os" jsonschema:"maxLength=64" pattern:"token"`
	Arch                     string  `json:"arch" jsonschema:"maxLength=64" pattern:"token"`
}

// RPO is a node's recovery point: the data that exists only on it.
// Nil pointers mean unknown (no sync engine running or not yet measured).
type RPO struct {
	// UnsyncedBytes is the size of files without enough verified copies, bytes.
	UnsyncedBytes *int64 `json:"unsynced_bytes" jsonschema:"minimum=0,maximum=1e18"`
	// UnsyncedFiles is the number of such files.
	UnsyncedFiles *int `json:"unsynced_files" jsonschema:"minimum=0,maximum=1e12"`
	// OldestUnsyncedSeconds is the age of the oldest such file, seconds.
	OldestUnsyncedSeconds *float64 `json:"oldest_unsynced_seconds" jsonschema:"minimum=0,maximum=1e10"`
}

// Heartbeat is published on an interval on mesh.v1.evt.<node>.heartbeat.
type Heartbeat struct {
	// Status is the agent's own verdict from its thresholds: healthy or degraded.
	Status  string       `json:"status" jsonschema:"enum=healthy,enum=degraded"`
	Reasons []string     `json:"reasons,omitempty" jsonschema:"maxItems=32" pattern:"text" maxLength:"256"`
	Health  HealthSample `json:"health"`
	RPO     RPO          `json:"rpo"`
	// IntervalSeconds is the heartbeat interval in force, seconds.
	IntervalSeconds float64 `json:"interval_seconds" jsonschema:"exclusiveMinimum=0,maximum=3600"`
	// BusConnected is false when the heartbeat was queued in the outbox while the bus was down.
	BusConnected bool `json:"bus_connected"`
}

// Health is published on a change of the agent's health status.
type Health struct {
	Status   string   `json:"status" jsonschema:"enum=healthy,enum=degraded"`
	Previous string   `json:"previous" jsonschema:"maxLength=32" pattern:"token"`
	Reasons  []string `json:"reasons,omitempty" jsonschema:"maxItems=32" pattern:"text" maxLength:"256"`
}

// Preempt says termination is imminent (published by the agent, or by the
// coordinator on a provider notice).
type Preempt struct {
	// Source is what told: "signal:SIGTERM", "vast:api", "vast:webhook", "lambda:api", "nebius:event", "operator".
	Source string `json:"source" jsonschema:"minLength=1,maxLength=64" pattern:"token"`
	// Deadline is when the node is expected to vanish.
	Deadline time.Time `json:"deadline"`
	// NoticeSeconds is the notice the source gave, seconds.
	NoticeSeconds float64 `json:"notice_seconds" jsonschema:"minimum=0,maximum=86400"`
}

// FileRef names one file in a sync result.
type FileRef struct {
	Path    string   `json:"path" jsonschema:"maxLength=1024" pattern:"path"`
	Size    int64    `json:"size" jsonschema:"minimum=0,maximum=1e18"`
	SHA256  string   `json:"sha256,omitempty" pattern:"sha256_opt"`
	Targets []string `json:"targets,omitempty" jsonschema:"maxItems=16" pattern:"node"`
	Reason  string   `json:"reason,omitempty" jsonschema:"maxLength=512" pattern:"text"` // why it did not make it
}

// Sync reports sync progress or a result (continuous pass, sync-now, final
// flush), or answers an "rpo" command: Phase "rpo", Trigger
// "rpo:<request_id>" of the command, RPO the figure measured just now (all
// fields nil and Error set when it could not be measured).
type Sync struct {
	Phase      string    `json:"phase" jsonschema:"enum=progress,enum=result,enum=flush,enum=rpo"`
	Trigger    string    `json:"trigger" jsonschema:"maxLength=256" pattern:"text"` // "continuous", "command:<id>", "preempt:<why>", "stop:<why>", "rpo:<id>"
	BytesSent  int64     `json:"bytes_sent" jsonschema:"minimum=0,maximum=1e18"`
	BytesTotal int64     `json:"bytes_total" jsonschema:"minimum=0,maximum=1e18"`
	Made       []FileRef `json:"made,omitempty" jsonschema:"maxItems=100"`
	Missed     []FileRef `json:"missed,omitempty" jsonschema:"maxItems=100"`
	RPO        RPO       `json:"rpo"`
	Error      string    `json:"error,omitempty" jsonschema:"maxLength=2048" pattern:"text"`
}

// Bye is published on a clean shutdown.
type Bye struct {
	Reason string `json:"reason" jsonschema:"maxLength=256" pattern:"text"`
}

// Gossip is one memberlist event as seen by a voter, on mesh.v1.gossip.<voter>.
type Gossip struct {
	Voter        string `json:"voter" pattern:"node"`
	Type         string `json:"type" jsonschema:"enum=join,enum=leave,enum=fail,enum=update,enum=suspect,enum=alive"`
	Member       string `json:"member" pattern:"node"`
	Addr         string `json:"addr" jsonschema:"maxLength=300" pattern:"hostport"`
	Role         string `json:"role,omitempty" jsonschema:"maxLength=32" pattern:"token"`
	Provider     string `json:"provider,omitempty" jsonschema:"maxLength=32" pattern:"token"`
	AgentVersion string `json:"agent_version,omitempty" jsonschema:"maxLength=128" pattern:"text"`
}

// Command is work for one agent on mesh.v1.cmd.<node>.<verb>.
type Command struct {
	Verb        string            `json:"verb" jsonschema:"minLength=1"`
	Args        map[string]string `json:"args,omitempty"`
	RequestedBy string            `json:"requested_by"`
	Reason      string            `json:"reason"`
}

// VerbSyncRevoke is the command a coordinator sends a sync target's agent
// when it revokes a node (meshctl revoke, or the node retired or
// terminated): Args "node" (the revoked node), "account", "chroot" and
// "conf_dir" (the target's layout from its setup record). The agent, when
// it runs as root on a host set up with `meshctl target setup`, adds the
// node to the target's KRL, so sshd refuses the node's sync certificate at
// once instead of when it expires.
const VerbSyncRevoke = "sync_revoke"

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
