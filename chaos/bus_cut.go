package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ringmesh/ringmesh/internal/testutil"
	"github.com/ringmesh/ringmesh/pkg/agent"
	"github.com/ringmesh/ringmesh/pkg/auth"
	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/bus/busserver"
	"github.com/ringmesh/ringmesh/pkg/coordinator"
	"github.com/ringmesh/ringmesh/pkg/detect"
	"github.com/ringmesh/ringmesh/pkg/events"
	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/paths"
	"github.com/ringmesh/ringmesh/pkg/registry"
)

func busCut() Scenario {
	return Scenario{
		Name: "bus-cut",
		Doc:  "agents (pkg/agent) reach the coordinator through TCP proxies that are cut for a while as they keep publishing: after the heal every event arrives exactly once, in per-node order, outboxes empty",
		Run:  runBusCut,
	}
}

// cutAgent is one real agent behind its own proxy, with what was published.
type cutAgent struct {
	node  string
	a     *agent.Agent
	proxy *testutil.Proxy
	stop  func() error

	mu     sync.Mutex
	sent   []int64 // BytesSent of every sync event accepted, in order
	refuse int
}

func (c *cutAgent) publish(n int64) {
	err := c.a.Publish(bus.KindSync, events.Sync{Phase: "result", Trigger: "continuous", BytesSent: n, BytesTotal: n})
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.refuse++
		return
	}
	c.sent = append(c.sent, n)
}

func (c *cutAgent) published() ([]int64, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int64(nil), c.sent...), c.refuse
}

func (c *cutAgent) outbox() int { n, _ := c.a.Outbox(); return n }

