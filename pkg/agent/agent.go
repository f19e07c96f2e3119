// Package agent is the process that runs on every node (docs/ARCHITECTURE.md §4): it
// identifies the node, samples its health without blocking, and publishes
// hello, heartbeats, health changes and bye over JetStream through a
// disk-backed outbox, so nothing it has to say is lost while the bus is
// unreachable or across a restart.
package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/pkg/auth"
	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/config"
	"github.com/ringmesh/ringmesh/pkg/detect"
	"github.com/ringmesh/ringmesh/pkg/events"
	"github.com/ringmesh/ringmesh/pkg/gossip"
	"github.com/ringmesh/ringmesh/pkg/health"
	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/outbox"
	"github.com/ringmesh/ringmesh/pkg/paths"
	meshsync "github.com/ringmesh/ringmesh/pkg/sync"
	"golang.org/x/crypto/ssh"
)

// Config configures an agent. Values from flags and the inventory are
// merged by the caller; a set field always wins over detection.
type Config struct {
	// NodeID is the node's ID (the host key in distributed_hosts.yaml).
	NodeID string
	// Provider, InstanceID and Role override detection when set.
	Provider   string
	InstanceID string
	Role       string
	// Host is the node's inventory entry, if any (paths, SSH, ephemeral flag).
	Host *config.Host
	// NATSURLs are the servers to publish to (all voters in a cluster).
	NATSURLs []string
	// CredsFile is this node's NATS credentials (issued for role node
	// under its node ID); CAFile the ringmesh CA to pin (tls:// servers).
	CredsFile string
	CAFile    string
	// StateDir holds the outbox (and later the sync manifest).
	StateDir string
	// HeartbeatInterval between heartbeats (default 5 s).
	HeartbeatInterval time.Duration
	// Version is the agent version reported in hello and heartbeats.
	Version string
	// Detect configures provider self-detection (endpoints, timeouts).
	Detect detect.Options
	// Paths maps host paths onto the local filesystem (tests use a fixture
	// root). The mount table read for the shared filesystems the node
	// reports in hello (FilesystemIDs) is Paths.Root + /proc/self/mountinfo.
	Paths paths.Resolver
	// ProcessPatterns are watched processes, name → regexp on the command line.
	ProcessPatterns map[string]string
	// HealthThresholds decide healthy vs degraded.
	HealthThresholds health.Thresholds
	// HealthExec replaces command execution of the health sampler (tests).
	HealthExec health.ExecFunc
	// Dev reports provider "local" when detection finds nothing.
	Dev bool
	// ByeTimeout bounds the wait for the outbox to drain at shutdown (default 3 s).
	ByeTimeout time.Duration
	// OutboxMaxBytes bounds queued non-heartbeat events (default 64 MiB).
	OutboxMaxBytes int64
	// HostKeyPaths are the SSH host public keys whose fingerprint the agent
	// reports (default detect.DefaultHostKeyPaths: /etc/ssh/ssh_host_*_key.pub).
	HostKeyPaths []string
	// Sync, when set, runs data protection (manifest, continuous sync,
	// final flush on a termination signal). Nil = off.
	Sync *SyncConfig
	// Gossip, when set, joins the memberlist cluster of the voters (NodeName
	// and Meta are filled in by the agent). Nil = no gossip.
	Gossip *gossip.Config
}

// Agent is one node's agent.
type Agent struct {
	cfg  Config
	log  zerolog.Logger
	boot string
	seq  atomic.Uint64
	// syncKey is the node's own sync key (set before the hello when sync is on).
	syncKey ssh.Signer

	box     *outbox.Outbox
	boxp    atomic.Pointer[outbox.Outbox] // box, for readers outside Run
	lastHB  atomic.Pointer[events.Heartbeat]
	member  *gossip.Member
	sync    *syncState
	sampler *health.Sampler
	nc      *nats.Conn
	js      jetstream.JetStream

	connected atomic.Bool
	paused    atomic.Bool
	ready     chan struct{}
	readyOnce sync.Once

	mu         sync.Mutex
	lastStatus string
	identity   events.Hello
}

