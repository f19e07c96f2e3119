package gossip

import (
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/rs/zerolog"
)

// BenchmarkConvergence builds a cluster of n in-process members on
// loopback with the cluster profile (RINGMESH_GOSSIP_BENCH_PROFILE=lan for
// another; encrypted, labelled, as in production) and
// per iteration measures
//
//	(a) convergence: from a new member's Join until every one of the n
//	    members has emitted a Join event for it;
//	(b) failure detection: from that member's crash (Close, no leave)
//	    until every one of the n members has emitted a Fail event for it,
//
// each next to memberlist's own formula for the same size. Sizes are
// sub-benchmarks (n=50, n=200, n=500); choose with -bench or with
// RINGMESH_GOSSIP_BENCH_SIZES=50,200. Example:
//
//	go test ./pkg/gossip -run XXX -bench 'BenchmarkConvergence/n=(50|200)$' -benchtime 1x -timeout 30m
//
// Reported metrics (seconds): converge-max-s, converge-p50-s,
// converge-formula-s = GossipInterval × ceil(ln N / ln GossipNodes);
// detect-max-s, detect-p50-s, detect-formula-min-s = ProbeInterval +
// SuspicionMult × max(1, log10 N) × ProbeInterval (enough confirmations),
// detect-formula-max-s = ProbeInterval + SuspicionMaxTimeoutMult × that
// suspicion timeout (no confirmations); suspect-first-s, suspect-p50-s,
// suspect-max-s: from the crash until the first, the median and the last
// member emitted EventSuspect for it (suspect-members of them did before
// its EventFail); false-suspects: suspect events for the other, live
// members in the same time; N = n+1 (the cluster including the
// new member). The cluster is built in batches of 25 joiners with full
// convergence in between; its build time is logged, not measured.
// memberlist's packet compression is off unless
// RINGMESH_GOSSIP_BENCH_COMPRESS=1 (see benchCompress). On a 2-core host
// n=500 is at the edge: with other load on the machine, false suspicions
// during the build can snowball and the build then fails its deadline.
func BenchmarkConvergence(b *testing.B) {
	if testing.Short() {
		b.Skip("heavy: builds clusters of up to 500 members")
	}
	sizes := []int{50, 200, 500}
	if env := os.Getenv("RINGMESH_GOSSIP_BENCH_SIZES"); env != "" {
		sizes = nil
		for _, f := range strings.Split(env, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 2 {
				b.Fatalf("RINGMESH_GOSSIP_BENCH_SIZES: bad size %q", f)
			}
			sizes = append(sizes, n)
		}
	}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) { benchCluster(b, n) })
	}
}

// benchWatch records, per member, when it first saw the current target
// join and fail.
type benchWatch struct {
	mu      sync.Mutex
	target  string
	joined  map[int]time.Time
	gone    map[int]time.Time
	suspect map[int]time.Time
	// falseSuspect counts suspect events for members other than the
	// target (none of them crashed) since the last reset.
	falseSuspect int
}

func (w *benchWatch) see(i int, ev Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if ev.Node != w.target {
		if ev.Type == EventSuspect {
			w.falseSuspect++
		}
		return
	}
	switch ev.Type {
	case EventJoin:
		if _, ok := w.joined[i]; !ok {
			w.joined[i] = ev.Time
		}
	case EventFail, EventLeave:
		if _, ok := w.gone[i]; !ok {
			w.gone[i] = ev.Time
		}
	case EventSuspect:
		if _, ok := w.suspect[i]; !ok {
			w.suspect[i] = ev.Time
		}
	}
}

func (w *benchWatch) reset(target string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.target, w.joined, w.gone, w.suspect = target, map[int]time.Time{}, map[int]time.Time{}, map[int]time.Time{}
	w.falseSuspect = 0
}

// spread returns max and median of the times since t0, and how many.
func spread(m map[int]time.Time, t0 time.Time) (maxD, p50 time.Duration, n int) {
	ds := make([]time.Duration, 0, len(m))
	for _, t := range m {
		ds = append(ds, t.Sub(t0))
	}
	if len(ds) == 0 {
		return 0, 0, 0
	}
	slices.Sort(ds)
	return ds[len(ds)-1], ds[len(ds)/2], len(ds)
}

