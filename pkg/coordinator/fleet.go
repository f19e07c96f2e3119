package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/cost"
	"github.com/ringmesh/ringmesh/pkg/events"
	"github.com/ringmesh/ringmesh/pkg/fleet"
	"github.com/ringmesh/ringmesh/pkg/paths"
	"github.com/ringmesh/ringmesh/pkg/providers"
	"github.com/ringmesh/ringmesh/pkg/registry"
)

// IsLeader reports whether this coordinator may act (call mutating provider APIs, issue commands).
func (c *Coordinator) IsLeader() bool {
	return c.cfg.Leadership == nil || c.cfg.Leadership.IsLeader()
}

func (c *Coordinator) leader() (string, uint64) {
	if c.cfg.Leadership == nil {
		return c.cfg.Name, 0
	}
	h, t, _ := c.cfg.Leadership.Leader()
	return h, t
}

// Reconciled receives a value after every reconcile pass (tests, demo).
func (c *Coordinator) Reconciled() <-chan struct{} { return c.reconciled }

// ReconcileNow runs one reconcile pass and applies it to the registry.
func (c *Coordinator) ReconcileNow(ctx context.Context) fleet.Report {
	rep := c.cfg.Fleet.Reconcile(ctx, c.reg.Trusted())
	c.relabelOperatorStops(ctx, rep.Instances)
	c.report.Store(&rep)
	now := c.cfg.Now()
	var trs []registry.Transition
	for _, iv := range rep.Instances {
		if iv.Node == "" || iv.Stale {
			continue
		}
		if iv.Name == iv.Node { // the provider's own listing names the node: admit it
			c.reg.Admit(iv.Node, "provider:"+iv.Provider+"/"+iv.ID)
		}
		trs = append(trs, c.reg.ApplyInstance(iv.Node, registry.InstanceInfo{Provider: iv.Provider, ID: iv.ID, State: string(iv.State),
			RawState: iv.RawState, Interrupted: iv.Interrupted, SeenAt: rep.At}, now)...)
	}
	for _, gone := range rep.AgentsWithoutInstances {
		if rec, ok := c.reg.Get(gone.Node); ok && rec.InstanceID != "" && gone.Gone { // confirmed by a get, never by a list alone
			trs = append(trs, c.reg.ApplyInstance(gone.Node, registry.InstanceInfo{Provider: gone.Provider, ID: rec.InstanceID, Gone: true, SeenAt: rep.At}, now)...)
		}
	}
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if len(trs) > 0 {
		c.recordTransitions(actx, trs, "")
	}
	for _, ch := range rep.EndpointChanges {
		c.log.Info().Str("node", ch.Node).Str("instance", ch.InstanceID).Str("from", ch.From).Str("to", ch.To).Msg("SSH endpoint moved")
		c.audit(actx, "endpoint", fmt.Sprintf("endpoint:%s:%s:%s:%s", ch.Provider, ch.InstanceID, ch.Kind, ch.To), events.Audit{
			Kind: "endpoint", Node: ch.Node, From: ch.From, To: ch.To, Cause: "provider " + ch.Provider + " reports a new " + ch.Kind + " endpoint",
			Actor: "coordinator:" + c.cfg.Name, Detail: map[string]string{"provider": ch.Provider, "instance": ch.InstanceID}})
	}
	c.saveCost(actx)
	if c.IsLeader() {
		c.providerPreemptions(actx, rep)
	}
	select {
	case c.reconciled <- struct{}{}:
	default:
	}
	return rep
}

