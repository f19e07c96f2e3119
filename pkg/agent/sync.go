package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/events"
	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/paths"
	meshsync "github.com/ringmesh/ringmesh/pkg/sync"
	"github.com/ringmesh/ringmesh/pkg/synctarget"
	"github.com/ringmesh/ringmesh/pkg/wire"
)

// SyncConfig turns on data protection (docs/ARCHITECTURE.md §6): a manifest of the data
// paths, continuous pushes to the targets the coordinator's router assigns,
// and the final flush on a termination notice.
type SyncConfig struct {
	// Sources to protect; default: the node's data paths (games *.db as
	// db, training data *.npz as npz, models, checkpoints).
	Sources []meshsync.Source
	// Interval between continuous sync cycles (default 5 s).
	Interval time.Duration
	// KeyPath is the SSH private key used to reach the targets.
	KeyPath string
	// KnownHostsFile optionally adds an OpenSSH known_hosts check to the
	// fingerprint each target's agent reported.
	KnownHostsFile string
	// ReplicationTarget is the number of verified copies wanted per file (default 2).
	ReplicationTarget int
	// Notice is the time between a termination signal and the node's
	// expected end: the flush deadline. Default by provider: vast 15 s,
	// runpod 5 s, nebius 60 s, else 15 s.
	Notice time.Duration
	// BandwidthLimit per target in bytes/second (0 = unlimited).
	BandwidthLimit int64
	// MaxConcurrent pushes (default 1, as auto_sync max_concurrent_syncs).
	MaxConcurrent int
	// DataClasses overrides the globs of the default sources, by source name
	// (games, training, models, checkpoints); from the inventory's
	// auto_sync.data_classes. Ignored when Sources is set.
	DataClasses map[string][]string
	// Transport overrides the SFTP transport (tests).
	Transport meshsync.Transport
	// NoTargetGrace is how long after start a node with data may go without
	// sync targets before it reports itself degraded (default 60 s; an
	// explicit empty assignment from the coordinator counts at once).
	NoTargetGrace time.Duration
}

// ApplyDataClasses returns sources with the globs of the named ones
// replaced by classes (source name → globs). An unknown source name or a
// bad glob is an error naming it.
func ApplyDataClasses(sources []meshsync.Source, classes map[string][]string) ([]meshsync.Source, error) {
	out := slices.Clone(sources)
	for name, globs := range classes {
		i := slices.IndexFunc(out, func(s meshsync.Source) bool { return s.Name == name })
		if i < 0 {
			var names []string
			for _, s := range out {
				names = append(names, s.Name)
			}
			return nil, fmt.Errorf("auto_sync.data_classes: unknown source %q (want one of %s)", name, strings.Join(names, ", "))
		}
		for _, g := range globs {
			if err := meshsync.ValidateGlob(g); err != nil {
				return nil, fmt.Errorf("auto_sync.data_classes.%s: %w", name, err)
			}
		}
		out[i].Globs = slices.Clone(globs)
	}
	return out, nil
}

// TargetSpec is one sync target of a "sync_targets" command
// (events.TargetSpec, shared with the coordinator's router).
type TargetSpec = events.TargetSpec

// DefaultNotice returns the provider's typical termination notice: the one
// table's mesh.PreemptNotice.
func DefaultNotice(provider string) time.Duration { return mesh.PreemptNotice(provider) }

// DefaultSources protects the node's data paths (host paths resolved through r).
func DefaultSources(l paths.Layout, r paths.Resolver) []meshsync.Source {
	return []meshsync.Source{
		{Name: "games", Class: meshsync.ClassDB, Root: r.Local(l.Data[paths.Games]), Globs: []string{"**/*.db"}},
		{Name: "training", Class: meshsync.ClassNPZ, Root: r.Local(l.Data[paths.TrainingData]), Globs: []string{"**/*.npz"}},
		{Name: "models", Class: meshsync.ClassModel, Root: r.Local(l.Data[paths.Models])},
		{Name: "checkpoints", Class: meshsync.ClassCheckpoint, Root: r.Local(l.Data[paths.Checkpoints]), Priority: 10},
	}
}

