package main

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/ringmesh/ringmesh/pkg/agent"
	"github.com/ringmesh/ringmesh/pkg/bus/busserver"
	"github.com/ringmesh/ringmesh/pkg/coordinator"
	"github.com/ringmesh/ringmesh/pkg/detect"
	"github.com/ringmesh/ringmesh/pkg/gossip"
	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/paths"
	"github.com/ringmesh/ringmesh/pkg/registry"
)

func gossipPartition() Scenario {
	return Scenario{
		Name: "gossip-partition",
		Doc:  "gossip is partitioned between the voter and half the agents (the bus still works), then healed: the cut half is seen failed in gossip but never declared dead while its heartbeats flow; after the heal all members merge again within the rejoin interval",
		Run:  runGossipPartition,
	}
}

func runGossipPartition(ctx context.Context, env Env) (res Result, err error) {
	n, hold := 6, 15*time.Second
	if env.Long() {
		n, hold = 20, env.Duration
	}
	const rejoin = 2 * time.Second
	part := gossip.NewPartition()
	tune := func(mc *memberlist.Config) { mc.ProbeInterval = 500 * time.Millisecond }
	vtr, err := part.NewTransport("127.0.0.1", 0, nil)
	if err != nil {
		return res, err
	}
	sec, err := newSecure(env)
	if err != nil {
		return res, err
	}
	ccfg, err := sec.coordinator(coordinator.Config{
		Name:     "hetzner-cpu1",
		Embedded: busserver.ServerConfig{Name: "gp", Port: -1, StoreDir: env.Dir + "/nats"},
		// Heartbeats every 500 ms: a busy machine has to stall an agent for
		// 4.5 s before a heartbeating node looks suspect, which the hold
		// below counts as a false death.
		Thresholds: registry.Thresholds{SuspectAfter: 5 * time.Second, DeadAfter: 10 * time.Second},
		Gossip:     &gossip.Config{BindAddr: "127.0.0.1", Profile: "local", Dev: true, ClusterLabel: "chaos", RejoinInterval: rejoin, Transport: vtr, Tune: tune},
	})
	if err != nil {
		return res, err
	}
	c, err := startCoord(ctx, ccfg, env.Log, time.Minute)
	if err != nil {
		return res, err
	}
	defer c.stop()
	url := c.c.ClientURL()
	seed := c.c.Gossip().Addr()
	var addrs, names []string
	var stops []func() error
	defer func() {
		for _, s := range stops {
			_ = s()
		}
	}()
	dead := deadURL()
	for i := 0; i < n; i++ {
		tr, err := part.NewTransport("127.0.0.1", 0, nil)
		if err != nil {
			return res, err
		}
		name := fmt.Sprintf("vast-gp%02d", i)
		acfg, err := sec.agent(agent.Config{
			NodeID: name, Provider: "vast", InstanceID: fmt.Sprint(1000 + i), NATSURLs: []string{url}, StateDir: fmt.Sprintf("%s/a%d", env.Dir, i),
			HeartbeatInterval: 500 * time.Millisecond, Version: "chaos",
			Detect: detect.Options{Env: func(string) string { return "" }, HetznerURL: dead, VultrURL: dead, NebiusURL: dead, Timeout: 50 * time.Millisecond},
			Paths:  paths.Resolver{Root: env.Dir, Home: "/root"},
			Gossip: &gossip.Config{BindAddr: "127.0.0.1", Profile: "local", Dev: true, ClusterLabel: "chaos", Seeds: []string{seed}, RejoinInterval: rejoin, Transport: tr, Tune: tune},
		})
		if err != nil {
			return res, err
		}
		_, stop, err := startAgent(ctx, acfg, env)
		if err != nil {
			return res, err
		}
		stops = append(stops, stop)
		addrs = append(addrs, tr.Addr())
		names = append(names, name)
	}
	reg := c.c.Registry()
	gossipView := func(node string) string { r, _ := reg.Get(node); return r.Gossip.State }
	if err := poll(ctx, time.Minute, 100*time.Millisecond, func() error {
		for _, nm := range names {
			r, _ := reg.Get(nm)
			if r.State != mesh.StateHealthy || r.Gossip.State != "alive" {
				return fmt.Errorf("%s: %s, gossip %q", nm, r.State, r.Gossip.State)
			}
		}
		return nil
	}); err != nil {
		return res, fmt.Errorf("cluster did not form: %w", err)
	}
	cutNames := names[n/2:]
	env.Logf("gossip-partition: %d agents up; cutting the voter and %v from %v", n, names[:n/2], cutNames)
	cutAt := time.Now()
	part.Block(append([]string{seed}, addrs[:n/2]...), addrs[n/2:])
	var ck checks
	// The voter sees the cut half failed in gossip...
	if err := poll(ctx, time.Minute, 100*time.Millisecond, func() error {
		for _, nm := range cutNames {
			if v := gossipView(nm); v != "failed" {
				return fmt.Errorf("%s gossip %q", nm, v)
			}
		}
		return nil
	}); err != nil {
		ck.failf("voter never saw the cut half failed: %v", err)
	}
	detected := time.Since(cutAt)
	// ...but never declares a heartbeating node dead.
	falseDeaths := 0
	end := time.Now().Add(hold)
	for time.Now().Before(end) && ctx.Err() == nil {
		for _, nm := range names {
			if r, _ := reg.Get(nm); r.State != mesh.StateHealthy && r.State != mesh.StateDegraded {
				falseDeaths++
				ck.failf("%s is %s (%s) while its heartbeats flow", nm, r.State, r.Cause)
			}
		}
		if err := sleep(ctx, 250*time.Millisecond); err != nil {
			break
		}
	}
	healAt := time.Now()
	part.Heal()
	if err := poll(ctx, time.Minute, 100*time.Millisecond, func() error {
		for _, nm := range names {
			if v := gossipView(nm); v != "alive" {
				return fmt.Errorf("%s gossip %q", nm, v)
			}
		}
		return nil
	}); err != nil {
		ck.failf("groups did not merge after the heal: %v", err)
	}
	merged := time.Since(healAt)
	if merged > 3*rejoin+5*time.Second {
		ck.failf("merge took %s, more than the rejoin interval (%s) allows", merged, rejoin)
	}
	res.Add("agents", n)
	res.Add("cut", len(cutNames))
	res.Add("detected", detected)
	res.Add("held", hold)
	res.Add("false_deaths", falseDeaths)
	res.Add("merged_after_heal", merged)
	res.Add("dropped_packets", part.Dropped())
	return res, ck.err()
}
