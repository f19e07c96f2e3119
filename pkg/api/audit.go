package api

import "time"

// OpAudit reads MESH_AUDIT: who did what, oldest first, in pages.
const OpAudit = "audit"

// Audit paging bounds: a page holds at most AuditMaxLimit entries and one
// request scans at most AuditMaxScan messages of the stream (filters are
// applied while scanning), so a request never reads the whole history.
const (
	AuditDefaultLimit = 100
	AuditMaxLimit     = 1000
	AuditMaxScan      = 20000
)

// AuditRequest filters OpAudit. Zero fields do not filter.
type AuditRequest struct {
	// Node keeps entries about this node ID.
	Node string `json:"node,omitempty"`
	// Kind keeps entries of this audit kind ("transition", "provider_call",
	// "command", "policy", "lease", "endpoint", ...): the subject
	// mesh.v1.audit.<kind>.
	Kind string `json:"kind,omitempty"`
	// Since keeps entries stored at or after this time.
	Since time.Time `json:"since,omitempty"`
	// AfterSeq continues a previous page: only stream sequences > AfterSeq.
	AfterSeq uint64 `json:"after_seq,omitempty"`
	// Limit is the page size (default AuditDefaultLimit, at most AuditMaxLimit).
	Limit int `json:"limit,omitempty"`
}

// AuditEntry is one audit record with where and when it was stored.
type AuditEntry struct {
	Seq     uint64            `json:"seq"`  // MESH_AUDIT stream sequence
	At      time.Time         `json:"at"`   // when the coordinator wrote it (envelope ts)
	Kind    string            `json:"kind"` // transition, provider_call, ...
	Node    string            `json:"node,omitempty"`
	From    string            `json:"from,omitempty"`
	To      string            `json:"to,omitempty"`
	Cause   string            `json:"cause"`
	Actor   string            `json:"actor"` // "coordinator:<name>", or the verified signer "<role>:<name> (<key prefix>) via coordinator:<name>"
	DryRun  bool              `json:"dry_run,omitempty"`
	Detail  map[string]string `json:"detail,omitempty"`
	Subject string            `json:"subject"`
}

// Audit is one page of OpAudit, oldest first. More is true when the stream
// holds entries past NextSeq that this page did not reach (page full or
// scan bound hit): ask again with AfterSeq = NextSeq.
type Audit struct {
	Items   []AuditEntry `json:"items"`
	NextSeq uint64       `json:"next_seq"`
	More    bool         `json:"more"`
}
