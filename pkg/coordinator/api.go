package coordinator

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/events"
	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/registry"
	"github.com/ringmesh/ringmesh/pkg/version"
)

// apiHandler answers one operation; req is the raw request body.
type apiHandler func(ctx context.Context, req []byte) (any, error)

func (c *Coordinator) apiHandlers() map[string]apiHandler {
	return map[string]apiHandler{
		api.OpStatus:       c.apiStatus,
		api.OpDeadLetters:  c.apiDeadLetters,
		api.OpInstances:    c.apiInstances,
		api.OpSSHConfig:    c.apiSSHConfig,
		api.OpPaths:        c.apiPaths,
		api.OpCost:         c.apiCost,
		api.OpAct:          c.apiAct,
		api.OpMembers:      c.apiMembers,
		api.OpSync:         c.apiSync,
		api.OpSafe:         c.apiSafe,
		api.OpRoutes:       c.apiRoutes,
		api.OpAudit:        c.apiAudit,
		api.OpEvents:       c.apiEvents,
		api.OpRevoke:       c.apiRevoke,
		api.OpOffers:       c.apiOffers,
		api.OpTokenCreate:  c.apiTokenCreate,
		api.OpTokenList:    c.apiTokenList,
		api.OpTokenRevoke:  c.apiTokenRevoke,
		api.OpEnroll:       c.apiEnroll,
		api.OpForget:       c.apiForget,
		api.OpLaunch:       c.apiLaunch,
		api.OpLaunchStatus: c.apiLaunchStatus,
	}
}

