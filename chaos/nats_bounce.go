package main

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/auth"
	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/bus/busserver"
	"github.com/ringmesh/ringmesh/pkg/coordinator"
	"github.com/ringmesh/ringmesh/pkg/mesh"
)

func natsBounce() Scenario {
	return Scenario{
		Name:  "nats-bounce",
		Doc:   "3 voters (R3) + 3 coordinators + 50 agents; a random NATS server is stopped and restarted every few seconds: no event lost or duplicated, registry exact, consumers drained, one leader at a time",
		Heavy: "it runs a 3-server JetStream cluster, 3 coordinators and 50 agents for a minute",
		Run:   runNATSBounce,
	}
}

const (
	bounceAgents  = 50
	bounceTTL     = 3 * time.Second
	bounceHistory = 100_000 // MESH_EVT messages kept per subject in this scenario
)

func runNATSBounce(ctx context.Context, env Env) (res Result, err error) {
	rng := env.Rand("nats-bounce")
	begin := time.Now()
	phase := func(what string) {
		env.Logf("nats-bounce: %-28s at %s", what, time.Since(begin).Round(100*time.Millisecond))
	}
	chaosFor := 20 * time.Second
	if env.Long() {
		chaosFor = env.Duration
	}
	var ck checks

	sec, err := newSecure(env)
	if err != nil {
		return res, err
	}
	copts, err := sec.cluster()
	if err != nil {
		return res, err
	}
	cl, err := busserver.StartClusterWith(3, "chaos", filepath.Join(env.Dir, "nats"), true, copts, env.Log)
	if err != nil {
		return res, fmt.Errorf("start NATS cluster: %w", err)
	}
	defer cl.Shutdown()
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	err = cl.WaitReady(wctx, 3)
	cancel()
	if err != nil {
		return res, err
	}

	// The tally below counts every event ever published, so MESH_EVT must
	// keep them all: the production per-subject history (60) trims a
	// node's oldest syncs once a slow, loaded run makes it publish more,
	// and those would read as lost. bounceHistory is far above what a run
	// publishes; storedPerSubject checks it was.
	topo := bus.Topology{Replicas: 3, LeaderTTL: bounceTTL, EventHistory: bounceHistory, EventMaxBytes: 256 << 20}
	var cfgs []coordinator.Config
	for i := 0; i < 3; i++ {
		cfg, err := sec.coordinator(coordinator.Config{
			Name:      fmt.Sprintf("hetzner-cpu%d", i+1),
			NATSURLs:  rotate(cl.URLs(), i),
			Topology:  topo,
			Elect:     true,
			LeaderTTL: bounceTTL,
		})
		if err != nil {
			return res, err
		}
		cfgs = append(cfgs, cfg)
	}
	coords, err := startCoords(ctx, cfgs, env.Log, 90*time.Second)
	if err != nil {
		return res, err
	}
	defer func() {
		for _, c := range coords {
			if serr := c.stop(); serr != nil && err == nil {
				err = serr
			}
		}
	}()
	if err := poll(ctx, 30*time.Second, 100*time.Millisecond, func() error { _, err := leaderOf(coords); return err }); err != nil {
		return res, fmt.Errorf("first leader: %w", err)
	}
	phase("cluster and coordinators up")
	watch := watchLeaders(coords)
	defer watch.stop()

	agents := make([]*simAgent, 0, bounceAgents)
	defer func() {
		for _, a := range agents {
			a.close()
		}
	}()
	for i := 0; i < bounceAgents; i++ {
		node := fmt.Sprintf("vast-chaos-%02d", i+1)
		dir, err := mkdir(env.Dir, "agents", node)
		if err != nil {
			return res, err
		}
		creds, err := sec.credsFile(auth.RoleNode, node)
		if err != nil {
			return res, err
		}
		a, err := startSimAgent(simAgentConfig{Node: node, URLs: rotate(cl.URLs(), i), Dir: dir, Rand: env.Rand("nats-bounce/" + node),
			Heartbeat: time.Second, SyncEvery: [2]time.Duration{time.Second, 3 * time.Second}, CredsFile: creds, CAFile: sec.iss.CAFile()}, env.Log)
		if err != nil {
			return res, fmt.Errorf("agent %s: %w", node, err)
		}
		agents = append(agents, a)
	}
	res.Add("agents", len(agents))

	checker, err := sec.conn(bus.ConnConfig{URLs: cl.URLs(), Name: "chaos-checker", ReconnectWait: 250 * time.Millisecond}, auth.RoleCoordinator, "coordinator-checker")
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
	signer, err := sec.signer()
	if err != nil {
		return res, err
	}
	probe := probeStatus(api.Client{NC: nc, Sign: signer.Sign}, 500*time.Millisecond, 5*time.Second, env.Logf)
	defer probe.stop()

	// Chaos: stop a random server, keep it down a moment, restart it on
	// the same ports and store, wait until its replicas are current again.
	env.Logf("nats-bounce: %d agents publishing; bouncing servers for %s", len(agents), chaosFor)
	restarts := 0
	var recoverMax time.Duration
	end := time.Now().Add(chaosFor)
	for time.Now().Before(end) {
		if err := sleep(ctx, between(rng, 2*time.Second, 5*time.Second)); err != nil {
			return res, err
		}
		i := rng.IntN(cl.Size())
		down := between(rng, time.Second, 4*time.Second)
		cl.Stop(i)
		if err := sleep(ctx, down); err != nil {
			return res, err
		}
		if err := poll(ctx, 30*time.Second, 500*time.Millisecond, func() error { return cl.Restart(i) }); err != nil {
			return res, fmt.Errorf("restart server %d: %w", i+1, err)
		}
		restarts++
		t0 := time.Now()
		if err := poll(ctx, 90*time.Second, 250*time.Millisecond, func() error { return replicasCurrent(ctx, js) }); err != nil {
			return res, fmt.Errorf("cluster did not recover after restarting server %d: %w", i+1, err)
		}
		recoverMax = max(recoverMax, time.Since(t0))
		env.Logf("nats-bounce: server %d down %s, replicas current %s after restart", i+1, down.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
	}
	phase("chaos over")
	res.Add("server_restarts", restarts)
	res.Add("max_catch_up", recoverMax)

	// Settle: every node healthy in the leader's view while heartbeats flow.
	if err := poll(ctx, 90*time.Second, 250*time.Millisecond, func() error {
		l, err := leaderOf(coords)
		if err != nil {
			return err
		}
		return allHealthy(l, agents)
	}); err != nil {
		ck.failf("after the chaos: %w", err)
	}
	phase("all healthy")
	for _, a := range agents {
		a.quiesce()
	}
	lens := map[string]func() int{}
	for _, a := range agents {
		lens[a.node] = func() int { n, _ := a.box.Len(); return n }
	}
	t0 := time.Now()
	if err := waitOutboxes(ctx, 90*time.Second, lens); err != nil {
		ck.failf("outboxes: %w", err)
	}
	res.Add("drain", time.Since(t0))

	phase("outboxes drained")
	// Every non-heartbeat event exactly once in MESH_EVT.
	var published []string
	last := map[string]int64{}
	for _, a := range agents {
		ids, lastBytes, putErrs := a.state()
		published = append(published, ids...)
		last[a.node] = lastBytes
		if putErrs > 0 {
			ck.failf("agent %s: outbox refused %d events", a.node, putErrs)
		}
	}
	var stored []storedMsg
	for _, kind := range []string{bus.KindHello, bus.KindSync} {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		msgs, err := readStream(rctx, js, bus.StreamEvents, bus.Prefix+".evt.*."+kind)
		cancel()
		if err != nil {
			ck.add(err)
		}
		stored = append(stored, msgs...)
	}
	phase("stream read")
	if subj, n := busiestSubject(stored); int64(n) >= bounceHistory {
		ck.failf("%s holds %d messages, the per-subject limit: the stream may have trimmed events, raise bounceHistory", subj, n)
	}
	t := tally(published, stored)
	t.figures(&res)
	t.check(&ck)

	// Every coordinator's registry holds exactly the agents, with the last
	// sync each published; every durable consumer drained.
	// A consumer can take up to AckWait (30 s) to settle: an ack sent to a
	// server that went down is lost, the message is redelivered and the
	// registry acknowledges it as a duplicate.
	var settle time.Duration
	for _, c := range coords {
		if err := poll(ctx, 60*time.Second, 250*time.Millisecond, func() error { return registryExact(c, last) }); err != nil {
			ck.failf("registry of %s: %w", c.name, err)
		}
		t0 := time.Now()
		if err := poll(ctx, 75*time.Second, 250*time.Millisecond, func() error { return consumerDrained(ctx, js, c.name) }); err != nil {
			ck.add(err)
		}
		settle = max(settle, time.Since(t0))
	}
	res.Add("consumer_settle", settle)
	phase("registries and consumers")
	if n, err := deadLetters(ctx, js); err != nil || n > 0 {
		ck.failf("dead letters: %d (%v)", n, err)
	}
	phase("checked")
	defer phase("stopped")

	// One leader at a time; leadership changes at most once per lease period.
	probe.stop()
	ok, failed, gap := probe.figures()
	res.Add("status_ok", ok)
	res.Add("status_failed", failed)
	res.Add("max_status_gap", gap)
	if gap > 30*time.Second {
		ck.failf("the coordinators answered no status request for %s", gap.Round(time.Millisecond))
	}
	watch.stop()
	cur, changes, overlaps, leaderless, msg := watch.figures()
	res.Add("leader", cur)
	res.Add("leader_changes", changes)
	res.Add("max_leaderless", leaderless)
	if overlaps > 0 {
		ck.failf("two leaders at once in %d sweeps (last: %s)", overlaps, msg)
	}
	if allowed := int(chaosFor/bounceTTL) + 1; changes > allowed {
		ck.failf("leader changed %d times in %s, more than once per %s lease period", changes, chaosFor, bounceTTL)
	}
	return res, ck.err()
}

// rotate returns urls starting at index i (each client prefers a different server).
func rotate(urls []string, i int) []string {
	i %= len(urls)
	return append(append([]string(nil), urls[i:]...), urls[:i]...)
}

// replicasCurrent checks that the event stream and the leader bucket have
// a leader and every replica is online and current.
func replicasCurrent(ctx context.Context, js jetstream.JetStream) error {
	for _, name := range []string{bus.StreamEvents, "KV_" + bus.BucketLeader, "KV_" + bus.BucketNodes} {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := js.Stream(sctx, name)
		if err != nil {
			cancel()
			return fmt.Errorf("%s: %w", name, err)
		}
		info, err := st.Info(sctx)
		cancel()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if info.Cluster == nil || info.Cluster.Leader == "" {
			return fmt.Errorf("%s has no leader", name)
		}
		if len(info.Cluster.Replicas) != 2 {
			return fmt.Errorf("%s: leader %s with %d replicas", name, info.Cluster.Leader, len(info.Cluster.Replicas))
		}
		for _, p := range info.Cluster.Replicas {
			if !p.Current || p.Offline {
				return fmt.Errorf("%s: replica %s current=%v offline=%v lag=%d", name, p.Name, p.Current, p.Offline, p.Lag)
			}
		}
	}
	return nil
}

func allHealthy(c *coord, agents []*simAgent) error {
	for _, a := range agents {
		rec, ok := c.c.Registry().Get(a.node)
		if !ok {
			return fmt.Errorf("%s: %s not in the registry", c.name, a.node)
		}
		if rec.State != mesh.StateHealthy {
			return fmt.Errorf("%s: %s is %s (%s)", c.name, a.node, rec.State, rec.Cause)
		}
	}
	return nil
}

// registryExact checks the registry holds exactly the nodes of last, each
// with the BytesSent of its last sync event.
func registryExact(c *coord, last map[string]int64) error {
	snap := c.c.Registry().Snapshot()
	if len(snap) != len(last) {
		return fmt.Errorf("%d nodes, want %d", len(snap), len(last))
	}
	for _, rec := range snap {
		want, ok := last[rec.Node]
		if !ok {
			return fmt.Errorf("unexpected node %s", rec.Node)
		}
		if rec.LastSync == nil || rec.LastSync.BytesSent != want {
			got := "none"
			if rec.LastSync != nil {
				got = fmt.Sprint(rec.LastSync.BytesSent)
			}
			return fmt.Errorf("%s: last sync bytes_sent %s, want %d", rec.Node, got, want)
		}
	}
	return nil
}

// statusProbe asks for status on an interval and records how long the
// coordinators went without answering.
type statusProbe struct {
	mu       sync.Mutex
	ok, fail int
	maxGap   time.Duration
	maxLat   time.Duration
	lastOK   time.Time
	lastErr  error
	logf     func(string, ...any)
	stopc    chan struct{}
	done     chan struct{}
	once     sync.Once
}

func probeStatus(cli api.Client, every, timeout time.Duration, logf func(string, ...any)) *statusProbe {
	p := &statusProbe{lastOK: time.Now(), logf: logf, stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-p.stopc:
				return
			case <-t.C:
			}
			select {
			case <-p.stopc:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			start := time.Now()
			_, err := cli.Status(ctx)
			cancel()
			lat := time.Since(start)
			p.mu.Lock()
			if err == nil {
				p.ok++
				p.maxGap = max(p.maxGap, time.Since(p.lastOK))
				p.lastOK = time.Now()
				p.maxLat = max(p.maxLat, lat)
			} else {
				p.fail++
				p.lastErr = err
				if p.logf != nil {
					p.logf("status probe failed after %s: %v", lat.Round(time.Millisecond), err)
				}
			}
			p.mu.Unlock()
		}
	}()
	return p
}

func (p *statusProbe) stop() {
	p.once.Do(func() {
		close(p.stopc)
		<-p.done
		p.mu.Lock()
		p.maxGap = max(p.maxGap, time.Since(p.lastOK))
		p.mu.Unlock()
	})
}

func (p *statusProbe) figures() (ok, failed int, maxGap time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ok, p.fail, p.maxGap
}

func (p *statusProbe) latency() (time.Duration, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.maxLat, p.lastErr
}
