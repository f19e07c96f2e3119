package coordinator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/cost"
)

// Cost history in KV mesh_state. One value per UTC day of buckets
// (costDayPrefix+day, a JSON array of cost.Bucket) and a manifest under
// costKey: the cost.Snapshot without its buckets plus the list of day
// keys. Split this way no value outgrows the bus's max payload as history
// accumulates (a year of a 100-instance fleet is megabytes), and a save
// rewrites only the days that changed (normally today's). Day values are
// written before the manifest that names them; a manifest from before the
// split (buckets inline) is still read.
const (
	costKey       = "cost"
	costDayPrefix = "cost_day_"
)

type costManifest struct {
	cost.Snapshot
	Days []string `json:"days,omitempty"` // cost.DayFormat; each has a costDayPrefix+day value
}

func (c *Coordinator) saveCost(ctx context.Context) {
	if c.cfg.Cost == nil || !c.IsLeader() {
		return
	}
	kv, err := c.js.KeyValue(ctx, bus.BucketState)
	if err != nil {
		return
	}
	if err := c.writeCost(ctx, kv, c.cfg.Cost.Snapshot()); err != nil {
		c.log.Warn().Err(err).Msg("save cost history")
	}
}

func (c *Coordinator) writeCost(ctx context.Context, kv jetstream.KeyValue, s cost.Snapshot) error {
	days := map[string][]cost.Bucket{}
	for _, b := range s.Buckets {
		days[b.Day] = append(days[b.Day], b)
	}
	m := costManifest{Snapshot: s}
	m.Buckets = nil
	for d := range days {
		m.Days = append(m.Days, d)
	}
	sort.Strings(m.Days)
	c.costMu.Lock()
	defer c.costMu.Unlock()
	if c.costSaved == nil {
		c.costSaved = map[string][]byte{}
	}
	for _, d := range m.Days {
		b, err := json.Marshal(days[d])
		if err != nil {
			return err
		}
		if bytes.Equal(c.costSaved[d], b) {
			continue
		}
		if _, err := kv.Put(ctx, costDayPrefix+d, b); err != nil {
			return fmt.Errorf("day %s: %w", d, err)
		}
		c.costSaved[d] = b
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if _, err := kv.Put(ctx, costKey, b); err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	// Days pruned from the tracker: drop their values (best effort).
	for d := range c.costSaved {
		if _, ok := days[d]; !ok {
			if err := kv.Delete(ctx, costDayPrefix+d); err == nil || errors.Is(err, jetstream.ErrKeyNotFound) {
				delete(c.costSaved, d)
			}
		}
	}
	return nil
}

func (c *Coordinator) restoreCost(ctx context.Context) {
	if c.cfg.Cost == nil {
		return
	}
	kv, err := c.js.KeyValue(ctx, bus.BucketState)
	if err != nil {
		return
	}
	s, saved, err := readCost(ctx, kv)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return
	}
	if err != nil {
		c.log.Error().Err(err).Msg("cost history unreadable; keeping what this coordinator has")
		return
	}
	if err := c.cfg.Cost.Restore(s); err != nil {
		c.log.Error().Err(err).Msg("cost history rejected; keeping what this coordinator has")
		return
	}
	c.costMu.Lock()
	c.costSaved = saved
	c.costMu.Unlock()
}

// readCost reads the manifest and every day it names. It returns the
// snapshot and the day values as stored (so unchanged days are not
// rewritten).
func readCost(ctx context.Context, kv jetstream.KeyValue) (cost.Snapshot, map[string][]byte, error) {
	e, err := kv.Get(ctx, costKey)
	if err != nil {
		return cost.Snapshot{}, nil, err
	}
	var m costManifest
	if err := json.Unmarshal(e.Value(), &m); err != nil {
		return cost.Snapshot{}, nil, fmt.Errorf("KV %s/%s: %w", bus.BucketState, costKey, err)
	}
	saved := map[string][]byte{}
	for _, d := range m.Days {
		if _, err := time.Parse(cost.DayFormat, d); err != nil || strings.ContainsAny(d, " .*>") {
			return cost.Snapshot{}, nil, fmt.Errorf("KV %s/%s: bad day %q", bus.BucketState, costKey, d)
		}
		de, err := kv.Get(ctx, costDayPrefix+d)
		if err != nil {
			return cost.Snapshot{}, nil, fmt.Errorf("KV %s/%s%s: %w", bus.BucketState, costDayPrefix, d, err)
		}
		var bs []cost.Bucket
		if err := json.Unmarshal(de.Value(), &bs); err != nil {
			return cost.Snapshot{}, nil, fmt.Errorf("KV %s/%s%s: %w", bus.BucketState, costDayPrefix, d, err)
		}
		for i, b := range bs {
			if b.Day != d {
				return cost.Snapshot{}, nil, fmt.Errorf("KV %s/%s%s: bucket %d is for day %q", bus.BucketState, costDayPrefix, d, i, b.Day)
			}
		}
		m.Buckets = append(m.Buckets, bs...)
		saved[d] = de.Value()
	}
	return m.Snapshot, saved, nil
}