func (c *Coordinator) startAPI() (micro.Service, error) {
	svc, err := micro.AddService(c.nc, micro.Config{
		Name:        "ringmesh",
		Version:     "1.0.0",
		Description: "ringmesh coordinator API for meshctl",
		Metadata:    map[string]string{"coordinator": c.cfg.Name},
	})
	if err != nil {
		return nil, err
	}
	for op, h := range c.apiHandlers() {
		h := h
		opts := []micro.EndpointOpt{micro.WithEndpointSubject(bus.APISubject(op))}
		leaderOnly := op == api.OpAct || op == api.OpSync || op == api.OpRoutes || op == api.OpRevoke || op == api.OpEnroll || op == api.OpForget || op == api.OpTokenCreate || op == api.OpTokenRevoke || op == api.OpLaunch || op == api.OpLaunchStatus || (c.cfg.Elect && (op == api.OpInstances || op == api.OpSSHConfig || op == api.OpCost || op == api.OpOffers))
		if leaderOnly {
			// Every coordinator hears it; only the leader answers.
			opts = append(opts, micro.WithEndpointQueueGroupDisabled())
		}
		err := svc.AddEndpoint(op, micro.HandlerFunc(func(r micro.Request) {
			if leaderOnly && !c.IsLeader() {
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var rep api.Reply
			var out any
			ctx, err := c.authorize(ctx, op, r)
			if err == nil {
				out, err = h(ctx, r.Data())
			}
			if err != nil {
				rep.Error = err.Error()
			} else if out != nil {
				rep.Data, err = json.Marshal(out)
				if err != nil {
					rep.Error = "encode reply: " + err.Error()
				}
			}
			b, _ := json.Marshal(rep)
			if max := c.maxPayload(); len(b) > max {
				// Never send what the server refuses: say so instead.
				c.m.respondErrors.WithLabelValues(op).Inc()
				c.log.Warn().Str("op", op).Int("bytes", len(b)).Int("max_payload", max).Msg("API reply exceeds the max payload; answering with an error")
				b, _ = json.Marshal(api.Reply{Error: fmt.Sprintf("reply of %d bytes exceeds the bus max payload of %d bytes; ask for less (paging, limit)", len(b), max)})
			}
			if err := r.Respond(b); err != nil {
				c.m.respondErrors.WithLabelValues(op).Inc()
				c.log.Warn().Err(err).Str("op", op).Int("bytes", len(b)).Msg("API respond failed")
			}
		}), opts...)
		if err != nil {
			_ = svc.Stop()
			return nil, err
		}
	}
	return svc, nil
}

// maxPayload is the bus's max payload for this connection (1 MiB when unknown).
func (c *Coordinator) maxPayload() int {
	if c.nc != nil {
		if n := c.nc.MaxPayload(); n > 0 {
			return int(n)
		}
	}
	return 1 << 20
}

// apiStatus answers one page of OpStatus (api.StatusRequest); a page holds
// as many node rows as fit in the max payload, so the reply always does.
func (c *Coordinator) apiStatus(ctx context.Context, req []byte) (any, error) {
	var r api.StatusRequest
	if len(req) > 0 {
		if err := json.Unmarshal(req, &r); err != nil {
			return nil, errors.New("bad request: " + err.Error())
		}
	}
	if len(r.States) > 32 || len(r.Providers) > 32 || len(r.Nodes) > 32 {
		return nil, errors.New("bad request: at most 32 states, 32 providers and 32 nodes")
	}
	for _, n := range r.Nodes {
		if !events.Match("node", n) {
			return nil, fmt.Errorf("bad request: bad node ID %q", events.StripControl(n))
		}
	}
	for _, s := range r.States {
		if !mesh.KnownState(s) {
			return nil, fmt.Errorf("bad request: unknown state %q", events.StripControl(string(s)))
		}
	}
	for _, p := range r.Providers {
		if !events.Match("node", p) {
			return nil, fmt.Errorf("bad request: bad provider %q", events.StripControl(p))
		}
	}
	st := c.Status()
	st.Voters = c.voters(ctx)
	st.Total = len(st.Nodes) // the registry's, before filters
	st.Nodes, st.ProviderCounts = selectNodes(st.Nodes, r)
	return statusPage(st, r, c.maxPayload()), nil
}

// selectNodes applies r's filters and order to nodes and counts all of
// them by provider.
func selectNodes(nodes []registry.Record, r api.StatusRequest) ([]registry.Record, map[string]int) {
	byProvider := map[string]int{}
	out := nodes[:0:0]
	for _, n := range nodes {
		byProvider[n.Provider]++
		if (len(r.States) == 0 || slices.Contains(r.States, n.State)) && (len(r.Providers) == 0 || slices.Contains(r.Providers, n.Provider)) &&
			(len(r.Nodes) == 0 || slices.Contains(r.Nodes, n.Node)) {
			out = append(out, n)
		}
	}
	if r.ProblemsFirst {
		slices.SortStableFunc(out, func(a, b registry.Record) int {
			return cmp.Or(cmp.Compare(mesh.StateSeverity(a.State), mesh.StateSeverity(b.State)), cmp.Compare(a.Node, b.Node))
		})
	}
	return out, byProvider
}

// statusPage cuts st.Nodes to the page r asks for, within max bytes of
// reply. A row too large to fit even alone is sent without its health
// sample and last sync result (the summary fields stay).
func statusPage(st api.Status, r api.StatusRequest, max int) api.Status {
	nodes := st.Nodes
	if st.Total == 0 {
		st.Total = len(nodes)
	}
	st.Matched = len(nodes)
	if r.Offset < 0 || r.Offset > len(nodes) {
		r.Offset = len(nodes)
	}
	if r.Limit <= 0 || r.Limit > 1000 {
		r.Limit = 1000
	}
	st.Nodes = nil
	head, _ := json.Marshal(api.Reply{Data: mustJSON(st)})
	budget := max - len(head) - 512 // page fields, separators
	st.Offset = r.Offset
	page := []registry.Record{}
	i := r.Offset
	for ; i < len(nodes) && len(page) < r.Limit; i++ {
		rec := nodes[i]
		b := mustJSON(rec)
		if len(b)+1 > budget && len(page) == 0 {
			rec.Health, rec.LastSync = nil, nil
			b = mustJSON(rec)
		}
		// json.Marshal of RawMessage inside Reply escapes nothing more than
		// the record's own encoding, but HTML-escaping may grow it: count 1.1×.
		need := len(b) + len(b)/10 + 1
		if need > budget {
			break
		}
		budget -= need
		page = append(page, rec)
	}
	st.Nodes = page
	if i < len(nodes) {
		st.NextOffset = i
	}
	return st
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// Status is the cluster picture as this coordinator sees it.
func (c *Coordinator) Status() api.Status {
	th := c.reg.Thresholds()
	return api.Status{
		Coordinator: c.cfg.Name,
		Version:     version.String(),
		Leader:      leaderName(c),
		GeneratedAt: c.cfg.Now().UTC(),
		Thresholds:  api.ThresholdsView{SuspectAfterSeconds: th.SuspectAfter.Seconds(), DeadAfterSeconds: th.DeadAfter.Seconds()},
		Counts:      c.reg.Counts(),
		Nodes:       c.reg.Snapshot(),
		Quarantined: c.reg.Quarantined(),
	}
}

func (c *Coordinator) apiDeadLetters(ctx context.Context, req []byte) (any, error) {
	var r api.DeadLettersRequest
	if len(req) > 0 {
		if err := json.Unmarshal(req, &r); err != nil {
			return nil, errors.New("bad request: " + err.Error())
		}
	}
	if r.Limit <= 0 || r.Limit > 1000 {
		r.Limit = 100
	}
	items, err := c.deadLetters(ctx, r.Limit)
	if err != nil {
		return nil, err
	}
	// Keep the newest that fit in one reply (each holds up to 4 KiB of payload).
	budget, n := c.maxPayload()-1024, len(items)
	for n > 0 {
		need := len(mustJSON(items[n-1])) + 1
		need += need / 10
		if need > budget {
			break
		}
		budget -= need
		n--
	}
	return api.DeadLetters{Items: items[n:]}, nil
}

// deadLetters reads the newest limit entries of MESH_DLQ.
func (c *Coordinator) deadLetters(ctx context.Context, limit int) ([]events.DeadLetter, error) {
	st, err := c.js.Stream(ctx, bus.StreamDeadLetter)
	if err != nil {
		return nil, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return nil, err
	}
	out := []events.DeadLetter{}
	if info.State.Msgs == 0 {
		return out, nil
	}
	start := info.State.FirstSeq
	if info.State.LastSeq >= uint64(limit) && info.State.LastSeq-uint64(limit)+1 > start {
		start = info.State.LastSeq - uint64(limit) + 1
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: start})
	if err != nil {
		return nil, err
	}
	for {
		if len(out) >= limit {
			break
		}
		batch, err := cons.FetchNoWait(limit)
		if err != nil {
			return nil, err
		}
		n := 0
		for m := range batch.Messages() {
			n++
			var d events.DeadLetter
			if json.Unmarshal(m.Data(), &d) == nil {
				out = append(out, d)
			}
			if md, err := m.Metadata(); err == nil && md.Sequence.Stream >= info.State.LastSeq {
				return out, nil
			}
		}
		if n == 0 {
			break
		}
	}
	return out, nil
}

func leaderName(c *Coordinator) string {
	h, _ := c.leader()
	return h
}
