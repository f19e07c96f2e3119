// Package coordinator is the control plane that runs on the voters: it
// consumes MESH_EVT with a durable explicit-ack consumer, validates every
// message against schemas/, folds it into the registry, stores the merged
// node records in KV mesh_nodes, writes every transition to MESH_AUDIT with
// its cause, and serves meshctl (mesh.v1.api.*) plus /healthz, /readyz,
// /metrics and a status page over HTTP.
//
// Persistence: a record whose state changed is written to KV before the
// event is acknowledged; heartbeat-only changes (latest health sample) are
// flushed every FlushInterval, so a coordinator crash loses at most that
// much of health detail and no transition. A restart on the same store
// directory restores the registry from KV and resumes the consumer from its
// acknowledged position.
package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/internal/history"
	"github.com/ringmesh/ringmesh/pkg/auth"
	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/bus/busserver"
	"github.com/ringmesh/ringmesh/pkg/config"
	"github.com/ringmesh/ringmesh/pkg/cost"
	"github.com/ringmesh/ringmesh/pkg/events"
	"github.com/ringmesh/ringmesh/pkg/fleet"
	"github.com/ringmesh/ringmesh/pkg/gossip"
	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/registry"
	"github.com/ringmesh/ringmesh/pkg/wire"
)

// Config configures a coordinator.
type Config struct {
	// Name is this coordinator's node ID (its voter name); it names the
	// durable consumer "coord-<name>" and the embedded NATS server.
	Name string
	// NATSURLs connects to an existing server or cluster. Empty = embedded.
	NATSURLs []string
	// Embedded configures the embedded server when NATSURLs is empty.
	Embedded busserver.ServerConfig
	// Topology sets stream replicas and limits.
	Topology bus.Topology
	// HTTPAddr serves /healthz, /readyz, /metrics and the status page ("" = off).
	HTTPAddr string
	// Inventory, when set, seeds the registry with every configured host.
	Inventory *config.Inventory
	// Thresholds are the liveness rules.
	Thresholds registry.Thresholds
	// TickInterval is how often liveness rules run (default 1 s).
	TickInterval time.Duration
	// FlushInterval is how often heartbeat-only changes reach KV (default 2 s).
	FlushInterval time.Duration
	// Registerer receives the coordinator's metrics (default: a new registry).
	Registry *prometheus.Registry
	// Now is the clock (tests).
	Now func() time.Time
	// Fleet reconciles the providers (nil = no provider integration).
	Fleet *fleet.Reconciler
	// ReconcileInterval between provider reconciles (default 30 s).
	ReconcileInterval time.Duration
	// PolicyInterval between runs of the inventory's policies (default 30 s).
	PolicyInterval time.Duration
	// LaunchClaimStale is how long a launch request claimed by a coordinator
	// that never recorded its outcome (it died in the create call) blocks a
	// retry (default 5 min). It must exceed the longest a create call can
	// run (the provider call timeout, 30 s per attempt, times its attempts):
	// a retry after it looks for the request ID at the cloud first.
	LaunchClaimStale time.Duration
	// Cost tracks accrued cost (nil = none); it is persisted in KV mesh_state.
	Cost *cost.Tracker
	// Startup renders the startup script of a launched node (api.OpLaunch);
	// nil = launches are refused (AgentScript is the default implementation).
	// An AgentScript without Tokens gets this coordinator's one-time launch
	// tokens when Auth is set, so a launched node enrolls by itself.
	Startup StartupScripter
	// Leadership decides who may act; nil means this coordinator always acts
	// (single-coordinator deployments) unless Elect is set.
	Leadership Leadership
	// Elect runs a leader lease in KV mesh_leader (clustered deployments):
	// only the leader writes KV, audits, reconciles and acts; followers keep
	// a warm registry from their own consumer and take over when the lease lapses.
	Elect bool
	// LeaderTTL is the lease TTL (default: Topology.LeaderTTL, 10 s).
	LeaderTTL time.Duration
	// VastWebhookSecret enables POST /webhooks/vast (HMAC-SHA256 verified).
	VastWebhookSecret string
	// HTTPTokenFile holds the bearer token the status page and /api/*
	// require (empty: the RINGMESH_HTTP_TOKEN environment variable; neither
	// set: open, with a warning when HTTPAddr is not loopback).
	HTTPTokenFile string
	// Auth, when set, is the issuer store (pkg/auth): the embedded server
	// then requires user JWTs and TLS, the coordinator connects with its
	// own "coordinator-<name>" user, every API request must be signed by
	// an issued, unrevoked user whose role allows the operation, and
	// OpRevoke works. Nil = no authentication (tests that say why).
	Auth *auth.Issuer
	// CredsFile and CAFile are this coordinator's own credentials and the
	// CA to pin when it connects to an external NATS (NATSURLs). Default
	// with Auth: issued into <Auth dir>/creds and the store's CA.
	CredsFile string
	CAFile    string
	// TLSHosts are extra host names and IPs of this voter that its server
	// certificate is valid for (loopback is always included).
	TLSHosts []string
	// Gossip, when set, runs a memberlist member on this voter (NodeName and
	// Meta are filled in) and publishes its join/leave/fail/update events to
	// mesh.v1.gossip.<name>. Nil = no gossip.
	Gossip *gossip.Config
}