func (w *benchWatch) wait(b *testing.B, what string, which func() map[int]time.Time, n int, t0 time.Time, timeout time.Duration) (maxD, p50 time.Duration) {
	deadline := time.Now().Add(timeout)
	for {
		w.mu.Lock()
		maxD, p50, got := spread(which(), t0)
		w.mu.Unlock()
		if got >= n {
			return maxD, p50
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s: only %d of %d members saw it within %s", what, got, n, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// benchCompress keeps memberlist's per-packet LZW compression on
// (RINGMESH_GOSSIP_BENCH_COMPRESS=1). It is off by default in this
// benchmark: compression allocates a fresh LZW table per packet, and with
// hundreds of members in one process on two cores that garbage dominates
// CPU and starves the failure detector (false suspicions). It changes bytes
// on the wire, not protocol timing; in production each member has its own
// process and CPU.
var benchCompress = os.Getenv("RINGMESH_GOSSIP_BENCH_COMPRESS") == "1"

// benchProfile is the timing profile measured: RINGMESH_GOSSIP_BENCH_PROFILE,
// default cluster.
var benchProfile = func() Profile {
	if p := os.Getenv("RINGMESH_GOSSIP_BENCH_PROFILE"); p != "" {
		return Profile(p)
	}
	return ProfileCluster
}()

func benchConfig(name string, seeds ...string) Config {
	return Config{
		Tune:         func(mc *memberlist.Config) { mc.EnableCompression = benchCompress },
		NodeName:     name,
		BindAddr:     "127.0.0.1",
		Profile:      benchProfile,
		ClusterLabel: "ringmesh-bench",
		Keys:         [][]byte{testKey},
		Seeds:        seeds,
		EventBuffer:  4096,
		Meta:         Meta{Role: "agent", Provider: "local", AgentVersion: "bench"},
	}
}

func benchCluster(b *testing.B, n int) {
	w := &benchWatch{}
	w.reset("")
	var (
		members []*Member
		wg      sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer func() {
		cancel()
		for _, m := range members {
			_ = m.Close()
		}
		wg.Wait()
	}()
	startMember := func(idx int, cfg Config) *Member {
		m, err := New(cfg, zerolog.Nop(), nil)
		if err != nil {
			b.Fatalf("New(%s): %v", cfg.NodeName, err)
		}
		wg.Add(2)
		go func() {
			defer wg.Done()
			for ev := range m.Events() {
				if idx >= 0 {
					w.see(idx, ev)
				}
			}
		}()
		go func() {
			defer wg.Done()
			_ = m.Run(ctx)
		}()
		return m
	}

	built := time.Now()
	members = append(members, startMember(0, benchConfig("m0")))
	seed := members[0].Addr()
	const batch = 25
	for len(members) < n {
		for k := 0; k < batch && len(members) < n; k++ {
			i := len(members)
			members = append(members, startMember(i, benchConfig(fmt.Sprintf("m%d", i), seed)))
		}
		// Let every member catch up before the next batch: a join storm
		// fills every broadcast queue at once and, on two cores, starves
		// the failure detector.
		// A member falsely declared dead under load refutes it at the
		// latest at its next rejoin round (30 s), hence the generous wait.
		want := len(members)
		waitFor(b, 3*time.Minute, func() bool {
			for _, m := range members {
				if m.NumMembers() != want {
					return false
				}
			}
			return true
		},
			func() string {
				var missing []string
				for _, m := range members {
					if mi, ok := members[0].Member(m.cfg.NodeName); !ok || mi.State != StateAlive {
						missing = append(missing, fmt.Sprintf("%s(%s, sees %d)", m.cfg.NodeName, mi.State, m.NumMembers()))
					}
				}
				behind := 0
				for _, m := range members {
					if m.NumMembers() != want {
						behind++
					}
				}
				return fmt.Sprintf("%d members do not see all %d; seed sees %d; not alive at the seed: %v", behind, want, members[0].NumMembers(), missing)
			})
		if want%100 == 0 {
			b.Logf("n=%d: %d members started, seed sees all, %s", n, want, time.Since(built).Round(time.Millisecond))
		}
	}
	behind := func() (k int) {
		for _, m := range members {
			if m.NumMembers() != n {
				k++
			}
		}
		return k
	}
	waitFor(b, 2*time.Minute+time.Duration(n)*200*time.Millisecond, func() bool { return behind() == 0 },
		func() string {
			hist := map[int]int{}
			health := 0
			for _, m := range members {
				hist[m.NumMembers()]++
				health += m.ml.GetHealthScore()
			}
			states := map[State]int{}
			for _, mi := range members[0].Members() {
				states[mi.State]++
			}
			return fmt.Sprintf("%d members do not see all %d; NumMembers histogram %v; seed view %v; sum of health scores %d",
				behind(), n, hist, states, health)
		})
	b.Logf("n=%d: cluster built and converged in %s (compression %t)", n, time.Since(built).Round(time.Millisecond), benchCompress)

	mc, err := benchProfile.memberlistConfig()
	if err != nil {
		b.Fatal(err)
	}
	N := float64(n + 1)
	rounds := math.Ceil(math.Log(N) / math.Log(float64(mc.GossipNodes)))
	convFormula := time.Duration(rounds) * mc.GossipInterval
	susp := time.Duration(float64(mc.SuspicionMult) * math.Max(1, math.Log10(N)) * float64(mc.ProbeInterval))
	detMin := mc.ProbeInterval + susp
	detMax := mc.ProbeInterval + time.Duration(mc.SuspicionMaxTimeoutMult)*susp

	b.ResetTimer()
	for it := 0; it < b.N; it++ {
		name := fmt.Sprintf("probe-%d", it)
		w.reset(name)
		x, err := New(benchConfig(name), zerolog.Nop(), nil)
		if err != nil {
			b.Fatal(err)
		}
		members = append(members, x) // closed at the end if we fail early
		wg.Add(1)
		go func() { // drain
			defer wg.Done()
			for range x.Events() {
			}
		}()
		t0 := time.Now()
		if _, err := x.Join(ctx, seed); err != nil {
			b.Fatalf("join: %v", err)
		}
		convMax, convP50 := w.wait(b, "convergence", func() map[int]time.Time { return w.joined }, n, t0, time.Minute)

		w.mu.Lock()
		w.falseSuspect = 0 // count from the crash on: the join is not measured
		w.mu.Unlock()
		t1 := time.Now()
		_ = x.Close()
		detTimeout := detMax + 60*time.Second
		detMaxD, detP50 := w.wait(b, "failure detection", func() map[int]time.Time { return w.gone }, n, t1, detTimeout)
		w.mu.Lock()
		suspMax, suspP50, suspN := spread(w.suspect, t1)
		suspFirst := time.Duration(0)
		for _, t := range w.suspect {
			if d := t.Sub(t1); suspFirst == 0 || d < suspFirst {
				suspFirst = d
			}
		}
		falseSusp := w.falseSuspect
		w.mu.Unlock()
		b.ReportMetric(suspFirst.Seconds(), "suspect-first-s")
		b.ReportMetric(suspP50.Seconds(), "suspect-p50-s")
		b.ReportMetric(suspMax.Seconds(), "suspect-max-s")
		b.ReportMetric(float64(suspN), "suspect-members")
		b.ReportMetric(float64(falseSusp), "false-suspects")
		b.Logf("n=%d (%s): suspect first %s p50 %s max %s (%d of %d members saw the suspicion before the failure); false suspicions of other members %d",
			n, benchProfile, suspFirst.Round(time.Millisecond), suspP50.Round(time.Millisecond), suspMax.Round(time.Millisecond), suspN, n, falseSusp)

		b.ReportMetric(convMax.Seconds(), "converge-max-s")
		b.ReportMetric(convP50.Seconds(), "converge-p50-s")
		b.ReportMetric(convFormula.Seconds(), "converge-formula-s")
		b.ReportMetric(detMaxD.Seconds(), "detect-max-s")
		b.ReportMetric(detP50.Seconds(), "detect-p50-s")
		b.ReportMetric(detMin.Seconds(), "detect-formula-min-s")
		b.ReportMetric(detMax.Seconds(), "detect-formula-max-s")
		b.Logf("n=%d: convergence max %s p50 %s (formula %s = %v rounds x %s); detection max %s p50 %s (formula %s..%s)",
			n, convMax.Round(time.Millisecond), convP50.Round(time.Millisecond), convFormula, rounds, mc.GossipInterval,
			detMaxD.Round(time.Millisecond), detP50.Round(time.Millisecond), detMin.Round(time.Millisecond), detMax.Round(time.Millisecond))
	}
	b.StopTimer()
}

// waitFor polls cond every 100 ms until true or timeout (then fails with
// what's description).
func waitFor(b *testing.B, timeout time.Duration, cond func() bool, what func() string) {
	b.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatalf("not done within %s: %s", timeout, what())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
