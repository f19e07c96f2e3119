package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/config"
	"github.com/ringmesh/ringmesh/pkg/events"
	"github.com/ringmesh/ringmesh/pkg/fleet"
	"github.com/ringmesh/ringmesh/pkg/providers"
	"github.com/ringmesh/ringmesh/pkg/providers/demo"
)

func leaderKill() Scenario {
	return Scenario{
		Name:  "leader-kill",
		Doc:   "3 coordinator processes (embedded NATS cluster, R3); stop/start decisions every 300 ms with request IDs; the leader is SIGKILLed: a new leader answers within the bound, no provider call is made twice, one audit result per applied call",
		Heavy: "it builds cmd/coordinator and runs three coordinator processes",
		Run:   runLeaderKill,
	}
}

const (
	killTarget     = "vast-29129529"
	failoverBound  = 30 * time.Second // lease TTL (10 s) + JetStream elections, generously
	decisionPeriod = 300 * time.Millisecond
)

// decision is one act request and what became of it.
type decision struct {
	ID       string
	Op       string
	Sent     time.Time // first attempt
	Answered time.Time
	Attempts int
	Applied  bool
	Replayed bool   // answered from the stored result of an earlier attempt
	Unknown  bool   // the coordinators refuse to say (claimed by a leader that died)
	Err      string // any other error answer
	Term     uint64
}