// New validates cfg.
func New(cfg Config, log zerolog.Logger) (*Agent, error) {
	if err := mesh.ValidateNodeID(cfg.NodeID); err != nil {
		return nil, fmt.Errorf("agent node ID: %w", err)
	}
	if len(cfg.NATSURLs) == 0 {
		return nil, errors.New("agent: no NATS URL given (--nats-url)")
	}
	if cfg.StateDir == "" {
		return nil, errors.New("agent: state directory is required (--state-dir)")
	}
	if cfg.Provider != "" && !mesh.KnownProvider(cfg.Provider) {
		return nil, fmt.Errorf("agent: unknown provider %q (want one of %v, local, unknown)", cfg.Provider, mesh.Providers)
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = 5 * time.Second
	}
	if cfg.ByeTimeout <= 0 {
		cfg.ByeTimeout = 3 * time.Second
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	return &Agent{cfg: cfg, log: log.With().Str("component", "agent").Str("node", cfg.NodeID).Logger(), boot: newBoot(), ready: make(chan struct{})}, nil
}

func newBoot() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return strconv.FormatInt(time.Now().Unix(), 36) + hex.EncodeToString(b)
}

// Boot returns this run's boot ID.
func (a *Agent) Boot() string { return a.boot }

// Ready is closed once hello is queued and heartbeats run.
func (a *Agent) Ready() <-chan struct{} { return a.ready }

// Identity returns the hello body (after Ready).
func (a *Agent) Identity() events.Hello {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.identity
}

// PauseHeartbeats stops (true) or resumes (false) heartbeats without
// leaving: the node then looks silent to the coordinator. For tests and
// drills.
func (a *Agent) PauseHeartbeats(p bool) { a.paused.Store(p) }

// Gossip returns the agent's gossip member (nil when gossip is off).
func (a *Agent) Gossip() *gossip.Member { return a.member }

// Outbox exposes the queue length (count, bytes) for status and tests.
func (a *Agent) Outbox() (int, int64) {
	box := a.boxp.Load()
	if box == nil {
		return 0, 0
	}
	return box.Len()
}

// LatestHeartbeat returns the last heartbeat built (health sample and RPO);
// ok is false before the first. Safe for concurrent use (metrics scrapes).
func (a *Agent) LatestHeartbeat() (events.Heartbeat, bool) {
	hb := a.lastHB.Load()
	if hb == nil {
		return events.Heartbeat{}, false
	}
	return *hb, true
}

