// Package demosim runs simulated agents for the demo cluster
// (`coordinator --demo`): one per active inventory host that has no real
// agent, so that `meshctl status` and the dashboard show nodes with data
// instead of "unknown … never".
//
// A simulated node speaks the real agent's protocol, built from the same
// pieces as pkg/agent: its own NATS connection (bus.Connect), envelopes
// with per-boot message IDs (bus.NewEnvelope, bus.MessageID) published to
// JetStream with Nats-Msg-Id de-duplication, the same subjects
// (bus.EventSubject), bodies (pkg/events) and health verdict
// (health.State), and a durable consumer on its command subjects like the
// agent's. What it reports is made up: GPUs from the inventory's gpu field
// with moving utilisation, memory, temperature and power; one data disk
// that fills as data is written and is cleaned up now and then; on
// ephemeral nodes unsynced data (RPO) that rises until a continuous sync
// (or `meshctl sync`) pushes it to a voter; and now and then a preemption
// (preempt, final flush, bye) after which the node boots again.
//
// pkg/agent cannot be reused as is: its health sampler reads the real
// /proc and statfs of this machine and its sync engine needs real files
// and SSH targets; the chaos simulator (chaos/simagent.go) is part of a
// command and reports no health.
package demosim

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/config"
	"github.com/ringmesh/ringmesh/pkg/events"
	"github.com/ringmesh/ringmesh/pkg/health"
	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/paths"
)

// Options configure the simulation.
type Options struct {
	// URLs are the NATS servers (the coordinator's client URL).
	URLs []string
	// Inventory lists the hosts to simulate (every active one).
	Inventory *config.Inventory
	// Skip names hosts that run a real agent (the coordinator's own node):
	// they are not simulated, so each node appears once.
	Skip []string
	// Heartbeat is the heartbeat interval (default 5 s).
	Heartbeat time.Duration
	// SyncEvery is the mean interval of a continuous sync pass on an
	// ephemeral node (default 30 s).
	SyncEvery time.Duration
	// PreemptEvery is the mean time between two preemptions in the whole
	// cluster (default 3 min; negative = never).
	PreemptEvery time.Duration
	// DownFor is how long a preempted node stays away before it boots
	// again (default 45 s).
	DownFor time.Duration
	// Version is the agent version reported (default "simulated").
	Version string
	// Seed seeds the randomness (0 = random).
	Seed uint64
	// Down, when set, says that node's instance is known not to run (the
	// provider lists it stopped or gone): its agent says bye and stays away
	// until Down turns false, as on a stopped machine.
	Down func(node string) bool
	// Connect, when set, replaces bus.Connect (per-node credentials).
	Connect func(node string) (*nats.Conn, error)
}

// Nodes returns the IDs of the hosts Run simulates, sorted.
func (o Options) Nodes() []string {
	if o.Inventory == nil {
		return nil
	}
	skip := map[string]bool{}
	for _, s := range o.Skip {
		skip[s] = true
	}
	var out []string
	for id, h := range o.Inventory.Hosts {
		if h == nil || skip[id] || h.Inactive() || mesh.ValidateNodeID(id) != nil {
			continue
		}
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// Run simulates the nodes until ctx ends; then every simulated node says
// bye. It returns an error only when a node cannot start.
func Run(ctx context.Context, opts Options, log zerolog.Logger) error {
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = 5 * time.Second
	}
	if opts.SyncEvery <= 0 {
		opts.SyncEvery = 30 * time.Second
	}
	if opts.PreemptEvery == 0 {
		opts.PreemptEvery = 3 * time.Minute
	}
	if opts.DownFor <= 0 {
		opts.DownFor = 45 * time.Second
	}
	if opts.Version == "" {
		opts.Version = "simulated"
	}
	seed := opts.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	ids := opts.Nodes()
	if len(ids) == 0 {
		return nil
	}
	nodes := make([]*node, 0, len(ids))
	defer func() {
		for _, n := range nodes {
			n.nc.Close()
		}
	}()
	ephemeral := 0
	for i, id := range ids {
		n, err := newNode(id, opts.Inventory.Hosts[id], opts, rand.New(rand.NewPCG(seed, uint64(i))), log)
		if err != nil {
			return fmt.Errorf("demo node %s: %w", id, err)
		}
		nodes = append(nodes, n)
		if n.ephemeral {
			ephemeral++
		}
	}
	// Per heartbeat, per ephemeral node: the chance that gives one preemption
	// per PreemptEvery in the whole cluster.
	pPreempt := 0.0
	if opts.PreemptEvery > 0 && ephemeral > 0 {
		pPreempt = opts.Heartbeat.Seconds() / opts.PreemptEvery.Seconds() / float64(ephemeral)
	}
	log.Info().Strs("nodes", ids).Msg("demo: simulated agents started")
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() { defer wg.Done(); n.run(ctx, pPreempt) }()
	}
	wg.Wait()
	return nil
}

