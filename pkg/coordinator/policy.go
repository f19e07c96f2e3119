package coordinator

import (
	"context"
	"fmt"
	"time"

	"github.com/ringmesh/ringmesh/internal/policy"
	"github.com/ringmesh/ringmesh/pkg/config"
	"github.com/ringmesh/ringmesh/pkg/events"
	"github.com/ringmesh/ringmesh/pkg/fleet"
	"github.com/ringmesh/ringmesh/pkg/mesh"
)

// idleRetry is how long after a refused idle action (unsynced data, RPO
// unknown, a provider error) the policy tries that node again.
const idleRetry = 10 * time.Minute

// idleDecision is what the policy last did for one idle stretch of a node.
type idleDecision struct {
	since, at time.Time
	done      bool // applied, or audited as a dry run: nothing more this stretch
}

// policyLoop runs the idle policy every PolicyInterval until ctx ends.
// Every coordinator tracks idleness (so a new leader knows the stretch);
// only the leader decides.
func (c *Coordinator) policyLoop(ctx context.Context, pol config.IdlePolicy) {
	c.log.Info().Str("mode", pol.Mode).Str("action", pol.Action).Float64("max_gpu_util_percent", pol.MaxGPUUtilPercent).
		Dur("window", pol.Window).Msg("idle policy on")
	tr := policy.NewIdleTracker(pol)
	decided := map[string]idleDecision{}
	t := time.NewTicker(c.cfg.PolicyInterval)
	defer t.Stop()
	for {
		c.runIdlePolicy(ctx, pol, tr, decided)
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