// Run identifies the node, connects and publishes until ctx ends, then
// publishes bye and waits up to ByeTimeout for the outbox to drain.
func (a *Agent) Run(ctx context.Context) error {
	if err := os.MkdirAll(a.cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("agent state dir: %w", err)
	}
	box, err := outbox.Open(filepath.Join(a.cfg.StateDir, "outbox.db"), a.cfg.OutboxMaxBytes)
	if err != nil {
		return err
	}
	a.box = box
	a.boxp.Store(box)
	defer box.Close()
	if n, b := box.Len(); n > 0 {
		a.log.Info().Int("messages", n).Int64("bytes", b).Msg("outbox holds messages from a previous run; draining them first")
	}

	hello := a.identify(ctx)
	hello.SyncEnabled = a.cfg.Sync != nil
	if a.cfg.Sync != nil {
		// The node's own sync key: the coordinator certifies it for the
		// targets set up with `meshctl target setup` (docs/security.md).
		k, err := meshsync.LoadOrCreateSyncKey(filepath.Join(a.cfg.StateDir, meshsync.SyncKeyFile))
		if err != nil {
			return fmt.Errorf("agent sync: %w", err)
		}
		a.syncKey = k
		hello.SyncKey = meshsync.PublicKeyLine(k.PublicKey())
	}
	if a.cfg.Gossip != nil {
		gc := *a.cfg.Gossip
		gc.NodeName = a.cfg.NodeID
		gc.Meta = gossip.Meta{Role: "agent", Provider: hello.Provider, AgentVersion: a.cfg.Version}
		if a.cfg.CredsFile != "" {
			// Voters admit this member only under the name its credential was issued for.
			s, err := auth.LoadSigner(a.cfg.CredsFile)
			if err != nil {
				return fmt.Errorf("agent gossip identity: %w", err)
			}
			gc.Sign = s.GossipToken
		}
		m, err := gossip.New(gc, a.log, nil)
		if err != nil {
			return fmt.Errorf("agent gossip: %w", err)
		}
		a.member = m
		hello.GossipAddr = m.Addr()
		gctx, stopGossip := context.WithCancel(context.Background())
		gdone := make(chan struct{})
		go func() {
			defer close(gdone)
			if err := m.Run(gctx); err != nil {
				a.log.Error().Err(err).Msg("gossip stopped")
			}
		}()
		// Leave the gossip cluster after bye is out (deferred calls run last-in first-out).
		defer func() { stopGossip(); <-gdone }()
	}
	a.mu.Lock()
	a.identity = hello
	a.mu.Unlock()

	diskPaths := a.diskPaths(hello.Paths)
	sampler, err := health.New(health.Options{DiskPaths: diskPaths, ProcessPatterns: a.cfg.ProcessPatterns, AgentVersion: a.cfg.Version, Exec: a.cfg.HealthExec})
	if err != nil {
		return err
	}
	a.sampler = sampler

	nc, err := bus.Connect(bus.ConnConfig{URLs: a.cfg.NATSURLs, Name: a.cfg.NodeID, OnStatus: a.connected.Store, CredsFile: a.cfg.CredsFile, CAFile: a.cfg.CAFile}, a.log)
	if err != nil {
		return err
	}
	a.nc = nc
	defer nc.Close()
	a.connected.Store(nc.IsConnected())
	go func() {
		// Say plainly when the bus is not there: events wait in the outbox meanwhile.
		select {
		case <-ctx.Done():
		case <-time.After(3 * time.Second):
			if !nc.IsConnected() && !nc.IsClosed() { // closed: refused, and bus.Connect said why
				a.log.Warn().Str("nats_url", bus.Redact(strings.Join(a.cfg.NATSURLs, ","))).Msg("cannot reach NATS yet; retrying forever, events are kept in the outbox")
			}
		}
	}()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	a.js = js

	runCtx, stopBackground := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = sampler.Run(runCtx, a.cfg.HeartbeatInterval, nil) }()
	go func() {
		defer wg.Done()
		if err := box.Drain(runCtx, a.publish, 2*time.Second); err != nil {
			a.log.Error().Err(err).Msg("outbox drain stopped")
		}
	}()
	// The sync state closes after every goroutine that uses it has returned.
	var closeSync func()
	defer func() {
		stopBackground()
		wg.Wait()
		if closeSync != nil {
			closeSync()
		}
	}()

	if err := a.emit(bus.KindHello, hello, false); err != nil {
		return err
	}
	if a.cfg.Sync != nil {
		st, err := a.setUpSync(hello.Paths)
		if err != nil {
			return fmt.Errorf("agent sync: %w", err)
		}
		a.sync = st
		closeSync = st.close
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := st.engine.Run(runCtx); err != nil && !errors.Is(err, context.Canceled) {
				a.log.Error().Err(err).Msg("sync engine stopped")
			}
		}()
		wg.Add(1)
		go func() {
			defer wg.Done()
			// New and changed files count in the RPO within a second, not at the next scan.
			if err := st.manifest.Watch(runCtx, meshsync.WatchOptions{Logger: a.log}); err != nil && !errors.Is(err, context.Canceled) {
				a.log.Error().Err(err).Msg("sync watcher stopped")
			}
		}()
	}
	wg.Add(1)
	go func() { defer wg.Done(); a.sweepPartials(runCtx, hello.Paths) }()
	wg.Add(1)
	go func() { defer wg.Done(); a.commands(runCtx) }()
	a.log.Info().Str("provider", hello.Provider).Str("source", hello.ProviderSource).Str("instance", hello.InstanceID).
		Str("ringrift_path", hello.Paths.Ringrift).Str("boot", a.boot).Msg("agent started")

	a.waitFirstSample(ctx)
	a.readyOnce.Do(func() { close(a.ready) })
	t := time.NewTicker(a.cfg.HeartbeatInterval)
	defer t.Stop()
	// Data at risk grows between heartbeats: report it within a second.
	risk := time.NewTicker(time.Second)
	defer risk.Stop()
	a.heartbeat()
	for {
		select {
		case <-ctx.Done():
			return a.shutdown(ctx, box)
		case <-t.C:
			a.heartbeat()
		case <-risk.C:
			if a.riskGrew() {
				a.heartbeat()
			}
		}
	}
}