// gpuField parses the inventory's free-text gpu ("2x RTX 4090", "A100
// 80GB", "none") into a count and a name.
var gpuCount = regexp.MustCompile(`^\s*(\d+)\s*x\s*(.+)$`)

func gpuModel(h *config.Host) (int, string, float64) {
	s := strings.TrimSpace(h.GPU)
	if s == "" || strings.EqualFold(s, "none") {
		return 0, "", 0
	}
	n := 1
	if m := gpuCount.FindStringSubmatch(s); m != nil {
		n, _ = strconv.Atoi(m[1])
		s = m[2]
	}
	n = min(max(n, 1), 8)
	mem := h.GPUVRAMGB
	if mem > 0 && n > 1 {
		mem /= float64(n)
	}
	if mem <= 0 {
		mem = 24
		if m := regexp.MustCompile(`(\d+)\s*GB`).FindStringSubmatch(s); m != nil {
			mem, _ = strconv.ParseFloat(m[1], 64)
		} else if strings.Contains(s, "5090") {
			mem = 32
		}
	}
	return n, "NVIDIA " + s, mem
}

type gpu struct {
	name, uuid string
	memTotal   uint64
	util       float64
}

type node struct {
	id        string
	host      *config.Host
	opts      Options
	log       zerolog.Logger
	rng       *rand.Rand
	nc        *nats.Conn
	js        jetstream.JetStream
	ephemeral bool
	layout    paths.Layout

	mu        sync.Mutex // guards what the command handler shares with the loop
	boot      string
	seq       uint64
	gpus      []gpu
	diskTotal uint64
	diskUsed  uint64
	unsynced  int64 // bytes only on this node
	files     int
	oldest    time.Time // first unsynced write (zero = none)
	targets   []string  // from the router's sync_targets
	nextSync  time.Time
	status    string
	cpu       float64
}

func newNode(id string, h *config.Host, opts Options, rng *rand.Rand, log zerolog.Logger) (*node, error) {
	n := &node{id: id, host: h, opts: opts, rng: rng, ephemeral: h.Ephemeral(),
		log: log.With().Str("component", "demosim").Str("node", id).Logger()}
	count, name, memGB := gpuModel(h)
	for i := range count {
		n.gpus = append(n.gpus, gpu{name: name, uuid: gpuUUID(id, i), memTotal: uint64(memGB * (1 << 30)), util: 40 + rng.Float64()*50})
	}
	n.diskTotal = 2 << 40
	if n.ephemeral {
		n.diskTotal = 500 << 30
	}
	n.diskUsed = uint64(float64(n.diskTotal) * (0.3 + rng.Float64()*0.4))
	n.layout = paths.For(h.Provider, h.RingriftPath, nil)
	var err error
	if opts.Connect != nil {
		n.nc, err = opts.Connect(id)
	} else {
		n.nc, err = bus.Connect(bus.ConnConfig{URLs: opts.URLs, Name: id}, n.log)
	}
	if err != nil {
		return nil, err
	}
	if n.js, err = jetstream.New(n.nc); err != nil {
		n.nc.Close()
		return nil, err
	}
	return n, nil
}

// run is one node's life: boot, heartbeats, syncs, preemptions, bye; no
// agent runs while Options.Down says its instance does not.
func (n *node) run(ctx context.Context, pPreempt float64) {
	for ctx.Err() == nil {
		if n.down() {
			select {
			case <-ctx.Done():
				return
			case <-time.After(n.opts.Heartbeat):
			}
			continue
		}
		switch n.life(ctx, pPreempt) {
		case endStopped:
			return
		case endPreempted:
			select {
			case <-ctx.Done():
				return
			case <-time.After(jitter(n.rng, n.opts.DownFor)):
			}
		}
	}
}

func (n *node) down() bool { return n.opts.Down != nil && n.opts.Down(n.id) }

type end int

const (
	endStopped   end = iota // ctx ended
	endPreempted            // simulated preemption
	endDown                 // the instance stopped (Options.Down)
)

