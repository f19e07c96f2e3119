package gossip

import (
	"bytes"
	stdlog "log"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

type fakeSink struct {
	mu       sync.Mutex
	rejects  []string // reason|remote
	suspects []string
}

func (f *fakeSink) rejected(reason, remote, detail string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rejects = append(f.rejects, reason+"|"+remote)
}

func (f *fakeSink) suspected(node string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.suspects = append(f.suspects, node)
}

// The lines below are memberlist v0.7.0's exact formats (net.go, state.go);
// the integration tests check that real mismatches produce them.
func TestLogBridgeClassifies(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	sink := &fakeSink{}
	l := stdlog.New(&logBridge{log: zerolog.New(&out).Level(zerolog.DebugLevel), sink: sink}, "", 0)

	l.Printf("[ERR] memberlist: failed to receive: no installed keys could decrypt the message from=10.0.0.9:51234")
	l.Printf("[ERR] memberlist: Decrypt packet failed: unsupported encryption version 123 from=10.0.0.9:7946")
	l.Printf("[ERR] memberlist: failed to receive: encryption is configured but remote state is not encrypted from=10.0.0.8:40000")
	l.Printf("[ERR] memberlist: discarding stream with unacceptable label %q: from=10.0.0.7:5555", "prod")
	l.Printf("[ERR] memberlist: discarding packet with unacceptable label %q: from=10.0.0.7:7946", "")
	// Outbound failures (our own join) are not inbound rejections.
	l.Printf("[DEBUG] memberlist: failed to join 10.0.0.1:7946: no installed keys could decrypt the message")
	l.Printf("[ERR] memberlist: Push/Pull with gpu-1 failed: no installed keys could decrypt the message")
	l.Printf("[INFO] memberlist: Suspect gpu-7 has failed, no acks received")
	l.Printf("[ERR] memberlist: Conflicting address for b. Mine: 10.0.0.1:7946 Theirs: 10.0.0.2:7946 Old state: 0")
	l.Printf("[WARN] memberlist: Was able to connect to gpu-3 over TCP but UDP probes failed, network may be misconfigured")
	l.Printf("Err: Could not set the deadline: boom")

	want := []string{"key|10.0.0.9:51234", "key|10.0.0.9:7946", "key|10.0.0.8:40000", "label|10.0.0.7:5555", "label|10.0.0.7:7946"}
	if strings.Join(sink.rejects, " ") != strings.Join(want, " ") {
		t.Errorf("rejects = %v, want %v", sink.rejects, want)
	}
	if len(sink.suspects) != 1 || sink.suspects[0] != "gpu-7" {
		t.Errorf("suspected = %v", sink.suspects)
	}
	logged := out.String()
	for _, s := range []string{
		`{"level":"debug","message":"failed to join 10.0.0.1:7946`,
		`{"level":"error","message":"Push/Pull with gpu-1 failed`,
		`{"level":"info","message":"Suspect gpu-7 has failed`,
		`{"level":"debug","message":"Conflicting address for b.`,
		`{"level":"warn","message":"Was able to connect to gpu-3 over TCP`,
		`{"level":"error","message":"Err: Could not set the deadline: boom"}`,
	} {
		if !strings.Contains(logged, s) {
			t.Errorf("log lacks %s\n%s", s, logged)
		}
	}
	if strings.Contains(logged, "unacceptable label") || strings.Contains(logged, "Decrypt packet failed") {
		t.Errorf("rejections must be logged by the member (rate-limited), not raw:\n%s", logged)
	}
	if got := labelOf(`discarding stream with unacceptable label "a \"q\"": from=1.2.3.4:1`); got != `a "q"` {
		t.Errorf("labelOf = %q", got)
	}
}

func TestRejectionsAreRateLimitedPerRemote(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	m, err := New(testConfig("solo"), zerolog.New(&out), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	now := time.Unix(1_000_000, 0)
	m.limiter.mu.Lock()
	m.limiter.now = func() time.Time { return now } // called with mu held
	m.limiter.mu.Unlock()

	for i := range 100 {
		m.rejected(ReasonKey, "10.0.0.9:"+string(rune('0'+i%10))+"000", "no installed keys could decrypt the message")
	}
	m.rejected(ReasonKey, "10.0.0.10:7946", "x")
	m.rejected(ReasonLabel, "10.0.0.9:7946", `discarding stream with unacceptable label "prod": from=10.0.0.9:7946`)
	lines := func() int { return strings.Count(out.String(), "gossip: rejected traffic") }
	if got := lines(); got != 3 {
		t.Fatalf("%d log lines for 102 rejections, want 3 (one per reason and IP):\n%s", got, out.String())
	}
	if !strings.Contains(out.String(), `it belongs to cluster label \"prod\", this is \"ringmesh-test\"`) {
		t.Errorf("label line unclear:\n%s", out.String())
	}
	m.limiter.mu.Lock()
	now = now.Add(rejectLogEvery)
	m.limiter.mu.Unlock()
	m.rejected(ReasonKey, "10.0.0.9:1234", "again")
	if got := lines(); got != 4 || !strings.Contains(out.String(), `"suppressed":99`) {
		t.Errorf("after the interval: %d lines, want 4 with suppressed=99:\n%s", got, out.String())
	}
}

func TestLimiterBoundsMemory(t *testing.T) {
	t.Parallel()
	l := newLimiter()
	for i := range 3 * limiterMaxKeys {
		l.allow(strings.Repeat("k", i%50)+string(rune(i)), time.Hour)
	}
	if len(l.last) > limiterMaxKeys {
		t.Errorf("limiter holds %d keys", len(l.last))
	}
}