type syncState struct {
	engine   *meshsync.Engine
	manifest *meshsync.Manifest
	// ownTransport is the SFTP transport setUpSync made (nil when the
	// config gave one): its cached connections close with the agent.
	ownTransport *meshsync.SFTPTransport
	targets      atomic.Pointer[[]meshsync.Target]
	flushed      atomic.Bool
	lastFlush    atomic.Pointer[meshsync.FlushResult]
	started      time.Time
	// assigned: the coordinator sent an assignment (possibly empty);
	// noTargetWhy is its explanation when it was empty.
	assigned    atomic.Bool
	noTargetWhy atomic.Pointer[string]
	// reportedRisk is the unsynced bytes the last heartbeat carried.
	reportedRisk atomic.Int64
}

// riskGrew reports whether more bytes are at risk now than the last
// heartbeat said (the watcher saw new data): the agent then sends a
// heartbeat at once instead of waiting for the interval.
func (a *Agent) riskGrew() bool {
	if a.sync == nil {
		return false
	}
	return a.sync.engine.RPO().UnsyncedBytes > a.sync.reportedRisk.Load()
}

// SyncTargets returns how many sync targets the coordinator assigned.
func (a *Agent) SyncTargets() int {
	if a.sync == nil {
		return 0
	}
	return len(*a.sync.targets.Load())
}

// LastFlush returns the result of the last final flush (nil if none).
func (a *Agent) LastFlush() *meshsync.FlushResult {
	if a.sync == nil {
		return nil
	}
	return a.sync.lastFlush.Load()
}

// setUpSync opens the manifest and builds the engine; Run starts it.
func (a *Agent) setUpSync(l paths.Layout) (*syncState, error) {
	sc := a.cfg.Sync
	sources := sc.Sources
	if len(sources) == 0 {
		var err error
		if sources, err = ApplyDataClasses(DefaultSources(l, a.cfg.Paths), sc.DataClasses); err != nil {
			return nil, err
		}
	}
	m, err := meshsync.OpenManifest(filepath.Join(a.cfg.StateDir, "sync-manifest.db"), meshsync.ManifestOptions{
		Sources: sources, ReplicationTarget: sc.ReplicationTarget, Logger: a.log})
	if err != nil {
		return nil, err
	}
	st := &syncState{manifest: m, started: time.Now()}
	tr := sc.Transport
	if tr == nil {
		st.ownTransport = meshsync.NewSFTPTransport(meshsync.SFTPOptions{Logger: a.log, DBStateDir: filepath.Join(a.cfg.StateDir, "dbdelta")})
		tr = st.ownTransport
	}
	empty := []meshsync.Target{}
	st.targets.Store(&empty)
	none := ""
	st.noTargetWhy.Store(&none)
	eng, err := meshsync.NewEngine(meshsync.EngineConfig{
		NodeID: a.cfg.NodeID, Manifest: m, Transport: tr, StateDir: a.cfg.StateDir, Interval: sc.Interval, MaxConcurrent: sc.MaxConcurrent,
		Targets: func() []meshsync.Target { return *st.targets.Load() },
		OnCycle: a.onCycle,
		Logger:  a.log,
	})
	if err != nil {
		st.close()
		return nil, err
	}
	st.engine = eng
	return st, nil
}

// close releases what setUpSync opened; the engine must have stopped.
func (st *syncState) close() {
	if st.ownTransport != nil {
		_ = st.ownTransport.Close()
	}
	st.manifest.Close()
}

// onCycle publishes a sync result when a continuous cycle moved or failed something.
func (a *Agent) onCycle(r meshsync.CycleReport) {
	if len(r.Pushed) == 0 && len(r.Failed) == 0 && r.Error == "" {
		return
	}
	ev := events.Sync{Phase: "result", Trigger: "continuous", BytesSent: r.BytesSent, RPO: toRPO(r.RPO), Error: r.Error}
	for _, p := range r.Pushed {
		ev.Made = append(ev.Made, fileRef(p))
	}
	for _, p := range r.Failed {
		ev.Missed = append(ev.Missed, fileRef(p))
	}
	_ = a.emit(bus.KindSync, boundSync(ev), false)
}

