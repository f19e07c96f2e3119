package gossip

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// tlogWriter sends zerolog output to t.Log until the test's cleanup runs
// (memberlist goroutines may log a little after Shutdown returns).
type tlogWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *tlogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// testLogger logs at GOSSIP_TEST_LOG level (default info) to the test log.
func testLogger(t testing.TB) zerolog.Logger {
	w := &tlogWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	level := zerolog.InfoLevel
	if l, err := zerolog.ParseLevel(os.Getenv("GOSSIP_TEST_LOG")); err == nil && l != zerolog.NoLevel {
		level = l
	}
	stamp := zerolog.HookFunc(func(e *zerolog.Event, _ zerolog.Level, _ string) {
		e.Str("t", time.Now().Format("15:04:05.000"))
	})
	return zerolog.New(zerolog.ConsoleWriter{Out: w, NoColor: true, PartsExclude: []string{zerolog.TimestampFieldName}}).Level(level).Hook(stamp)
}

var testKey = []byte("0123456789abcdef0123456789abcdef")

// testConfig is a loopback, local-profile config with a 1 s rejoin.
func testConfig(name string, seeds ...string) Config {
	return Config{
		NodeName:       name,
		BindAddr:       "127.0.0.1",
		Profile:        ProfileLocal,
		ClusterLabel:   "ringmesh-test",
		Keys:           [][]byte{testKey},
		Seeds:          seeds,
		RejoinInterval: time.Second,
		LeaveTimeout:   2 * time.Second,
		Meta:           Meta{Role: "agent", Provider: "local", AgentVersion: "test"},
	}
}

// tnode is a running Member with its registry and recorded events.
type tnode struct {
	*Member
	t      testing.TB
	reg    *prometheus.Registry
	ev     *eventLog
	cancel context.CancelFunc
	runErr chan error
}

// start creates and runs a member; it is closed at test cleanup.
func start(t testing.TB, cfg Config) *tnode {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := New(cfg, testLogger(t).With().Str("n", cfg.NodeName).Logger(), reg)
	if err != nil {
		t.Fatalf("New(%s): %v", cfg.NodeName, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &tnode{Member: m, t: t, reg: reg, ev: newEventLog(m.Events()), cancel: cancel, runErr: make(chan error, 1)}
	go func() { n.runErr <- m.Run(ctx) }()
	t.Cleanup(func() {
		_ = m.Close()
		cancel()
		<-n.runErr
		<-n.ev.done
	})
	return n
}

// leave cancels Run (graceful leave) and waits for it to return.
func (n *tnode) leave() error {
	n.cancel()
	select {
	case err := <-n.runErr:
		n.runErr <- err // for cleanup
		return err
	case <-time.After(20 * time.Second):
		return fmt.Errorf("Run did not return after cancel")
	}
}

// counter returns the value of a counter or gauge series in n's registry.
func (n *tnode) counter(name string, labels ...string) float64 {
	return metricValue(n.t, n.reg, name, labels...)
}

func metricValue(t testing.TB, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

// eventLog records every event of a member.
type eventLog struct {
	mu   sync.Mutex
	evs  []Event
	done chan struct{}
}

func newEventLog(ch <-chan Event) *eventLog {
	l := &eventLog{done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for ev := range ch {
			l.mu.Lock()
			l.evs = append(l.evs, ev)
			l.mu.Unlock()
		}
	}()
	return l
}

func (l *eventLog) all() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.evs)
}

// has returns an error unless an event of type t for node was seen.
func (l *eventLog) has(t EventType, node string) error {
	for _, ev := range l.all() {
		if ev.Type == t && ev.Node == node {
			return nil
		}
	}
	return fmt.Errorf("no %s event for %s in %v", t, node, l.summary())
}

func (l *eventLog) count(t EventType, node string) int {
	n := 0
	for _, ev := range l.all() {
		if ev.Type == t && ev.Node == node {
			n++
		}
	}
	return n
}

func (l *eventLog) summary() string {
	var b strings.Builder
	for _, ev := range l.all() {
		fmt.Fprintf(&b, "%s:%s ", ev.Type, ev.Node)
	}
	return b.String()
}

// sees returns an error unless n's view has exactly the given members in
// the given state (others may exist in other states).
func (n *tnode) sees(state State, names ...string) error {
	for _, name := range names {
		mi, ok := n.Member.Member(name)
		if !ok {
			return fmt.Errorf("%s: %s unknown", n.cfg.NodeName, name)
		}
		if mi.State != state {
			return fmt.Errorf("%s: %s is %s, want %s", n.cfg.NodeName, name, mi.State, state)
		}
	}
	return nil
}

// allSee checks that every node sees every name alive and counts want
// alive members.
func allSee(nodes []*tnode, want int, names ...string) error {
	for _, n := range nodes {
		if got := n.NumMembers(); got != want {
			return fmt.Errorf("%s: NumMembers = %d, want %d", n.cfg.NodeName, got, want)
		}
		if err := n.sees(StateAlive, names...); err != nil {
			return err
		}
	}
	return nil
}
