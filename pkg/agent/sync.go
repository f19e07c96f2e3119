package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/events"
	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/paths"
	meshsync "github.com/ringmesh/ringmesh/pkg/sync"
)

// SyncConfig turns on data protection (DESIGN §6): a manifest of the data
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
	// Transport overrides the SFTP transport (tests).
	Transport meshsync.Transport
}

// TargetSpec is one sync target as the coordinator's router sends it in a
// "sync_targets" command (args["targets"], JSON list).
type TargetSpec struct {
	Node        string   `json:"node"`
	Host        string   `json:"host"`
	Port        int      `json:"port"`
	User        string   `json:"user"`
	RemoteDir   string   `json:"remote_dir"`
	Fingerprint string   `json:"host_key_fingerprint"`
	Classes     []string `json:"classes,omitempty"`
}

// DefaultNotice returns the provider's typical termination notice.
func DefaultNotice(provider string) time.Duration {
	switch provider {
	case mesh.ProviderRunPod:
		return 5 * time.Second
	case mesh.ProviderNebius:
		return 60 * time.Second
	}
	return 15 * time.Second
}

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
	engine    *meshsync.Engine
	manifest  *meshsync.Manifest
	targets   atomic.Pointer[[]meshsync.Target]
	flushed   atomic.Bool
	lastFlush atomic.Pointer[meshsync.FlushResult]
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
		sources = DefaultSources(l, a.cfg.Paths)
	}
	m, err := meshsync.OpenManifest(filepath.Join(a.cfg.StateDir, "sync-manifest.db"), meshsync.ManifestOptions{
		Sources: sources, ReplicationTarget: sc.ReplicationTarget, Logger: a.log})
	if err != nil {
		return nil, err
	}
	tr := sc.Transport
	if tr == nil {
		tr = meshsync.NewSFTPTransport(meshsync.SFTPOptions{Logger: a.log})
	}
	st := &syncState{manifest: m}
	empty := []meshsync.Target{}
	st.targets.Store(&empty)
	eng, err := meshsync.NewEngine(meshsync.EngineConfig{
		NodeID: a.cfg.NodeID, Manifest: m, Transport: tr, StateDir: a.cfg.StateDir, Interval: sc.Interval, MaxConcurrent: sc.MaxConcurrent,
		Targets: func() []meshsync.Target { return *st.targets.Load() },
		OnCycle: a.onCycle,
		Logger:  a.log,
	})
	if err != nil {
		m.Close()
		return nil, err
	}
	st.engine = eng
	return st, nil
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
	_ = a.emit(bus.KindSync, ev, false)
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

// setTargets replaces the sync targets (from a sync_targets command).
func (a *Agent) setTargets(specs []TargetSpec) {
	st := a.sync
	if st == nil {
		return
	}
	out := make([]meshsync.Target, 0, len(specs))
	for _, s := range specs {
		t := meshsync.Target{NodeID: s.Node, Endpoint: meshsync.Endpoint{Host: s.Host, Port: s.Port, User: s.User},
			KeyPath: a.cfg.Sync.KeyPath, RemoteDir: s.RemoteDir, BandwidthLimit: a.cfg.Sync.BandwidthLimit,
			HostKey: meshsync.HostKeyConfig{Fingerprint: s.Fingerprint, KnownHostsFile: a.cfg.Sync.KnownHostsFile}}
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
	if err := a.emit(bus.KindSync, ev, false); err != nil {
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
		cc, err := cons.Consume(func(m jetstream.Msg) { a.handleCommand(ctx, m) })
		if err != nil {
			continue
		}
		<-ctx.Done()
		cc.Stop()
		return
	}
}

func (a *Agent) handleCommand(ctx context.Context, m jetstream.Msg) {
	var env bus.Envelope
	var cmd events.Command
	if err := json.Unmarshal(m.Data(), &env); err != nil || json.Unmarshal(env.Body, &cmd) != nil {
		a.log.Warn().Str("subject", m.Subject()).Msg("unreadable command terminated")
		_ = m.TermWithReason("unreadable command")
		return
	}
	log := a.log.With().Str("verb", cmd.Verb).Str("by", cmd.RequestedBy).Logger()
	switch cmd.Verb {
	case "sync_targets":
		var specs []TargetSpec
		if err := json.Unmarshal([]byte(cmd.Args["targets"]), &specs); err != nil {
			_ = m.TermWithReason("bad targets: " + err.Error())
			return
		}
		a.setTargets(specs)
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
		_ = a.emit(bus.KindSync, ev, false)
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
	default:
		log.Warn().Msg("unknown command terminated")
		_ = m.TermWithReason(fmt.Sprintf("unknown verb %q", cmd.Verb))
		return
	}
	if err := m.Ack(); err != nil && !errors.Is(err, context.Canceled) {
		log.Debug().Err(err).Msg("ack command")
	}
}
