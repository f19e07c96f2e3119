package gossip

import (
	"context"
	"errors"
	"fmt"
	stdlog "log"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/pkg/gossip/gossipview"
)

// EventType is the kind of a membership [Event].
type EventType string

// Event types.
const (
	// EventJoin: a node became alive in our view (new, or back from
	// dead/left). Also emitted once for the local node at start.
	EventJoin EventType = "join"
	// EventLeave: a node left gracefully (it announced it).
	EventLeave EventType = "leave"
	// EventFail: a node was declared dead by failure detection (or a
	// partition). May be followed by EventLeave for the same node if its
	// leave announcement arrives late.
	EventFail EventType = "fail"
	// EventUpdate: an alive node changed its metadata.
	EventUpdate EventType = "update"
	// EventSuspect: a member's probe of the node failed (this member's
	// own, or another member's, spread as a suspect report); memberlist
	// will declare it failed when its suspicion timer runs out unless it
	// answers. A hint that comes seconds before EventFail.
	EventSuspect EventType = "suspect"
	// EventAlive: a node this member had as suspect answered one of its
	// probes again, or was not declared failed within memberlist's
	// longest suspicion timeout (it refuted the suspicion).
	EventAlive EventType = "alive"
)

// Event is one membership change as seen by this member.
type Event struct {
	// Type is join, leave, fail, update, suspect or alive.
	Type EventType `json:"type"`
	// Node is the member's name (node ID).
	Node string `json:"node"`
	// Addr is the member's gossip address, "ip:port".
	Addr string `json:"addr"`
	// Meta is the member's decoded metadata (zero if it could not be
	// decoded; that is logged).
	Meta Meta `json:"meta"`
	// Time is when this member observed the change (local clock).
	Time time.Time `json:"time"`
}

// State is a member's liveness as seen by this member (gossipview.State).
type State = gossipview.State

// Member states (see gossipview.State).
const (
	StateAlive   = gossipview.StateAlive
	StateSuspect = gossipview.StateSuspect
	StateDead    = gossipview.StateDead
	StateLeft    = gossipview.StateLeft
)

// MemberInfo describes one member in this member's view (gossipview.MemberInfo).
type MemberInfo = gossipview.MemberInfo

// ErrClosed is returned by methods of a [Member] that has been shut down.
var ErrClosed = errors.New("gossip: member is shut down")

// intentTTL is how long a leave intent is remembered: long enough to cover
// the gap between the intent and memberlist's dead message arriving in
// either order.
const intentTTL = time.Minute

// pruneEvery is how often expired tombstones and intents are removed.
const pruneEvery = time.Minute

// defaultUpdateTimeout bounds UpdateMeta when its context has no deadline.
const defaultUpdateTimeout = 5 * time.Second

// Member is this process's membership in the gossip cluster. Create it with
// [New], then call [Member.Run]; stop it by cancelling Run's context
// (graceful leave) or with [Member.Close] (abrupt). All methods are safe for
// concurrent use.
type Member struct {
	cfg     Config // with defaults applied
	log     zerolog.Logger
	reg     prometheus.Registerer
	ml      *memberlist.Memberlist
	metrics *metrics
	limiter *limiter
	bcast   *memberlist.TransmitLimitedQueue
	meta    atomic.Pointer[[]byte] // encoded local metadata, for NodeMeta
	self    string                 // our advertised "ip:port"
	keyring *memberlist.Keyring    // nil without encryption
	alive   atomic.Int64           // alive+suspect members in view (for the broadcast queue)

	mu          sync.Mutex
	view        map[string]*MemberInfo
	intents     map[string]time.Time    // node -> when its leave intent arrived
	seenIntents map[intentKey]time.Time // de-duplication of re-broadcast intents
	events      chan Event
	closed      bool
	leaving     bool

	running  atomic.Bool
	stopOnce sync.Once
	stopping chan struct{} // closed when shutdown starts

	// suspectHold is how long a suspicion without a verdict is kept before
	// the member counts as alive again: memberlist's longest suspicion
	// timeout for the current cluster size (see suspectHoldFor).
	probeInterval time.Duration
	suspMult      int
	suspMaxMult   int
}

