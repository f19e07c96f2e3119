package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/auth"
	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/events"
	"github.com/ringmesh/ringmesh/pkg/gossip"
	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/version"
)

// Gossip returns this voter's gossip member (nil when gossip is off or not yet started).
func (c *Coordinator) Gossip() *gossip.Member { return c.member.Load() }

// startGossip joins the gossip cluster and forwards its events to the bus,
// where every coordinator (this one included) folds them into its registry.
func (c *Coordinator) startGossip() (stop func(), err error) {
	gc := *c.cfg.Gossip
	gc.NodeName = c.cfg.Name
	gc.Meta = gossip.Meta{Role: "coordinator", Provider: mesh.ProviderFromName(c.cfg.Name), AgentVersion: version.String()}
	if c.cfg.Inventory != nil {
		if h := c.cfg.Inventory.Hosts[c.cfg.Name]; h != nil {
			gc.Meta.Provider = h.Provider
		}
	}
	if c.cfg.Auth != nil {
		// Voters admit only members whose name is bound to an issued,
		// unrevoked credential, and prove their own the same way.
		gc.VerifyPeer = auth.NewGossipVerifier(c.cfg.Auth).Verify
		if c.credsFile != "" {
			s, err := auth.LoadSigner(c.credsFile)
			if err != nil {
				return nil, fmt.Errorf("gossip identity: %w", err)
			}
			gc.Sign = s.GossipToken
		}
	}
	m, err := gossip.New(gc, c.log, c.cfg.Registry)
	if err != nil {
		return nil, fmt.Errorf("gossip: %w", err)
	}
	c.member.Store(m)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() {
		defer func() { done <- struct{}{} }()
		if err := m.Run(ctx); err != nil {
			c.log.Error().Err(err).Msg("gossip stopped")
		}
	}()
	go func() {
		defer func() { done <- struct{}{} }()
		c.forwardGossip(ctx, m)
	}()
	c.log.Info().Str("addr", m.Addr()).Msg("gossip member running")
	return func() { cancel(); <-done; <-done }, nil
}

func (c *Coordinator) forwardGossip(ctx context.Context, m *gossip.Member) {
	subj, err := bus.GossipSubject(c.cfg.Name)
	if err != nil {
		c.log.Error().Err(err).Msg("gossip subject")
		return
	}
	for {
		var ev gossip.Event
		select {
		case <-ctx.Done():
			return
		case ev = <-m.Events():
		}
		body := events.Gossip{Voter: c.cfg.Name, Type: string(ev.Type), Member: ev.Node, Addr: ev.Addr,
			Role: ev.Meta.Role, Provider: ev.Meta.Provider, AgentVersion: ev.Meta.AgentVersion}
		id := fmt.Sprintf("gossip:%s:%s:%s:%d", c.cfg.Name, ev.Node, ev.Type, ev.Time.UnixNano())
		env, err := bus.NewEnvelope("gossip", id, c.cfg.Name, ev.Time, body)
		if err != nil {
			continue
		}
		data, _ := json.Marshal(env)
		// Retry until stored: a gossip event lost here would leave the registry's gossip view stale.
		for attempt := 0; ctx.Err() == nil; attempt++ {
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err = c.js.Publish(pctx, subj, data, jetstream.WithMsgID(id))
			cancel()
			if err == nil {
				break
			}
			if attempt%10 == 0 {
				c.log.Warn().Err(err).Str("member", ev.Node).Msg("publish gossip event; retrying")
			}
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
}

func (c *Coordinator) apiMembers(ctx context.Context, _ []byte) (any, error) {
	m := c.member.Load()
	if m == nil {
		return nil, errors.New("gossip is not enabled on coordinator " + c.cfg.Name)
	}
	return api.Members{Voter: c.cfg.Name, Members: m.Members()}, nil
}
