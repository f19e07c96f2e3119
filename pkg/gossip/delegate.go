package gossip

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"time"

	"github.com/hashicorp/memberlist"
)

// delegate implements memberlist's Delegate, EventDelegate,
// ConflictDelegate and PingDelegate for a Member. memberlist calls these on
// its own goroutines, often holding its node lock: they must not block and
// must not call back into memberlist. Lock order: memberlist's node lock,
// then Member.mu.
type delegate struct{ m *Member }

var (
	_ memberlist.Delegate         = delegate{}
	_ memberlist.EventDelegate    = delegate{}
	_ memberlist.ConflictDelegate = delegate{}
	_ memberlist.PingDelegate     = delegate{}
)

// NodeMeta returns the encoded local metadata (validated to fit).
func (d delegate) NodeMeta(limit int) []byte {
	b := d.m.meta.Load()
	if b == nil || len(*b) > limit {
		return nil
	}
	return *b
}

// NotifyMsg receives user messages (leave intents, suspect reports).
func (d delegate) NotifyMsg(b []byte) {
	if name, id, ok := decodeMsg(msgSuspectReport, b); ok {
		d.m.suspectReport(name, id)
		return
	}
	name, id, ok := decodeIntent(b)
	if !ok {
		if ok, _ := d.m.limiter.allow("badmsg", rejectLogEvery); ok {
			d.m.log.Warn().Int("bytes", len(b)).Msg("gossip: ignoring unknown user message (newer peer?)")
		}
		return
	}
	d.m.leaveIntent(name, id)
}

// GetBroadcasts hands our queued user messages to memberlist's gossip.
func (d delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.m.bcast.GetBroadcasts(overhead, limit)
}

// LocalState is unused: rich state goes over JetStream.
func (d delegate) LocalState(join bool) []byte { return nil }

// MergeRemoteState is unused.
func (d delegate) MergeRemoteState(buf []byte, join bool) {}

// NotifyJoin: a node became alive in memberlist's view.
func (d delegate) NotifyJoin(n *memberlist.Node) { d.m.nodeAlive(EventJoin, n) }

// NotifyUpdate: an alive node changed its metadata.
func (d delegate) NotifyUpdate(n *memberlist.Node) { d.m.nodeAlive(EventUpdate, n) }

// NotifyLeave: a node is dead or left; see Member.nodeGone.
func (d delegate) NotifyLeave(n *memberlist.Node) { d.m.nodeGone(n) }

// NotifyConflict: other claims existing's name from another address.
func (d delegate) NotifyConflict(existing, other *memberlist.Node) {
	m := d.m
	m.metrics.rejected.WithLabelValues(ReasonConflict).Inc()
	if ok, supp := m.limiter.allow("conflict|"+other.Name+"|"+other.Addr.String(), rejectLogEvery); ok {
		m.log.Error().Str("reason", ReasonConflict).Str("name", other.Name).
			Str("remote", other.Address()).Str("holder", existing.Address()).Int("suppressed", supp).
			Msgf("gossip: rejected node %s at %s: the name is held by a member at %s; node names must be unique (a re-provisioned node can take the name over %s after the old one is declared dead)",
				other.Name, other.Address(), existing.Address(), m.cfg.DeadNodeReclaimTime)
	}
}

// AckPayload is unused.
func (d delegate) AckPayload() []byte { return nil }

// NotifyPingComplete: our probe of other was answered, so it is not
// suspect (from our point of view) any more.
func (d delegate) NotifyPingComplete(other *memberlist.Node, _ time.Duration, _ []byte) {
	d.m.probeOK(other.Name)
}

// nodeAlive records a join or update and emits the event.
func (m *Member) nodeAlive(t EventType, n *memberlist.Node) {
	now := time.Now()
	info := MemberInfo{Name: n.Name, Addr: n.Address(), State: StateAlive, Since: now}
	info.Meta = m.decodeMeta(n.Name, n.Meta)

	m.mu.Lock()
	defer m.mu.Unlock()
	if prev, ok := m.view[n.Name]; ok && t == EventUpdate && prev.State == StateAlive {
		info.Since = prev.Since
	}
	if t == EventJoin {
		delete(m.intents, n.Name) // a new life: an old intent must not turn its next failure into a leave
	}
	m.setLocked(&info)
	m.emitLocked(Event{Type: t, Node: n.Name, Addr: info.Addr, Meta: info.Meta, Time: now})
}

// nodeGone records a dead or left node. memberlist v0.7.0 calls
// NotifyLeave for both and does not fill in Node.State, so a leave is
// recognised by the node's leave intent (or by Node.State == StateLeft,
// should memberlist ever set it).
func (m *Member) nodeGone(n *memberlist.Node) {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	t := EventFail
	switch {
	case n.Name == m.cfg.NodeName:
		if m.leaving {
			t = EventLeave
		}
	case n.State == memberlist.StateLeft:
		t = EventLeave
	default:
		if at, ok := m.intents[n.Name]; ok && now.Sub(at) < intentTTL {
			t = EventLeave
		}
	}
	delete(m.intents, n.Name)

	info := MemberInfo{Name: n.Name, Addr: n.Address(), State: StateDead, Since: now}
	if t == EventLeave {
		info.State = StateLeft
	}
	if prev, ok := m.view[n.Name]; ok {
		info.Meta = prev.Meta
	} else {
		info.Meta = m.decodeMeta(n.Name, n.Meta)
	}
	m.setLocked(&info)
	m.emitLocked(Event{Type: t, Node: n.Name, Addr: info.Addr, Meta: info.Meta, Time: now})
}

