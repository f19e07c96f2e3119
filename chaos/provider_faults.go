package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/auth"
	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/bus/busserver"
	"github.com/ringmesh/ringmesh/pkg/config"
	"github.com/ringmesh/ringmesh/pkg/coordinator"
	"github.com/ringmesh/ringmesh/pkg/cost"
	"github.com/ringmesh/ringmesh/pkg/fleet"
	"github.com/ringmesh/ringmesh/pkg/providers"
	"github.com/ringmesh/ringmesh/pkg/providers/demo"
)

func providerFaults() Scenario {
	return Scenario{
		Name: "provider-faults",
		Doc:  "the cloud APIs answer 429, 5xx, time out or send garbage: the coordinator keeps answering status within 2 s, the provider turns \"error\" with its instances stale (unknown, not guessed), recovers to \"ok\" after, and reconciliation makes no mutating call",
		Run:  runProviderFaults,
	}
}

// Fault kinds the scenario injects (the fakes' names).
var faultKinds = []string{"rate_limit", "server_error", "timeout", "malformed"}

// faultTarget is one cloud fake seen through the fault/call harness that
// all HTTP cloud fakes share (demo.FaultTarget): one interface, no adapter
// per cloud.
type faultTarget struct {
	name string
	demo.FaultTarget
	status int // the 5xx a server_error fault answers
}

// serverErrorStatus varies the 5xx per cloud (each fake renders it in its
// own format).
var serverErrorStatus = map[string]int{"vast": 503, "runpod": 502, "lambda": 500, "vultr": 500, "hetzner": 500}

func faultTargets(f *demo.Fakes) []faultTarget {
	var out []faultTarget
	for _, nf := range f.HTTPFakes() {
		out = append(out, faultTarget{name: nf.Name, FaultTarget: nf.FaultTarget, status: serverErrorStatus[nf.Name]})
	}
	return out
}

// inject makes every request to the fake fail with kind until clear; a
// timeout holds each request for at most hold.
func (t faultTarget) inject(kind string, hold time.Duration) {
	t.Inject(demo.Fault{Kind: demo.FaultKind(kind), Count: -1, Status: t.status, Delay: hold})
}

func (t faultTarget) clear() { t.ClearFaults() }

func (t faultTarget) mutating() int { return len(t.MutatingCalls()) }