func (a *Agent) shutdown(ctx context.Context, box *outbox.Outbox) error {
	reason := "agent stopped"
	if cause := context.Cause(ctx); cause != nil && cause != context.Canceled {
		reason = cause.Error()
	}
	if a.sync != nil && !a.sync.flushed.Load() {
		notice := a.cfg.Sync.Notice
		if notice <= 0 {
			notice = DefaultNotice(a.identity.Provider)
		}
		deadline := time.Now().Add(notice)
		// SIGTERM is how clouds announce the end (RunPod, systemd on
		// shutdown): say so first. SIGINT is an operator stopping the agent:
		// flush as well, but it is no preemption and the node just leaves.
		trigger := "stop:" + reason
		if reason != "signal:SIGINT" {
			trigger = "preempt:" + reason
			if err := a.emit(bus.KindPreempt, events.Preempt{Source: reason, Deadline: deadline, NoticeSeconds: notice.Seconds()}, false); err != nil {
				a.log.Error().Err(err).Msg("queue preempt")
			}
		}
		a.flush(deadline.Add(-a.cfg.ByeTimeout/2), trigger)
	}
	if err := a.emit(bus.KindBye, events.Bye{Reason: reason}, false); err != nil {
		a.log.Error().Err(err).Msg("queue bye")
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.ByeTimeout)
	defer cancel()
	if err := box.WaitEmpty(ctx); err != nil {
		n, _ := box.Len()
		a.log.Warn().Int("queued", n).Msg("bus unreachable at shutdown; queued events stay in the outbox for the next start")
	}
	a.log.Info().Msg("agent stopped")
	return nil
}