// life runs one boot of the node and says how it ended.
func (n *node) life(ctx context.Context, pPreempt float64) end {
	n.mu.Lock()
	n.boot = "demo" + strconv.FormatUint(n.rng.Uint64()%(1<<40), 36)
	n.seq = 0
	n.status = ""
	n.unsynced, n.files, n.oldest = 0, 0, time.Time{}
	n.nextSync = time.Now().Add(jitter(n.rng, n.opts.SyncEvery))
	n.mu.Unlock()
	n.emit(ctx, bus.KindHello, n.hello())
	lctx, stop := context.WithCancel(ctx)
	defer stop()
	cmdDone := make(chan struct{})
	go func() { defer close(cmdDone); n.commands(lctx) }()
	defer func() { stop(); <-cmdDone }()
	t := time.NewTicker(n.opts.Heartbeat)
	defer t.Stop()
	n.tick(ctx)
	for {
		select {
		case <-ctx.Done():
			n.emit(context.Background(), bus.KindBye, events.Bye{Reason: "agent stopped"})
			return endStopped
		case <-t.C:
			if n.down() {
				n.emit(ctx, bus.KindBye, events.Bye{Reason: "instance stopped"})
				return endDown
			}
			if n.ephemeral && n.rng.Float64() < pPreempt {
				n.preempt(ctx)
				return endPreempted
			}
			n.tick(ctx)
		}
	}
}

