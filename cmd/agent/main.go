// Command agent runs on every node: it reports the node's identity, health
// and unsynced data to the coordinators over NATS JetStream.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ringmesh/ringmesh/pkg/agent"
	"github.com/ringmesh/ringmesh/pkg/cli"
	"github.com/ringmesh/ringmesh/pkg/config"
	"github.com/ringmesh/ringmesh/pkg/logging"
	"github.com/ringmesh/ringmesh/pkg/version"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "agent:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	var (
		node       = fs.String("node", "", "this node's ID, the host key in distributed_hosts.yaml (default: the host name)")
		inventory  = fs.String("inventory", "", "path to distributed_hosts.yaml (optional; gives provider, paths, SSH endpoint)")
		provider   = fs.String("provider", "", "provider override: vast, runpod, lambda, vultr, hetzner, nebius, local (default: config, then self-detection)")
		instanceID = fs.String("instance-id", "", "provider instance ID override (default: config *_id field, then self-detection)")
		role       = fs.String("role", "", "role override (default: the inventory's role)")
		natsURL    = fs.String("nats-url", "nats://127.0.0.1:4222", "NATS server URLs, comma-separated (all voters in a cluster)")
		stateDir   = fs.String("state-dir", "", "state directory for the outbox (default /var/lib/ringmesh-agent, or ./ringmesh-agent with --dev)")
		heartbeat  = fs.Duration("heartbeat", 5*time.Second, "heartbeat interval")
		dev        = fs.Bool("dev", false, "development: report provider local when detection finds nothing")
		logLevel   = fs.String("log-level", "info", "log level: trace, debug, info, warn, error")
		logFormat  = fs.String("log-format", "console", "log format: console or json")
		showVer    = fs.Bool("version", false, "print the version and exit")
	)
	gf := cli.AddGossipFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := cli.ApplyEnv(fs, "RINGMESH_AGENT"); err != nil {
		return err
	}
	if *showVer {
		fmt.Println(version.String())
		return nil
	}
	log, err := logging.Stderr(*logFormat, *logLevel)
	if err != nil {
		return err
	}
	if *node == "" {
		*node = cli.DefaultNodeID()
	}
	if *stateDir == "" {
		*stateDir = "/var/lib/ringmesh-agent"
		if *dev {
			*stateDir = "ringmesh-agent"
		}
	}
	cfg := agent.Config{
		NodeID: *node, Provider: *provider, InstanceID: *instanceID, Role: *role,
		NATSURLs: cli.SplitList(*natsURL), StateDir: *stateDir, HeartbeatInterval: *heartbeat,
		Version: version.String(), Dev: *dev,
	}
	if *inventory != "" {
		inv, err := config.LoadFile(*inventory)
		if err != nil {
			return err
		}
		for _, w := range inv.Warnings {
			log.Warn().Str("where", w.Where).Str("field", w.Field).Msg(w.Msg)
		}
		h, ok := inv.Hosts[*node]
		if !ok {
			log.Warn().Str("node", *node).Str("inventory", *inventory).Msg("node is not in the inventory; relying on flags and detection")
		}
		cfg.Host = h
	}
	var inv *config.Inventory
	if *inventory != "" {
		inv, _ = config.LoadFile(*inventory) // already validated above
	}
	if cfg.Gossip, err = gf.Config(inv, *dev); err != nil {
		return err
	}
	a, err := agent.New(cfg, log)
	if err != nil {
		return err
	}
	// The one signal handler of the process: SIGTERM/SIGINT end the run,
	// which publishes bye (and, on ephemeral nodes, the final flush).
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return a.Run(ctx)
}