// Leadership is the view of the leader lease the coordinator needs.
type Leadership interface {
	// IsLeader reports whether this coordinator may act now.
	IsLeader() bool
	// Leader returns the current holder and term as last observed.
	Leader() (holder string, term uint64, ok bool)
}

// Coordinator is one control-plane replica.
type Coordinator struct {
	cfg  Config
	log  zerolog.Logger
	reg  *registry.Registry
	wire *wire.Decoder
	m    *metrics
	srv  *busserver.Server
	nc   *nats.Conn
	js   jetstream.JetStream
	kv   jetstream.KeyValue
	http *http.Server

	appliedN    atomic.Uint64
	report      atomic.Pointer[fleet.Report]
	reconciled  chan struct{}
	ready       atomic.Bool
	wasLeader   bool // touched by the Run loop only
	member      atomic.Pointer[gossip.Member]
	routeMu     sync.Mutex             // one RouteSync at a time (route loop and the routes API)
	sentTargets map[string]sentTargets // guarded by routeMu
	// syncCerts caches each source node's sync certificate (guarded by routeMu).
	syncCerts map[string]syncCert
	// chosenTargets is the router's last choice: source → target → true.
	chosenTargets atomic.Pointer[map[string]map[string]bool]
	readyErr      atomic.Value // string
	started       chan struct{}
	startOnce     sync.Once
	httpAddr      atomic.Value // string
	webhookIDs    webhookSeen
	quorumSt      quorumState
	pending       atomic.Uint64 // consumer NumPending at the last beat
	ackPending    atomic.Uint64 // consumer NumAckPending at the last beat
	verifier      *auth.Verifier
	credsFile     string         // this coordinator's own bus credentials (signs its gossip identity)
	hist          *history.Store // recent health per node, for the dashboard's charts

	// bg runs short background work started by requests (refreshSoon),
	// under bgCtx (Run's context); Run waits for it before returning.
	bgMu    sync.Mutex
	bgCtx   context.Context
	bg      sync.WaitGroup
	busURLs []string

	// costMu guards costSaved: the cost history day values last written to
	// or read from KV (coststore.go), so a save rewrites only changed days.
	costMu    sync.Mutex
	costSaved map[string][]byte
}

