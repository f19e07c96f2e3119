package coordinator

import (
	"context"
	"encoding/json"
	"sort"
	"strings"
	"time"

	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/bus"
)

// voterBeat is what each coordinator writes to KV mesh_state every
// VoterBeatInterval so that any of them can report the voters' health.
type voterBeat struct {
	Name      string    `json:"name"`
	At        time.Time `json:"at"`
	Leader    bool      `json:"leader"`
	Server    string    `json:"server,omitempty"` // connected NATS server
	Consumer  string    `json:"consumer"`
	Pending   uint64    `json:"pending"` // consumer messages not yet delivered
	Connected bool      `json:"connected"`
	Stopped   bool      `json:"stopped,omitempty"` // written once on a clean shutdown
}

const voterBeatInterval = 2 * time.Second

func (c *Coordinator) beat(ctx context.Context) { c.writeBeat(ctx, false) }

func (c *Coordinator) writeBeat(ctx context.Context, stopped bool) {
	if c.nc == nil {
		return
	}
	kv, err := c.js.KeyValue(ctx, bus.BucketState)
	if err != nil {
		return
	}
	b := voterBeat{Name: c.cfg.Name, At: c.cfg.Now().UTC(), Leader: c.IsLeader(), Server: c.nc.ConnectedServerName(),
		Consumer: "coord-" + c.cfg.Name, Connected: c.nc.IsConnected(), Stopped: stopped}
	if stopped {
		b.Leader = false
	}
	if cons, err := c.js.Consumer(ctx, bus.StreamEvents, b.Consumer); err == nil {
		if info, err := cons.Info(ctx); err == nil {
			b.Pending = info.NumPending
			c.pending.Store(info.NumPending)
			c.ackPending.Store(uint64(info.NumAckPending))
		}
	}
	data, _ := json.Marshal(b)
	if _, err := kv.Put(ctx, "voter_"+c.cfg.Name, data); err != nil {
		c.log.Debug().Err(err).Msg("voter beat")
	}
}

// voters returns every coordinator's last beat: healthy when fresh
// (< 3 beats old), "unreachable" otherwise; configured voters that never
// beat are listed as "unknown".
func (c *Coordinator) voters(ctx context.Context) []api.VoterStatus {
	// Bounded: status must answer even when KV mesh_state has no leader right now.
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	holder, _ := c.leader()
	seen := map[string]api.VoterStatus{}
	if kv, err := c.js.KeyValue(ctx, bus.BucketState); err == nil {
		if lister, err := kv.ListKeys(ctx); err == nil {
			for k := range lister.Keys() {
				if !strings.HasPrefix(k, "voter_") {
					continue
				}
				e, err := kv.Get(ctx, k)
				if err != nil {
					continue
				}
				var b voterBeat
				if json.Unmarshal(e.Value(), &b) != nil {
					continue
				}
				state := "healthy"
				if b.Stopped {
					state = "stopped (clean shutdown at " + b.At.Format(time.RFC3339) + ")"
				} else if age := c.cfg.Now().Sub(b.At); age > 3*voterBeatInterval {
					state = "unreachable (last beat " + age.Round(time.Second).String() + " ago)"
				} else if !b.Connected {
					state = "bus disconnected"
				}
				seen[b.Name] = api.VoterStatus{Name: b.Name, State: state, Leader: b.Name == holder, Server: b.Server, Pending: b.Pending}
			}
		}
	}
	if c.cfg.Inventory != nil {
		for _, v := range c.cfg.Inventory.Voters {
			if _, ok := seen[v]; !ok {
				seen[v] = api.VoterStatus{Name: v, State: "unknown (no coordinator beat)", Leader: v == holder}
			}
		}
	}
	out := make([]api.VoterStatus, 0, len(seen))
	for _, v := range seen {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
