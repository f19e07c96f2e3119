package coordinator

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/events"
	"github.com/ringmesh/ringmesh/pkg/leader"
)

func (c *Coordinator) elector(ctx context.Context) (*leader.Elector, error) {
	kv, err := c.js.KeyValue(ctx, bus.BucketLeader)
	if err != nil {
		return nil, fmt.Errorf("leader bucket: %w", err)
	}
	ttl := c.cfg.LeaderTTL
	if ttl == 0 {
		ttl = c.cfg.Topology.LeaderTTL
	}
	return leader.New(kv, leader.Config{Name: c.cfg.Name, TTL: ttl}, c.log, c.cfg.Registry)
}

// watchLeadership notices a change of leadership: a new leader rewrites
// every record to KV (its registry is the warm one) and reloads the cost
// snapshot the previous leader saved.
func (c *Coordinator) watchLeadership(ctx context.Context) {
	now := c.IsLeader()
	if now == c.wasLeader {
		return
	}
	c.wasLeader = now
	if now {
		c.revokeRetired(ctx)
	}
	if c.cfg.Leadership == nil {
		return // a single coordinator is always the leader
	}
	holder, term := c.leader()
	if !now {
		c.log.Warn().Str("leader", holder).Uint64("term", term).Msg("no longer the leader: not acting")
		return
	}
	c.log.Info().Uint64("term", term).Msg("became the leader")
	actx, cancel := context.WithTimeout(ctx, 30*time.Second)
	c.restoreAdmissions(actx)
	cancel()
	for _, rec := range c.reg.Snapshot() {
		c.reg.MarkDirty(rec.Node)
	}
	c.restoreCost(ctx)
	c.audit(ctx, "lease", fmt.Sprintf("lease:%s:%d", c.cfg.Name, term), events.Audit{Kind: "lease", Cause: "acquired the leader lease", Actor: "coordinator:" + c.cfg.Name,
		Detail: map[string]string{"term": fmt.Sprint(term)}})
}

// restoreAdmissions, on a coordinator that just became the leader, takes
// over the admissions the previous leader made (they live in its memory and
// in what it stored): the Admitted field of every node record in KV
// mesh_nodes, every enrollment token that was used, and every launch
// recorded as done (a launched node may not have spoken yet). Without it, a
// node launched or enrolled through the previous leader would be
// quarantined here, and the new leader's first KV flush would store it so.
func (c *Coordinator) restoreAdmissions(ctx context.Context) {
	n := 0
	if recs, err := c.loadRecords(ctx); err != nil {
		c.log.Warn().Err(err).Msg("new leader: reading node records for their admissions")
	} else {
		for _, r := range recs {
			if r.Admitted != "" && !r.Configured {
				c.reg.Admit(r.Node, r.Admitted)
				n++
			}
		}
	}
	c.admitEnrolled(ctx)
	if kv, err := c.stateKV(ctx); err == nil {
		if keys, err := kv.ListKeys(ctx); err == nil {
			for key := range keys.Keys() {
				id, ok := strings.CutPrefix(key, "launch_")
				if !ok {
					continue
				}
				if rec, _, err := c.readLaunch(ctx, kv, id); err == nil && rec != nil && rec.State == "done" && rec.Instance != nil {
					c.reg.Admit(rec.Node, "launch:"+rec.Provider+"/"+rec.Instance.ID)
					n++
				}
			}
		}
	}
	c.log.Info().Int("admissions", n).Msg("new leader: admissions of the previous leader restored")
}