func runBusCut(ctx context.Context, env Env) (res Result, err error) {
	rng := env.Rand("bus-cut")
	nAgents, cutFor, cycles := 5, 10*time.Second, 1
	if env.Long() {
		nAgents = 20
		cutFor = min(2*time.Minute, env.Duration/2)
		cycles = max(1, int(env.Duration/(cutFor+30*time.Second)))
	}
	var ck checks

	storeDir, err := mkdir(env.Dir, "nats")
	if err != nil {
		return res, err
	}
	sec, err := newSecure(env)
	if err != nil {
		return res, err
	}
	ccfg, err := sec.coordinator(coordinator.Config{
		Name:       "hetzner-cpu1",
		Embedded:   busserver.ServerConfig{Port: -1, StoreDir: storeDir},
		Thresholds: registry.Thresholds{SuspectAfter: 3 * time.Second, DeadAfter: 6 * time.Second},
	})
	if err != nil {
		return res, err
	}
	co, err := startCoord(ctx, ccfg, env.Log, time.Minute)
	if err != nil {
		return res, err
	}
	defer func() {
		if serr := co.stop(); serr != nil && err == nil {
			err = serr
		}
	}()
	target, err := hostPort(co.c.ClientURL())
	if err != nil {
		return res, err
	}
	dead := deadURL()
	agents := make([]*cutAgent, 0, nAgents)
	defer func() {
		for _, c := range agents {
			if serr := c.stop(); serr != nil && err == nil {
				err = serr
			}
			c.proxy.Close()
		}
	}()
	for i := 0; i < nAgents; i++ {
		node := fmt.Sprintf("runpod-cut-%02d", i+1)
		p, err := testutil.NewProxy(target)
		if err != nil {
			return res, err
		}
		dir, err := mkdir(env.Dir, "agents", node)
		if err != nil {
			p.Close()
			return res, err
		}
		root, err := mkdir(env.Dir, "roots", node)
		if err != nil {
			p.Close()
			return res, err
		}
		acfg, err := sec.agent(agent.Config{
			NodeID: node, Provider: mesh.ProviderRunPod, InstanceID: node, NATSURLs: []string{p.URL()}, StateDir: dir,
			HeartbeatInterval: time.Second, Version: "chaos",
			Detect: detect.Options{Env: func(string) string { return "" }, HetznerURL: dead, VultrURL: dead, NebiusURL: dead, Timeout: 100 * time.Millisecond,
				HTTPClient: &http.Client{Timeout: time.Second}},
			Paths:      paths.Resolver{Root: root, Home: "/root"},
			ByeTimeout: 2 * time.Second,
		})
		if err != nil {
			p.Close()
			return res, err
		}
		a, stop, err := startAgent(ctx, acfg, env)
		if err != nil {
			p.Close()
			return res, err
		}
		agents = append(agents, &cutAgent{node: node, a: a, proxy: p, stop: stop})
	}
	res.Add("agents", len(agents))
	healthy := func() error {
		for _, c := range agents {
			rec, ok := co.c.Registry().Get(c.node)
			if !ok || rec.State != mesh.StateHealthy {
				return fmt.Errorf("%s is %s (%s)", c.node, rec.State, rec.Cause)
			}
		}
		return nil
	}
	if err := poll(ctx, time.Minute, 100*time.Millisecond, healthy); err != nil {
		return res, fmt.Errorf("before the cut: %w", err)
	}

	// Every agent publishes sync events with increasing BytesSent at its
	// own seeded pace, before, during and after each cut.
	pctx, stopPublishing := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i, c := range agents {
		r := env.Rand(fmt.Sprintf("bus-cut/%d", i))
		wg.Add(1)
		go func() {
			defer wg.Done()
			var n int64
			for {
				if sleep(pctx, between(r, 100*time.Millisecond, 500*time.Millisecond)) != nil {
					return
				}
				n += 1 + r.Int64N(1<<20)
				c.publish(n)
			}
		}()
	}
	defer func() { stopPublishing(); wg.Wait() }()

	var drains []time.Duration
	minQueued := -1
	for cycle := 0; cycle < cycles; cycle++ {
		if err := sleep(ctx, between(rng, time.Second, 3*time.Second)); err != nil {
			return res, err
		}
		before := map[string]int{}
		for _, c := range agents {
			s, _ := c.published()
			before[c.node] = len(s)
			c.proxy.Cut()
		}
		env.Logf("bus-cut: cut %d agents off the bus for %s", len(agents), cutFor)
		if err := sleep(ctx, cutFor); err != nil {
			return res, err
		}
		// The coordinator noticed: no heartbeat for longer than DeadAfter.
		if err := poll(ctx, 5*time.Second, 100*time.Millisecond, func() error {
			for _, c := range agents {
				if rec, _ := co.c.Registry().Get(c.node); rec.State != mesh.StateDead {
					return fmt.Errorf("%s is %s at the end of the cut, want dead", c.node, rec.State)
				}
			}
			return nil
		}); err != nil {
			ck.failf("cycle %d: %w", cycle+1, err)
		}
		// The cut held: what was published meanwhile is still queued.
		for _, c := range agents {
			s, _ := c.published()
			during := len(s) - before[c.node]
			if q := c.outbox(); minQueued < 0 || q < minQueued {
				minQueued = q
			}
			if q := c.outbox(); q < during {
				ck.failf("cycle %d: %s published %d events during the cut but its outbox holds %d: the cut leaked", cycle+1, c.node, during, q)
			}
		}
		for _, c := range agents {
			c.proxy.Heal()
		}
		healed := time.Now()
		// Drained: each outbox is down to at most the queued heartbeat.
		if err := poll(ctx, 2*time.Minute, 50*time.Millisecond, func() error {
			for _, c := range agents {
				if n := c.outbox(); n > 3 {
					return fmt.Errorf("%s outbox still holds %d", c.node, n)
				}
			}
			return nil
		}); err != nil {
			ck.failf("cycle %d: after the heal: %w", cycle+1, err)
		}
		drains = append(drains, time.Since(healed))
		if err := poll(ctx, time.Minute, 100*time.Millisecond, healthy); err != nil {
			ck.failf("cycle %d: after the heal: %w", cycle+1, err)
		}
		env.Logf("bus-cut: healed; outboxes drained in %s", time.Since(healed).Round(time.Millisecond))
	}
	res.Add("cuts", cycles)
	res.Add("cut", cutFor)
	res.Add("min_queued_at_heal", minQueued)
	res.Add("drain", maxDur(drains))

	// Stop publishing, silence heartbeats: every outbox must empty.
	stopPublishing()
	wg.Wait()
	lens := map[string]func() int{}
	for _, c := range agents {
		c.a.PauseHeartbeats(true)
		lens[c.node] = c.outbox
	}
	if err := waitOutboxes(ctx, time.Minute, lens); err != nil {
		ck.failf("outboxes: %w", err)
	}

	// Exactly once, in order, per node.
	checker, err := sec.conn(bus.ConnConfig{URLs: []string{co.c.ClientURL()}, Name: "chaos-checker"}, auth.RoleCoordinator, "coordinator-checker")
	if err != nil {
		return res, err
	}
	nc, err := bus.Connect(checker, env.Log)
	if err != nil {
		return res, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return res, err
	}
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	stored, err := readStream(rctx, js, bus.StreamEvents, bus.Prefix+".evt.*."+bus.KindSync)
	cancel()
	if err != nil {
		ck.add(err)
	}
	type got struct {
		id    string
		seq   uint64
		bytes int64
	}
	byNode := map[string][]got{}
	for _, m := range stored {
		var env bus.Envelope
		var s events.Sync
		if json.Unmarshal(m.Data, &env) != nil || json.Unmarshal(env.Body, &s) != nil {
			ck.failf("unreadable sync event at stream sequence %d", m.Seq)
			continue
		}
		_, _, seq, err := bus.ParseMessageID(m.MsgID)
		if err != nil {
			ck.add(err)
			continue
		}
		byNode[env.Node] = append(byNode[env.Node], got{m.MsgID, seq, s.BytesSent})
	}
	published, dups, lost, outOfOrder := 0, 0, 0, 0
	for _, c := range agents {
		sent, refused := c.published()
		published += len(sent)
		if refused > 0 {
			ck.failf("%s: the outbox refused %d events", c.node, refused)
		}
		gs := byNode[c.node]
		ids := map[string]int{}
		for i, g := range gs {
			ids[g.id]++
			if i > 0 && (g.seq <= gs[i-1].seq || g.bytes <= gs[i-1].bytes) {
				outOfOrder++
			}
		}
		for _, n := range ids {
			dups += n - 1
		}
		have := map[int64]bool{}
		for _, g := range gs {
			have[g.bytes] = true
		}
		missing := 0
		for _, b := range sent {
			if !have[b] {
				missing++
			}
		}
		lost += missing
		if missing > 0 {
			ck.failf("%s: %d of %d sync events are not in %s", c.node, missing, len(sent), bus.StreamEvents)
		}
		if len(ids) > len(sent) {
			ck.failf("%s: %s holds %d distinct sync events, it published %d", c.node, bus.StreamEvents, len(ids), len(sent))
		}
		// The registry holds the last one.
		if len(sent) > 0 {
			want := sent[len(sent)-1]
			if err := poll(ctx, 30*time.Second, 100*time.Millisecond, func() error {
				rec, ok := co.c.Registry().Get(c.node)
				if !ok || rec.LastSync == nil || rec.LastSync.BytesSent != want {
					return fmt.Errorf("%s: registry last sync %+v, want bytes_sent %d", c.node, rec.LastSync, want)
				}
				return nil
			}); err != nil {
				ck.add(err)
			}
		}
	}
	res.Add("published", published)
	res.Add("stored", len(stored)-dups)
	res.Add("duplicated", dups)
	res.Add("lost", lost)
	res.Add("out_of_order", outOfOrder)
	if dups > 0 {
		ck.failf("%d duplicate sync events in %s", dups, bus.StreamEvents)
	}
	if outOfOrder > 0 {
		ck.failf("%d sync events stored out of their node's order", outOfOrder)
	}
	if err := poll(ctx, 30*time.Second, 100*time.Millisecond, func() error { return consumerDrained(ctx, js, co.name) }); err != nil {
		ck.add(err)
	}
	if n, err := deadLetters(ctx, js); err != nil || n > 0 {
		ck.failf("dead letters: %d (%v)", n, err)
	}
	return res, ck.err()
}