func (c *Coordinator) reconcileLoop(ctx context.Context) {
	t := time.NewTicker(c.cfg.ReconcileInterval)
	defer t.Stop()
	for {
		if c.IsLeader() { // only the leader calls provider APIs
			rctx, cancel := context.WithTimeout(ctx, c.cfg.ReconcileInterval+30*time.Second)
			c.ReconcileNow(rctx)
			cancel()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (c *Coordinator) currentReport() (fleet.Report, error) {
	if c.cfg.Fleet == nil {
		return fleet.Report{}, errors.New("no providers configured on this coordinator")
	}
	if p := c.report.Load(); p != nil {
		return c.cfg.Fleet.Report(c.reg.Trusted()), nil
	}
	return fleet.Report{}, errors.New("first reconcile still running; try again in a moment")
}

func (c *Coordinator) apiInstances(ctx context.Context, req []byte) (any, error) {
	var r api.InstancesRequest
	if len(req) > 0 {
		if err := json.Unmarshal(req, &r); err != nil {
			return nil, fmt.Errorf("bad request: %w", err)
		}
	}
	rep, err := c.currentReport()
	if err != nil {
		return nil, err
	}
	if r.Provider != "" {
		var keep []fleet.InstanceView
		for _, iv := range rep.Instances {
			if iv.Provider == r.Provider {
				keep = append(keep, iv)
			}
		}
		rep.Instances = keep
	}
	return rep, nil
}

func (c *Coordinator) apiAct(ctx context.Context, req []byte) (any, error) {
	var r fleet.ActionRequest
	if err := json.Unmarshal(req, &r); err != nil {
		return nil, fmt.Errorf("bad request: %w", err)
	}
	if c.cfg.Fleet == nil {
		return nil, errors.New("no providers configured on this coordinator")
	}
	r.Actor = actor(ctx, r.Actor) // who asked is what the signature proves, not what the body says
	return c.act(ctx, r)
}

// act applies an action request behind every gate (request-ID claim,
// quarantine, fresh safe-to-terminate figure, voter protection, leader
// fence). r.Actor must already be the verified actor.
func (c *Coordinator) act(ctx context.Context, r fleet.ActionRequest) (fleet.ActionResult, error) {
	if c.cfg.Fleet == nil {
		return fleet.ActionResult{}, errors.New("no providers configured on this coordinator")
	}
	_, term := c.leader()
	var done func(fleet.ActionResult, error)
	if r.RequestID != "" && !r.DryRun {
		prev, finish, err := c.claimRequest(ctx, r.RequestID)
		if err != nil {
			return fleet.ActionResult{}, err
		}
		if prev != nil {
			return *prev, nil
		}
		done = finish
	}
	var recp *registry.Record
	if rec, ok := c.reg.Get(r.Node); ok {
		if rec.Quarantined {
			return fleet.ActionResult{}, fmt.Errorf("node %s is quarantined (not in the inventory, a provider listing or enrolled): not acting on it", r.Node)
		}
		recp = &rec
	}
	var freshErr error
	if (r.Op == fleet.OpStop || r.Op == fleet.OpTerminate) && !r.Force && recp != nil {
		// The gate trusts a figure measured now, never the last heartbeat.
		_, _, recp, freshErr = c.safeToTerminate(ctx, r.Node)
	}
	res, err := fleet.Act(ctx, c.cfg.Fleet.Providers(), c.cfg.Fleet.Inventory(), recp, c.cfg.Fleet.InstanceName, r, term, func(ctx context.Context, id string, a events.Audit) {
		a.Actor = strings.TrimSpace(a.Actor + " via coordinator:" + c.cfg.Name)
		c.audit(ctx, "provider_call", id, a)
	}, c.IsLeader)
	if err != nil && freshErr != nil && errors.Is(err, fleet.ErrRefused) && strings.Contains(err.Error(), "RPO unknown") {
		err = fmt.Errorf("%w; the node did not give a fresh RPO: %v", err, freshErr)
	}
	if done != nil {
		done(res, err)
	}
	if err != nil {
		return fleet.ActionResult{}, err
	}
	if res.Applied {
		c.refreshSoon()
	}
	return res, nil
}

// refreshSoon reconciles in the background after a change, bounded by a
// minute and by Run: the goroutine is joined before Run returns.
func (c *Coordinator) refreshSoon() {
	c.bgMu.Lock()
	defer c.bgMu.Unlock()
	if c.bgCtx == nil || c.bgCtx.Err() != nil {
		return // not running (or stopping): the next reconcile will see it
	}
	ctx := c.bgCtx
	c.bg.Go(func() {
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		c.ReconcileNow(rctx)
	})
}

func (c *Coordinator) apiSSHConfig(ctx context.Context, _ []byte) (any, error) {
	var inv = c.cfg.Inventory
	rep := fleet.Report{}
	if c.cfg.Fleet != nil {
		rep = c.cfg.Fleet.Report(c.reg.Trusted())
	}
	entries := fleet.SSHEntries(inv, c.reg.Trusted(), rep)
	return api.SSHConfig{Entries: entries, Text: fleet.RenderSSHConfig(entries)}, nil
}

func (c *Coordinator) apiPaths(ctx context.Context, req []byte) (any, error) {
	var r api.NodeRequest
	if err := json.Unmarshal(req, &r); err != nil || r.Node == "" {
		return nil, errors.New(`bad request: want {"node": "<node ID>"}`)
	}
	if rec, ok := c.reg.Get(r.Node); ok && rec.Paths != nil {
		return api.Paths{Node: r.Node, Layout: *rec.Paths, Source: "agent"}, nil
	}
	if lay, ok := c.inventoryLayout(r.Node); ok {
		return api.Paths{Node: r.Node, Layout: lay, Source: "inventory"}, nil
	}
	return nil, fmt.Errorf("unknown node %q", r.Node)
}

// inventoryLayout is a configured host's path layout as the inventory
// states it (ringrift_path, storage_paths, else the provider convention).
func (c *Coordinator) inventoryLayout(node string) (paths.Layout, bool) {
	if c.cfg.Inventory == nil {
		return paths.Layout{}, false
	}
	h := c.cfg.Inventory.Hosts[node]
	if h == nil {
		return paths.Layout{}, false
	}
	ov := map[paths.Kind]string{paths.Games: h.StoragePaths.Games, paths.Models: h.StoragePaths.Models, paths.TrainingData: h.StoragePaths.TrainingData,
		paths.Checkpoints: h.StoragePaths.Checkpoints, paths.Logs: h.StoragePaths.Logs, paths.SyncIncoming: h.StoragePaths.SyncIncoming}
	return paths.For(h.Provider, h.RingriftPath, ov), true
}

func (c *Coordinator) apiCost(ctx context.Context, req []byte) (any, error) {
	if c.cfg.Cost == nil {
		return nil, errors.New("cost tracking is not enabled on this coordinator")
	}
	var r api.CostRequest
	if len(req) > 0 {
		if err := json.Unmarshal(req, &r); err != nil {
			return nil, fmt.Errorf("bad request: %w", err)
		}
	}
	if !r.Since.IsZero() && r.Since.After(c.cfg.Now().Add(24*time.Hour)) {
		return nil, fmt.Errorf("bad request: since %s is in the future", r.Since.Format(time.RFC3339))
	}
	f := cost.Filter{From: r.Since}
	out := api.Cost{Current: c.cfg.Cost.Current(), Total: c.cfg.Cost.Sum(f), Since: r.Since}
	out.BurnRate, out.UnknownPriced = c.cfg.Cost.BurnRate()
	var err error
	if out.ByNode, err = c.cfg.Cost.Group(f, cost.ByNode); err != nil {
		return nil, err
	}
	if out.ByProvider, err = c.cfg.Cost.Group(f, cost.ByProvider); err != nil {
		return nil, err
	}
	if out.ByDay, err = c.cfg.Cost.Group(f, cost.ByDay); err != nil {
		return nil, err
	}
	out.Budget = c.costBudget()
	return out, nil
}

// claimRequest records an action request ID in KV mesh_state before the
// provider call (create-only, so two leaders cannot both claim it). A
// request already claimed returns its stored result instead of acting again.
func (c *Coordinator) claimRequest(ctx context.Context, id string) (*fleet.ActionResult, func(fleet.ActionResult, error), error) {
	if strings.ContainsAny(id, " .*>") || len(id) > 128 {
		return nil, nil, fmt.Errorf("bad request_id %q", id)
	}
	kv, err := c.js.KeyValue(ctx, bus.BucketState)
	if err != nil {
		return nil, nil, err
	}
	key := "act_" + id
	pending, _ := json.Marshal(map[string]string{"state": "claimed", "by": c.cfg.Name})
	if _, err := kv.Create(ctx, key, pending); err != nil {
		e, gerr := kv.Get(ctx, key)
		if gerr != nil {
			return nil, nil, fmt.Errorf("request %s: %w", id, err)
		}
		var prev fleet.ActionResult
		if json.Unmarshal(e.Value(), &prev) == nil && prev.Op != "" {
			prev.Message = "already applied (request " + id + "): " + prev.Message
			return &prev, nil, nil
		}
		return nil, nil, fmt.Errorf("request %s is being applied by another coordinator or its outcome is unknown; not applying it twice", id)
	}
	return nil, func(res fleet.ActionResult, err error) {
		if err != nil {
			if notApplied(err) {
				_ = kv.Delete(context.Background(), key) // refused or never sent: the request may be retried
				return
			}
			unknown, _ := json.Marshal(map[string]string{"state": "outcome unknown", "error": err.Error()})
			_, _ = kv.Put(context.Background(), key, unknown)
			return
		}
		b, _ := json.Marshal(res)
		if _, perr := kv.Put(context.Background(), key, b); perr != nil {
			c.log.Error().Err(perr).Str("request", id).Msg("store action result")
		}
	}, nil
}

// notApplied reports whether a failed action certainly did not reach the provider.
func notApplied(err error) bool {
	if errors.Is(err, fleet.ErrRefused) || errors.Is(err, providers.ErrRetired) || errors.Is(err, providers.ErrCircuitOpen) {
		return true
	}
	switch providers.KindOf(err) {
	case providers.KindRateLimited, providers.KindNotSent, providers.KindAuth, providers.KindInvalid, providers.KindNotFound, providers.KindConflict:
		return true
	}
	return false
}