func runLeaderKill(ctx context.Context, env Env) (res Result, err error) {
	rng := env.Rand("leader-kill")
	var ck checks

	bin, invPath, fakes, err := processRig(ctx, env, &res, writeFakeInventory)
	if err != nil {
		return res, err
	}
	defer fakes.Close()

	t0 := time.Now()
	vs, startRestarts, err := startVoters(ctx, env, bin, invPath, fakes, voterOptions{})
	if err != nil {
		return res, err
	}
	procs, byName := vs.procs, vs.byName
	defer func() {
		vs.stop()
		if err != nil {
			vs.logTails(env, "leader-kill")
		}
	}()
	res.Add("start", time.Since(t0))
	res.Add("start_restarts", startRestarts)

	nc, cli, err := vs.admin(env, "chaos-admin")
	if err != nil {
		return res, err
	}
	defer nc.Close()
	// leader is the coordinator every running coordinator names as leader
	// (each asked on its own /api/status).
	leader := func() (string, error) { return vs.leader(ctx) }

	// The decision stream.
	ds := &decisions{cli: cli, seed: env.Seed}
	dctx, stopDecisions := context.WithCancel(ctx)
	ddone := make(chan struct{})
	go func() { defer close(ddone); ds.run(dctx) }()
	defer func() { stopDecisions(); <-ddone }()

	// Kill the leader; fail-over time is until a new leader answers an act
	// request sent after the kill (only the leader answers act).
	kills := 0
	var failovers []time.Duration
	var agree time.Duration // after the new leader answered, until every survivor names it
	end := time.Now().Add(env.Duration)
	for {
		if err := sleep(ctx, between(rng, 2*time.Second, 5*time.Second)); err != nil {
			return res, err
		}
		if err := poll(ctx, 30*time.Second, 100*time.Millisecond, func() error { return ds.appliedSince(time.Now().Add(-2 * time.Second)) }); err != nil {
			return res, fmt.Errorf("decisions stalled before the kill: %w", err)
		}
		var victim string
		if err := poll(ctx, 30*time.Second, 250*time.Millisecond, func() error { var err error; victim, err = leader(); return err }); err != nil {
			return res, err
		}
		oldTerm := ds.lastTerm()
		killed := time.Now()
		byName[victim].kill()
		kills++
		var took time.Duration
		if err := poll(ctx, failoverBound, 50*time.Millisecond, func() error {
			var ok bool
			if took, ok = ds.firstAnswer(killed); !ok {
				return fmt.Errorf("no act request answered since the kill of %s", victim)
			}
			return nil
		}); err != nil {
			ck.failf("fail-over after killing %s: %w", victim, err)
			break
		}
		if err := poll(ctx, failoverBound, 50*time.Millisecond, func() error {
			if _, ok := ds.firstNewTerm(killed, oldTerm); !ok {
				return fmt.Errorf("no decision applied under a new term since the kill of %s", victim)
			}
			return nil
		}); err != nil {
			ck.add(err)
			break
		}
		failovers = append(failovers, took)
		var now string
		agreeFrom := time.Now()
		if err := poll(ctx, 20*time.Second, 100*time.Millisecond, func() error {
			var err error
			if now, err = leader(); err == nil && now == victim {
				err = fmt.Errorf("the coordinators still name %s", victim)
			}
			return err
		}); err != nil {
			ck.failf("the surviving coordinators do not agree on a new leader after the kill of %s: %w", victim, err)
		}
		agree = max(agree, time.Since(agreeFrom))
		env.Logf("leader-kill: killed leader %s (term %d); %s leads, answered %s after the kill", victim, oldTerm, now, took.Round(time.Millisecond))
		if !env.Long() || time.Now().After(end) {
			break
		}
		// Long version: the killed voter comes back and the cycle repeats.
		if err := byName[victim].start(); err != nil {
			return res, err
		}
		if _, err := superviseReady(ctx, procs, 2*time.Minute, env.Logf); err != nil {
			return res, fmt.Errorf("%s did not come back: %w", victim, err)
		}
	}
	// A few more decisions under the new leader, then stop.
	if err := poll(ctx, 30*time.Second, 100*time.Millisecond, func() error { return ds.appliedSince(time.Now().Add(-time.Second)) }); err != nil {
		ck.failf("decisions after the fail-over: %w", err)
	}
	if err := sleep(ctx, 2*time.Second); err != nil {
		return res, err
	}
	stopDecisions()
	<-ddone

	list := ds.snapshot()
	applied, replayed, unknown, failed := 0, 0, 0, 0
	for _, d := range list {
		switch {
		case d.Unknown:
			unknown++
		case d.Err != "":
			failed++
			if failed <= 3 {
				ck.failf("request %s (%s) answered with an error: %s", d.ID, d.Op, d.Err)
			}
		case d.Applied:
			applied++
			if d.Replayed {
				replayed++
			}
		}
	}
	res.Add("kills", kills)
	res.Add("failover", maxDur(failovers))
	res.Add("views_agree", agree)
	res.Add("requests", len(list))
	res.Add("applied", applied)
	res.Add("replayed", replayed)
	res.Add("unknown", unknown)
	res.Add("failed", failed)

	// The provider saw each request at most once, and each applied one once.
	vastCalls := fakes.Vast.MutatingCalls()
	res.Add("provider_calls", len(vastCalls))
	perReq := map[string]int{}
	unattributed := 0
	target := fmt.Sprintf("/api/v0/instances/%d/", demo.VastSeedNode)
	for _, c := range vastCalls {
		if c.Path != target {
			ck.failf("unexpected mutating Vast call %s %s", c.Method, c.Path)
			continue
		}
		d, ok := windowOf(list, c.At)
		if !ok {
			unattributed++
			continue
		}
		perReq[d.ID]++
	}
	if unattributed > 0 {
		ck.failf("%d mutating Vast calls outside any request (reconciliation must not mutate)", unattributed)
	}
	for _, d := range list {
		n := perReq[d.ID]
		switch {
		case n > 1:
			ck.failf("request %s (%s) reached the provider %d times", d.ID, d.Op, n)
		case d.Applied && n != 1:
			ck.failf("request %s (%s) reported applied but reached the provider %d times", d.ID, d.Op, n)
		}
	}
	for name, calls := range map[string]int{"runpod": len(fakes.RunPod.MutatingCalls()), "lambda": len(fakes.Lambda.MutatingCalls()),
		"vultr": mutatingVultr(fakes), "hetzner": mutatingHetzner(fakes)} {
		if calls > 0 {
			ck.failf("%d mutating %s calls; nothing asked for any", calls, name)
		}
	}

	// One provider_call result in MESH_AUDIT per applied request (read
	// as a coordinator: operators have no stream access).
	anc, js, err := vs.checker(env)
	if err != nil {
		return res, err
	}
	defer anc.Close()
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	audits, err := readStream(rctx, js, bus.StreamAudit, bus.Prefix+".audit.provider_call")
	cancel()
	if err != nil {
		ck.add(fmt.Errorf("read %s: %w", bus.StreamAudit, err))
	}
	results := map[string]int{}
	for _, m := range audits {
		var env bus.Envelope
		var a events.Audit
		if json.Unmarshal(m.Data, &env) != nil || json.Unmarshal(env.Body, &a) != nil {
			ck.failf("unreadable audit record %d", m.Seq)
			continue
		}
		if a.Detail["phase"] == "result" && a.Detail["error"] == "" {
			results[requestOf(a.Cause)]++
		}
	}
	res.Add("audit_results", len(audits))
	for _, d := range list {
		n := results[d.ID]
		if d.Applied && n != 1 {
			ck.failf("request %s (%s) applied with %d provider_call results in %s, want 1", d.ID, d.Op, n, bus.StreamAudit)
		}
		if !d.Applied && !d.Unknown && n > 0 {
			ck.failf("request %s (%s) not applied but has %d provider_call results", d.ID, d.Op, n)
		}
	}

	// The instance ends in the state of the last decision that reached it.
	if inst, ok := fakes.Vast.Instance(demo.VastSeedNode); ok {
		for i := len(list) - 1; i >= 0; i-- {
			if perReq[list[i].ID] == 0 {
				continue
			}
			want := map[string]string{fleet.OpStop: "stopped", fleet.OpStart: "running"}[list[i].Op]
			if inst.IntendedStatus != want {
				ck.failf("vast instance intended status %q after the last applied %s (%s), want %q", inst.IntendedStatus, list[i].Op, list[i].ID, want)
			}
			break
		}
	}
	return res, ck.err()
}