// New validates cfg, binds the gossip port (TCP and UDP) and starts
// memberlist with no peers yet; [Member.Run] joins the seeds. log receives
// this package's and memberlist's messages (memberlist's at their own
// level). reg may be nil (no metrics); the series are unregistered again at
// shutdown. A Member that is never Run must be stopped with
// [Member.Close].
func New(cfg Config, log zerolog.Logger, reg prometheus.Registerer) (*Member, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	metaBytes, err := cfg.Meta.Encode()
	if err != nil {
		return nil, err
	}
	mc, err := cfg.Profile.memberlistConfig()
	if err != nil {
		return nil, err
	}
	log = log.With().Str("component", "gossip").Str("node", cfg.NodeName).Logger()

	m := &Member{
		cfg:         cfg,
		log:         log,
		reg:         reg,
		limiter:     newLimiter(),
		view:        make(map[string]*MemberInfo),
		intents:     make(map[string]time.Time),
		seenIntents: make(map[intentKey]time.Time),
		events:      make(chan Event, cfg.EventBuffer),
		stopping:    make(chan struct{}),
	}
	m.meta.Store(&metaBytes)
	m.metrics = newMetrics(m)
	m.bcast = &memberlist.TransmitLimitedQueue{
		NumNodes:       func() int { return int(max(1, m.alive.Load())) },
		RetransmitMult: mc.RetransmitMult,
	}

	mlLog := stdlog.New(&logBridge{log: log.With().Str("lib", "memberlist").Logger(), sink: m}, "", 0)

	transport := cfg.Transport
	var ownTransport *memberlist.NetTransport
	if transport == nil {
		ownTransport, err = newNetTransport(cfg.BindAddr, cfg.BindPort, mlLog)
		if err != nil {
			return nil, err
		}
		transport = ownTransport
		if cfg.AdvertisePort == 0 {
			cfg.AdvertisePort = ownTransport.GetAutoBindPort()
		}
	} else if cfg.AdvertiseAddr != "" && cfg.AdvertisePort == 0 {
		_, port, err := transport.FinalAdvertiseAddr("", 0)
		if err != nil || port == 0 {
			return nil, fmt.Errorf("gossip: config AdvertisePort: required with a custom Transport that cannot tell its port (%v)", err)
		}
		cfg.AdvertisePort = port
	}

	if cfg.Sign != nil {
		ip, port, err := transport.FinalAdvertiseAddr(cfg.AdvertiseAddr, cfg.AdvertisePort)
		if err == nil {
			cfg.Meta.Token, err = cfg.Sign(cfg.ClusterLabel, cfg.NodeName, ip.String(), port)
		}
		if err == nil {
			metaBytes, err = cfg.Meta.Encode()
		}
		if err != nil {
			shutdownTransport(ownTransport)
			return nil, fmt.Errorf("gossip: identity token: %w", err)
		}
		m.cfg.Meta = cfg.Meta
		m.meta.Store(&metaBytes)
	}

	mc.Name = cfg.NodeName
	mc.BindAddr = cfg.BindAddr
	mc.BindPort = cfg.BindPort
	mc.AdvertiseAddr = cfg.AdvertiseAddr
	mc.AdvertisePort = cfg.AdvertisePort
	mc.Label = cfg.ClusterLabel
	if len(cfg.Keys) > 0 {
		kr, err := memberlist.NewKeyring(cfg.Keys, cfg.Keys[0])
		if err != nil {
			shutdownTransport(ownTransport)
			return nil, fmt.Errorf("gossip: config Keys: %w", err)
		}
		mc.Keyring = kr
		m.keyring = kr
		mc.GossipVerifyIncoming = true
		mc.GossipVerifyOutgoing = true
	}
	mc.DeadNodeReclaimTime = cfg.DeadNodeReclaimTime
	mc.CIDRsAllowed, _ = memberlist.ParseCIDRs(cfg.AllowedCIDRs) // validated
	d := delegate{m}
	mc.Delegate = d
	mc.Events = d
	mc.Conflict = d
	mc.Ping = d
	if cfg.VerifyPeer != nil {
		mc.Alive = d
	}
	mc.Logger = mlLog
	mc.LogOutput = nil
	mc.Transport = transport
	if cfg.Tune != nil {
		cfg.Tune(mc)
	}

	m.probeInterval, m.suspMult, m.suspMaxMult = mc.ProbeInterval, mc.SuspicionMult, mc.SuspicionMaxTimeoutMult
	ml, err := memberlist.Create(mc)
	if err != nil {
		shutdownTransport(ownTransport)
		return nil, fmt.Errorf("gossip: start memberlist: %w", err)
	}
	m.ml = ml
	// Safe to read without memberlist's lock: only UpdateNode rewrites the
	// local node, and nobody can call it yet.
	m.self = ml.LocalNode().Address()

	if err := m.metrics.register(reg); err != nil {
		_ = ml.Shutdown()
		return nil, err
	}
	m.log.Info().Object("config", cfg).Str("addr", m.self).Msg("gossip: member started")
	return m, nil
}

