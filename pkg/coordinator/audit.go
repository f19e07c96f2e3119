package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/events"
	"github.com/ringmesh/ringmesh/pkg/fleet"
	"github.com/ringmesh/ringmesh/pkg/mesh"
)

var auditKindRe = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)

func (c *Coordinator) apiAudit(ctx context.Context, req []byte) (any, error) {
	var r api.AuditRequest
	if len(req) > 0 {
		if err := json.Unmarshal(req, &r); err != nil {
			return nil, errors.New("bad request: " + err.Error())
		}
	}
	if r.Node != "" {
		if err := mesh.ValidateNodeID(r.Node); err != nil {
			return nil, fmt.Errorf("bad request: node: %w", err)
		}
	}
	if r.Kind != "" && !auditKindRe.MatchString(r.Kind) {
		return nil, fmt.Errorf("bad request: kind %q: want a lower-case audit kind like transition or provider_call", r.Kind)
	}
	if r.Limit <= 0 {
		r.Limit = api.AuditDefaultLimit
	}
	if r.Limit > api.AuditMaxLimit {
		r.Limit = api.AuditMaxLimit
	}
	return c.readAudit(ctx, r, api.AuditMaxScan)
}

// readAudit scans MESH_AUDIT oldest first from r.AfterSeq+1 (or r.Since),
// filtered by r.Kind (as a subject filter) and r.Node, reading at most
// maxScan messages and returning at most r.Limit entries.
func (c *Coordinator) readAudit(ctx context.Context, r api.AuditRequest, maxScan int) (api.Audit, error) {
	out := api.Audit{Items: []api.AuditEntry{}, NextSeq: r.AfterSeq}
	st, err := c.js.Stream(ctx, bus.StreamAudit)
	if err != nil {
		return out, fmt.Errorf("stream %s: %w", bus.StreamAudit, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return out, fmt.Errorf("stream %s: %w", bus.StreamAudit, err)
	}
	last := info.State.LastSeq
	if info.State.Msgs == 0 || last <= r.AfterSeq {
		return out, nil
	}
	cfg := jetstream.OrderedConsumerConfig{}
	switch {
	case r.AfterSeq > 0:
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, r.AfterSeq+1
	case !r.Since.IsZero():
		since := r.Since.UTC()
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	default:
		cfg.DeliverPolicy = jetstream.DeliverAllPolicy
	}
	if r.Kind != "" {
		subj, err := bus.AuditSubject(r.Kind)
		if err != nil {
			return out, err
		}
		cfg.FilterSubjects = []string{subj}
	}
	cons, err := st.OrderedConsumer(ctx, cfg)
	if err != nil {
		return out, err
	}
	scanned := 0
	for scanned < maxScan && len(out.Items) < r.Limit {
		batch, err := cons.Fetch(min(256, maxScan-scanned), jetstream.FetchMaxWait(500*time.Millisecond))
		if err != nil {
			return out, err
		}
		n := 0
		for m := range batch.Messages() {
			n++
			scanned++
			md, err := m.Metadata()
			if err != nil {
				continue
			}
			if len(out.Items) >= r.Limit {
				out.More = true
				return out, nil // this message is for the next page
			}
			out.NextSeq = md.Sequence.Stream
			var env bus.Envelope
			var a events.Audit
			if json.Unmarshal(m.Data(), &env) != nil || json.Unmarshal(env.Body, &a) != nil {
				continue // not ours to interpret; skipped, the cursor moves on
			}
			if r.Node != "" && a.Node != r.Node {
				continue
			}
			out.Items = append(out.Items, api.AuditEntry{Seq: md.Sequence.Stream, At: env.TS, Kind: a.Kind, Node: a.Node, From: a.From, To: a.To,
				Cause: a.Cause, Actor: a.Actor, DryRun: a.DryRun, Detail: a.Detail, Subject: m.Subject()})
			if md.Sequence.Stream >= last {
				return out, nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) {
			return out, err
		}
		if n == 0 {
			return out, nil // nothing more matches
		}
	}
	out.More = out.NextSeq < last
	return out, nil
}

// operatorStops returns the instances ("provider/id") whose latest audited
// operator call was a stop: a stop's intent (the provider may report the
// instance stopped before the result is audited) or its successful
// result, not followed by a successful start or undone by a failed stop.
// Providers that cannot say who stopped an instance (RunPod reports any
// interruptible pod in EXITED as preempted) would otherwise turn the
// operator's own stop into a preemption.
func (c *Coordinator) operatorStops(ctx context.Context) (map[string]bool, error) {
	stops := map[string]bool{}
	r := api.AuditRequest{Kind: "provider_call", Since: c.cfg.Now().Add(-operatorStopMemory), Limit: api.AuditMaxLimit}
	for range 50 { // at most 50 pages
		page, err := c.readAudit(ctx, r, api.AuditMaxScan)
		if err != nil {
			return stops, err
		}
		for _, e := range page.Items {
			d := e.Detail
			if e.DryRun || d == nil || d["provider"] == "" || d["instance"] == "" {
				continue
			}
			key := d["provider"] + "/" + d["instance"]
			switch {
			case d["op"] == fleet.OpStop && d["phase"] == "intent":
				stops[key] = true
			case d["op"] == fleet.OpStop && d["phase"] == "result" && d["error"] != "":
				delete(stops, key)
			case d["op"] == fleet.OpStart && d["phase"] == "result" && d["error"] == "":
				delete(stops, key)
			}
		}
		if !page.More {
			break
		}
		r.AfterSeq = page.NextSeq
	}
	return stops, nil
}

// operatorStopMemory is how far back operator stops are looked up.
const operatorStopMemory = 30 * 24 * time.Hour

// relabelOperatorStops turns "preempted"/interrupted instances that an
// operator stopped into plain stopped ones, in place, before the registry
// and the preemption logic see them. The audit is read only when some
// instance looks preempted. When it cannot be read, the provider's view
// stands (a missed preemption would lose data; a mislabel does not).
func (c *Coordinator) relabelOperatorStops(ctx context.Context, ivs []fleet.InstanceView) {
	var stops map[string]bool
	for i := range ivs {
		iv := &ivs[i]
		if !(iv.State == "preempted" || iv.Interrupted) {
			continue
		}
		if stops == nil {
			actx, cancel := context.WithTimeout(ctx, 5*time.Second)
			s, err := c.operatorStops(actx)
			cancel()
			if err != nil {
				c.log.Warn().Err(err).Msg("read operator stops from " + bus.StreamAudit + "; provider preemption reports stand")
				return
			}
			stops = s
		}
		if stops[iv.Provider+"/"+iv.ID] {
			c.log.Info().Str("node", iv.Node).Str("provider", iv.Provider).Str("instance", iv.ID).Str("raw_state", iv.RawState).
				Msg("instance reported preempted was stopped by an operator (audited): treated as stopped")
			iv.State, iv.Interrupted = "stopped", false
		}
	}
}
