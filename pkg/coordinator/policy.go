package coordinator

import (
	"context"
	"fmt"
	"time"

	"github.com/ringmesh/ringmesh/internal/policy"
	"github.com/ringmesh/ringmesh/pkg/config"
	"github.com/ringmesh/ringmesh/pkg/cost"
	"github.com/ringmesh/ringmesh/pkg/events"
	"github.com/ringmesh/ringmesh/pkg/fleet"
	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/providers"
)

// idleRetry is how long after a refused idle action (unsynced data, RPO
// unknown, a provider error) the policy tries that node again.
const idleRetry = 10 * time.Minute

// idleDecision is what the policy last did for one idle stretch of a node.
type idleDecision struct {
	since, at time.Time
	done      bool // applied, or audited as a dry run: nothing more this stretch
}

// policyLoop runs the enabled policies every PolicyInterval until ctx
// ends. Every coordinator tracks idleness (so a new leader knows the
// stretch); only the leader decides.
func (c *Coordinator) policyLoop(ctx context.Context, pols config.Policies) {
	pol := pols.Idle
	if pol.Mode != config.PolicyOff {
		c.log.Info().Str("mode", pol.Mode).Str("action", pol.Action).Float64("max_gpu_util_percent", pol.MaxGPUUtilPercent).
			Dur("window", pol.Window).Msg("idle policy on")
	}
	if pols.Budget.Mode != config.PolicyOff {
		c.log.Info().Str("mode", pols.Budget.Mode).Msg("budget policy on")
	}
	tr := policy.NewIdleTracker(pol)
	decided := map[string]idleDecision{}
	budgetDone := map[string]time.Time{}
	fleetDry := map[string]time.Time{}
	if pols.FleetSize.On() {
		c.log.Info().Str("mode", pols.FleetSize.Mode).Int("kinds", len(pols.FleetSize.Kinds)).Msg("fleet-size policy on")
	}
	t := time.NewTicker(c.cfg.PolicyInterval)
	defer t.Stop()
	for {
		if pol.Mode != config.PolicyOff {
			c.runIdlePolicy(ctx, pol, tr, decided)
		}
		if pols.Budget.Mode != config.PolicyOff {
			c.runBudgetPolicy(ctx, pols.Budget, budgetDone)
		}
		if pols.FleetSize.On() {
			c.runFleetSizePolicy(ctx, pols.FleetSize, fleetDry)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// runIdlePolicy observes every eligible node and, on the leader, acts on
// the ones idle for the window. The request ID is the node and the start
// of its idle stretch, so a leader fail-over in the middle of a decision
// cannot make a second provider call (claimRequest).
func (c *Coordinator) runIdlePolicy(ctx context.Context, pol config.IdlePolicy, tr *policy.IdleTracker, decided map[string]idleDecision) {
	now := c.cfg.Now()
	maxGap := c.reg.Thresholds().SuspectAfter
	keep := map[string]bool{}
	for _, r := range c.reg.Snapshot() {
		if (r.State != mesh.StateHealthy && r.State != mesh.StateDegraded) || r.Quarantined || r.Health == nil ||
			(c.cfg.Inventory != nil && c.cfg.Inventory.IsVoter(r.Node)) {
			continue
		}
		keep[r.Node] = true
		tr.Observe(r.Node, r.Health, maxGap, now)
	}
	tr.Keep(keep)
	for n := range decided {
		if !keep[n] {
			delete(decided, n)
		}
	}
	if !c.IsLeader() {
		return
	}
	for _, cand := range tr.Due(now) {
		d := decided[cand.Node]
		if d.since.Equal(cand.Since) && (d.done || now.Sub(d.at) < idleRetry) {
			continue
		}
		req := fleet.ActionRequest{
			Node: cand.Node, Op: pol.Action, DryRun: pol.Mode == config.PolicyDryRun,
			Actor:     "policy:idle coordinator:" + c.cfg.Name,
			RequestID: fmt.Sprintf("policy-idle-%s-%d", cand.Node, cand.Since.Unix()),
			Reason: fmt.Sprintf("idle since %s (%s, window %s, threshold %g%%)",
				cand.Since.UTC().Format(time.RFC3339), cand.Inputs, pol.Window, pol.MaxGPUUtilPercent),
		}
		res, err := c.act(ctx, req)
		a := events.Audit{Kind: "policy", Node: cand.Node, Cause: req.Reason, Actor: req.Actor, DryRun: req.DryRun,
			Detail: map[string]string{"policy": "idle", "mode": pol.Mode, "op": pol.Action, "idle_since": cand.Since.UTC().Format(time.RFC3339),
				"inputs": cand.Inputs, "request_id": req.RequestID}}
		d = idleDecision{since: cand.Since, at: now}
		switch {
		case err != nil:
			a.Detail["result"] = "refused: " + err.Error()
			c.log.Warn().Err(err).Str("node", cand.Node).Msg("idle policy: not acted on")
		case req.DryRun:
			a.Detail["result"] = "dry-run: " + res.Message
			d.done = true
		default:
			a.Detail["result"] = res.Message
			d.done = true
			if res.Applied {
				tr.Forget(cand.Node)
			}
			c.log.Info().Str("node", cand.Node).Str("op", pol.Action).Msg("idle policy: acted")
		}
		decided[cand.Node] = d
		c.audit(ctx, "policy", "policy:idle:"+req.RequestID+":"+now.UTC().Format("20060102T150405"), a)
	}
}

// runBudgetPolicy stops, on the leader, the nodes PlanBudgetStops picks
// for today's caps. Only running instances linked to a node, at a known
// price, that stop billing when stopped, and that are not voters count as
// candidates. The request ID is the node and the UTC day, so one node is
// stopped at most once a day for the budget, also across a fail-over;
// done remembers per node when it was last decided (dry-run audits once a
// day, a refusal is retried after idleRetry).
func (c *Coordinator) runBudgetPolicy(ctx context.Context, pol config.BudgetPolicy, done map[string]time.Time) {
	if !c.IsLeader() || c.cfg.Cost == nil {
		return
	}
	caps, nodes, hoursLeft, ok := c.budgetState()
	if !ok {
		return
	}
	now := c.cfg.Now().UTC()
	day := now.Format(cost.DayFormat)
	for _, s := range policy.PlanBudgetStops(caps, nodes, hoursLeft) {
		if at, ok := done[s.Node]; ok && at.Format(cost.DayFormat) == day && (pol.Mode == config.PolicyDryRun || now.Sub(at) < idleRetry) {
			continue
		}
		req := fleet.ActionRequest{Node: s.Node, Op: fleet.OpStop, DryRun: pol.Mode == config.PolicyDryRun,
			Actor: "policy:budget coordinator:" + c.cfg.Name, RequestID: "policy-budget-" + s.Node + "-" + day, Reason: "budget: " + s.Why}
		res, err := c.act(ctx, req)
		a := events.Audit{Kind: "policy", Node: s.Node, Cause: req.Reason, Actor: req.Actor, DryRun: req.DryRun,
			Detail: map[string]string{"policy": "budget", "mode": pol.Mode, "op": fleet.OpStop, "day": day, "request_id": req.RequestID}}
		switch {
		case err != nil:
			a.Detail["result"] = "refused: " + err.Error()
			c.log.Warn().Err(err).Str("node", s.Node).Msg("budget policy: not acted on")
		case req.DryRun:
			a.Detail["result"] = "dry-run: " + res.Message
		default:
			a.Detail["result"] = res.Message
			c.log.Info().Str("node", s.Node).Str("why", s.Why).Msg("budget policy: stopped")
		}
		done[s.Node] = now
		c.audit(ctx, "policy", "policy:budget:"+req.RequestID+":"+now.Format("20060102T150405"), a)
	}
}

// budgetState returns today's caps with their spend and current burn, the
// nodes the budget policy may stop, and the hours left in the UTC day; ok
// is false when there is no budget or no cost tracker.
func (c *Coordinator) budgetState() (caps []policy.BudgetCap, nodes []policy.BudgetNode, hoursLeft float64, ok bool) {
	if c.cfg.Cost == nil {
		return nil, nil, 0, false
	}
	b := c.costBudget()
	if b == nil {
		return nil, nil, 0, false
	}
	now := c.cfg.Now().UTC()
	hoursLeft = now.Truncate(24 * time.Hour).Add(24 * time.Hour).Sub(now).Hours()
	burnBy := map[string]map[string]float64{} // scope → currency → per hour
	add := func(scope, cur string, v float64) {
		if burnBy[scope] == nil {
			burnBy[scope] = map[string]float64{}
		}
		burnBy[scope][cur] += v
	}
	var provs *providers.Registry
	if c.cfg.Fleet != nil {
		provs = c.cfg.Fleet.Providers()
	}
	for _, ic := range c.cfg.Cost.Current() {
		if !ic.Billable || !ic.Price.Known() {
			continue
		}
		add("all", ic.Price.Currency, ic.Price.PerHour)
		add(ic.Provider, ic.Price.Currency, ic.Price.PerHour)
		if provs == nil || ic.NodeID == "" || ic.State != providers.StateRunning || (c.cfg.Inventory != nil && c.cfg.Inventory.IsVoter(ic.NodeID)) {
			continue
		}
		p, err := provs.Get(ic.Provider)
		if err != nil || !p.Capabilities().CanStop || p.Capabilities().BillsWhileStopped {
			continue
		}
		role := ""
		if c.cfg.Inventory != nil && c.cfg.Inventory.Hosts[ic.NodeID] != nil {
			role = c.cfg.Inventory.Hosts[ic.NodeID].Role
		}
		nodes = append(nodes, policy.BudgetNode{Node: ic.NodeID, Provider: ic.Provider, Role: role, PerHour: ic.Price.PerHour, Currency: ic.Price.Currency})
	}
	for _, l := range b.Lines {
		caps = append(caps, policy.BudgetCap{Scope: l.Scope, Currency: l.Currency, Cap: l.Cap, Spent: l.Spent, Burn: burnBy[l.Scope][l.Currency]})
	}
	return caps, nodes, hoursLeft, true
}
