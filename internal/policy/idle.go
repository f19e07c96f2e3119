// Package policy holds the coordinator's automatic cost policies as pure
// decision logic over injected time: what they observe, when they decide,
// and with which inputs. The coordinator feeds them the registry, runs them
// on the leader only and acts through the same gates as an operator.
package policy

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/ringmesh/ringmesh/pkg/config"
	"github.com/ringmesh/ringmesh/pkg/events"
)

// Idleness is the verdict on one health sample.
type Idleness struct {
	// Idle is true only when every input was measured and all say idle.
	Idle bool
	// Why says what made it not idle (or, when idle, the measured inputs),
	// e.g. "GPU 1 utilisation unknown", "process train running".
	Why string
}

// Judge says whether sample shows an idle node under pol: at least one
// GPU, every GPU's utilisation measured and at most MaxGPUUtilPercent, and
// every watched process measured and absent. Unmeasured is never idle.
func Judge(s *events.HealthSample, pol config.IdlePolicy) Idleness {
	if s == nil {
		return Idleness{Why: "no health sample"}
	}
	if len(s.GPUs) == 0 {
		return Idleness{Why: "no GPU measured (" + events.StripControl(s.GPUProbe) + ")"}
	}
	var utils []string
	for _, g := range s.GPUs {
		switch {
		case g.UtilizationPercent == nil:
			return Idleness{Why: fmt.Sprintf("GPU %d utilisation unknown", g.Index)}
		case *g.UtilizationPercent > pol.MaxGPUUtilPercent:
			return Idleness{Why: fmt.Sprintf("GPU %d at %.0f%% > %g%%", g.Index, *g.UtilizationPercent, pol.MaxGPUUtilPercent)}
		}
		utils = append(utils, fmt.Sprintf("%.0f%%", *g.UtilizationPercent))
	}
	var procs []string
	for _, p := range s.Processes {
		name := events.StripControl(p.Name)
		switch {
		case p.Present == nil:
			return Idleness{Why: "process " + name + " unknown"}
		case *p.Present:
			return Idleness{Why: "process " + name + " running"}
		}
		procs = append(procs, name)
	}
	why := "GPUs " + strings.Join(utils, ",")
	if len(procs) > 0 {
		why += "; not running: " + strings.Join(procs, ",")
	}
	return Idleness{Idle: true, Why: why}
}

// IdleCandidate is a node idle for at least the policy's window.
type IdleCandidate struct {
	Node string
	// Since is when the continuous idle stretch began (first idle sample).
	Since time.Time
	// Inputs are the last sample's measured figures, for the audit.
	Inputs string
}

// IdleTracker remembers, per node, since when its samples have been
// continuously idle. Not safe for concurrent use.
type IdleTracker struct {
	pol   config.IdlePolicy
	state map[string]*idleRun
}

type idleRun struct {
	since, last time.Time // first and latest idle sample times
	inputs      string
}

// NewIdleTracker tracks under pol.
func NewIdleTracker(pol config.IdlePolicy) *IdleTracker {
	return &IdleTracker{pol: pol, state: map[string]*idleRun{}}
}

// Observe folds node's latest sample in, seen at now. maxGap is the
// longest silence that still counts as continuous (e.g. three heartbeat
// intervals): a sample older than that, a gap between samples longer than
// that, or any non-idle sample ends the idle stretch.
func (t *IdleTracker) Observe(node string, s *events.HealthSample, maxGap time.Duration, now time.Time) {
	j := Judge(s, t.pol)
	if !j.Idle || now.Sub(s.Time) > maxGap {
		delete(t.state, node)
		return
	}
	r := t.state[node]
	switch {
	case r == nil || s.Time.Sub(r.last) > maxGap:
		t.state[node] = &idleRun{since: s.Time, last: s.Time, inputs: j.Why}
	case s.Time.After(r.last):
		r.last, r.inputs = s.Time, j.Why
	}
}

// Forget drops node (after an action, or when it left the registry).
func (t *IdleTracker) Forget(node string) { delete(t.state, node) }

// Keep drops every node not in keep.
func (t *IdleTracker) Keep(keep map[string]bool) {
	for n := range t.state {
		if !keep[n] {
			delete(t.state, n)
		}
	}
}

// Due returns the nodes idle for at least the window at now, by name.
func (t *IdleTracker) Due(now time.Time) []IdleCandidate {
	var out []IdleCandidate
	for n, r := range t.state {
		if r.last.Sub(r.since) >= t.pol.Window && now.Sub(r.since) >= t.pol.Window {
			out = append(out, IdleCandidate{Node: n, Since: r.since, Inputs: r.inputs})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out
}
