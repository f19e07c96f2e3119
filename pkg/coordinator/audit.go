package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
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
	var filter []string
	if r.Kind != "" {
		subj, err := bus.AuditSubject(r.Kind)
		if err != nil {
			return out, err
		}
		filter = []string{subj}
	}
	pg := streamPage{stream: bus.StreamAudit, filter: filter, afterSeq: r.AfterSeq, since: r.Since, limit: r.Limit, maxScan: maxScan}
	next, more, err := c.readPage(ctx, pg, func(m jetstream.Msg, seq uint64) (int, bool) {
		var env bus.Envelope
		var a events.Audit
		if json.Unmarshal(m.Data(), &env) != nil || json.Unmarshal(env.Body, &a) != nil {
			return 0, false // not ours to interpret; skipped, the cursor moves on
		}
		if r.Node != "" && a.Node != r.Node {
			return 0, false
		}
		out.Items = append(out.Items, api.AuditEntry{Seq: seq, At: env.TS, Kind: a.Kind, Node: a.Node, From: a.From, To: a.To,
			Cause: a.Cause, Actor: a.Actor, DryRun: a.DryRun, Detail: a.Detail, Subject: m.Subject()})
		return 0, true
	})
	out.NextSeq, out.More = next, more
	return out, err
}

// streamPage is one page request over a stream: messages on filter (all
// when empty) after afterSeq (or stored at or after since), at most limit
// kept of at most maxScan read, and (maxBytes > 0) at most maxBytes of
// reply in the kept messages' sizes.
type streamPage struct {
	stream   string
	filter   []string
	afterSeq uint64
	since    time.Time
	limit    int
	maxScan  int
	maxBytes int
}

// readPage scans p.stream oldest first with an ordered consumer, calling
// keep for each message (with its stream sequence) until keep has accepted
// p.limit messages, p.maxScan were read, the sizes keep reported would pass
// p.maxBytes (the message is left for the next page) or the stream's end is
// reached. keep returns the bytes the message adds to the reply and
// whether it kept it; the first kept message always fits. It
// returns the sequence of the last message consumed (p.afterSeq when none) and
// whether the stream holds messages past it that this page did not reach.
func (c *Coordinator) readPage(ctx context.Context, p streamPage, keep func(m jetstream.Msg, seq uint64) (int, bool)) (next uint64, more bool, err error) {
	st, err := c.js.Stream(ctx, p.stream)
	if err != nil {
		return p.afterSeq, false, fmt.Errorf("stream %s: %w", p.stream, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return p.afterSeq, false, fmt.Errorf("stream %s: %w", p.stream, err)
	}
	next = p.afterSeq
	last := info.State.LastSeq
	if info.State.Msgs == 0 || last <= p.afterSeq {
		return next, false, nil
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: p.filter}
	switch {
	case p.afterSeq > 0:
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, p.afterSeq+1
	case !p.since.IsZero():
		since := p.since.UTC()
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	default:
		cfg.DeliverPolicy = jetstream.DeliverAllPolicy
	}
	cons, err := st.OrderedConsumer(ctx, cfg)
	if err != nil {
		return next, false, err
	}
	scanned, kept, bytes := 0, 0, 0
	for scanned < p.maxScan && kept < p.limit {
		batch, err := cons.Fetch(min(256, p.maxScan-scanned), jetstream.FetchMaxWait(500*time.Millisecond))
		if err != nil {
			return next, false, err
		}
		n := 0
		for m := range batch.Messages() {
			n++
			scanned++
			md, err := m.Metadata()
			if err != nil {
				continue
			}
			if kept >= p.limit {
				return next, true, nil // this message is for the next page
			}
			if size, ok := keepWithin(p, kept, bytes, m, md.Sequence.Stream, keep); !ok {
				if size < 0 {
					return next, true, nil // does not fit: the first of the next page
				}
			} else {
				kept++
				bytes += size
			}
			next = md.Sequence.Stream
			if next >= last {
				return next, false, nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) {
			return next, false, err
		}
		if n == 0 {
			return next, false, nil // nothing more matches
		}
	}
	return next, next < last, nil
}

// keepWithin calls keep for m unless m would not fit: then it returns -1
// and m is not consumed (keep is called only when the budget allows).
func keepWithin(p streamPage, kept, bytes int, m jetstream.Msg, seq uint64, keep func(jetstream.Msg, uint64) (int, bool)) (int, bool) {
	if p.maxBytes > 0 && kept > 0 && bytes+len(m.Data()) > p.maxBytes {
		return -1, false
	}
	return keep(m, seq)
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

// nodeAuditWindow is how many of the newest MESH_AUDIT records one read
// of a node's audit timeline (the dashboard's node page) searches.
const nodeAuditWindow = api.AuditMaxScan

// nodeAudit returns the newest (at most limit) audit entries about node,
// newest first, searching the newest nodeAuditWindow records of
// MESH_AUDIT; partial is true when older records exist that were not
// searched.
func (c *Coordinator) nodeAudit(ctx context.Context, node string, limit int) ([]api.AuditEntry, bool, error) {
	if err := mesh.ValidateNodeID(node); err != nil {
		return nil, false, fmt.Errorf("node audit: node: %w", err)
	}
	st, err := c.js.Stream(ctx, bus.StreamAudit)
	if err != nil {
		return nil, false, fmt.Errorf("node audit: stream %s: %w", bus.StreamAudit, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("node audit: stream %s: %w", bus.StreamAudit, err)
	}
	r := api.AuditRequest{Node: node, Limit: api.AuditMaxLimit}
	partial := false
	if last := info.State.LastSeq; last > nodeAuditWindow {
		r.AfterSeq = last - nodeAuditWindow
		partial = info.State.Msgs > 0 && info.State.FirstSeq <= r.AfterSeq
	}
	var items []api.AuditEntry
	for range 50 { // the window bounds the scan; this bounds the pages
		page, err := c.readAudit(ctx, r, nodeAuditWindow)
		if err != nil {
			return nil, false, fmt.Errorf("node audit: %w", err)
		}
		items = append(items, page.Items...)
		if len(items) > limit {
			items = items[len(items)-limit:] // keep the newest
		}
		if !page.More || page.NextSeq <= r.AfterSeq {
			break
		}
		r.AfterSeq = page.NextSeq
	}
	slices.Reverse(items)
	return items, partial, nil
}