// New validates cfg and builds a coordinator; Run starts it.
func New(cfg Config, log zerolog.Logger) (*Coordinator, error) {
	if err := mesh.ValidateNodeID(cfg.Name); err != nil {
		return nil, fmt.Errorf("coordinator name: %w", err)
	}
	cfg.Thresholds = cfg.Thresholds.WithDefaults()
	if err := cfg.Thresholds.Validate(); err != nil {
		return nil, err
	}
	if cfg.TickInterval == 0 {
		cfg.TickInterval = time.Second
	}
	if cfg.FlushInterval == 0 {
		cfg.FlushInterval = 2 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.ReconcileInterval == 0 {
		cfg.ReconcileInterval = 30 * time.Second
	}
	if cfg.PolicyInterval == 0 {
		cfg.PolicyInterval = 30 * time.Second
	}
	if cfg.LaunchClaimStale == 0 {
		cfg.LaunchClaimStale = defaultLaunchClaimStale
	}
	dec, err := wire.NewDecoder(wire.Limits{})
	if err != nil {
		return nil, fmt.Errorf("schemas: %w", err)
	}
	c := &Coordinator{
		cfg:         cfg,
		log:         log.With().Str("component", "coordinator").Str("coordinator", cfg.Name).Logger(),
		reg:         registry.New(cfg.Thresholds),
		wire:        dec,
		started:     make(chan struct{}),
		reconciled:  make(chan struct{}, 1),
		sentTargets: map[string]sentTargets{},
		syncCerts:   map[string]syncCert{},
		hist:        history.New(0, 0),
	}
	if as, ok := cfg.Startup.(AgentScript); ok && as.Tokens == nil && cfg.Auth != nil {
		as.Tokens = launchTokens{c}
		c.cfg.Startup = as
	}
	// Its own record and the voters' (Seed adds them) are written by coordinators only.
	c.reg.Protect(cfg.Name)
	c.reg.Admit(cfg.Name, "coordinator")
	if cfg.Auth != nil {
		// Request freshness compares the signer's wall clock with ours: the
		// wall clock, not cfg.Now (a test may run the registry on virtual time).
		c.verifier = auth.NewVerifier(cfg.Auth, nil)
	}
	c.m = newMetrics(cfg.Registry, c.reg)
	for _, oc := range c.opsCollectors() {
		if err := cfg.Registry.Register(oc); err != nil {
			return nil, fmt.Errorf("coordinator metrics: %w", err)
		}
	}
	if cfg.Cost != nil {
		if err := cfg.Cost.Register(cfg.Registry); err != nil {
			return nil, fmt.Errorf("cost metrics: %w", err)
		}
	}
	c.readyErr.Store("starting")
	return c, nil
}

// Applied returns how many events were applied to the registry (duplicates and invalid ones excluded).
func (c *Coordinator) Applied() uint64 { return c.appliedN.Load() }

// Registry exposes the in-memory registry (read-only use).
func (c *Coordinator) Registry() *registry.Registry { return c.reg }

// Started is closed once the coordinator consumes events and serves its API.
func (c *Coordinator) Started() <-chan struct{} { return c.started }

// ClientURL is the embedded server's URL ("" when connected to an external one).
func (c *Coordinator) ClientURL() string {
	if c.srv == nil {
		return ""
	}
	return c.srv.ClientURL()
}

// HTTPAddr is the bound HTTP address ("" until started or when off).
func (c *Coordinator) HTTPAddr() string {
	s, _ := c.httpAddr.Load().(string)
	return s
}

// Run starts the coordinator and blocks until ctx ends; it then stops the
// consumer, flushes the registry to KV and shuts the embedded server down.
func (c *Coordinator) Run(ctx context.Context) error {
	urls := c.cfg.NATSURLs
	if len(urls) == 0 {
		sc := c.cfg.Embedded
		if sc.Name == "" {
			sc.Name = "ringmesh-" + c.cfg.Name
		}
		if c.cfg.Auth != nil && sc.Security == nil {
			sec, err := c.cfg.Auth.Security(append([]string{sc.Host}, c.cfg.TLSHosts...))
			if err != nil {
				return err
			}
			sc.Security = sec
		}
		srv, err := busserver.StartServer(sc, c.log)
		if err != nil {
			return err
		}
		c.srv = srv
		defer srv.Stop()
		urls = []string{srv.ClientURL()}
		c.log.Info().Str("url", bus.Redact(srv.ClientURL())).Bool("auth", sc.Security != nil).Str("store", sc.StoreDir).Msg("embedded NATS JetStream started")
	}
	conf := bus.ConnConfig{URLs: urls, Name: "coordinator-" + c.cfg.Name, CredsFile: c.cfg.CredsFile, CAFile: c.cfg.CAFile}
	if c.cfg.Auth != nil {
		if conf.CredsFile == "" {
			p, err := c.ownCreds()
			if err != nil {
				return err
			}
			conf.CredsFile = p
		}
		if conf.CAFile == "" {
			conf.CAFile = c.cfg.Auth.CAFile()
		}
	}
	c.busURLs = urls
	c.credsFile = conf.CredsFile
	nc, err := bus.Connect(conf, c.log)
	if err != nil {
		return err
	}
	c.nc = nc
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	c.js = js
	bgCtx, stopBg := context.WithCancel(ctx)
	c.bgMu.Lock()
	c.bgCtx = bgCtx
	c.bgMu.Unlock()
	defer func() {
		c.bgMu.Lock()
		c.bgCtx = nil
		c.bgMu.Unlock()
		stopBg()
		c.bg.Wait()
	}()
	if err := c.setup(ctx); err != nil {
		return err
	}
	if c.cfg.Elect && c.cfg.Leadership == nil {
		el, err := c.elector(ctx)
		if err != nil {
			return err
		}
		ectx, stopElector := context.WithCancel(context.Background())
		edone := make(chan struct{})
		go func() {
			defer close(edone)
			if err := el.Run(ectx); err != nil {
				c.log.Error().Err(err).Msg("leader election stopped")
			}
		}()
		defer func() { stopElector(); <-edone }()
		c.cfg.Leadership = el
	}

	if c.cfg.Gossip != nil {
		stop, err := c.startGossip()
		if err != nil {
			return err
		}
		defer stop()
	}
	if c.cfg.HTTPAddr != "" {
		if err := c.startHTTP(); err != nil {
			return err
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = c.http.Shutdown(sctx)
		}()
	}
	svc, err := c.startAPI()
	if err != nil {
		return err
	}
	defer svc.Stop()
	stopEnroll, err := c.startEnroll(ctx)
	if err != nil {
		return err
	}
	defer stopEnroll()

	cons, err := c.consumer(ctx)
	if err != nil {
		return err
	}
	cc, err := cons.Consume(c.handle,
		jetstream.PullMaxMessages(256),
		jetstream.PullHeartbeat(5*time.Second),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if !errors.Is(err, jetstream.ErrNoHeartbeat) {
				c.log.Warn().Err(err).Msg("consume")
			}
		}))
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	c.ready.Store(true)
	c.startOnce.Do(func() { close(c.started) })
	c.log.Info().Int("nodes", len(c.reg.Snapshot())).Msg("coordinator running")

	// Every loop is owned here and joined before Run returns.
	var loops sync.WaitGroup
	defer loops.Wait()
	if c.cfg.Fleet != nil {
		loops.Go(func() { c.reconcileLoop(ctx) })
		if c.cfg.Inventory != nil && c.cfg.Inventory.Policies.Any() {
			loops.Go(func() { c.policyLoop(ctx, c.cfg.Inventory.Policies) })
		}
	}
	loops.Go(func() { c.routeLoop(ctx) })
	if c.cfg.Auth != nil {
		loops.Go(func() { c.replicateUsers(ctx) })
	}
	beat := time.NewTicker(voterBeatInterval)
	defer beat.Stop()
	c.beat(ctx)
	tick := time.NewTicker(c.cfg.TickInterval)
	flush := time.NewTicker(c.cfg.FlushInterval)
	defer tick.Stop()
	defer flush.Stop()
	for {
		select {
		case <-ctx.Done():
			cc.Stop()
			c.ready.Store(false)
			fctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			c.flush(fctx)
			c.writeBeat(fctx, true)
			cancel()
			c.log.Info().Msg("coordinator stopped")
			return nil
		case <-tick.C:
			c.watchLeadership(ctx)
			c.tick(ctx)
		case <-flush.C:
			c.flush(ctx)
		case <-beat.C:
			bctx, cancel := context.WithTimeout(ctx, voterBeatInterval)
			c.beat(bctx)
			cancel()
		}
	}
}