// agreedLeader asks every running coordinator for its status over HTTP and
// returns the leader they all name, if they agree on a running one.
func agreedLeader(ctx context.Context, ps []*proc) (string, error) {
	var views []string
	agreed := ""
	for _, p := range ps {
		if !p.running() {
			continue
		}
		var st api.Status
		if err := getJSON(ctx, "http://"+p.httpAddr+"/api/status", &st); err != nil {
			return "", fmt.Errorf("%s: %w", p.name, err)
		}
		views = append(views, p.name+"→"+st.Leader)
		if agreed == "" {
			agreed = st.Leader
		}
		if st.Leader == "" || st.Leader != agreed {
			agreed = "-"
		}
	}
	for _, p := range ps {
		if p.name == agreed && p.running() {
			return agreed, nil
		}
	}
	return "", fmt.Errorf("no agreed running leader: %s", strings.Join(views, ", "))
}

// decisions issues act requests one after another, each retried with its
// request ID until some coordinator answers.
type decisions struct {
	cli  api.Client
	seed uint64

	mu      sync.Mutex
	list    []decision
	answers []answer
}

func (ds *decisions) run(ctx context.Context) {
	tick := time.NewTicker(decisionPeriod)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		op := fleet.OpStop // the seeded instance runs: stop first, then alternate
		if i%2 == 1 {
			op = fleet.OpStart
		}
		d := decision{ID: fmt.Sprintf("chaos-%d-%05d", ds.seed, i), Op: op, Sent: time.Now()}
		ds.ask(&d)
		ds.mu.Lock()
		ds.list = append(ds.list, d)
		ds.mu.Unlock()
	}
}