func (n *node) hello() events.Hello {
	var ssh []events.Endpoint
	if n.host.SSHHost != "" {
		host, port, user := n.host.SSHEndpoint()
		ssh = append(ssh, events.Endpoint{Kind: "config", Host: host, Port: port, User: user})
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return events.Hello{AgentVersion: n.opts.Version, Boot: n.boot, Hostname: n.id, Provider: n.host.Provider, ProviderSource: "config",
		InstanceID: n.host.InstanceID(), Role: n.host.Role, Ephemeral: n.ephemeral, Paths: n.layout, SSH: ssh, SyncEnabled: n.ephemeral,
		HostKeyFingerprint:       hostKey(n.id),
		HeartbeatIntervalSeconds: n.opts.Heartbeat.Seconds(), GoVersion: runtime.Version(), OS: "linux", Arch: "amd64"}
}

// tick advances the simulation by one heartbeat and publishes it.
func (n *node) tick(ctx context.Context) {
	n.mu.Lock()
	now := time.Now()
	busy := 0.0
	for i := range n.gpus {
		g := &n.gpus[i]
		g.util = clamp(g.util+n.rng.NormFloat64()*8+(80-g.util)*0.1, 0, 100)
		busy += g.util / 100
	}
	n.cpu = clamp(n.cpu+n.rng.NormFloat64()*5+(35-n.cpu)*0.2, 1, 100)
	// Data written this beat: self-play games, more with busier GPUs.
	written := int64((20 + 200*busy) * float64(1<<20) * n.opts.Heartbeat.Seconds() / 5 * (0.5 + n.rng.Float64()))
	n.diskUsed = min(n.diskUsed+uint64(written), n.diskTotal)
	if float64(n.diskUsed) > 0.93*float64(n.diskTotal) || n.rng.Float64() < 0.002 {
		n.diskUsed = uint64(float64(n.diskTotal) * (0.4 + n.rng.Float64()*0.2)) // old games rotated out
	}
	var syncNow bool
	if n.ephemeral {
		if n.unsynced == 0 {
			n.oldest = now
		}
		n.unsynced += written
		n.files += 1 + n.rng.IntN(3)
		syncNow = now.After(n.nextSync)
	}
	smp := n.sampleLocked(now)
	status, reasons := health.State(smp, health.Thresholds{})
	prev := n.status
	n.status = status
	rpo := n.rpoLocked(now)
	n.mu.Unlock()
	if prev != "" && prev != status {
		n.emit(ctx, bus.KindHealth, events.Health{Status: status, Previous: prev, Reasons: reasons})
	}
	n.emit(ctx, bus.KindHeartbeat, events.Heartbeat{Status: status, Reasons: reasons, Health: smp, RPO: rpo,
		IntervalSeconds: n.opts.Heartbeat.Seconds(), BusConnected: n.nc.IsConnected()})
	if syncNow {
		n.sync(ctx, "continuous", "result")
	}
}

// sampleLocked builds the health sample of the current state.
func (n *node) sampleLocked(now time.Time) health.Sample {
	cpus := 8
	if n.host.CPUs > 0 {
		cpus = n.host.CPUs
	}
	memTotal := uint64(64 << 30)
	if n.host.MemoryGB > 0 {
		memTotal = uint64(n.host.MemoryGB * (1 << 30))
	}
	memUsed := uint64(float64(memTotal) * clamp(0.3+n.cpu/200, 0, 0.95))
	load := n.cpu / 100 * float64(cpus)
	up := uint64(3600 + n.rng.IntN(86400))
	s := health.Sample{Time: now.UTC(), AgentVersion: n.opts.Version, CPUPercent: ptr(round1(n.cpu)), CPUCount: ptr(cpus),
		Load1: ptr(round1(load)), Load5: ptr(round1(load * 0.9)), Load15: ptr(round1(load * 0.8)),
		MemTotalBytes: ptr(memTotal), MemUsedBytes: ptr(memUsed), MemAvailableBytes: ptr(memTotal - memUsed), UptimeSeconds: ptr(up),
		GPUs: []health.GPU{}, Processes: []health.Process{}, Errors: []string{}}
	free := n.diskTotal - n.diskUsed
	pct := round1(float64(n.diskUsed) / float64(n.diskTotal) * 100)
	s.Disks = []health.Disk{{Path: n.layout.Ringrift, TotalBytes: ptr(n.diskTotal), UsedBytes: ptr(n.diskUsed), FreeBytes: ptr(free), UsedPercent: &pct, FSType: "ext4"}}
	if len(n.gpus) == 0 {
		s.GPUProbe = health.GPUProbeNoGPU
		return s
	}
	s.GPUProbe = "ok"
	for i, g := range n.gpus {
		u := round1(g.util)
		memUsed := uint64(float64(g.memTotal) * clamp(0.2+g.util/130, 0, 0.98))
		temp := round1(32 + g.util*0.45 + n.rng.Float64()*3)
		power := round1(60 + g.util*3.2 + n.rng.Float64()*10)
		var zero uint64
		s.GPUs = append(s.GPUs, health.GPU{Index: i, Name: g.name, UUID: g.uuid, UtilizationPercent: &u, MemoryTotalBytes: ptr(g.memTotal),
			MemoryUsedBytes: &memUsed, TemperatureC: &temp, PowerWatts: &power, ECCErrorsUncorrected: &zero, XIDErrors: ptr(zero)})
	}
	return s
}

// rpoLocked is the node's RPO: unknown (nil) where sync is off.
func (n *node) rpoLocked(now time.Time) events.RPO {
	if !n.ephemeral {
		return events.RPO{}
	}
	b, f, age := n.unsynced, n.files, 0.0
	if b > 0 {
		age = round1(now.Sub(n.oldest).Seconds())
	}
	return events.RPO{UnsyncedBytes: &b, UnsyncedFiles: &f, OldestUnsyncedSeconds: &age}
}

// sync pushes everything unsynced to a target and reports it (phase
// "result" for a pass or sync_now, "flush" for the final flush).
func (n *node) sync(ctx context.Context, trigger, phase string) {
	n.mu.Lock()
	now := time.Now()
	target := ""
	if len(n.targets) > 0 { // only where the router sent some, as an agent
		target = n.targets[n.rng.IntN(len(n.targets))]
	}
	sent := n.unsynced
	var made []events.FileRef
	if target != "" && sent > 0 {
		made = append(made, events.FileRef{Path: n.layout.Ringrift + "/data/games/selfplay-" + now.UTC().Format("20060102T150405") + ".db",
			Size: sent, Targets: []string{target}})
		n.unsynced, n.files = 0, 0
	}
	n.nextSync = now.Add(jitter(n.rng, n.opts.SyncEvery))
	if target == "" && trigger == "continuous" {
		n.mu.Unlock() // nothing to push to: the RPO keeps rising, as on an agent
		return
	}
	ev := events.Sync{Phase: phase, Trigger: trigger, BytesSent: sent, BytesTotal: sent, Made: made, RPO: n.rpoLocked(now)}
	if target == "" && sent > 0 {
		ev.Error = "no sync target (the coordinator has routed none to this node yet)"
		ev.BytesSent = 0
	}
	n.mu.Unlock()
	n.emit(ctx, bus.KindSync, ev)
}

// preempt is a spot reclaim: preempt notice, final flush, bye.
func (n *node) preempt(ctx context.Context) {
	notice := 30 * time.Second
	n.log.Info().Msg("demo: simulated preemption")
	n.emit(ctx, bus.KindPreempt, events.Preempt{Source: "signal:SIGTERM", Deadline: time.Now().Add(notice), NoticeSeconds: notice.Seconds()})
	n.sync(ctx, "preempt:signal:SIGTERM", "flush")
	n.emit(ctx, bus.KindBye, events.Bye{Reason: "signal:SIGTERM"})
}

// emit publishes one event as the agent does (envelope, per-boot ID,
// Nats-Msg-Id), retrying briefly; a demo event that still fails is logged.
func (n *node) emit(ctx context.Context, kind string, body any) {
	subj, err := bus.EventSubject(n.id, kind)
	if err != nil {
		n.log.Error().Err(err).Msg("subject")
		return
	}
	n.mu.Lock()
	n.seq++
	id := bus.MessageID(n.id, n.boot, n.seq)
	n.mu.Unlock()
	env, err := bus.NewEnvelope(kind, id, n.id, time.Now(), body)
	if err != nil {
		n.log.Error().Err(err).Str("kind", kind).Msg("envelope")
		return
	}
	data, _ := json.Marshal(env)
	for attempt := 0; attempt < 3; attempt++ {
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_, err = n.js.Publish(pctx, subj, data, jetstream.WithMsgID(id))
		cancel()
		if err == nil {
			return
		}
		if ctx.Err() != nil && kind != bus.KindBye {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	n.log.Debug().Err(err).Str("kind", kind).Msg("demo event not published")
}

// commands answers the coordinator's commands like an agent: sync_targets
// (kept), sync_now, rpo and flush.
func (n *node) commands(ctx context.Context) {
	filter, err := bus.CommandsFor(n.id)
	if err != nil {
		return
	}
	for ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		cons, err := n.js.CreateOrUpdateConsumer(cctx, bus.StreamCommands, jetstream.ConsumerConfig{
			Durable: "agent-" + n.id, FilterSubject: filter, AckPolicy: jetstream.AckExplicitPolicy,
			AckWait: time.Minute, MaxDeliver: 5, DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy, InactiveThreshold: time.Hour,
		})
		cancel()
		if err != nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(2 * time.Second):
				continue
			}
		}
		cc, err := cons.Consume(func(m jetstream.Msg) { n.handle(ctx, m) })
		if err != nil {
			continue
		}
		<-ctx.Done()
		cc.Stop()
		return
	}
}