// boundSync keeps a sync event within the bounds the coordinator's schema
// enforces (at most 100 files per list, text without control characters,
// bounded lengths), so a large result is trimmed, not dead-lettered.
func boundSync(ev events.Sync) events.Sync {
	const maxRefs = 100
	trim := func(s string, n int) string {
		s = events.StripControl(s)
		if len(s) > n {
			s = strings.ToValidUTF8(s[:n], "")
		}
		return s
	}
	refs := func(in []events.FileRef) []events.FileRef {
		if len(in) > maxRefs {
			in = in[:maxRefs]
		}
		out := make([]events.FileRef, 0, len(in))
		for _, f := range in {
			f.Reason = trim(f.Reason, 512)
			if len(f.Targets) > 16 {
				f.Targets = f.Targets[:16]
			}
			out = append(out, f)
		}
		return out
	}
	if ev.Made != nil {
		ev.Made = refs(ev.Made)
	}
	if ev.Missed != nil {
		ev.Missed = refs(ev.Missed)
	}
	ev.Error, ev.Trigger = trim(ev.Error, 2048), trim(ev.Trigger, 256)
	return ev
}

func fileRef(p meshsync.PushResult) events.FileRef {
	f := events.FileRef{Path: p.Path, Targets: []string{p.Target}, Reason: p.Error}
	if p.Receipt != nil {
		f.Size, f.SHA256 = p.Receipt.Size, p.Receipt.SHA256
	}
	return f
}

func toRPO(r meshsync.RPO) events.RPO {
	if r.ScannedAt.IsZero() {
		return events.RPO{} // not measured yet: unknown, never 0
	}
	b, n, age := r.UnsyncedBytes, r.UnsyncedFiles, r.OldestUnsyncedAgeSeconds
	return events.RPO{UnsyncedBytes: &b, UnsyncedFiles: &n, OldestUnsyncedSeconds: &age}
}

func flushRefs(fs []meshsync.FlushFile) []events.FileRef {
	out := make([]events.FileRef, 0, len(fs))
	for _, f := range fs {
		r := events.FileRef{Path: f.Path, Size: f.Size, Reason: f.Reason}
		if f.Detail != "" {
			r.Reason = strings.TrimSpace(f.Reason + ": " + f.Detail)
		}
		for _, rc := range f.Receipts {
			r.Targets = append(r.Targets, rc.NodeID)
			r.SHA256 = rc.SHA256
		}
		out = append(out, r)
	}
	return out
}

// maxTargets bounds a sync_targets command.
const maxTargets = 16

// checkTargets refuses a target list with any value that fails its pattern:
// node ID, host, user, port, host key fingerprint, and a remote_dir that is
// not a clean path without ".." (wire.CheckRemoteDir).
func checkTargets(specs []TargetSpec) error {
	if len(specs) > maxTargets {
		return fmt.Errorf("%d targets (at most %d)", len(specs), maxTargets)
	}
	for i, s := range specs {
		switch {
		case !events.Match("node", s.Node):
			return fmt.Errorf("target %d: node %q", i, events.StripControl(s.Node))
		case !events.ValidHost(s.Host):
			return fmt.Errorf("target %s: host %q fails the host pattern", s.Node, events.StripControl(s.Host))
		case !events.Match("user", s.User):
			return fmt.Errorf("target %s: user %q fails the user pattern", s.Node, events.StripControl(s.User))
		case s.Port < 1 || s.Port > 65535:
			return fmt.Errorf("target %s: port %d", s.Node, s.Port)
		case s.Fingerprint != "" && !events.ValidFingerprint(s.Fingerprint):
			return fmt.Errorf("target %s: host key %q fails the fingerprint pattern", s.Node, events.StripControl(s.Fingerprint))
		case len(s.Cert) > 4096:
			return fmt.Errorf("target %s: certificate of %d bytes (at most 4096)", s.Node, len(s.Cert))
		}
		if err := wire.CheckRemoteDir(s.RemoteDir, ""); err != nil {
			return fmt.Errorf("target %s: %w", s.Node, err)
		}
	}
	return nil
}

