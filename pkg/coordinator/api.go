package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/events"
)

// apiHandler answers one operation; req is the raw request body.
type apiHandler func(ctx context.Context, req []byte) (any, error)

func (c *Coordinator) apiHandlers() map[string]apiHandler {
	return map[string]apiHandler{
		api.OpStatus: func(ctx context.Context, _ []byte) (any, error) {
			st := c.Status()
			st.Voters = c.voters(ctx)
			return st, nil
		},
		api.OpDeadLetters: c.apiDeadLetters,
		api.OpInstances:   c.apiInstances,
		api.OpSSHConfig:   c.apiSSHConfig,
		api.OpPaths:       c.apiPaths,
		api.OpCost:        c.apiCost,
		api.OpAct:         c.apiAct,
		api.OpMembers:     c.apiMembers,
		api.OpSync:        c.apiSync,
		api.OpSafe:        c.apiSafe,
		api.OpRoutes:      c.apiRoutes,
		api.OpRevoke:      c.apiRevoke,
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
		leaderOnly := op == api.OpAct || op == api.OpSync || op == api.OpRoutes || op == api.OpRevoke || (c.cfg.Elect && (op == api.OpInstances || op == api.OpSSHConfig || op == api.OpCost))
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
			_ = r.Respond(b)
		}), opts...)
		if err != nil {
			_ = svc.Stop()
			return nil, err
		}
	}
	return svc, nil
}

// Status is the cluster picture as this coordinator sees it.
func (c *Coordinator) Status() api.Status {
	th := c.reg.Thresholds()
	return api.Status{
		Coordinator: c.cfg.Name,
		Leader:      leaderName(c),
		GeneratedAt: c.cfg.Now().UTC(),
		Thresholds:  api.ThresholdsView{SuspectAfterSeconds: th.SuspectAfter.Seconds(), DeadAfterSeconds: th.DeadAfter.Seconds()},
		Counts:      c.reg.Counts(),
		Nodes:       c.reg.Snapshot(),
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
	return api.DeadLetters{Items: items}, nil
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