func (c *Coordinator) setup(ctx context.Context) error {
	// Generous: a cluster whose voters start together elects a meta leader
	// and sorts out concurrent stream creation first.
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := bus.WaitJetStream(wctx, c.js); err != nil {
		return fmt.Errorf("jetstream not available: %w", err)
	}
	if err := bus.EnsureStreams(wctx, c.js, c.cfg.Topology); err != nil {
		return err
	}
	kv, err := c.js.KeyValue(wctx, bus.BucketNodes)
	if err != nil {
		return err
	}
	c.kv = kv
	recs, err := c.loadRecords(wctx)
	if err != nil {
		return fmt.Errorf("restore registry: %w", err)
	}
	now := c.cfg.Now()
	c.reg.Restore(recs, now)
	c.reg.Seed(c.cfg.Inventory, now)
	c.restoreCost(wctx)
	c.admitEnrolled(wctx)
	c.flush(wctx)
	c.log.Info().Int("restored", len(recs)).Msg("registry restored from KV " + bus.BucketNodes)
	return nil
}

func (c *Coordinator) loadRecords(ctx context.Context) ([]registry.Record, error) {
	lister, err := c.kv.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	var recs []registry.Record
	for key := range lister.Keys() {
		e, err := c.kv.Get(ctx, key)
		if err != nil {
			if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
				continue
			}
			return nil, err
		}
		var r registry.Record
		if err := json.Unmarshal(e.Value(), &r); err != nil {
			c.log.Error().Err(err).Str("key", key).Msg("skipping unreadable node record in KV")
			continue
		}
		recs = append(recs, r)
	}
	return recs, nil
}