// setTargets replaces the sync targets (from a sync_targets command); why
// is the coordinator's explanation when there are none.
func (a *Agent) setTargets(specs []TargetSpec, why string) {
	st := a.sync
	if st == nil {
		return
	}
	st.assigned.Store(true)
	st.noTargetWhy.Store(&why)
	out := make([]meshsync.Target, 0, len(specs))
	for _, s := range specs {
		t := meshsync.Target{NodeID: s.Node, Endpoint: meshsync.Endpoint{Host: s.Host, Port: s.Port, User: s.User},
			KeyPath: a.cfg.Sync.KeyPath, RemoteDir: s.RemoteDir, BandwidthLimit: a.cfg.Sync.BandwidthLimit,
			HostKey: meshsync.HostKeyConfig{Fingerprint: s.Fingerprint, KnownHostsFile: a.cfg.Sync.KnownHostsFile}}
		if s.Cert != "" {
			// A target set up with `meshctl target setup`: its sync account
			// accepts only this node's own key with a ringmesh certificate.
			if a.syncKey == nil {
				a.log.Warn().Str("target", s.Node).Msg("sync target needs a certificate but the agent has no sync key; skipped")
				continue
			}
			signer, cert, err := meshsync.CertSigner(s.Cert, a.syncKey, a.cfg.NodeID, s.User, time.Now())
			if err != nil {
				a.log.Warn().Err(err).Str("target", s.Node).Msg("sync certificate refused; target skipped")
				continue
			}
			t.KeyPath, t.Signer = "", signer
			a.log.Debug().Str("target", s.Node).Time("valid_before", time.Unix(int64(cert.ValidBefore), 0)).Msg("sync certificate")
		}
		for _, c := range s.Classes {
			t.Classes = append(t.Classes, meshsync.Class(c))
		}
		out = append(out, t)
	}
	st.targets.Store(&out)
	st.engine.Trigger()
	a.log.Info().Int("targets", len(out)).Msg("sync targets updated by the coordinator")
}

// flush runs the final flush until deadline and publishes its result.
func (a *Agent) flush(deadline time.Time, trigger string) meshsync.FlushResult {
	st := a.sync
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	res := st.engine.Flush(ctx, deadline)
	st.flushed.Store(true)
	st.lastFlush.Store(&res)
	ev := events.Sync{Phase: "flush", Trigger: trigger, BytesSent: res.BytesSent, RPO: toRPO(res.RPO), Error: res.Error,
		Made: flushRefs(res.Made), Missed: flushRefs(res.Missed)}
	if err := a.emit(bus.KindSync, boundSync(ev), false); err != nil {
		a.log.Error().Err(err).Msg("queue flush result")
	}
	a.log.Info().Int("made", len(res.Made)).Int("missed", len(res.Missed)).Int64("bytes", res.BytesSent).Msg("final flush done")
	return res
}

// commands consumes mesh.v1.cmd.<node>.> with a durable explicit-ack consumer.
func (a *Agent) commands(ctx context.Context) {
	filter, err := bus.CommandsFor(a.cfg.NodeID)
	if err != nil {
		return
	}
	var inflight sync.WaitGroup // rpo answers run beside the command in progress
	for ctx.Err() == nil {
		if !a.nc.IsConnected() {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
				continue
			}
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		cons, err := a.js.CreateOrUpdateConsumer(cctx, bus.StreamCommands, jetstream.ConsumerConfig{
			Durable: bus.AgentConsumer(a.cfg.NodeID), FilterSubject: filter, AckPolicy: jetstream.AckExplicitPolicy,
			// A new consumer starts from the last command of each verb, so
			// targets sent before the agent subscribed are not missed; stale
			// flush and sync_now commands are skipped by age below.
			AckWait: 5 * time.Minute, MaxDeliver: 5, DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy, InactiveThreshold: 24 * time.Hour,
		})
		cancel()
		if err != nil {
			a.log.Warn().Err(err).Msg("command consumer; retrying")
			select {
			case <-ctx.Done():
				return
			case <-time.After(2 * time.Second):
				continue
			}
		}
		cc, err := cons.Consume(func(m jetstream.Msg) {
			if strings.HasSuffix(m.Subject(), ".rpo") {
				// Answered at once, even while a sync_now or flush runs.
				inflight.Go(func() { a.handleCommand(ctx, m) })
				return
			}
			a.handleCommand(ctx, m)
		})
		if err != nil {
			continue
		}
		<-ctx.Done()
		cc.Stop()
		inflight.Wait()
		return
	}
}

// commandDecoder is the agent's side of the trust boundary (pkg/wire).
var commandDecoder = sync.OnceValues(func() (*wire.Decoder, error) { return wire.NewDecoder(wire.Limits{}) })