// newNetTransport binds memberlist's UDP+TCP transport, retrying a few times
// when the kernel-chosen TCP port is taken for UDP (BindPort 0).
func newNetTransport(addr string, port int, l *stdlog.Logger) (*memberlist.NetTransport, error) {
	attempts := 1
	if port == 0 {
		attempts = 10
	}
	var err error
	for range attempts {
		var nt *memberlist.NetTransport
		nt, err = memberlist.NewNetTransport(&memberlist.NetTransportConfig{
			BindAddrs: []string{addr},
			BindPort:  port,
			Logger:    l,
		})
		if err == nil {
			return nt, nil
		}
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	return nil, fmt.Errorf("gossip: listen on %s: %w", net.JoinHostPort(addr, strconv.Itoa(port)), err)
}

func shutdownTransport(t *memberlist.NetTransport) {
	if t != nil {
		_ = t.Shutdown()
	}
}

// Run joins the seeds, keeps re-joining seeds that are not seen alive every
// RejoinInterval (with backoff from 1 s until the first success), and on
// ctx cancellation leaves gracefully (leave intent, then memberlist's leave,
// each bounded by LeaveTimeout) and shuts down. It returns nil on a clean
// stop, including after [Member.Close], and ErrClosed if the member was
// already shut down. Unreachable seeds are logged, not fatal: the first
// voter of a cluster starts alone. Run may be called once.
func (m *Member) Run(ctx context.Context) error {
	if !m.running.CompareAndSwap(false, true) {
		return errors.New("gossip: Run called more than once")
	}
	select {
	case <-m.stopping:
		return ErrClosed
	default:
	}

	seeds := make([]string, 0, len(m.cfg.Seeds))
	for _, s := range m.cfg.Seeds {
		if s != m.self {
			seeds = append(seeds, s)
		}
	}
	interval := m.cfg.RejoinInterval
	backoff := min(time.Second, interval)
	joined := false
	round := 0

	prune := time.NewTicker(pruneEvery)
	defer prune.Stop()
	var reloadC <-chan time.Time
	if m.cfg.ReloadKeys != nil && m.keyring != nil {
		reload := time.NewTicker(m.cfg.KeyReloadInterval)
		defer reload.Stop()
		reloadC = reload.C
	}
	expire := time.NewTicker(time.Second)
	defer expire.Stop()
	rejoin := time.NewTimer(0)
	defer rejoin.Stop()
	if len(seeds) == 0 {
		rejoin.Stop()
		m.log.Info().Msg("gossip: no seeds besides this node; waiting for others to join")
	}

	for {
		select {
		case <-ctx.Done():
			m.shutdown(true)
			return nil
		case <-m.stopping: // Close was called
			m.shutdown(false) // waits until Close has finished
			return nil
		case now := <-prune.C:
			m.prune(now)
		case <-reloadC:
			m.reloadKeys()
		case now := <-expire.C:
			m.expireSuspects(now)
		case <-rejoin.C:
			if joined {
				m.rejoin(ctx, seeds, round)
				round++
			} else if n, err := m.Join(ctx, seeds...); n > 0 {
				m.log.Info().Strs("seeds", seeds).Int("contacted", n).Int("members", m.NumMembers()).Msg("gossip: joined the cluster")
				joined = true
			} else if ctx.Err() == nil {
				if ok, supp := m.limiter.allow("firstjoin", rejectLogEvery); ok {
					m.log.Warn().Err(err).Dur("retry_in", backoff).Int("suppressed", supp).
						Msg("gossip: could not reach any seed yet; retrying (normal while the first voters start)")
				}
			}
			if joined {
				rejoin.Reset(jitter(interval))
			} else {
				rejoin.Reset(backoff)
				backoff = min(2*backoff, interval)
			}
		}
	}
}

// jitter returns d ± 10 %.
func jitter(d time.Duration) time.Duration {
	return d - d/10 + rand.N(d/5+1)
}

// rejoin runs one rejoin round (see rejoinTargets).
func (m *Member) rejoin(ctx context.Context, seeds []string, round int) {
	notAlive, sync := m.rejoinTargets(ctx, seeds, round)
	if len(notAlive) > 0 {
		n, err := m.Join(ctx, notAlive...)
		if n > 0 {
			m.log.Info().Strs("seeds", notAlive).Int("contacted", n).Int("members", m.NumMembers()).
				Msg("gossip: re-joined seeds we did not see alive (partition healed or seed restarted)")
		}
		if err != nil && ctx.Err() == nil {
			if ok, supp := m.limiter.allow("rejoin|"+strings.Join(notAlive, ","), rejectLogEvery); ok {
				m.log.Warn().Err(err).Int("suppressed", supp).Msgf("gossip: seeds unreachable; retrying every %s", m.cfg.RejoinInterval)
			}
		}
	}
	if sync != "" {
		if _, err := m.Join(ctx, sync); err != nil && ctx.Err() == nil {
			m.log.Debug().Err(err).Str("seed", sync).Msg("gossip: periodic state sync with seed failed")
		}
	}
}

// rejoinTargets picks the seeds to push/pull with in this rejoin round:
// every seed that no alive (or suspect) member of our view listens on, plus
// one seen-alive seed in rotation. The latter is needed because a healed
// partition can be one-sided: we may already see the seed alive again
// (through a peer) while the seed still has us as dead, and nothing would
// ever tell us to refute that. A full state exchange with one voter per
// interval is the anti-entropy that settles such disagreements. Seeds given
// by name are resolved (bounded by 2 s); if that fails they count as not
// alive.
func (m *Member) rejoinTargets(ctx context.Context, seeds []string, round int) (notAlive []string, sync string) {
	alive := make(map[string]bool)
	m.mu.Lock()
	for _, e := range m.view {
		if e.State == StateAlive || e.State == StateSuspect {
			alive[e.Addr] = true
		}
	}
	m.mu.Unlock()

	var live []string
	for _, s := range seeds {
		if m.seedAlive(ctx, s, alive) {
			live = append(live, s)
		} else {
			notAlive = append(notAlive, s)
		}
	}
	if len(live) > 0 {
		sync = live[round%len(live)]
	}
	return notAlive, sync
}

// seedAlive reports whether an alive member listens on seed ("host:port").
func (m *Member) seedAlive(ctx context.Context, seed string, alive map[string]bool) bool {
	host, port, err := net.SplitHostPort(seed)
	if err != nil {
		return false
	}
	if ip := net.ParseIP(host); ip != nil {
		return alive[net.JoinHostPort(ip.String(), port)]
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupIPAddr(rctx, host)
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if alive[net.JoinHostPort(a.IP.String(), port)] {
			return true
		}
	}
	return false
}

// Join contacts each address ("host:port") in turn and merges state with
// it. It returns how many were contacted successfully and the errors of
// the others (with a hint when the cause looks like a key or label
// mismatch). This member's own address is skipped. It stops early when ctx
// is done; each attempt is bounded by memberlist's TCPTimeout.
func (m *Member) Join(ctx context.Context, addrs ...string) (int, error) {
	var errs []error
	n := 0
	for _, a := range addrs {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		if a == m.self {
			continue
		}
		k, err := m.ml.Join([]string{a})
		if err != nil {
			m.metrics.joins.WithLabelValues("error").Inc()
			errs = append(errs, fmt.Errorf("gossip: join %s: %w%s", a, err, joinHint(err)))
			continue
		}
		m.metrics.joins.WithLabelValues("ok").Inc()
		n += k
	}
	return n, errors.Join(errs...)
}

// joinHint explains the usual causes of a failed join.
func joinHint(err error) string {
	s := err.Error()
	switch {
	case strings.Contains(s, "no installed keys could decrypt"):
		return " (the seed answered with a gossip key we do not have: keys differ)"
	case strings.Contains(s, "encryption is configured but remote state is not encrypted"),
		strings.Contains(s, "remote state is encrypted and encryption is not configured"):
		return " (one side uses a gossip key, the other does not)"
	case strings.Contains(s, "EOF"), strings.Contains(s, "connection reset"):
		return " (the seed closed the connection: different cluster label or gossip key?)"
	}
	return ""
}

// Close stops the member abruptly, without announcing a leave: peers will
// detect it as failed, as after a crash. Use it on fatal errors and in
// tests; cancel Run's context to leave gracefully instead. Run, if
// running, returns nil. Close is idempotent and always returns nil.
func (m *Member) Close() error {
	m.shutdown(false)
	return nil
}

// shutdown stops the member once; concurrent callers wait for it.
func (m *Member) shutdown(graceful bool) {
	m.stopOnce.Do(func() {
		close(m.stopping)
		if graceful {
			m.leave()
		}
		if err := m.ml.Shutdown(); err != nil {
			m.log.Warn().Err(err).Msg("gossip: memberlist shutdown")
		}
		m.mu.Lock()
		m.closed = true
		close(m.events)
		m.mu.Unlock()
		m.metrics.unregister(m.reg)
		m.log.Info().Bool("graceful", graceful).Msg("gossip: member stopped")
	})
}

// leave announces a graceful leave: first the leave intent (so peers report
// Leave, not Fail), then memberlist's own leave message.
func (m *Member) leave() {
	m.mu.Lock()
	m.leaving = true
	m.mu.Unlock()
	if m.ml.NumMembers() > 1 {
		notify := make(chan struct{}, 1)
		name := m.cfg.NodeName
		m.bcast.QueueBroadcast(&intentBroadcast{node: name, msg: encodeIntent(name, rand.Uint64()), notify: notify})
		t := time.NewTimer(m.cfg.LeaveTimeout)
		select {
		case <-notify:
		case <-t.C:
			m.log.Warn().Dur("timeout", m.cfg.LeaveTimeout).Msg("gossip: leave intent not fully spread in time; some peers may report a failure instead of a leave")
		}
		t.Stop()
	}
	if err := m.ml.Leave(m.cfg.LeaveTimeout); err != nil {
		m.log.Warn().Err(err).Msg("gossip: leave broadcast not confirmed; peers will detect the departure by probing")
	}
}

// Events returns the channel of membership events. It is buffered
// (Config.EventBuffer); when it is full the oldest event is dropped and
// counted. It is closed when the member shuts down.
func (m *Member) Events() <-chan Event { return m.events }

// Members returns this member's view, sorted by name: alive and suspect
// members, and dead or left ones until TombstoneTimeout after they went.
// It includes the local member.
func (m *Member) Members() []MemberInfo {
	m.mu.Lock()
	out := make([]MemberInfo, 0, len(m.view))
	for _, e := range m.view {
		out = append(out, *e)
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b MemberInfo) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Member returns the view of one member by name.
func (m *Member) Member(name string) (MemberInfo, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.view[name]; ok {
		return *e, true
	}
	return MemberInfo{}, false
}

// LocalNode returns this member as others see it: name, advertised
// address, state and current metadata.
func (m *Member) LocalNode() MemberInfo {
	mi, ok := m.Member(m.cfg.NodeName)
	if !ok { // not reachable after New; be defensive
		meta, _ := DecodeMeta(*m.meta.Load())
		return MemberInfo{Name: m.cfg.NodeName, Addr: m.self, State: StateAlive, Meta: meta}
	}
	return mi
}

// Addr returns this member's advertised gossip address, "ip:port" (what
// other members put in their Seeds).
func (m *Member) Addr() string { return m.self }

// NumMembers returns the number of members memberlist considers alive or
// suspect, including this one.
func (m *Member) NumMembers() int { return m.ml.NumMembers() }

// UpdateMeta replaces this member's metadata and gossips it. It fails
// without changing anything when the encoded metadata exceeds 512 bytes.
// It waits until the update has been broadcast, at most until ctx's
// deadline (5 s without one); on timeout the new metadata is in effect
// locally and still spreads, and an error says it was not confirmed.
func (m *Member) UpdateMeta(ctx context.Context, meta Meta) error {
	meta.Token = m.cfg.Meta.Token // the identity stays this member's
	b, err := meta.Encode()
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case <-m.stopping:
		return ErrClosed
	default:
	}
	timeout := defaultUpdateTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(dl), time.Millisecond)
	}
	m.meta.Store(&b)
	if err := m.ml.UpdateNode(timeout); err != nil {
		return fmt.Errorf("gossip: metadata updated locally but the broadcast was not confirmed within %s: %w", timeout, err)
	}
	return nil
}

// prune forgets tombstones older than TombstoneTimeout and expired intents.
func (m *Member) prune(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, e := range m.view {
		if (e.State == StateDead || e.State == StateLeft) && now.Sub(e.Since) > m.cfg.TombstoneTimeout {
			delete(m.view, name)
		}
	}
	for name, t := range m.intents {
		if now.Sub(t) > intentTTL {
			delete(m.intents, name)
		}
	}
	for k, t := range m.seenIntents {
		if now.Sub(t) > intentTTL {
			delete(m.seenIntents, k)
		}
	}
}
