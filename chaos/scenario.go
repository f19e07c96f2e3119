package main

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// Env is what every scenario gets from its runner (main or go test).
type Env struct {
	// Seed drives every random choice of the scenario (see Rand).
	Seed uint64
	// Duration is the length of the chaos phase of the long version; zero
	// runs the short version (go test, CI).
	Duration time.Duration
	// Log receives the logs of the components under test (nop unless verbose).
	Log zerolog.Logger
	// Logf prints the scenario's own progress lines.
	Logf func(format string, args ...any)
	// Dir is a scratch directory for this scenario, removed by the runner.
	Dir string
}

// Long reports whether this is the long version.
func (e Env) Long() bool { return e.Duration > 0 }

// Rand returns a generator seeded from the seed and stream, so that each
// scenario (and each simulated agent) draws the same numbers whatever else
// runs.
func (e Env) Rand(stream string) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(stream))
	return rand.New(rand.NewPCG(e.Seed, h.Sum64()))
}

// Figure is one number a scenario reports.
type Figure struct {
	Name  string
	Value any
}

// Result is what a scenario measured.
type Result struct {
	Scenario string
	Elapsed  time.Duration
	Figures  []Figure
}

// Add appends a figure (kept in insertion order).
func (r *Result) Add(name string, v any) { r.Figures = append(r.Figures, Figure{name, v}) }

// String is the one-line summary: "nats-bounce 41.2s published=... lost=0".
func (r Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", r.Scenario, r.Elapsed.Round(100*time.Millisecond))
	for _, f := range r.Figures {
		v := f.Value
		if d, ok := v.(time.Duration); ok {
			v = d.Round(time.Millisecond)
		}
		fmt.Fprintf(&b, " %s=%v", f.Name, v)
	}
	return b.String()
}

// Scenario is one fault-injection run: it sets up the system, breaks it
// for a while, lets it settle and checks the invariants of docs/ARCHITECTURE.md §8. Run
// returns an error on any lost event or broken invariant; the Result is
// filled as far as the run got, also on error.
type Scenario struct {
	Name string
	// Doc says in one line what is broken and what must hold.
	Doc string
	// Heavy, when set, says why go test -short skips the scenario.
	Heavy string
	Run   func(ctx context.Context, env Env) (Result, error)
}

// Scenarios returns every scenario in the order they run.
func Scenarios() []Scenario {
	return []Scenario{natsBounce(), leaderKill(), fleetLeaderKill(), busCut(), providerFaults(), gossipPartition()}
}

// Select returns the scenarios named in list (comma-separated; empty = all).
func Select(list string) ([]Scenario, error) {
	all := Scenarios()
	if strings.TrimSpace(list) == "" {
		return all, nil
	}
	var out []Scenario
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		found := false
		for _, s := range all {
			if s.Name == name {
				out = append(out, s)
				found = true
			}
		}
		if !found {
			var names []string
			for _, s := range all {
				names = append(names, s.Name)
			}
			return nil, fmt.Errorf("unknown scenario %q (have %s)", name, strings.Join(names, ", "))
		}
	}
	return out, nil
}

// Budget bounds a whole scenario run: generous for the short version (a
// cold build of cmd/coordinator alone can take two minutes on a busy
// 2-core machine), the chaos phase plus set-up, settling and checks for
// the long one.
func (e Env) Budget() time.Duration {
	if e.Long() {
		return e.Duration + 10*time.Minute
	}
	return 6 * time.Minute
}

// RunScenario runs s under its time budget in a fresh scratch directory
// below parent (removed afterwards) and stamps the result.
func RunScenario(ctx context.Context, s Scenario, env Env, parent string) (Result, error) {
	dir, err := os.MkdirTemp(parent, "chaos-"+s.Name+"-")
	if err != nil {
		return Result{Scenario: s.Name}, err
	}
	defer os.RemoveAll(dir)
	env.Dir = dir
	if env.Logf == nil {
		env.Logf = func(string, ...any) {}
	}
	ctx, cancel := context.WithTimeout(ctx, env.Budget())
	defer cancel()
	start := time.Now()
	res, err := s.Run(ctx, env)
	res.Scenario = s.Name
	res.Elapsed = time.Since(start)
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("%w (scenario budget %s used up)", err, env.Budget())
	}
	return res, err
}

// checks collects broken invariants so that a scenario reports all of
// them, not only the first.
type checks struct{ errs []error }

func (c *checks) failf(format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf(format, args...))
}

func (c *checks) add(err error) {
	if err != nil {
		c.errs = append(c.errs, err)
	}
}

func (c *checks) err() error { return errors.Join(c.errs...) }

// poll calls f every tick until it returns nil, timeout passes or ctx ends;
// it returns f's last error, saying how long it waited.
func poll(ctx context.Context, timeout, tick time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s: %w", timeout, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(tick):
		}
	}
}

// sleep waits d or until ctx ends (pacing only, never an assertion).
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// between draws a duration uniformly in [lo, hi).
func between(r *rand.Rand, lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(r.Int64N(int64(hi-lo)))
}

func mkdir(parts ...string) (string, error) {
	p := filepath.Join(parts...)
	return p, os.MkdirAll(p, 0o700)
}