func (a *Agent) waitFirstSample(ctx context.Context) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, ok := a.sampler.Latest(); ok {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// publish sends one outbox message and waits for the JetStream ack.
func (a *Agent) publish(ctx context.Context, m outbox.Message) error {
	if !a.nc.IsConnected() {
		return nats.ErrDisconnected
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ack, err := a.js.Publish(pctx, m.Subject, m.Data, jetstream.WithMsgID(m.ID))
	if err != nil {
		return err
	}
	if ack.Duplicate {
		a.log.Debug().Str("id", m.ID).Msg("publish was a duplicate (earlier ack lost)")
	}
	return nil
}

// Publish queues one event (sync, preempt, health, ...) in the outbox; it
// reaches the bus in order, exactly once, whenever the bus is reachable.
// Heartbeats and hello are the agent's own business and are refused here.
func (a *Agent) Publish(kind string, body any) error {
	select {
	case <-a.ready:
	default:
		return errors.New("agent: not running yet (wait for Ready)")
	}
	if kind == bus.KindHeartbeat || kind == bus.KindHello {
		return fmt.Errorf("agent: %s is published by the agent itself", kind)
	}
	return a.emit(kind, body, false)
}

// emit queues one event in the outbox.
func (a *Agent) emit(kind string, body any, coalesce bool) error {
	subj, err := bus.EventSubject(a.cfg.NodeID, kind)
	if err != nil {
		return err
	}
	id := bus.MessageID(a.cfg.NodeID, a.boot, a.seq.Add(1))
	env, err := bus.NewEnvelope(kind, id, a.cfg.NodeID, time.Now(), body)
	if err != nil {
		return err
	}
	data, err := json.Marshal(env)
	if err != nil {
		return err
	}
	if err := a.box.Put(outbox.Message{Subject: subj, ID: id, Data: data, Coalesce: coalesce}); err != nil {
		a.log.Error().Err(err).Str("kind", kind).Msg("outbox refused event")
		return err
	}
	return nil
}

func (a *Agent) heartbeat() {
	if a.paused.Load() {
		return
	}
	s, ok := a.sampler.Latest()
	if !ok {
		return
	}
	status, reasons := health.State(s, a.cfg.HealthThresholds)
	var rpo meshsync.RPO
	if a.sync != nil {
		rpo = a.sync.engine.RPO()
		if why := a.syncHealth(rpo); why != "" {
			status, reasons = "degraded", append(reasons, why)
		}
	}
	a.mu.Lock()
	prev := a.lastStatus
	a.lastStatus = status
	a.mu.Unlock()
	if prev != "" && prev != status {
		_ = a.emit(bus.KindHealth, events.Health{Status: status, Previous: prev, Reasons: reasons}, false)
	}
	hb := events.Heartbeat{Status: status, Reasons: reasons, Health: s, IntervalSeconds: a.cfg.HeartbeatInterval.Seconds(), BusConnected: a.connected.Load()}
	if a.sync != nil {
		hb.RPO = toRPO(rpo)
		a.sync.reportedRisk.Store(rpo.UnsyncedBytes)
	}
	a.lastHB.Store(&hb)
	_ = a.emit(bus.KindHeartbeat, hb, true)
}

// identify builds the hello body: configuration wins, detection fills in.
func (a *Agent) identify(ctx context.Context) events.Hello {
	h := a.cfg.Host
	ov := detect.Result{Provider: a.cfg.Provider, InstanceID: a.cfg.InstanceID}
	if h != nil {
		if ov.Provider == "" && h.ProviderExplicit {
			ov.Provider = h.Provider
		}
		if ov.InstanceID == "" {
			ov.InstanceID = h.InstanceID()
		}
	}
	dopts := a.cfg.Detect
	dopts.Override = ov
	res := detect.Detect(ctx, dopts)
	provider, source := res.Provider, res.Source
	if provider == "" || provider == mesh.ProviderUnknown {
		switch {
		case h != nil && h.Provider != mesh.ProviderUnknown:
			provider, source = h.Provider, "config:name-prefix"
		case a.cfg.Dev:
			provider, source = mesh.ProviderLocal, "dev"
		default:
			provider = mesh.ProviderUnknown
		}
	}
	role := a.cfg.Role
	override := ""
	var overrides map[paths.Kind]string
	ephemeral := mesh.EphemeralByDefault(provider)
	var ssh []events.Endpoint
	var gossip string
	if h != nil {
		if role == "" {
			role = h.Role
		}
		override = h.RingriftPath
		overrides = storageOverrides(h.StoragePaths)
		ephemeral = h.Ephemeral()
		if h.SSHHost != "" {
			host, port, user := h.SSHEndpoint()
			ssh = append(ssh, events.Endpoint{Kind: "config", Host: host, Port: port, User: user})
		}
		gossip = h.GossipAddr
	}
	for _, e := range res.SSH {
		ssh = append(ssh, events.Endpoint{Kind: e.Kind, Host: e.Host, Port: e.Port, User: e.User})
	}
	fp, _ := detect.SSHHostKeyFingerprint(a.cfg.HostKeyPaths...)
	hostname, _ := os.Hostname()
	fsIDs := a.sharedFilesystems()
	return events.Hello{
		AgentVersion: a.cfg.Version, Boot: a.boot, Hostname: hostname,
		Provider: provider, ProviderSource: source, InstanceID: res.InstanceID, Role: role, Ephemeral: ephemeral,
		Paths: a.cfg.Paths.Layout(provider, override, overrides), SSH: ssh, HostKeyFingerprint: fp, GossipAddr: gossip, FilesystemIDs: fsIDs,
		HeartbeatIntervalSeconds: a.cfg.HeartbeatInterval.Seconds(), GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH,
	}
}

// sharedFilesystems returns the IDs of the shared (network) filesystems
// mounted on this node, from its mount table (meshsync.SharedFilesystems),
// so that the router never picks a node on the same NFS share as a copy.
// An unreadable mount table is reported and leaves the list empty
// (unknown); a node without /proc (not Linux) has none to report.
func (a *Agent) sharedFilesystems() []string {
	ids, err := meshsync.SharedFilesystems(a.cfg.Paths.Root)
	if err != nil {
		ev := a.log.Warn()
		if runtime.GOOS != "linux" && errors.Is(err, os.ErrNotExist) {
			ev = a.log.Debug()
		}
		ev.Err(err).Msg("cannot read the mount table: shared filesystems unknown, the router cannot tell whether another node shares this one's storage")
		return nil
	}
	if len(ids) > 0 {
		a.log.Info().Strs("filesystems", ids).Msg("shared filesystems mounted")
	}
	return ids
}

func storageOverrides(s config.StoragePaths) map[paths.Kind]string {
	return map[paths.Kind]string{
		paths.Games: s.Games, paths.Models: s.Models, paths.TrainingData: s.TrainingData,
		paths.Checkpoints: s.Checkpoints, paths.Logs: s.Logs, paths.SyncIncoming: s.SyncIncoming,
	}
}

// diskPaths are the local paths whose filesystems the heartbeat reports:
// the ringrift path when it exists on this node, else the state directory.
func (a *Agent) diskPaths(l paths.Layout) []string {
	if p := a.cfg.Paths.Local(l.Ringrift); dirExists(p) {
		return []string{p}
	}
	return []string{a.cfg.StateDir}
}

func dirExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}
