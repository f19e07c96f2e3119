package coordinator

import (
	"context"
	"fmt"

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
	for _, rec := range c.reg.Snapshot() {
		c.reg.MarkDirty(rec.Node)
	}
	c.restoreCost(ctx)
	c.audit(ctx, "lease", fmt.Sprintf("lease:%s:%d", c.cfg.Name, term), events.Audit{Kind: "lease", Cause: "acquired the leader lease", Actor: "coordinator:" + c.cfg.Name,
		Detail: map[string]string{"term": fmt.Sprint(term)}})
}