func (c *Coordinator) consumer(ctx context.Context) (jetstream.Consumer, error) {
	return c.js.CreateOrUpdateConsumer(ctx, bus.StreamEvents, jetstream.ConsumerConfig{
		Durable:        "coord-" + c.cfg.Name,
		Description:    "registry of coordinator " + c.cfg.Name,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        30 * time.Second,
		MaxDeliver:     5,
		MaxAckPending:  4096,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		FilterSubjects: []string{bus.EventsAll, bus.GossipAll},
	})
}

// handle processes one MESH_EVT message. It never blocks on bad input: the
// trust boundary (pkg/wire) bounds, validates and decodes it once; an
// invalid message is terminated with its reason and dead-lettered.
func (c *Coordinator) handle(msg jetstream.Msg) {
	meta, err := msg.Metadata()
	at := c.cfg.Now()
	busTime := time.Time{}
	if err == nil && !meta.Timestamp.IsZero() {
		busTime = meta.Timestamp
		if meta.Timestamp.Before(at) {
			at = meta.Timestamp // when the bus stored it: replays keep their real time
		}
	}
	m, err := c.wire.Decode(msg.Subject(), msg.Data(), busTime)
	if err != nil {
		c.deadLetter(msg, meta, err.Error())
		return
	}
	var trs []registry.Transition
	if m.Gossip != nil {
		if !c.isVoter(m.Node) {
			c.m.dropped.WithLabelValues("gossip_not_from_voter").Inc()
			c.deadLetter(msg, meta, fmt.Sprintf("gossip observation from %q, which is not a configured voter", m.Node))
			return
		}
		trs = c.reg.ApplyGossip(*m.Gossip, at)
	} else {
		if m.Sync != nil {
			c.checkReceipts(&m)
		}
		res, err := c.reg.ApplyMessage(m, at)
		if errors.Is(err, registry.ErrQuarantineFull) {
			c.m.dropped.WithLabelValues("quarantine_full").Inc()
			if err := msg.TermWithReason(err.Error()); err != nil {
				c.log.Debug().Err(err).Msg("term")
			}
			return
		}
		if err != nil {
			c.deadLetter(msg, meta, err.Error())
			return
		}
		if res.Duplicate {
			c.m.duplicates.Inc()
			_ = msg.Ack()
			return
		}
		trs = res.Transitions
		if m.Heartbeat != nil {
			c.hist.Add(m.Node, at, &m.Heartbeat.Health, m.Heartbeat.RPO)
		}
	}
	c.m.applied.WithLabelValues(m.Kind).Inc()
	c.appliedN.Add(1)
	if _, retired := c.retiredForGood(m.Node); retired {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c.revokeRetired(ctx, m.Node)
		cancel()
	}
	if len(trs) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c.recordTransitions(ctx, trs, m.ID)
		cancel()
	}
	if err := msg.Ack(); err != nil {
		c.log.Warn().Err(err).Str("subject", msg.Subject()).Msg("ack")
	}
}

// checkReceipts drops the RPO of a sync result that claims copies on a
// target the router did not choose for that node: such receipts never make
// RPO zero. Which targets were chosen is known only on the leader once it
// routed the node; before that (a follower, a leader that just started or
// took over) a result naming targets cannot be checked, so its RPO is not
// taken either (unknown, never a figure nobody vouched for). A result that
// names no targets carries the node's own measurement and is kept.
func (c *Coordinator) checkReceipts(m *wire.Message) {
	var set map[string]bool
	routed := false
	if p := c.chosenTargets.Load(); c.IsLeader() && p != nil {
		set, routed = (*p)[m.Node]
	}
	for _, f := range m.Sync.Made {
		for _, t := range f.Targets {
			if set[t] {
				continue
			}
			reason, why := "receipt_from_unchosen_target", "a target the router did not choose"
			if !routed {
				reason, why = "receipt_before_routing", "targets this coordinator has not routed the node to (yet)"
			}
			c.m.dropped.WithLabelValues(reason).Inc()
			c.log.Warn().Str("node", m.Node).Str("target", t).Msg("sync receipt from " + why + ": RPO not taken")
			m.Sync.RPO = events.RPO{}
			return
		}
	}
}

