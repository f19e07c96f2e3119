package policy

import (
	"strings"
	"testing"
	"time"

	"github.com/ringmesh/ringmesh/pkg/config"
	"github.com/ringmesh/ringmesh/pkg/events"
)

func f(v float64) *float64 { return &v }
func b(v bool) *bool       { return &v }

var pol = config.IdlePolicy{Mode: config.PolicyEnforce, Action: "stop", MaxGPUUtilPercent: 5, Window: 10 * time.Minute}

func sample(at time.Time, utils ...*float64) *events.HealthSample {
	s := &events.HealthSample{Time: at, GPUProbe: "ok"}
	for i, u := range utils {
		s.GPUs = append(s.GPUs, events.GPU{Index: i, UtilizationPercent: u})
	}
	return s
}

// Unmeasured is never idle: no sample, no GPU, an unknown utilisation, an
// unknown or running watched process.
func TestJudgeNeverCallsUnmeasuredIdle(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	withProc := func(s *events.HealthSample, present *bool) *events.HealthSample {
		s.Processes = []events.Process{{Name: "selfplay", Present: present}}
		return s
	}
	for _, c := range []struct {
		what string
		s    *events.HealthSample
		idle bool
		why  string
	}{
		{"no sample", nil, false, "no health sample"},
		{"no GPU", &events.HealthSample{Time: t0, GPUProbe: "no-gpu"}, false, "no GPU"},
		{"one GPU unknown", sample(t0, f(0), nil), false, "GPU 1 utilisation unknown"},
		{"one GPU busy", sample(t0, f(0), f(40)), false, "GPU 1 at 40%"},
		{"process unknown", withProc(sample(t0, f(0)), nil), false, "process selfplay unknown"},
		{"process running", withProc(sample(t0, f(0)), b(true)), false, "process selfplay running"},
		{"idle, process absent", withProc(sample(t0, f(0), f(5)), b(false)), true, "GPUs 0%,5%; not running: selfplay"},
	} {
		j := Judge(c.s, pol)
		if j.Idle != c.idle || !strings.Contains(j.Why, c.why) {
			t.Errorf("%s: %+v, want idle=%v with %q", c.what, j, c.idle, c.why)
		}
	}
}

// A node is due only after a continuous idle stretch of the window; a busy
// or unmeasured sample, a gap in samples, or a stale sample starts over.
func TestIdleTrackerNeedsAContinuousWindow(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	gap := 15 * time.Second
	tr := NewIdleTracker(pol)
	feed := func(node string, from, to time.Time, u *float64) {
		for at := from; !at.After(to); at = at.Add(5 * time.Second) {
			tr.Observe(node, sample(at, u), gap, at)
		}
	}
	feed("a", t0, t0.Add(9*time.Minute), f(0))
	if d := tr.Due(t0.Add(9 * time.Minute)); len(d) != 0 {
		t.Fatalf("due before the window: %+v", d)
	}
	feed("a", t0.Add(9*time.Minute), t0.Add(10*time.Minute), f(0))
	d := tr.Due(t0.Add(10 * time.Minute))
	if len(d) != 1 || d[0].Node != "a" || !d[0].Since.Equal(t0) {
		t.Fatalf("due after the window: %+v", d)
	}

	// A single unknown sample in the middle restarts the stretch.
	feed("b", t0, t0.Add(6*time.Minute), f(1))
	tr.Observe("b", sample(t0.Add(6*time.Minute+5*time.Second), nil), gap, t0.Add(6*time.Minute+5*time.Second))
	feed("b", t0.Add(6*time.Minute+10*time.Second), t0.Add(12*time.Minute), f(1))
	for _, c := range tr.Due(t0.Add(12 * time.Minute)) {
		if c.Node == "b" {
			t.Fatalf("b due although an unknown sample broke its stretch: %+v", c)
		}
	}

	// Silence longer than the gap (no sample for a minute) restarts it too.
	feed("c", t0, t0.Add(5*time.Minute), f(0))
	feed("c", t0.Add(6*time.Minute), t0.Add(11*time.Minute), f(0))
	for _, c := range tr.Due(t0.Add(11 * time.Minute)) {
		if c.Node == "c" {
			t.Fatalf("c due across a gap in its samples: %+v", c)
		}
	}

	// The last sample is older than the gap: it no longer describes the node.
	tr.Observe("a", sample(t0.Add(10*time.Minute), f(0)), gap, t0.Add(20*time.Minute))
	if d := tr.Due(t0.Add(20 * time.Minute)); len(d) != 0 {
		t.Fatalf("due on a stale sample: %+v", d)
	}
	tr.Keep(map[string]bool{})
	if d := tr.Due(t0.Add(30 * time.Minute)); len(d) != 0 {
		t.Fatalf("Keep left %+v", d)
	}
}