// probeOK clears a suspicion after a successful probe.
func (m *Member) probeOK(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.view[name]; ok && e.State == StateSuspect {
		e.State = StateAlive
		e.Since = time.Now()
		m.emitLocked(Event{Type: EventAlive, Node: name, Addr: e.Addr, Meta: e.Meta, Time: e.Since})
	}
}

// suspected marks a node suspect after our own probe of it failed
// (logSink), emits EventSuspect and spreads a suspect report, so that every
// member (the voters above all) learns of the suspicion within a few gossip
// rounds: memberlist gossips its own suspect messages but tells no
// delegate.
func (m *Member) suspected(name string) {
	id := rand.Uint64()
	m.mu.Lock()
	if !m.suspectLocked(name, id) {
		m.mu.Unlock()
		return
	}
	closed := m.closed
	m.mu.Unlock()
	if !closed {
		m.bcast.QueueBroadcast(&intentBroadcast{node: "suspect/" + name, msg: encodeMsg(msgSuspectReport, name, id)})
	}
}

// suspectReport handles another member's suspect report: the node becomes
// suspect here too (if alive), and the report is passed on once. A report
// about this member is ignored: memberlist refutes its own suspicion.
func (m *Member) suspectReport(name string, id uint64) {
	if name == m.cfg.NodeName {
		return
	}
	m.mu.Lock()
	k := intentKey{"suspect/" + name, id}
	if _, dup := m.seenIntents[k]; dup {
		m.mu.Unlock()
		return
	}
	m.seenIntents[k] = time.Now()
	m.suspectLocked(name, id)
	closed := m.closed
	m.mu.Unlock()
	if !closed {
		m.bcast.QueueBroadcast(&intentBroadcast{node: "suspect/" + name, msg: encodeMsg(msgSuspectReport, name, id)})
	}
}

// suspectLocked marks an alive node suspect and emits EventSuspect; it
// reports whether the node was alive. m.mu held.
func (m *Member) suspectLocked(name string, id uint64) bool {
	e, ok := m.view[name]
	if !ok || e.State != StateAlive {
		return false
	}
	m.seenIntents[intentKey{"suspect/" + name, id}] = time.Now()
	e.State = StateSuspect
	e.Since = time.Now()
	m.emitLocked(Event{Type: EventSuspect, Node: name, Addr: e.Addr, Meta: e.Meta, Time: e.Since})
	return true
}

// suspectHold is memberlist's longest suspicion timeout for a cluster of n
// members: SuspicionMaxTimeoutMult × SuspicionMult × max(1, log10 n) ×
// ProbeInterval, plus one probe interval. A suspect member not declared
// failed by then has refuted the suspicion.
func (m *Member) suspectHold(n int) time.Duration {
	min := float64(m.suspMult) * math.Max(1, math.Log10(float64(max(n, 1)))) * float64(m.probeInterval)
	return time.Duration(float64(m.suspMaxMult)*min) + m.probeInterval
}

// expireSuspects turns suspects without a verdict after suspectHold back
// into alive members and emits EventAlive for each.
func (m *Member) expireSuspects(now time.Time) {
	hold := m.suspectHold(int(m.alive.Load()))
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, e := range m.view {
		if e.State == StateSuspect && now.Sub(e.Since) > hold {
			e.State = StateAlive
			e.Since = now
			m.emitLocked(Event{Type: EventAlive, Node: name, Addr: e.Addr, Meta: e.Meta, Time: now})
		}
	}
}

// rejected counts and (rate-limited, per reason and remote IP) logs
// inbound traffic memberlist refused (logSink).
func (m *Member) rejected(reason, remote, detail string) {
	m.metrics.rejected.WithLabelValues(reason).Inc()
	ip := remoteIP(remote)
	ok, supp := m.limiter.allow(reason+"|"+ip, rejectLogEvery)
	if !ok {
		return
	}
	ev := m.log.Error().Str("reason", reason).Str("remote", ip).Str("detail", detail).Int("suppressed", supp)
	switch reason {
	case ReasonKey:
		ev.Msgf("gossip: rejected traffic from %s: not encrypted with any of our gossip keys (that node has a different or no key); it cannot join this cluster. Repeats are counted in ringmesh_gossip_rejected_total and logged at most every %s", ip, rejectLogEvery)
	case ReasonLabel:
		ev.Msgf("gossip: rejected traffic from %s: it belongs to cluster label %q, this is %q; it cannot join this cluster. Repeats are counted in ringmesh_gossip_rejected_total and logged at most every %s", ip, labelOf(detail), m.cfg.ClusterLabel, rejectLogEvery)
	default:
		ev.Msgf("gossip: rejected traffic from %s", ip)
	}
}