// startAgent runs a pkg/agent until stop is called.
func startAgent(ctx context.Context, cfg agent.Config, env Env) (*agent.Agent, func() error, error) {
	a, err := agent.New(cfg, env.Log.With().Str("agent", cfg.NodeID).Logger())
	if err != nil {
		return nil, nil, err
	}
	actx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(actx) }()
	select {
	case <-a.Ready():
	case err := <-done:
		cancel()
		return nil, nil, fmt.Errorf("agent %s: %w", cfg.NodeID, err)
	case <-time.After(30 * time.Second):
		cancel()
		<-done
		return nil, nil, fmt.Errorf("agent %s not ready within 30s", cfg.NodeID)
	case <-ctx.Done():
		cancel()
		<-done
		return nil, nil, ctx.Err()
	}
	var once sync.Once
	var stopErr error
	return a, func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(30 * time.Second):
				stopErr = fmt.Errorf("agent %s did not stop within 30s", cfg.NodeID)
			}
		})
		return stopErr
	}, nil
}

func hostPort(natsURL string) (string, error) {
	u, err := url.Parse(natsURL)
	if err != nil {
		return "", err
	}
	return u.Host, nil
}

// deadURL is a loopback URL nothing listens on: metadata probes fail fast
// and never leave the machine.
func deadURL() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "http://127.0.0.1:9"
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}
