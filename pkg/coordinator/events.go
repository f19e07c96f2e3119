package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/mesh"
)

// apiEvents answers api.OpEvents: one page of MESH_EVT on
// mesh.v1.evt.<node or *>.<kind>.
func (c *Coordinator) apiEvents(ctx context.Context, req []byte) (any, error) {
	var r api.EventsRequest
	if len(req) > 0 {
		if err := json.Unmarshal(req, &r); err != nil {
			return nil, errors.New("bad request: " + err.Error())
		}
	}
	return c.readEvents(ctx, r)
}

// readEvents reads one page of api.OpEvents; the dashboard's node page
// reads a node's sync results through it, as meshctl events does.
func (c *Coordinator) readEvents(ctx context.Context, r api.EventsRequest) (api.Events, error) {
	node := "*"
	if r.Node != "" {
		if err := mesh.ValidateNodeID(r.Node); err != nil {
			return api.Events{}, fmt.Errorf("bad request: node: %w", err)
		}
		node = r.Node
	}
	if _, _, err := bus.ParseEventSubject(bus.Prefix + ".evt.x." + r.Kind); err != nil {
		return api.Events{}, fmt.Errorf("bad request: kind %q: want one of hello, heartbeat, health, preempt, sync, bye", r.Kind)
	}
	if r.Limit <= 0 {
		r.Limit = api.EventsDefaultLimit
	}
	r.Limit = min(r.Limit, api.EventsMaxLimit)
	out := api.Events{Items: []api.EventEntry{}}
	pg := streamPage{stream: bus.StreamEvents, filter: []string{bus.Prefix + ".evt." + node + "." + r.Kind},
		afterSeq: r.AfterSeq, since: r.Since, limit: r.Limit, maxScan: api.EventsMaxScan, maxBytes: c.maxPayload() / 2}
	// An event too large for a reply of its own (a node may publish up to
	// the max payload) is listed by size only.
	maxEvent := c.maxPayload() / 4
	next, more, err := c.readPage(ctx, pg, func(m jetstream.Msg, seq uint64) (int, bool) {
		e := api.EventEntry{Seq: seq, Subject: m.Subject(), Size: len(m.Data())}
		if md, err := m.Metadata(); err == nil {
			e.At = md.Timestamp
		}
		if len(m.Data()) <= maxEvent && json.Valid(m.Data()) {
			e.Envelope = json.RawMessage(m.Data())
		}
		out.Items = append(out.Items, e)
		return len(e.Envelope) + len(e.Subject) + 128, true
	})
	out.NextSeq, out.More = next, more
	return out, err
}
