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
}