func (a *Agent) handleCommand(ctx context.Context, m jetstream.Msg) {
	dec, err := commandDecoder()
	if err != nil {
		a.log.Error().Err(err).Msg("command schemas")
		_ = m.Nak()
		return
	}
	var busTime time.Time
	if md, err := m.Metadata(); err == nil {
		busTime = md.Timestamp
	}
	msg, err := dec.Decode(m.Subject(), m.Data(), busTime)
	if err != nil || msg.Command == nil || msg.Node != a.cfg.NodeID {
		reason := "command for another node"
		if err != nil {
			reason = err.Error()
		}
		a.log.Warn().Str("subject", m.Subject()).Str("reason", reason).Msg("invalid command terminated")
		_ = m.TermWithReason(reason)
		return
	}
	env := struct{ TS time.Time }{TS: msg.TS}
	cmd := *msg.Command
	log := a.log.With().Str("verb", cmd.Verb).Str("by", cmd.RequestedBy).Logger()
	switch cmd.Verb {
	case "sync_targets":
		var specs []TargetSpec
		if err := json.Unmarshal([]byte(cmd.Args["targets"]), &specs); err != nil {
			_ = m.TermWithReason("bad targets: " + err.Error())
			return
		}
		if err := checkTargets(specs); err != nil {
			log.Warn().Err(err).Msg("sync_targets refused")
			_ = m.TermWithReason("bad targets: " + err.Error())
			return
		}
		a.setTargets(specs, cmd.Args["why"])
	case "rpo":
		if time.Since(env.TS) > rpoCommandMaxAge {
			log.Info().Time("sent", env.TS).Msg("stale rpo request skipped")
			break
		}
		a.answerRPO(ctx, cmd.Args["request_id"])
	case "sync_now":
		if time.Since(env.TS) > time.Minute {
			log.Info().Time("sent", env.TS).Msg("stale sync_now skipped")
			break
		}
		trigger := "command:" + cmd.Args["request_id"]
		if a.sync == nil {
			_ = a.emit(bus.KindSync, events.Sync{Phase: "result", Trigger: trigger, Error: "sync is not enabled on this agent (--sync)"}, false)
			break
		}
		_ = m.InProgress()
		last := time.Time{}
		rep, err := a.sync.engine.SyncNow(ctx, func(p meshsync.Progress) {
			if time.Since(last) < 500*time.Millisecond && p.Phase != "done" {
				return
			}
			last = time.Now()
			_ = a.emit(bus.KindSync, events.Sync{Phase: "progress", Trigger: trigger, BytesSent: p.BytesDone, BytesTotal: p.BytesTotal}, false)
		})
		ev := events.Sync{Phase: "result", Trigger: trigger, BytesSent: rep.BytesSent, RPO: toRPO(rep.RPO), Error: rep.Error}
		if err != nil && ev.Error == "" {
			ev.Error = err.Error()
		}
		for _, p := range rep.Pushed {
			ev.Made = append(ev.Made, fileRef(p))
		}
		for _, p := range rep.Failed {
			ev.Missed = append(ev.Missed, fileRef(p))
		}
		_ = a.emit(bus.KindSync, boundSync(ev), false)
	case "flush":
		if a.sync == nil {
			_ = m.TermWithReason("sync is not enabled on this agent")
			return
		}
		deadline, err := time.Parse(time.RFC3339Nano, cmd.Args["deadline"])
		if err != nil {
			_ = m.TermWithReason("bad deadline: " + err.Error())
			return
		}
		if time.Now().After(deadline) {
			log.Info().Time("deadline", deadline).Msg("flush command past its deadline skipped")
			break
		}
		_ = m.InProgress()
		log.Warn().Time("deadline", deadline).Str("reason", cmd.Reason).Msg("provider termination notice: flushing now")
		a.flush(deadline, "preempt:"+cmd.Reason)
	case events.VerbSyncRevoke:
		a.applySyncRevoke(ctx, log, cmd.Args)
	default:
		log.Warn().Msg("unknown command terminated")
		_ = m.TermWithReason(fmt.Sprintf("unknown verb %q", cmd.Verb))
		return
	}
	if err := m.Ack(); err != nil && !errors.Is(err, context.Canceled) {
		log.Debug().Err(err).Msg("ack command")
	}
}