// setLocked stores info in the view and keeps the alive count. m.mu held.
func (m *Member) setLocked(info *MemberInfo) {
	wasAlive := false
	if prev, ok := m.view[info.Name]; ok {
		wasAlive = prev.State == StateAlive || prev.State == StateSuspect
	}
	isAlive := info.State == StateAlive || info.State == StateSuspect
	switch {
	case isAlive && !wasAlive:
		m.alive.Add(1)
	case !isAlive && wasAlive:
		m.alive.Add(-1)
	}
	m.view[info.Name] = info
}

// emitLocked queues ev without ever blocking: when the channel is full the
// oldest queued event is dropped. m.mu held (keeps events in order and
// makes the send safe against close).
func (m *Member) emitLocked(ev Event) {
	if m.closed {
		return
	}
	m.metrics.events.WithLabelValues(string(ev.Type)).Inc()
	select {
	case m.events <- ev:
		return
	default:
	}
	select {
	case old := <-m.events:
		m.metrics.dropped.Inc()
		if ok, supp := m.limiter.allow("dropped", dropLogEvery); ok {
			m.log.Warn().Int("capacity", cap(m.events)).Str("dropped_type", string(old.Type)).
				Str("dropped_node", old.Node).Int("suppressed", supp).
				Msg("gossip: event channel full, dropped the oldest event; the consumer is too slow and should reconcile with Members()")
		}
	default:
	}
	select {
	case m.events <- ev:
	default: // cannot happen: we are the only sender and just made room
		m.metrics.dropped.Inc()
	}
}

// decodeMeta decodes a node's metadata, logging (rate-limited) garbage.
func (m *Member) decodeMeta(node string, b []byte) Meta {
	meta, err := DecodeMeta(b)
	if err != nil {
		if ok, _ := m.limiter.allow("meta|"+node, rejectLogEvery); ok {
			m.log.Warn().Err(err).Str("peer", node).Msg("gossip: undecodable node metadata")
		}
	}
	return meta
}

// User messages: [1 byte type][8 bytes random id][node name]. A leave
// intent announces the sender's graceful leave; a suspect report says that
// the sender's probe of the named node failed.
const (
	msgLeaveIntent   byte = 1
	msgSuspectReport byte = 2
)

type intentKey struct {
	node string
	id   uint64
}

func encodeIntent(node string, id uint64) []byte { return encodeMsg(msgLeaveIntent, node, id) }

func decodeIntent(b []byte) (node string, id uint64, ok bool) { return decodeMsg(msgLeaveIntent, b) }

func encodeMsg(typ byte, node string, id uint64) []byte {
	b := make([]byte, 9+len(node))
	b[0] = typ
	binary.BigEndian.PutUint64(b[1:9], id)
	copy(b[9:], node)
	return b
}

func decodeMsg(typ byte, b []byte) (node string, id uint64, ok bool) {
	if len(b) < 10 || b[0] != typ {
		return "", 0, false
	}
	node = string(b[9:])
	if !nodeNameRE.MatchString(node) {
		return "", 0, false
	}
	return node, binary.BigEndian.Uint64(b[1:9]), true
}

// leaveIntent records that node announced a graceful leave, turns a Fail
// we already reported into a Leave, and re-broadcasts the intent once
// (epidemic spread, like memberlist's own messages).
func (m *Member) leaveIntent(node string, id uint64) {
	if node == m.cfg.NodeName {
		return
	}
	now := time.Now()
	m.mu.Lock()
	k := intentKey{node, id}
	if _, dup := m.seenIntents[k]; dup {
		m.mu.Unlock()
		return
	}
	m.seenIntents[k] = now
	e, known := m.view[node]
	switch {
	case known && e.State == StateDead && now.Sub(e.Since) < intentTTL:
		// The intent lost the race against the dead message.
		e.State = StateLeft
		m.emitLocked(Event{Type: EventLeave, Node: node, Addr: e.Addr, Meta: e.Meta, Time: now})
	case !known || e.State == StateAlive || e.State == StateSuspect:
		m.intents[node] = now
	}
	closed := m.closed
	m.mu.Unlock()
	if !closed {
		m.bcast.QueueBroadcast(&intentBroadcast{node: node, msg: encodeIntent(node, id)})
	}
}

// intentBroadcast is a leave intent in the broadcast queue.
type intentBroadcast struct {
	node   string
	msg    []byte
	notify chan struct{}
}

var _ memberlist.NamedBroadcast = (*intentBroadcast)(nil)

func (b *intentBroadcast) Name() string {
	if b.msg[0] == msgSuspectReport {
		return b.node // "suspect/<node>"
	}
	return "leave/" + b.node
}

func (b *intentBroadcast) Invalidates(other memberlist.Broadcast) bool {
	o, ok := other.(memberlist.NamedBroadcast)
	return ok && o.Name() == b.Name()
}

func (b *intentBroadcast) Message() []byte { return b.msg }

func (b *intentBroadcast) Finished() {
	if b.notify != nil {
		select {
		case b.notify <- struct{}{}:
		default:
		}
	}
}