func runProviderFaults(ctx context.Context, env Env) (res Result, err error) {
	rng := env.Rand("provider-faults")
	var ck checks

	fakes, err := demo.StartFakes(ctx, demo.Options{Delay: -1})
	if err != nil {
		return res, err
	}
	defer fakes.Close()
	inv, err := config.Parse("demo.yaml", []byte(demo.DemoInventory))
	if err != nil {
		return res, err
	}
	list, err := fakes.Providers(env.Log)
	if err != nil {
		return res, err
	}
	metrics := prometheus.NewRegistry()
	// Short backoff and breaker cooldown so that a phase takes seconds;
	// the per-attempt timeout (1 s) is what a timed-out API runs into.
	pol := providers.DefaultPolicy()
	pol.BaseDelay, pol.MaxDelay = 20*time.Millisecond, 200*time.Millisecond
	pol.CallTimeout = time.Second
	pol.BreakerCooldown, pol.BreakerMaxCooldown = time.Second, 2*time.Second
	reg := providers.NewRegistry()
	for _, p := range list {
		reg.Register(fleet.Wrap(p, inv, env.Log, fleet.BuildOptions{Policy: &pol, Registerer: metrics}))
	}
	for name, why := range fakes.NotConfigured() {
		reg.RegisterUnconfigured(name, why)
	}
	tracker := cost.New(cost.Options{})
	storeDir, err := mkdir(env.Dir, "nats")
	if err != nil {
		return res, err
	}
	sec, err := newSecure(env)
	if err != nil {
		return res, err
	}
	ccfg, err := sec.coordinator(coordinator.Config{
		Name: "hetzner-cpu1", Embedded: busserver.ServerConfig{Port: -1, StoreDir: storeDir},
		Inventory: inv, Fleet: fleet.NewReconciler(reg, inv, tracker, env.Log, nil), ReconcileInterval: 300 * time.Millisecond,
		Cost: tracker, Registry: metrics,
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
	mcfg, err := sec.conn(bus.ConnConfig{URLs: []string{co.c.ClientURL()}, Name: "chaos-meshctl"}, auth.RoleAdmin, "chaos-admin")
	if err != nil {
		return res, err
	}
	nc, err := bus.Connect(mcfg, env.Log)
	if err != nil {
		return res, err
	}
	defer nc.Close()
	signer, err := sec.signer()
	if err != nil {
		return res, err
	}
	cli := api.Client{NC: nc, Sign: signer.Sign}
	report := func() (fleet.Report, error) {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		var rep fleet.Report
		err := cli.Call(rctx, api.OpInstances, api.InstancesRequest{}, &rep)
		return rep, err
	}
	targets := faultTargets(fakes)
	allOK := func() (fleet.Report, error) {
		rep, err := report()
		if err != nil {
			return rep, err
		}
		for _, t := range targets {
			ps, ok := providerStatus(rep, t.name)
			if !ok || ps.State != "ok" {
				return rep, fmt.Errorf("provider %s: %+v", t.name, ps)
			}
			for _, iv := range rep.Instances {
				if iv.Provider == t.name && iv.Stale {
					return rep, fmt.Errorf("provider %s ok but instance %s stale", t.name, iv.ID)
				}
			}
		}
		return rep, nil
	}
	var baseline fleet.Report
	if err := poll(ctx, time.Minute, 100*time.Millisecond, func() error { var err error; baseline, err = allOK(); return err }); err != nil {
		return res, fmt.Errorf("first reconcile: %w", err)
	}
	counts := map[string]int{}
	for _, iv := range baseline.Instances {
		counts[iv.Provider]++
	}

	// status must answer within 2 s throughout.
	probe := probeStatus(cli, 250*time.Millisecond, 2*time.Second, env.Logf)
	defer probe.stop()

	type phase struct {
		kind    string
		targets []faultTarget
		hold    time.Duration
	}
	var phases []phase
	if !env.Long() {
		for _, k := range faultKinds { // every kind once, on a drawn provider
			phases = append(phases, phase{kind: k, targets: []faultTarget{targets[rng.IntN(len(targets))]}, hold: between(rng, 2*time.Second, 4*time.Second)})
		}
	}
	end := time.Now().Add(env.Duration)
	var toError, toOK []time.Duration
	for i := 0; ; i++ {
		var ph phase
		switch {
		case !env.Long() && i < len(phases):
			ph = phases[i]
		case env.Long() && (i == 0 || time.Now().Before(end)):
			ph = phase{kind: faultKinds[rng.IntN(len(faultKinds))], hold: between(rng, 2*time.Second, 15*time.Second)}
			perm := rng.Perm(len(targets))
			for _, j := range perm[:1+rng.IntN(2)] { // one or two providers at once
				ph.targets = append(ph.targets, targets[j])
			}
		}
		if ph.kind == "" {
			break
		}
		var names []string
		for _, t := range ph.targets {
			names = append(names, t.name)
		}
		sort.Strings(names)
		// Nodes linked to the failing providers keep their state: the
		// instance is unknown while its API fails, never guessed.
		before := nodeStates(co, names)
		start := time.Now()
		for _, t := range ph.targets {
			t.inject(ph.kind, 5*time.Second)
		}
		if err := poll(ctx, 30*time.Second, 100*time.Millisecond, func() error {
			rep, err := report()
			if err != nil {
				return err
			}
			return faulted(rep, names, counts)
		}); err != nil {
			ck.failf("%s on %v: %w", ph.kind, names, err)
		}
		toError = append(toError, time.Since(start))
		if err := sleep(ctx, ph.hold); err != nil {
			return res, err
		}
		if after := nodeStates(co, names); after != before {
			ck.failf("%s on %v: node states changed while the API failed:\n  before %s\n  after  %s", ph.kind, names, before, after)
		}
		for _, t := range ph.targets {
			t.clear()
		}
		cleared := time.Now()
		if err := poll(ctx, 30*time.Second, 100*time.Millisecond, func() error { _, err := allOK(); return err }); err != nil {
			ck.failf("%s on %v: no recovery after the faults were cleared: %w", ph.kind, names, err)
		}
		toOK = append(toOK, time.Since(cleared))
		env.Logf("provider-faults: %-12s on %-14s error after %s, held %s, ok %s after clearing", ph.kind, strings.Join(names, ","),
			toError[len(toError)-1].Round(time.Millisecond), ph.hold.Round(time.Millisecond), toOK[len(toOK)-1].Round(time.Millisecond))
	}
	probe.stop()
	okN, failedN, _ := probe.figures()
	lat, lastErr := probe.latency()
	res.Add("phases", len(toError))
	res.Add("to_error", maxDur(toError))
	res.Add("to_ok", maxDur(toOK))
	res.Add("status_ok", okN)
	res.Add("status_failed", failedN)
	res.Add("max_status_latency", lat)
	if failedN > 0 {
		ck.failf("%d status requests got no answer within 2s (last: %v)", failedN, lastErr)
	}

	// Reconciliation never mutates, neither at the fakes nor in the metrics.
	mut := 0
	for _, t := range targets {
		if n := t.mutating(); n > 0 {
			mut += n
			ck.failf("%d mutating calls reached the %s fake", n, t.name)
		}
	}
	res.Add("mutating_calls", mut)
	calls, retries := providerMetrics(metrics)
	failedLists := 0
	for k, v := range calls {
		op, outcome, _ := strings.Cut(k, "/")
		if op != providers.OpList && op != providers.OpGet {
			ck.failf("%v %s calls (%s) during reconciliation", v, op, outcome)
		}
		if op == providers.OpList && outcome != "ok" {
			failedLists += int(v)
		}
	}
	res.Add("failed_lists", failedLists)
	res.Add("retries", int(retries))
	if failedLists == 0 {
		ck.failf("the resilience metrics recorded no failed list call: were the faults injected?")
	}
	return res, ck.err()
}

func providerStatus(rep fleet.Report, name string) (fleet.ProviderStatus, bool) {
	for _, p := range rep.Providers {
		if p.Name == name {
			return p, true
		}
	}
	return fleet.ProviderStatus{}, false
}

// faulted checks that each failing provider is in "error" with all its
// last known instances kept and marked stale, and that the others are ok.
func faulted(rep fleet.Report, failing []string, counts map[string]int) error {
	bad := map[string]bool{}
	for _, n := range failing {
		bad[n] = true
		ps, ok := providerStatus(rep, n)
		if !ok || ps.State != "error" {
			return fmt.Errorf("provider %s is %q, want error", n, ps.State)
		}
		stale, fresh := 0, 0
		for _, iv := range rep.Instances {
			if iv.Provider == n {
				if iv.Stale {
					stale++
				} else {
					fresh++
				}
			}
		}
		if fresh > 0 || stale != counts[n] {
			return fmt.Errorf("provider %s: %d stale and %d fresh instances, want all %d stale", n, stale, fresh, counts[n])
		}
	}
	for _, ps := range rep.Providers {
		if !bad[ps.Name] && ps.State != "ok" && ps.State != "not_configured" {
			return fmt.Errorf("provider %s is %q although only %v fail", ps.Name, ps.State, failing)
		}
	}
	return nil
}

// nodeStates renders the state of every configured node of the providers.
func nodeStates(co *coord, provs []string) string {
	want := map[string]bool{}
	for _, p := range provs {
		want[p] = true
	}
	var parts []string
	for _, rec := range co.c.Registry().Snapshot() {
		if want[rec.Provider] {
			inst := "-"
			if rec.Instance != nil {
				inst = rec.Instance.State
			}
			parts = append(parts, fmt.Sprintf("%s=%s/%s", rec.Node, rec.State, inst))
		}
	}
	sort.Strings(parts)
	if len(parts) == 0 {
		return "(none)"
	}
	return strings.Join(parts, " ")
}

// providerMetrics sums ringmesh_provider_calls_total by "op/outcome" and
// ringmesh_provider_retries_total.
func providerMetrics(reg *prometheus.Registry) (map[string]float64, float64) {
	calls := map[string]float64{}
	var retries float64
	mfs, err := reg.Gather()
	if err != nil {
		return calls, 0
	}
	for _, mf := range mfs {
		switch mf.GetName() {
		case "ringmesh_provider_calls_total":
			for _, m := range mf.GetMetric() {
				var op, outcome string
				for _, l := range m.GetLabel() {
					switch l.GetName() {
					case "op":
						op = l.GetValue()
					case "outcome":
						outcome = l.GetValue()
					}
				}
				calls[op+"/"+outcome] += m.GetCounter().GetValue()
			}
		case "ringmesh_provider_retries_total":
			for _, m := range mf.GetMetric() {
				retries += m.GetCounter().GetValue()
			}
		}
	}
	return calls, retries
}
