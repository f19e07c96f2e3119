// Command agent runs on every node: it reports the node's identity, health
// and unsynced data to the coordinators over NATS JetStream.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ringmesh/ringmesh/internal/syncserve"
	"github.com/ringmesh/ringmesh/pkg/agent"
	"github.com/ringmesh/ringmesh/pkg/agentmetrics"
	"github.com/ringmesh/ringmesh/pkg/bootstrap"
	"github.com/ringmesh/ringmesh/pkg/cli"
	"github.com/ringmesh/ringmesh/pkg/cli/gossipflags"
	"github.com/ringmesh/ringmesh/pkg/config"
	"github.com/ringmesh/ringmesh/pkg/logging"
	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/version"
)

func main() {
	// A login shell is started as "-<name>".
	if strings.TrimPrefix(filepath.Base(os.Args[0]), "-") == syncserve.ShellName {
		// The sync account's login shell on a target: sshd runs the
		// certificate's force-command through it (internal/syncserve).
		os.Exit(syncserve.RunShell(os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr))
	}
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "agent:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) > 0 && args[0] == "supervise" {
		return runSupervise(args[1:])
	}
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	var (
		node       = fs.String("node", "", "this node's ID, the host key in distributed_hosts.yaml (default: the host name)")
		inventory  = fs.String("inventory", "", "path to distributed_hosts.yaml (optional; gives provider, paths, SSH endpoint)")
		provider   = fs.String("provider", "", "provider override: vast, runpod, lambda, vultr, hetzner, nebius, local (default: config, then self-detection)")
		instanceID = fs.String("instance-id", "", "provider instance ID override (default: config *_id field, then self-detection)")
		role       = fs.String("role", "", "role override (default: the inventory's role)")
		natsURL    = fs.String("nats-url", "nats://127.0.0.1:4222", "NATS server URLs, comma-separated (all voters in a cluster)")
		creds      = fs.String("creds", "", "this node's NATS credentials file (issued with `meshctl creds issue --role node --node <id>`; mode 0600)")
		caFile     = fs.String("ca", "", "the ringmesh CA certificate to pin for tls:// servers (ca.pem of the issuer store)")
		stateDir   = fs.String("state-dir", "", "state directory for the outbox (default /var/lib/ringmesh-agent, or ./ringmesh-agent with --dev)")
		heartbeat  = fs.Duration("heartbeat", 5*time.Second, "heartbeat interval")
		dev        = fs.Bool("dev", false, "development: report provider local when detection finds nothing")
		logLevel   = fs.String("log-level", "info", "log level: trace, debug, info, warn, error")
		logFormat  = fs.String("log-format", "console", "log format: console or json")
		showVer    = fs.Bool("version", false, "print the version and exit")
		syncMode   = fs.String("sync", "auto", "data protection: on, off, or auto (on for ephemeral nodes)")
		syncKey    = fs.String("sync-key", "~/.ssh/id_cluster", "shared SSH private key for sync targets not set up with meshctl target setup (those take the node's own key <state-dir>/sync_ed25519 with a certificate from the coordinator)")
		knownHosts = fs.String("sync-known-hosts", "", "optional known_hosts file checked in addition to the fingerprint each target's agent reports")
		syncEvery  = fs.Duration("sync-interval", 5*time.Second, "pause between continuous sync cycles")
		notice     = fs.Duration("preempt-notice", 0, "time from SIGTERM to the node's end: the final flush deadline (default by provider: "+mesh.NoticeSummary()+")")
		bwMBps     = fs.Float64("sync-bandwidth-mbps", 0, "per-target bandwidth limit in MB/s (0 = unlimited)")
		metricsAt  = fs.String("metrics-listen", agentmetrics.DefaultListen, "serve Prometheus GET /metrics (GPUs, disks, RPO, outbox) on host:port; loopback by default, empty = off")
		tokenFile  = fs.String("enroll-token-file", "", "one-time enrollment token file (made by meshctl token create), used when --creds does not exist yet; deleted after use (or $"+bootstrap.TokenEnv+"; never on the command line)")
		bootCreds  = fs.String("bootstrap-creds", "", "with an enrollment token: the shared bootstrap credential (default bootstrap.creds next to --creds)")
		confFile   = fs.String("config", "", "file of name=value lines, one flag each (written by meshctl enroll); command line and environment win")
	)
	var classes cli.DataClasses
	fs.Var(&classes, "data-class", "NAME=GLOB[,GLOB...]: the files of data source NAME to protect, replacing its default globs (repeatable; over the inventory's auto_sync.data_classes; written by meshctl enroll from the coordinator's inventory)")
	replTarget := fs.Int("replication-target", 0, "verified copies wanted per file (0 = the inventory's sync_routing.replication_target, else 2)")
	maxSyncs := fs.Int("max-concurrent-syncs", 0, "pushes at the same time (0 = the inventory's auto_sync.max_concurrent_syncs, else 1)")
	gf := gossipflags.Add(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *showVer { // before the environment: --version never fails and never starts anything
		return version.Fprint(os.Stdout, "ringmesh-agent")
	}
	if err := cli.ApplyEnv(fs, "RINGMESH_AGENT"); err != nil {
		return err
	}
	if *confFile != "" {
		if err := cli.ApplyFile(fs, *confFile); err != nil {
			return err
		}
	}
	if *replTarget < 0 || *replTarget > 16 {
		return fmt.Errorf("--replication-target %d: want 0 (the inventory's or 2) to 16", *replTarget)
	}
	if *maxSyncs < 0 || *maxSyncs > 64 {
		return fmt.Errorf("--max-concurrent-syncs %d: want 0 (the inventory's or 1) to 64", *maxSyncs)
	}
	log, err := logging.Stderr(*logFormat, *logLevel)
	if err != nil {
		return err
	}
	if *stateDir == "" {
		*stateDir = "/var/lib/ringmesh-agent"
		if *dev {
			*stateDir = "ringmesh-agent"
		}
	}
	// The token never comes from argv; read from the environment once and removed from it.
	envToken := os.Getenv(bootstrap.TokenEnv)
	_ = os.Unsetenv(bootstrap.TokenEnv)
	if *tokenFile != "" || envToken != "" {
		if *creds == "" {
			*creds = filepath.Join(*stateDir, "node.creds")
		}
		ectx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		name, err := bootstrap.EnsureCreds(ectx, bootstrap.AgentOptions{TokenFile: *tokenFile, Token: envToken, BootstrapCreds: *bootCreds,
			CAFile: *caFile, URLs: cli.SplitList(*natsURL), CredsOut: *creds, Node: *node, Provider: *provider, InstanceID: *instanceID}, log)
		stop()
		if err != nil {
			return err
		}
		if *node == "" {
			*node = name
		} else if name != *node {
			return fmt.Errorf("--node %s, but the credentials in %s are for %s", *node, *creds, name)
		}
	}
	if *node == "" {
		*node = cli.DefaultNodeID()
	}
	cfg := agent.Config{
		NodeID: *node, Provider: *provider, InstanceID: *instanceID, Role: *role,
		NATSURLs: cli.SplitList(*natsURL), CredsFile: *creds, CAFile: *caFile, StateDir: *stateDir, HeartbeatInterval: *heartbeat,
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
	ephemeral := (cfg.Host != nil && cfg.Host.Ephemeral()) || (cfg.Host == nil && mesh.EphemeralByDefault(*provider))
	switch *syncMode {
	case "on", "auto":
		if *syncMode == "on" || ephemeral {
			cfg.Sync = &agent.SyncConfig{KeyPath: expandHome(*syncKey), KnownHostsFile: *knownHosts, Interval: *syncEvery, Notice: *notice,
				BandwidthLimit: int64(*bwMBps * 1e6)}
			if inv != nil {
				cfg.Sync.ReplicationTarget = inv.SyncRouting.ReplicationTarget
				cfg.Sync.MaxConcurrent = inv.AutoSync.MaxConcurrentSyncs
				cfg.Sync.DataClasses = maps.Clone(inv.AutoSync.DataClasses)
			}
			// Flags (an enrolled node's agent.conf) win over the inventory.
			if *replTarget > 0 {
				cfg.Sync.ReplicationTarget = *replTarget
			}
			if *maxSyncs > 0 {
				cfg.Sync.MaxConcurrent = *maxSyncs
			}
			for name, globs := range classes {
				if cfg.Sync.DataClasses == nil {
					cfg.Sync.DataClasses = map[string][]string{}
				}
				cfg.Sync.DataClasses[name] = globs
			}
		}
	case "off":
	default:
		return fmt.Errorf("--sync %q: want on, off or auto", *syncMode)
	}
	if cfg.Gossip, err = gf.Config(inv, *dev); err != nil {
		return err
	}
	a, err := agent.New(cfg, log)
	if err != nil {
		return err
	}
	// The one signal handler of the process: SIGTERM/SIGINT end the run; the
	// agent then publishes preempt, flushes within the deadline (when sync is
	// on) and says bye. The cause names the signal.
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		s, ok := <-sigs
		if !ok {
			return
		}
		name := "SIGTERM"
		if s == os.Interrupt {
			name = "SIGINT"
		}
		cancel(errors.New("signal:" + name))
	}()
	if *metricsAt == "" {
		return a.Run(ctx)
	}
	reg, err := agentmetrics.NewRegistry(agentmetrics.NewCollector(a, *node, version.String()))
	if err != nil {
		return err
	}
	ms, err := agentmetrics.Listen(*metricsAt, reg, log)
	if err != nil {
		// Metrics must not cost the node its data protection: run without them.
		log.Error().Err(err).Msg("agent metrics not served (port taken? set --metrics-listen to another host:port, or empty to turn them off); the agent runs on")
		return a.Run(ctx)
	}
	// The metrics server outlives the agent's shutdown (final flush, bye) and stops after it.
	mctx, stopMetrics := context.WithCancel(context.Background())
	mdone := make(chan error, 1)
	go func() { mdone <- ms.Run(mctx) }()
	runErr := a.Run(ctx)
	stopMetrics()
	if err := <-mdone; err != nil {
		log.Warn().Err(err).Msg("agent metrics server")
	}
	return runErr
}

func expandHome(p string) string {
	if strings.HasPrefix(p, "~/") {
		if h, err := os.UserHomeDir(); err == nil {
			return h + p[1:]
		}
	}
	return p
}
