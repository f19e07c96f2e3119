package coordinator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/events"
	"github.com/ringmesh/ringmesh/pkg/fleet"
	"github.com/ringmesh/ringmesh/pkg/registry"
)

// FreshRPOWait bounds how long the safe-to-terminate gate waits for a
// node's answer to an "rpo" command. No answer in time means unsafe.
const FreshRPOWait = 5 * time.Second

// FreshRPO asks node's agent for its recovery point measured now: it sends
// an "rpo" command (mesh.v1.cmd.<node>.rpo, args request_id) and waits, at
// most FreshRPOWait, for the agent's answer on its own events subject
// mesh.v1.evt.<node>.sync (Phase "rpo", Trigger "rpo:<request_id>"). It
// fails when nothing comes back in time, when the agent could not measure,
// or when the answer carries no figure: the caller must then treat the node
// as unsafe.
func (c *Coordinator) FreshRPO(ctx context.Context, node string) (events.RPO, error) {
	subj, err := bus.EventSubject(node, bus.KindSync)
	if err != nil {
		return events.RPO{}, err
	}
	if c.nc == nil {
		return events.RPO{}, errors.New("coordinator not connected to the bus")
	}
	ctx, cancel := context.WithTimeout(ctx, FreshRPOWait)
	defer cancel()
	msgs := make(chan *nats.Msg, 64)
	sub, err := c.nc.ChanSubscribe(subj, msgs)
	if err != nil {
		return events.RPO{}, fmt.Errorf("subscribe %s: %w", subj, err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b)
	if err := c.command(ctx, node, "rpo", map[string]string{"request_id": id}, "fresh RPO for the safe-to-terminate gate"); err != nil {
		return events.RPO{}, fmt.Errorf("send rpo command: %w", err)
	}
	for {
		select {
		case <-ctx.Done():
			return events.RPO{}, fmt.Errorf("no answer from %s's agent within %s", node, FreshRPOWait)
		case m := <-msgs:
			var env bus.Envelope
			var ev events.Sync
			if json.Unmarshal(m.Data, &env) != nil || env.Node != node || json.Unmarshal(env.Body, &ev) != nil ||
				ev.Phase != "rpo" || ev.Trigger != "rpo:"+id {
				continue
			}
			if ev.Error != "" {
				return events.RPO{}, fmt.Errorf("%s could not measure its RPO: %s", node, ev.Error)
			}
			if ev.RPO.UnsyncedBytes == nil || ev.RPO.UnsyncedFiles == nil {
				return events.RPO{}, fmt.Errorf("%s answered without an RPO figure", node)
			}
			return ev.RPO, nil
		}
	}
}

// safeToTerminate is the gate with a fresh figure: a node whose last
// report already shows data at risk is unsafe at once; otherwise its agent
// is asked (FreshRPO) and no answer is unsafe. It returns the record with
// the fresh RPO in place (nil when the node is unknown) and the error of
// the fresh request, if any.
func (c *Coordinator) safeToTerminate(ctx context.Context, node string) (bool, string, *registry.Record, error) {
	rec, ok := c.reg.Get(node)
	if !ok {
		safe, why := fleet.SafeToTerminate(nil, false)
		return safe, why, nil, nil
	}
	if b := rec.RPO.UnsyncedBytes; b != nil && *b > 0 {
		safe, why := fleet.SafeToTerminate(&rec, false)
		return safe, why + " (last report)", &rec, nil
	}
	fresh, err := c.FreshRPO(ctx, node)
	rec.RPO = fresh
	if err != nil {
		return false, "RPO unknown: " + err.Error() + "; a node that does not answer is never assumed safe", &rec, err
	}
	safe, why := fleet.SafeToTerminate(&rec, false)
	if safe {
		why = "RPO is zero (measured by the node just now)"
	}
	return safe, why, &rec, nil
}
