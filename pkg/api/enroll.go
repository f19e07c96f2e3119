package api

// OpEnroll issues a node credential for a node being enrolled (admin only,
// leader): the coordinator's issuer signs a user JWT with role node named
// after the node, and the reply carries the creds file and the CA to pin.
// Only a node the coordinator trusts (in the inventory, or admitted by a
// provider listing) can be enrolled; the issue is audited.
const OpEnroll = "enroll"

// EnrollRequest names the node to issue a credential for. CurrentKey is
// the public key of the credential the node holds already, if any: when
// it is an unrevoked node credential of that node, nothing is issued and
// the reply says so (Valid), so a re-enrollment keeps its credential and
// a revoked one is replaced.
type EnrollRequest struct {
	Node       string `json:"node"`
	CurrentKey string `json:"current_key,omitempty"`
}

// Enrolled answers OpEnroll. Creds is the secret part: a .creds file (user
// JWT and nkey seed) that meshctl writes to the node with mode 0600 and
// never prints or logs.
type Enrolled struct {
	Node      string `json:"node"`
	PublicKey string `json:"public_key"`
	Creds     string `json:"creds"`
	// CAPEM is the ringmesh CA certificate (PEM) the node pins.
	CAPEM string `json:"ca_pem"`
	// Valid is true when the request's CurrentKey is still good: Creds
	// and CAPEM are then empty.
	Valid bool `json:"valid,omitempty"`
	// Sync is what the coordinator's inventory says about protecting data
	// on nodes (nil = nothing set there: the agent's defaults); meshctl
	// enroll writes it into the node's agent.conf.
	Sync *SyncSettings `json:"sync,omitempty"`
}

// SyncSettings are the inventory's data-protection settings an enrolled
// agent runs with: zero fields are not set (the agent's default).
type SyncSettings struct {
	// ReplicationTarget is sync_routing.replication_target: verified copies per file.
	ReplicationTarget int `json:"replication_target,omitempty"`
	// MaxConcurrentSyncs is auto_sync.max_concurrent_syncs: pushes at a time.
	MaxConcurrentSyncs int `json:"max_concurrent_syncs,omitempty"`
	// DataClasses is auto_sync.data_classes: source name → globs.
	DataClasses map[string][]string `json:"data_classes,omitempty"`
}

// OpForget removes a departed node from the registry (admin only, leader):
// one that is dead, terminated, stopped, retired, left or preempted, or
// whose credentials are revoked. A live node is refused. Audited.
const OpForget = "forget"

// ForgetRequest names the node to forget.
type ForgetRequest struct {
	Node string `json:"node"`
}

// Forgotten answers OpForget.
type Forgotten struct {
	Node string `json:"node"`
	// State is the state the node was in when it was removed.
	State string `json:"state"`
	// Configured is true when the node is still in the inventory: its
	// record is then started afresh (state unknown, as after a restart)
	// instead of dropped; remove it from distributed_hosts.yaml to drop it.
	Configured bool `json:"configured"`
}
