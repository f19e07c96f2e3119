package api

import (
	"encoding/json"
	"time"
)

// OpEvents reads the agents' events (MESH_EVT) of one kind, oldest first,
// in pages: meshctl has no stream access of its own (its credentials allow
// only API requests), so `meshctl events --kind K` reads them through the
// coordinator.
const OpEvents = "events"

// Events paging bounds, as for OpAudit: a page holds at most
// EventsMaxLimit events and one request reads at most EventsMaxScan
// messages of the stream.
const (
	EventsDefaultLimit = 100
	EventsMaxLimit     = 1000
	EventsMaxScan      = 20000
)

// EventsRequest selects OpEvents' events.
type EventsRequest struct {
	// Kind is the event kind (required): hello, heartbeat, health,
	// preempt, sync or bye, the last token of mesh.v1.evt.<node>.<kind>.
	Kind string `json:"kind"`
	// Node keeps this node's events (empty = every node).
	Node string `json:"node,omitempty"`
	// Since keeps events stored at or after this time.
	Since time.Time `json:"since,omitempty"`
	// AfterSeq continues a previous page: only stream sequences > AfterSeq.
	AfterSeq uint64 `json:"after_seq,omitempty"`
	// Limit is the page size (default EventsDefaultLimit, at most EventsMaxLimit).
	Limit int `json:"limit,omitempty"`
}

// EventEntry is one stored event: where and when it was stored and the
// node's envelope as it sent it (untrusted: the coordinator validates an
// event only when it applies it, so print it as untrusted text).
type EventEntry struct {
	Seq     uint64    `json:"seq"` // MESH_EVT stream sequence
	At      time.Time `json:"at"`  // when the stream stored it
	Subject string    `json:"subject"`
	Size    int       `json:"size"` // bytes as stored
	// Envelope is the stored message; absent when it is not JSON or too
	// large for a reply (more than a quarter of the bus's max payload).
	Envelope json.RawMessage `json:"envelope,omitempty"`
}

// Events is one page of OpEvents, oldest first. More is true when the
// stream holds messages past NextSeq that this page did not reach: ask
// again with AfterSeq = NextSeq (also to follow new events).
type Events struct {
	Items   []EventEntry `json:"items"`
	NextSeq uint64       `json:"next_seq"`
	More    bool         `json:"more"`
}
