package events

// TargetSpec is one sync target as the coordinator's router sends it in a
// "sync_targets" command (args["targets"], JSON list). The agent checks
// every field against pkg/wire's patterns before using it. It is here, not
// in pkg/agent, so that the coordinator builds it without importing the
// agent.
type TargetSpec struct {
	Node        string   `json:"node"`
	Host        string   `json:"host"`
	Port        int      `json:"port"`
	User        string   `json:"user"`
	RemoteDir   string   `json:"remote_dir"`
	Fingerprint string   `json:"host_key_fingerprint"`
	Classes     []string `json:"classes,omitempty"`
	// Cert is a short-lived SSH user certificate of the ringmesh SSH CA for
	// the receiving node's own sync key (authorized_keys form, KeyId = that
	// node, principal = User) when the target was set up with `meshctl
	// target setup`; empty for a target reached with the shared --sync-key.
	Cert string `json:"cert,omitempty"`
}