// isVoter reports whether node is a configured voter (or this coordinator).
func (c *Coordinator) isVoter(node string) bool {
	if node == c.cfg.Name {
		return true
	}
	return c.cfg.Inventory != nil && c.cfg.Inventory.IsVoter(node)
}

func (c *Coordinator) deadLetter(msg jetstream.Msg, meta *jetstream.MsgMetadata, reason string) {
	c.m.invalid.Inc()
	dl := events.DeadLetter{Stream: bus.StreamEvents, Subject: msg.Subject(), Reason: reason, At: c.cfg.Now().UTC()}
	if meta != nil {
		dl.Sequence = meta.Sequence.Stream
	}
	p := msg.Data()
	if len(p) > 4096 {
		p = p[:4096]
	}
	dl.Payload = string(p)
	b, _ := json.Marshal(dl)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := c.js.Publish(ctx, bus.DeadLetterSubject(bus.StreamEvents), b,
		jetstream.WithMsgID(fmt.Sprintf("dlq:%s:%d", bus.StreamEvents, dl.Sequence)))
	if err != nil {
		c.log.Error().Err(err).Msg("dead-letter publish failed; terminating anyway")
	}
	c.log.Warn().Str("subject", msg.Subject()).Uint64("seq", dl.Sequence).Str("reason", reason).Msg("invalid message terminated")
	if err := msg.TermWithReason(reason); err != nil {
		c.log.Warn().Err(err).Msg("term")
	}
}

// recordTransitions stores the changed records and audits each transition.
func (c *Coordinator) recordTransitions(ctx context.Context, trs []registry.Transition, cause string) {
	seen := map[string]bool{}
	for _, t := range trs {
		c.m.transitions.WithLabelValues(string(t.To)).Inc()
		c.log.Info().Str("node", t.Node).Str("from", string(t.From)).Str("to", string(t.To)).Str("cause", t.Cause).Msg("transition")
		if !c.IsLeader() {
			continue // the leader records; followers keep their registry warm
		}
		if !seen[t.Node] {
			seen[t.Node] = true
			if rec, ok := c.reg.Get(t.Node); ok {
				if err := c.store(ctx, rec); err != nil {
					c.log.Error().Err(err).Str("node", t.Node).Msg("store node record; will retry")
					c.reg.MarkDirty(t.Node)
				}
			}
		}
		a := events.Audit{Kind: "transition", Node: t.Node, From: string(t.From), To: string(t.To), Cause: t.Cause, Actor: "coordinator:" + c.cfg.Name}
		id := fmt.Sprintf("transition:%s:%s:%s:%d", c.cfg.Name, t.Node, t.To, t.At.UnixNano())
		if cause != "" {
			id = fmt.Sprintf("transition:%s:%s:%s:%s", c.cfg.Name, t.Node, t.To, cause)
		}
		c.audit(ctx, "transition", id, a)
		if t.To == mesh.StateTerminated {
			c.revokeNode(ctx, t.Node, "the node's instance is terminated ("+t.Cause+")")
		}
	}
}

// revokeNode revokes the bus credentials of a node that is out of service
// for good, why says how that is known (audited): its instance is gone
// (terminated is only concluded from the provider: a confirmed not-found
// or a terminated state, never from silence), or the inventory retired it.
// A credential copied off the box is then worth nothing. Its sync
// certificate, which only reaches it over the bus, is then never renewed
// and expires within auth.DefaultSyncCertValidity; a new instance of the
// same name enrolls anew. Voters and coordinators are never revoked here.
func (c *Coordinator) revokeNode(ctx context.Context, node, why string) {
	if c.cfg.Auth == nil || c.isVoter(node) || strings.HasPrefix(node, "coordinator-") {
		return
	}
	creds, err := c.credentialsOf(node)
	if err != nil {
		c.log.Warn().Err(err).Str("node", node).Msg("revoking a node out of service: reading the issuer store")
		return
	}
	live := false
	for _, u := range creds {
		if u.Role != auth.RoleNode {
			return // an operator or service name: not ours to revoke
		}
		live = live || u.RevokedAt.IsZero()
	}
	if !live {
		return
	}
	revoked, err := c.cfg.Auth.RevokeAndPush(ctx, c.busURLs, node)
	keys := make([]string, 0, len(revoked))
	for _, u := range revoked {
		keys = append(keys, u.PublicKey)
	}
	if err != nil {
		c.log.Error().Err(err).Str("node", node).Str("why", why).Msg("revoking the credentials of a node out of service")
	} else {
		c.log.Info().Str("node", node).Int("keys", len(keys)).Str("why", why).Msg("credentials revoked: node out of service")
	}
	if len(keys) > 0 {
		a := auditRevoke(ctx, node, keys, err)
		a.Cause, a.Actor = "credentials revoked: "+why, "coordinator:"+c.cfg.Name
		if err == nil {
			c.revokeSyncOnTargets(ctx, node, "credentials revoked: "+why, &a)
		}
		c.audit(ctx, "revoke", "revoke:"+node+":"+keys[len(keys)-1], a)
	}
}

