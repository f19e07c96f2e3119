package leader

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/internal/testutil"
	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/bus/busserver"
)

// Short lease for tests: margin 200 ms, renew every 333 ms.
const testTTL = time.Second

// steadyTTL is the lease of tests that need a leader to keep its lease
// for a while: with margin 1 s and renewals every 1.7 s, a busy machine
// would have to stall the elector for over 2 s to cost it the lease.
const steadyTTL = 5 * time.Second

// patience bounds waits for things that take milliseconds to seconds on an
// idle machine: generous, so a busy one passes too.
const patience = 30 * time.Second

// slowTTL is the lease of tests that tell a hand-over (the key released or
// recognised as one's own: a few round trips) from an expiry (TTL): the
// first is allowed slowTTL/2 = patience, the second cannot come before
// slowTTL. Only a broken hand-over waits that long.
const slowTTL = 2 * patience

// longBucketTTL is a bucket TTL beyond every wait of patience: a lease that
// ends within one was ended by the elector's own clock, not the server.
const longBucketTTL = 3 * patience

// startBus runs an embedded server with the streams and buckets of
// pkg/bus, mesh_leader at bucketTTL, and returns its client URL.
func startBus(t *testing.T, bucketTTL time.Duration) string {
	t.Helper()
	s, err := busserver.StartServer(busserver.ServerConfig{Name: "leader-test", Port: -1, StoreDir: t.TempDir()}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	nc := connect(t, s.ClientURL())
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := bus.EnsureStreams(ctx, js, bus.Topology{LeaderTTL: bucketTTL}); err != nil {
		t.Fatal(err)
	}
	return s.ClientURL()
}

func connect(t *testing.T, url string) *nats.Conn {
	t.Helper()
	nc, err := bus.Connect(bus.ConnConfig{URLs: []string{url}, Name: "leader-test"}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// openKV opens the mesh_leader bucket on a new connection to url.
func openKV(t *testing.T, url string) (*nats.Conn, jetstream.KeyValue) {
	t.Helper()
	nc := connect(t, url)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, bus.BucketLeader)
	if err != nil {
		t.Fatal(err)
	}
	return nc, kv
}

// elector is one running Elector with its own connection.
type elector struct {
	*Elector
	name   string
	nc     *nats.Conn
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// startElector connects to url and runs an Elector named name.
func startElector(t *testing.T, url, name string, mod func(*Config)) *elector {
	t.Helper()
	nc, kv := openKV(t, url)
	return runElector(t, nc, kv, name, mod)
}

// runElector runs an Elector named name on kv.
func runElector(t *testing.T, nc *nats.Conn, kv jetstream.KeyValue, name string, mod func(*Config)) *elector {
	t.Helper()
	cfg := Config{Name: name, TTL: testTTL}
	if mod != nil {
		mod(&cfg)
	}
	reg := prometheus.NewRegistry()
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel).With().Timestamp().Logger()
	e, err := New(kv, cfg, log, reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	el := &elector{Elector: e, name: name, nc: nc, reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { el.done <- e.Run(ctx) }()
	t.Cleanup(func() { _ = el.stop(t) })
	return el
}

func crash(c *Config) { c.noStepDown = true }

// withTTL sets the lease TTL (other settings take their TTL-based defaults).
func withTTL(ttl time.Duration) func(*Config) { return func(c *Config) { c.TTL = ttl } }

// stop cancels Run and waits for it.
func (el *elector) stop(t *testing.T) error {
	el.once.Do(func() {
		el.cancel()
		select {
		case el.err = <-el.done:
		case <-time.After(10 * time.Second):
			el.err = errors.New("Run did not return within 10s")
			t.Errorf("%s: %v", el.name, el.err)
		}
	})
	return el.err
}

// waitLeader waits until exactly one of els reports IsLeader and returns it.
func waitLeader(t *testing.T, d time.Duration, els ...*elector) *elector {
	t.Helper()
	var got *elector
	testutil.EventuallyTrue(t, d, "a leader", func() bool {
		got = nil
		for _, e := range els {
			if e.IsLeader() {
				if got != nil {
					t.Fatalf("two leaders: %s and %s", got.name, e.name)
				}
				got = e
			}
		}
		return got != nil
	})
	return got
}

// sampler reads IsLeader of all electors in tight sweeps and counts sweeps
// in which two or more were leader. A sweep during which any elector began
// a term is discarded: leadership could have moved during it. Otherwise
// each elector read as leader led from before the sweep through its read
// (a term's leadership is one interval: held, and a lease end that renewals
// only extend while it is ahead), so two read as leader were both leader at
// the earlier of the two reads: a real overlap, however long a busy machine
// made the sweep. No sweep is judged by its duration.
type sampler struct {
	els        []*elector
	stopc      chan struct{}
	done       chan struct{}
	sweeps     atomic.Int64
	violations atomic.Int64
	mu         sync.Mutex
	examples   []string
}

func startSampler(els ...*elector) *sampler {
	s := &sampler{els: els, stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		vals := make([]bool, len(els))
		before, after := make([]uint64, len(els)), make([]uint64, len(els))
		for {
			select {
			case <-s.stopc:
				return
			default:
			}
			lastTerms(els, before)
			t0 := time.Now()
			for i, e := range els {
				vals[i] = e.IsLeader()
			}
			lastTerms(els, after)
			if !slices.Equal(before, after) {
				continue
			}
			s.sweeps.Add(1)
			var who []string
			for i, v := range vals {
				if v {
					who = append(who, els[i].name)
				}
			}
			if len(who) > 1 {
				s.violations.Add(1)
				s.mu.Lock()
				if len(s.examples) < 5 {
					s.examples = append(s.examples, fmt.Sprintf("%s: %v", t0.Format("15:04:05.000000"), who))
				}
				s.mu.Unlock()
			}
			time.Sleep(200 * time.Microsecond)
		}
	}()
	return s
}

// lastTerms writes the term of each elector's latest leadership window
// (0: none yet) into dst; terms only grow, so any new term changes it.
func lastTerms(els []*elector, dst []uint64) {
	for i, e := range els {
		dst[i] = 0
		if w := e.windows(); len(w) > 0 {
			dst[i] = w[len(w)-1].Term
		}
	}
}

// stop ends sampling once there were at least 100 conclusive sweeps (sweeps
// during a term change are discarded, so it may sample a little longer than
// the caller's window; more sweeps only check more) and reports what the
// sampler saw.
func (s *sampler) stop(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(patience); s.sweeps.Load() < 100 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	close(s.stopc)
	<-s.done
	if s.sweeps.Load() < 100 {
		t.Errorf("only %d conclusive sweeps", s.sweeps.Load())
	}
	if n := s.violations.Load(); n > 0 {
		t.Errorf("%d of %d sweeps saw two leaders at once, e.g. %v", n, s.sweeps.Load(), s.examples)
		return
	}
	t.Logf("sampler: %d conclusive sweeps, no two leaders at once", s.sweeps.Load())
}

type namedWindow struct {
	name string
	window
}

// assertNoOverlap checks that the leadership windows recorded by distinct
// electors never overlap and that terms increase with time.
func assertNoOverlap(t *testing.T, els ...*elector) []namedWindow {
	t.Helper()
	var all []namedWindow
	for _, e := range els {
		for _, w := range e.windows() {
			all = append(all, namedWindow{e.name, w})
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Start.Before(all[j].Start) })
	for i := 1; i < len(all); i++ {
		prev, cur := all[i-1], all[i]
		if cur.Start.Before(prev.End) {
			t.Errorf("windows overlap: %s term %d [%s, %s] and %s term %d starting %s",
				prev.name, prev.Term, ts(prev.Start), ts(prev.End), cur.name, cur.Term, ts(cur.Start))
		}
		if cur.Term <= prev.Term {
			t.Errorf("term did not increase: %s term %d then %s term %d", prev.name, prev.Term, cur.name, cur.Term)
		}
	}
	return all
}

func ts(t time.Time) string { return t.Format("15:04:05.000000") }

// gauge returns the value of a single-series metric in reg.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		m := mf.GetMetric()[0]
		if m.Gauge != nil {
			return m.Gauge.GetValue()
		}
		return m.Counter.GetValue()
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

// proxy forwards TCP to a server and can hold all traffic (a partition
// that drops nothing, like TCP retransmitting into a black hole).
type proxy struct {
	ln     net.Listener
	target string
	paused atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
	closed bool
}

func startProxy(t *testing.T, natsURL string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: strings.TrimPrefix(natsURL, "nats://")}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			if p.closed {
				p.mu.Unlock()
				c.Close()
				s.Close()
				return
			}
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			go p.pipe(s, c)
			go p.pipe(c, s)
		}
	}()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) URL() string { return "nats://" + p.ln.Addr().String() }

func (p *proxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		for p.paused.Load() && !p.isClosed() {
			time.Sleep(2 * time.Millisecond)
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				err = werr
			}
		}
		if err != nil {
			src.Close()
			dst.Close()
			return
		}
	}
}

func (p *proxy) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

func (p *proxy) close() {
	p.mu.Lock()
	p.closed = true
	conns := p.conns
	p.mu.Unlock()
	p.ln.Close()
	for _, c := range conns {
		c.Close()
	}
}