// applySyncRevoke applies a sync_revoke command; what it could not do is
// logged (the certificate still expires within auth.DefaultSyncCertValidity).
func (a *Agent) applySyncRevoke(ctx context.Context, log zerolog.Logger, args map[string]string) {
	node := args["node"]
	l := synctarget.Layout{Account: args["account"], ChrootDir: args["chroot"], ConfDir: args["conf_dir"]}.WithDefaults()
	if err := l.Validate(); err != nil {
		log.Warn().Err(err).Msg("sync_revoke refused")
		return
	}
	if os.Geteuid() != 0 {
		log.Warn().Str("node", events.StripControl(node)).Msg("sync_revoke: the agent does not run as root and cannot update this target's KRL; the node's certificate expires by itself")
		return
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	changed, err := synctarget.RevokeNode(rctx, synctarget.LocalRunner{}, l, node)
	if err != nil {
		log.Warn().Err(err).Str("node", events.StripControl(node)).Msg("sync_revoke failed")
		return
	}
	log.Info().Str("node", node).Bool("changed", changed).Str("krl", l.KRLFile()).Msg("sync credential revoked on this target")
}

// rpoCommandMaxAge: an "rpo" request older than this is not answered (the
// asker gave up long ago; coordinator.FreshRPOWait is 5 s).
const rpoCommandMaxAge = 30 * time.Second

// answerRPO measures the RPO now (a stat-only walk of the sources, see
// meshsync.Manifest.FreshRPO) and answers on mesh.v1.evt.<node>.sync with
// Phase "rpo" and Trigger "rpo:<request_id>". A figure that cannot be
// measured is answered with Error and an unknown RPO, never with 0.
func (a *Agent) answerRPO(ctx context.Context, id string) {
	ev := events.Sync{Phase: "rpo", Trigger: "rpo:" + id}
	if a.sync == nil {
		ev.Error = "sync is not enabled on this agent (--sync)"
	} else {
		mctx, cancel := context.WithTimeout(ctx, 4*time.Second)
		r, err := a.sync.engine.FreshRPO(mctx)
		cancel()
		if err != nil {
			ev.Error = "measure RPO: " + err.Error()
		} else {
			ev.RPO = toRPO(r)
		}
	}
	if err := a.emit(bus.KindSync, ev, false); err != nil {
		a.log.Warn().Err(err).Msg("queue rpo answer")
	}
}

// syncHealth returns why data protection is degraded, or "": an ephemeral
// node that holds protected files and has no sync target is degraded (after
// NoTargetGrace since start, or at once when the coordinator said there is
// none, with its reason).
func (a *Agent) syncHealth(r meshsync.RPO) string {
	st := a.sync
	if st == nil || !a.Identity().Ephemeral || r.TotalFiles == 0 || len(*st.targets.Load()) > 0 {
		return ""
	}
	grace := a.cfg.Sync.NoTargetGrace
	if grace <= 0 {
		grace = time.Minute
	}
	if !st.assigned.Load() && time.Since(st.started) < grace {
		return ""
	}
	why := fmt.Sprintf("data protection: %d files (%s) on this node and no sync target", r.TotalFiles, fmtSize(r.TotalBytes))
	if w := *st.noTargetWhy.Load(); w != "" {
		why += ": " + w
	} else if !st.assigned.Load() {
		why += " assigned by the coordinator yet"
	}
	return why
}

func fmtSize(b int64) string {
	const unit = 1024
	if b < unit {
		return fmt.Sprintf("%d B", b)
	}
	div, exp := int64(unit), 0
	for n := b / unit; n >= unit; n /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(b)/float64(div), "KMGTPE"[exp])
}

// PartialMaxAge is how long an upload's ".partial" file (or a file under
// rsync's ".rsync-partial" directory) may sit untouched in this node's
// sync_incoming directory before it is removed as orphaned: its source
// node is gone or gave up on it. A live or resumable upload touches it far
// more often.
const PartialMaxAge = 24 * time.Hour

// partialSweepEvery is how often sync_incoming is swept.
const partialSweepEvery = 10 * time.Minute

// sweepPartials removes orphaned partial uploads from the node's
// sync_incoming directory (where other nodes push to) every
// partialSweepEvery until ctx ends.
func (a *Agent) sweepPartials(ctx context.Context, l paths.Layout) {
	dir := a.cfg.Paths.Local(l.Data[paths.SyncIncoming])
	if dir == "" {
		return
	}
	t := time.NewTicker(partialSweepEvery)
	defer t.Stop()
	for {
		if removed, err := meshsync.SweepPartials(ctx, dir, PartialMaxAge, time.Now()); err != nil {
			a.log.Warn().Err(err).Str("dir", dir).Msg("sweep orphaned partial uploads")
		} else if len(removed) > 0 {
			a.log.Info().Strs("removed", removed).Dur("older_than", PartialMaxAge).Msg("removed orphaned partial uploads")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
