package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/events"
	"github.com/ringmesh/ringmesh/pkg/health"
	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/outbox"
	"github.com/ringmesh/ringmesh/pkg/paths"
)

// simAgent is a light stand-in for pkg/agent: the same outbox, connection
// options, envelopes, IDs, subjects and publish-with-Nats-Msg-Id as the
// real agent, without detection and the health sampler (a pkg/agent takes
// ~3 s to be ready). It records the ID of every non-heartbeat event when
// the outbox accepts it, which agent.Publish does not return.
type simAgent struct {
	node, boot string
	seq        atomic.Uint64
	box        *outbox.Outbox
	nc         *nats.Conn
	js         jetstream.JetStream
	rng        *rand.Rand
	hbEvery    time.Duration
	syncEvery  [2]time.Duration // a sync event every [lo, hi)

	mu        sync.Mutex
	published []string // non-heartbeat IDs, in order
	lastBytes int64
	putErrs   int

	stopLoop  context.CancelFunc
	loopDone  chan struct{}
	stopDrain context.CancelFunc
	drainDone chan struct{}
}

type simAgentConfig struct {
	Node      string
	URLs      []string
	Dir       string
	Rand      *rand.Rand
	Heartbeat time.Duration
	SyncEvery [2]time.Duration
	// CredsFile and CAFile: the node's credentials and the CA to pin.
	CredsFile string
	CAFile    string
}

func startSimAgent(cfg simAgentConfig, log zerolog.Logger) (*simAgent, error) {
	box, err := outbox.Open(filepath.Join(cfg.Dir, "outbox.db"), 0)
	if err != nil {
		return nil, err
	}
	a := &simAgent{node: cfg.Node, boot: "chaos" + strconv.FormatUint(cfg.Rand.Uint64()%1e9, 36), box: box, rng: cfg.Rand,
		hbEvery: cfg.Heartbeat, syncEvery: cfg.SyncEvery, loopDone: make(chan struct{}), drainDone: make(chan struct{})}
	nc, err := bus.Connect(bus.ConnConfig{URLs: cfg.URLs, Name: cfg.Node, CredsFile: cfg.CredsFile, CAFile: cfg.CAFile}, log.With().Str("agent", cfg.Node).Logger())
	if err != nil {
		box.Close()
		return nil, err
	}
	a.nc = nc
	if a.js, err = jetstream.New(nc); err != nil {
		nc.Close()
		box.Close()
		return nil, err
	}
	dctx, stopDrain := context.WithCancel(context.Background())
	a.stopDrain = stopDrain
	go func() {
		defer close(a.drainDone)
		_ = box.Drain(dctx, a.publish, 2*time.Second)
	}()
	if err := a.emit(bus.KindHello, helloBody(cfg.Node, a.boot, cfg.Heartbeat), false); err != nil {
		a.close()
		return nil, err
	}
	lctx, stopLoop := context.WithCancel(context.Background())
	a.stopLoop = stopLoop
	go a.loop(lctx)
	return a, nil
}

// publish is pkg/agent's: wait for the JetStream ack, same ID on every try.
func (a *simAgent) publish(ctx context.Context, m outbox.Message) error {
	if !a.nc.IsConnected() {
		return nats.ErrDisconnected
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := a.js.Publish(pctx, m.Subject, m.Data, jetstream.WithMsgID(m.ID))
	return err
}

func (a *simAgent) emit(kind string, body any, coalesce bool) error {
	subj, err := bus.EventSubject(a.node, kind)
	if err != nil {
		return err
	}
	id := bus.MessageID(a.node, a.boot, a.seq.Add(1))
	env, err := bus.NewEnvelope(kind, id, a.node, time.Now(), body)
	if err != nil {
		return err
	}
	data, err := json.Marshal(env)
	if err != nil {
		return err
	}
	if err := a.box.Put(outbox.Message{Subject: subj, ID: id, Data: data, Coalesce: coalesce}); err != nil {
		a.mu.Lock()
		a.putErrs++
		a.mu.Unlock()
		return err
	}
	if !coalesce {
		a.mu.Lock()
		a.published = append(a.published, id)
		a.mu.Unlock()
	}
	return nil
}

func (a *simAgent) loop(ctx context.Context) {
	defer close(a.loopDone)
	hb := time.NewTicker(a.hbEvery)
	defer hb.Stop()
	nextSync := time.NewTimer(between(a.rng, a.syncEvery[0], a.syncEvery[1]))
	defer nextSync.Stop()
	_ = a.emit(bus.KindHeartbeat, heartbeatBody(a.hbEvery, a.nc.IsConnected()), true)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hb.C:
			_ = a.emit(bus.KindHeartbeat, heartbeatBody(a.hbEvery, a.nc.IsConnected()), true)
		case <-nextSync.C:
			a.mu.Lock()
			a.lastBytes += 1 + a.rng.Int64N(1<<20)
			n := a.lastBytes
			a.mu.Unlock()
			if err := a.emit(bus.KindSync, syncBody(n), false); err != nil {
				a.mu.Lock()
				a.lastBytes = n - 1 // never reported; keep the figure honest
				a.mu.Unlock()
			}
			nextSync.Reset(between(a.rng, a.syncEvery[0], a.syncEvery[1]))
		}
	}
}

// quiesce stops new events; the outbox keeps draining.
func (a *simAgent) quiesce() {
	a.stopLoop()
	<-a.loopDone
}

func (a *simAgent) close() {
	if a.stopLoop != nil {
		a.quiesce()
	}
	a.stopDrain()
	<-a.drainDone
	a.nc.Close()
	a.box.Close()
}

// state returns the published IDs and the last BytesSent reported.
func (a *simAgent) state() (ids []string, lastBytes int64, putErrs int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.published...), a.lastBytes, a.putErrs
}

func helloBody(node, boot string, hb time.Duration) events.Hello {
	return events.Hello{AgentVersion: "chaos-sim", Boot: boot, Hostname: node, Provider: "vast", ProviderSource: "config",
		InstanceID: node, Ephemeral: mesh.EphemeralByDefault(mesh.ProviderVast), Paths: paths.For("vast", "", nil), HeartbeatIntervalSeconds: hb.Seconds(),
		GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}
}

// heartbeatBody is a heartbeat whose probes measured nothing: every number
// unknown (null), never 0.
func heartbeatBody(interval time.Duration, connected bool) events.Heartbeat {
	return events.Heartbeat{Status: "healthy", IntervalSeconds: interval.Seconds(), BusConnected: connected,
		Health: health.Sample{Time: time.Now().UTC(), AgentVersion: "chaos-sim", GPUProbe: health.GPUProbeNotFound,
			Disks: []health.Disk{}, GPUs: []health.GPU{}, Processes: []health.Process{}, Errors: []string{}}}
}

func syncBody(bytesSent int64) events.Sync {
	return events.Sync{Phase: "result", Trigger: "continuous", BytesSent: bytesSent, BytesTotal: bytesSent}
}

// waitOutboxes waits until every outbox is empty.
func waitOutboxes(ctx context.Context, timeout time.Duration, lens map[string]func() int) error {
	return poll(ctx, timeout, 100*time.Millisecond, func() error {
		busy, total := 0, 0
		var one string
		for node, l := range lens {
			if n := l(); n > 0 {
				busy++
				total += n
				one = node
			}
		}
		if busy > 0 {
			return fmt.Errorf("%d outboxes still hold %d messages (e.g. %s)", busy, total, one)
		}
		return nil
	})
}