// ask retries d (same request ID) until a coordinator answers, for up to
// a minute; it is not cut short by ctx, so that no request is left in doubt.
func (ds *decisions) ask(d *decision) {
	req := fleet.ActionRequest{Node: killTarget, Op: d.Op, Force: true, Reason: "chaos leader-kill " + d.ID, Actor: "chaos", RequestID: d.ID}
	giveUp := d.Sent.Add(time.Minute)
	var unknownSince time.Time
	for {
		d.Attempts++
		sent := time.Now()
		actx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var out fleet.ActionResult
		err := ds.cli.Call(actx, api.OpAct, req, &out)
		cancel()
		now := time.Now()
		if err == nil || !unanswered(err) {
			ds.mu.Lock()
			ds.answers = append(ds.answers, answer{sent: sent, at: now})
			ds.mu.Unlock()
		}
		switch {
		case err == nil:
			d.Answered, d.Applied, d.Term = now, out.Applied, out.Term
			d.Replayed = strings.Contains(out.Message, "already applied")
			return
		case unanswered(err):
			// nobody leads right now: ask again
		case strings.Contains(err.Error(), "outcome is unknown"):
			// Claimed by a leader that died, or by the live one still
			// working on an earlier attempt of ours: ask again for a while.
			if unknownSince.IsZero() {
				unknownSince = now
			}
			if now.Sub(unknownSince) > 10*time.Second {
				d.Answered, d.Unknown, d.Err = now, true, err.Error()
				return
			}
		default:
			d.Answered, d.Err = now, err.Error()
			return
		}
		if now.After(giveUp) {
			d.Answered, d.Err = now, fmt.Sprintf("no answer within %s: %v", now.Sub(d.Sent).Round(time.Second), err)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// answer is one reply of a coordinator to an attempt sent at sent.
type answer struct{ sent, at time.Time }

// firstAnswer returns how long after t the first attempt sent after t was
// answered (by anyone: only a leader answers act).
func (ds *decisions) firstAnswer(t time.Time) (time.Duration, bool) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	for _, a := range ds.answers {
		if a.sent.After(t) {
			return a.at.Sub(t), true
		}
	}
	return 0, false
}

func unanswered(err error) bool {
	for _, e := range []error{api.ErrNoCoordinator, nats.ErrTimeout, nats.ErrNoResponders, nats.ErrConnectionClosed,
		nats.ErrConnectionReconnecting, nats.ErrDisconnected, context.DeadlineExceeded} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func (ds *decisions) snapshot() []decision {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	return append([]decision(nil), ds.list...)
}

func (ds *decisions) lastTerm() uint64 {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	var t uint64
	for _, d := range ds.list {
		t = max(t, d.Term)
	}
	return t
}

// appliedSince checks that a decision was applied (afresh) after t.
func (ds *decisions) appliedSince(t time.Time) error {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	for i := len(ds.list) - 1; i >= 0; i-- {
		d := ds.list[i]
		if d.Answered.Before(t) {
			break
		}
		if d.Applied && !d.Replayed {
			return nil
		}
	}
	return fmt.Errorf("no decision applied since %s (%d so far)", t.Format("15:04:05.000"), len(ds.list))
}

// firstNewTerm is the first decision applied after killed under a term
// above oldTerm: the new leader's first act.
func (ds *decisions) firstNewTerm(killed time.Time, oldTerm uint64) (decision, bool) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	for _, d := range ds.list {
		if d.Answered.After(killed) && d.Applied && !d.Replayed && d.Term > oldTerm {
			return d, true
		}
	}
	return decision{}, false
}

// windowOf finds the request that was being asked when the provider saw a
// call at t (requests go one at a time, so the windows do not overlap).
func windowOf(list []decision, t time.Time) (decision, bool) {
	for _, d := range list {
		if !t.Before(d.Sent) && !t.After(d.Answered) {
			return d, true
		}
	}
	return decision{}, false
}

func requestOf(cause string) string {
	return strings.TrimPrefix(cause, "chaos leader-kill ")
}

func maxDur(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}

func mutatingVultr(f *demo.Fakes) int {
	n := 0
	for _, c := range f.Vultr.Calls() {
		if c.Method != "GET" && c.Method != "HEAD" {
			n++
		}
	}
	return n
}

func mutatingHetzner(f *demo.Fakes) int {
	n := 0
	for _, c := range f.Hetzner.Calls() {
		if c.Method != "GET" && c.Method != "HEAD" {
			n++
		}
	}
	return n
}

// writeFakeInventory writes the demo inventory with a providers: section
// pointing every cloud at its fake (nebius off: its fake is a CLI).
func writeFakeInventory(path string, fakes *demo.Fakes) error {
	inv := demo.DemoInventory
	i, j := strings.Index(inv, "\nproviders:\n"), strings.Index(inv, "\nhosts:\n")
	if i < 0 || j < i {
		return errors.New("demo inventory has no providers section before its hosts section")
	}
	var b strings.Builder
	b.WriteString("\nproviders:\n")
	eps := fakes.Endpoints()
	for _, name := range []string{"vast", "runpod", "lambda", "vultr", "hetzner"} {
		ep, ok := eps[name]
		if !ok {
			return fmt.Errorf("no %s fake", name)
		}
		fmt.Fprintf(&b, "  %s:\n    base_url: %q\n", name, ep.BaseURL)
		if name == "lambda" {
			b.WriteString("    retired: true\n    note: chaos - retired as in the demo\n")
		}
	}
	b.WriteString("  nebius:\n    enabled: false\n")
	text := inv[:i] + b.String() + inv[j:]
	parsed, err := config.Parse(path, []byte(text))
	if err != nil {
		return fmt.Errorf("chaos inventory: %w", err)
	}
	if got := parsed.Providers["vast"].BaseURL; got != eps["vast"].BaseURL {
		return fmt.Errorf("chaos inventory: vast base_url %q, want %q", got, eps["vast"].BaseURL)
	}
	return os.WriteFile(path, []byte(text), 0o600)
}

// coordinatorEnv is this process's environment without RINGMESH_*
// settings (a stray RINGMESH_NATS_URL would point the coordinators
// elsewhere), plus the fakes' API keys.
func coordinatorEnv(fakes *demo.Fakes) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RINGMESH_") {
			out = append(out, kv)
		}
	}
	for name, ep := range fakes.Endpoints() {
		if src, ok := providers.DefaultCredentialSources[name]; ok && ep.APIKey != "" {
			out = append(out, src.Env+"="+ep.APIKey)
		}
	}
	return out
}