// retiredForGood returns the inventory status of node when it takes the
// host out of service for good (retired, terminated, archived): its
// credentials are revoked. Hosts offline or in setup come back and keep them.
func (c *Coordinator) retiredForGood(node string) (string, bool) {
	if c.cfg.Inventory == nil {
		return "", false
	}
	h := c.cfg.Inventory.Hosts[node]
	if h == nil {
		return "", false
	}
	switch st := strings.ToLower(h.Status); st {
	case "retired", "terminated", "archived":
		return st, true
	}
	return "", false
}

// revokeRetired, on the leader, revokes the credentials of every host the
// inventory retired for good (run when this coordinator becomes the leader,
// and for a retired node's message, so a retirement takes effect without
// anyone running meshctl revoke).
func (c *Coordinator) revokeRetired(ctx context.Context, nodes ...string) {
	if c.cfg.Auth == nil || !c.IsLeader() {
		return
	}
	if len(nodes) == 0 && c.cfg.Inventory != nil {
		nodes = c.cfg.Inventory.Names()
	}
	for _, n := range nodes {
		if st, ok := c.retiredForGood(n); ok {
			c.revokeNode(ctx, n, "the inventory says status "+st)
		}
	}
}

// audit publishes a to mesh.v1.audit.<kind>; id de-duplicates retries.
func (c *Coordinator) audit(ctx context.Context, kind, id string, a events.Audit) {
	subj, err := bus.AuditSubject(kind)
	if err != nil {
		c.log.Error().Err(err).Msg("audit subject")
		return
	}
	env, err := bus.NewEnvelope("audit", id, c.cfg.Name, c.cfg.Now(), a)
	if err != nil {
		c.log.Error().Err(err).Msg("audit envelope")
		return
	}
	b, _ := json.Marshal(env)
	for attempt := 0; attempt < 3; attempt++ {
		if _, err = c.js.Publish(ctx, subj, b, jetstream.WithMsgID(id)); err == nil {
			return
		}
	}
	c.log.Error().Err(err).Str("audit", id).Msg("audit publish failed")
}

func (c *Coordinator) store(ctx context.Context, rec registry.Record) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	_, err = c.kv.Put(ctx, rec.Node, b)
	return err
}

func (c *Coordinator) flush(ctx context.Context) {
	if !c.IsLeader() {
		return
	}
	for _, rec := range c.reg.TakeDirty() {
		if err := c.store(ctx, rec); err != nil {
			c.log.Warn().Err(err).Str("node", rec.Node).Msg("flush node record; will retry")
			c.reg.MarkDirty(rec.Node)
		}
	}
}

func (c *Coordinator) tick(ctx context.Context) {
	trs := c.reg.Tick(c.cfg.Now())
	if len(trs) == 0 {
		return
	}
	tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c.recordTransitions(tctx, trs, "")
}

func (c *Coordinator) startHTTP() error {
	token, err := c.httpToken()
	if err != nil {
		return err
	}
	if token == "" && !loopback(c.cfg.HTTPAddr) {
		c.log.Warn().Str("addr", c.cfg.HTTPAddr).Msg("HTTP status page and /api/* are open on a non-loopback address; set a token (--http-token-file or " + HTTPTokenEnv + ")")
	}
	ln, err := net.Listen("tcp", c.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("http listen %s: %w", c.cfg.HTTPAddr, err)
	}
	c.httpAddr.Store(ln.Addr().String())
	c.http = &http.Server{Handler: c.httpHandlerWith(token), ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout: 15 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
	go func() {
		if err := c.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			c.log.Error().Err(err).Msg("http server")
		}
	}()
	c.log.Info().Str("addr", ln.Addr().String()).Msg("http: /healthz /readyz /metrics /")
	return nil
}