func (n *node) handle(ctx context.Context, m jetstream.Msg) {
	var env struct {
		TS   time.Time      `json:"ts"`
		Body events.Command `json:"body"`
	}
	if err := json.Unmarshal(m.Data(), &env); err != nil {
		_ = m.TermWithReason("bad command: " + err.Error())
		return
	}
	cmd := env.Body
	fresh := time.Since(env.TS) < time.Minute
	switch cmd.Verb {
	case "sync_targets":
		var specs []struct {
			Node string `json:"node"`
		}
		if err := json.Unmarshal([]byte(cmd.Args["targets"]), &specs); err == nil {
			var ts []string
			for _, s := range specs {
				if mesh.ValidateNodeID(s.Node) == nil {
					ts = append(ts, s.Node)
				}
			}
			n.mu.Lock()
			n.targets = ts
			n.mu.Unlock()
		}
	case "rpo":
		if fresh {
			n.mu.Lock()
			rpo := n.rpoLocked(time.Now())
			n.mu.Unlock()
			ev := events.Sync{Phase: "rpo", Trigger: "rpo:" + cmd.Args["request_id"], RPO: rpo}
			if !n.ephemeral {
				ev.Error = "sync is not enabled on this agent (--sync)"
			}
			n.emit(ctx, bus.KindSync, ev)
		}
	case "sync_now":
		if fresh {
			trigger := "command:" + cmd.Args["request_id"]
			if !n.ephemeral {
				n.emit(ctx, bus.KindSync, events.Sync{Phase: "result", Trigger: trigger, Error: "sync is not enabled on this agent (--sync)"})
			} else {
				n.sync(ctx, trigger, "result")
			}
		}
	case "flush":
		if n.ephemeral && fresh {
			n.sync(ctx, "preempt:"+cmd.Reason, "flush")
		}
	default:
		_ = m.TermWithReason(fmt.Sprintf("unknown verb %q", cmd.Verb))
		return
	}
	_ = m.Ack()
}

// hostKey is the node's made-up SSH host key fingerprint, the same on
// every boot: the registry pins it, so the router accepts the simulated
// persistent hosts as sync targets (nothing connects to them).
// gpuUUID is a stable UUID in nvidia-smi's format ("GPU-" and 36
// characters) for GPU i of node, so that messages have real sizes.
func gpuUUID(node string, i int) string {
	h := sha256.Sum256([]byte(fmt.Sprintf("%s/gpu/%d", node, i)))
	return fmt.Sprintf("GPU-%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

func hostKey(node string) string {
	sum := sha256.Sum256([]byte("ringmesh demo host key " + node))
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
}

func jitter(r *rand.Rand, mean time.Duration) time.Duration {
	return time.Duration(float64(mean) * (0.5 + r.Float64()))
}

func clamp(v, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, v)) }

func round1(v float64) float64 { return math.Round(v*10) / 10 }

func ptr[T any](v T) *T { return &v }
