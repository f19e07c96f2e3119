// Command coordinator runs the ringmesh control plane on a voter: an
// embedded NATS JetStream server (or a connection to an existing one), the
// registry, the meshctl API and the HTTP endpoints. With --dev it also runs
// an agent for this machine in the same process.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/internal/demosim"
	"github.com/ringmesh/ringmesh/pkg/agent"
	"github.com/ringmesh/ringmesh/pkg/agentmetrics"
	"github.com/ringmesh/ringmesh/pkg/auth"
	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/bus/busserver"
	"github.com/ringmesh/ringmesh/pkg/cli"
	"github.com/ringmesh/ringmesh/pkg/cli/gossipflags"
	"github.com/ringmesh/ringmesh/pkg/config"
	"github.com/ringmesh/ringmesh/pkg/coordinator"
	"github.com/ringmesh/ringmesh/pkg/cost"
	"github.com/ringmesh/ringmesh/pkg/fleet"
	"github.com/ringmesh/ringmesh/pkg/fleet/clouds"
	"github.com/ringmesh/ringmesh/pkg/logging"
	"github.com/ringmesh/ringmesh/pkg/providers"
	"github.com/ringmesh/ringmesh/pkg/providers/demo"
	"github.com/ringmesh/ringmesh/pkg/registry"
	"github.com/ringmesh/ringmesh/pkg/version"
)

// EnvVastWebhookSecret holds the secret of the Vast.ai webhook (the key of
// its X-Vast-Signature-256 HMAC-SHA256). Set, it enables POST
// /webhooks/vast on the --http listener. It is read from the environment
// only (never a flag: argv is readable by every local user), never logged,
// and removed from the environment once read, so the processes the
// coordinator starts (the nebius CLI) do not inherit it.
const EnvVastWebhookSecret = "RINGMESH_VAST_WEBHOOK_SECRET"

func main() {
	// With --demo this binary also serves as the fake nebius CLI.
	demo.RunFakeCLIIfInvoked()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "coordinator:", err)
		os.Exit(1)
	}
}

// usageEnv is the environment section of -h: the variables read directly,
// besides RINGMESH_<FLAG> for every flag.
func usageEnv(fs *flag.FlagSet) func() {
	return func() {
		out := fs.Output()
		fmt.Fprintf(out, "Usage of %s:\n", fs.Name())
		fs.PrintDefaults()
		fmt.Fprintf(out, "\nEnvironment: RINGMESH_<FLAG> sets any flag not given (e.g. RINGMESH_NATS_URL). Read directly, never logged:\n")
		fmt.Fprintf(out, "  %s\n    \tenables POST /webhooks/vast (HMAC-SHA256 key of X-Vast-Signature-256)\n", EnvVastWebhookSecret)
		fmt.Fprintf(out, "  RINGMESH_GOSSIP_KEY\n    \tbase64 gossip encryption key (or --gossip-key-file)\n")
		names := make([]string, 0, len(providers.DefaultCredentialSources))
		for p, src := range providers.DefaultCredentialSources {
			names = append(names, fmt.Sprintf("  %s\n    \t%s API credential (or the file %s)", src.Env, p, src.File))
		}
		sort.Strings(names)
		fmt.Fprintln(out, strings.Join(names, "\n"))
	}
}

// vastWebhookSecret takes the webhook secret out of the environment
// (surrounding blanks, as an env file may leave them, are trimmed).
func vastWebhookSecret() string {
	s := strings.TrimSpace(os.Getenv(EnvVastWebhookSecret))
	_ = os.Unsetenv(EnvVastWebhookSecret)
	return s
}

// run runs the coordinator until ctx ends (main: SIGINT or SIGTERM).
func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("coordinator", flag.ContinueOnError)
	var (
		dev          = fs.Bool("dev", false, "development mode: embedded NATS on 127.0.0.1, data under ./ringmesh-data, plus an agent for this machine")
		name         = fs.String("name", "", "this coordinator's node ID (default: the host name)")
		dataDir      = fs.String("data-dir", "", "state directory (JetStream store, dev agent state); default ./ringmesh-data with --dev, else /var/lib/ringmesh")
		inventory    = fs.String("inventory", "", "path to distributed_hosts.yaml (optional)")
		natsURL      = fs.String("nats-url", "", "connect to an existing NATS server/cluster (comma-separated URLs) instead of embedding one")
		natsListen   = fs.String("nats-listen", "127.0.0.1:4222", "embedded NATS client listen address host:port")
		natsMonitor  = fs.Int("nats-monitor-port", 0, "embedded NATS HTTP monitoring port (0 = off)")
		httpAddr     = fs.String("http", "127.0.0.1:8077", "HTTP listen address for /healthz, /readyz, /metrics and the status page (empty = off)")
		httpToken    = fs.String("http-token-file", "", "file holding the bearer token the status page and /api/* require (default: $"+coordinator.HTTPTokenEnv+"; unset = open)")
		suspectAfter = fs.Duration("suspect-after", 15*time.Second, "no heartbeat for this long makes a node suspect")
		deadAfter    = fs.Duration("dead-after", 45*time.Second, "no heartbeat for this long makes a node dead (or bus-partitioned if gossip still sees it)")
		heartbeat    = fs.Duration("agent-heartbeat", 5*time.Second, "with --dev: heartbeat interval of the local agent")
		logLevel     = fs.String("log-level", "info", "log level: trace, debug, info, warn, error")
		logFormat    = fs.String("log-format", "console", "log format: console or json")
		showVersion  = fs.Bool("version", false, "print the version and exit")
		clusterAddr  = fs.String("nats-cluster-listen", "", "enable the embedded NATS cluster: route listen address host:port (e.g. 0.0.0.0:6222)")
		clusterName  = fs.String("nats-cluster-name", "ringmesh", "NATS cluster name (all voters alike)")
		routes       = fs.String("nats-routes", "", "routes to the other voters, comma-separated nats-route://host:port")
		replicas     = fs.Int("replicas", 0, "stream and bucket replicas: 1 standalone, 3 clustered (default: 3 when --nats-cluster-listen or --nats-url lists 3+ servers, else 1)")
		syncAlways   = fs.Bool("nats-sync-always", false, "fsync every JetStream write (default on when clustered)")
		demoMode     = fs.Bool("demo", false, "demo: --dev plus local fakes of all six cloud APIs, a matching inventory and simulated agents for its nodes (no real cloud is contacted)")
		authDir      = fs.String("auth-dir", "", "issuer store (operator, account keys, CA; see deploy/README.md); default <data-dir>/auth, created by --dev/--demo")
		creds        = fs.String("creds", "", "with --nats-url: this coordinator's NATS credentials file (role coordinator)")
		caFile       = fs.String("ca", "", "with --nats-url: the ringmesh CA to pin (default <auth-dir>/ca.pem when the store is here)")
		tlsHosts     = fs.String("tls-hosts", "", "extra host names/IPs of this voter for its NATS server certificate, comma-separated (loopback is always in)")
		noAuth       = fs.Bool("insecure-no-auth", false, "run the bus without authentication or TLS (anyone who reaches the port can command every node; never outside a lab)")
		fleetSize    = fs.Int("fleet-size", 1000, "nodes the events stream MESH_EVT is sized for (its byte cap grows with it; heartbeats are kept 60 per node, the rarer events up to 7 days)")
		reconcile    = fs.Duration("reconcile-interval", 30*time.Second, "how often every provider is listed and reconciled with the nodes")
		policyEvery  = fs.Duration("policy-interval", 30*time.Second, "how often the leader runs the inventory's policies (idle, budget, fleet size)")
		claimStale   = fs.Duration("launch-claim-stale", 5*time.Minute, "how long a launch claimed by a coordinator that died in the create call blocks a retry; after it the retry looks for the request ID at the cloud first (must exceed the longest create call: 30 s per attempt)")
		launchNATS   = fs.String("launch-nats-url", "", "NATS URL(s) a node started by meshctl launch connects to (tls://voter:4222, comma-separated); empty = launches refused, except with --dev/--demo (the local listener)")
		launchAgent  = fs.String("launch-agent-url", "", "http(s) URL a launched node downloads the agent binary from when its image has no ringmesh-agent")
	)
	gf := gossipflags.Add(fs)
	fs.Usage = usageEnv(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *showVersion { // before the environment: --version never fails and never starts anything
		return version.Fprint(os.Stdout, "ringmesh-coordinator")
	}
	if err := cli.ApplyEnv(fs, "RINGMESH"); err != nil {
		return err
	}
	for name, d := range map[string]time.Duration{"--reconcile-interval": *reconcile, "--policy-interval": *policyEvery, "--launch-claim-stale": *claimStale} {
		if d <= 0 {
			return fmt.Errorf("%s %s: must be positive", name, d)
		}
	}
	log, err := logging.Stderr(*logFormat, *logLevel)
	if err != nil {
		return err
	}
	webhookSecret := vastWebhookSecret()
	if webhookSecret != "" {
		if *httpAddr == "" {
			log.Warn().Msg(EnvVastWebhookSecret + " is set but --http is off: the Vast webhook cannot be reached")
		} else {
			log.Info().Str("http", *httpAddr).Msg("Vast webhook enabled: POST /webhooks/vast (signature checked with " + EnvVastWebhookSecret + ")")
		}
	}
	if *demoMode {
		*dev = true
		if *name == "" {
			*name = "hetzner-cpu1"
		}
	}
	if *name == "" {
		*name = cli.DefaultNodeID()
	}
	if *dataDir == "" {
		switch {
		case *demoMode:
			*dataDir = "ringmesh-demo" // kept apart from --dev: the demo's fake nodes would mix into its registry
		case *dev:
			*dataDir = "ringmesh-data"
		default:
			*dataDir = "/var/lib/ringmesh"
		}
	}
	var inv *config.Inventory
	if *inventory == "" && *demoMode {
		if inv, err = config.Parse("demo-inventory.yaml", []byte(demo.DemoInventory)); err != nil {
			return err
		}
	}
	if *inventory != "" {
		if inv, err = config.LoadFile(*inventory); err != nil {
			return err
		}
		for _, w := range inv.Warnings {
			log.Warn().Str("where", w.Where).Str("field", w.Field).Msg(w.Msg)
		}
	}
	if *dev && *gf.Listen == "" {
		*gf.Listen = "127.0.0.1:0" // dev: gossip on loopback, unencrypted
	}
	gcfg, err := gf.Config(inv, *dev)
	if err != nil {
		return err
	}
	host, port, err := splitHostPort(*natsListen)
	if err != nil {
		return fmt.Errorf("--nats-listen: %w", err)
	}
	iss, err := openAuth(*authDir, *dataDir, *dev, *noAuth, *natsURL != "", *name, log)
	if err != nil {
		return err
	}
	if *natsURL != "" && iss != nil && *creds == "" {
		return errors.New("--nats-url needs --creds (this coordinator's credentials, role coordinator)")
	}
	if *caFile == "" && iss != nil && *natsURL != "" {
		*caFile = iss.CAFile()
	}
	metrics := prometheus.NewRegistry()
	var provs *providers.Registry
	switch {
	case *demoMode:
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		fakes, err := demo.StartFakes(context.Background(), demo.Options{NebiusCLI: exe})
		if err != nil {
			return fmt.Errorf("demo fakes: %w", err)
		}
		defer fakes.Close()
		list, err := fakes.Providers(log)
		if err != nil {
			return fmt.Errorf("demo providers: %w", err)
		}
		provs = providers.NewRegistry()
		for _, p := range list {
			provs.Register(fleet.Wrap(p, inv, log, fleet.BuildOptions{Registerer: metrics}))
		}
		for name, why := range fakes.NotConfigured() {
			provs.RegisterUnconfigured(name, why)
		}
		log.Info().Strs("providers", provs.Names()).Msg("demo: providers are local fakes")
	case inv != nil:
		provs = clouds.BuildProviders(inv, log, fleet.BuildOptions{Registerer: metrics})
	}
	var tracker *cost.Tracker
	var rec *fleet.Reconciler
	if provs != nil {
		tracker = cost.New(cost.Options{})
		rec = fleet.NewReconciler(provs, inv, tracker, log, nil)
	}
	embedded := busserver.ServerConfig{
		Name: "ringmesh-" + *name, Host: host, Port: port, StoreDir: filepath.Join(*dataDir, "nats"), MonitorPort: *natsMonitor, SyncAlways: *syncAlways,
	}
	clustered := *clusterAddr != "" || len(cli.SplitList(*natsURL)) >= 3
	if *clusterAddr != "" {
		chost, cport, err := splitHostPort(*clusterAddr)
		if err != nil {
			return fmt.Errorf("--nats-cluster-listen: %w", err)
		}
		embedded.ClusterName, embedded.ClusterHost, embedded.ClusterPort = *clusterName, chost, cport
		embedded.Routes = cli.SplitList(*routes)
		if !isSet(fs, "nats-sync-always") {
			embedded.SyncAlways = true
		}
	}
	if *replicas == 0 {
		*replicas = 1
		if clustered {
			*replicas = 3
		}
	}
	cfg := coordinator.Config{
		Registry:          metrics,
		Fleet:             rec,
		Cost:              tracker,
		ReconcileInterval: *reconcile,
		PolicyInterval:    *policyEvery,
		LaunchClaimStale:  *claimStale,
		Name:              *name,
		NATSURLs:          cli.SplitList(*natsURL),
		Embedded:          embedded,
		Topology:          bus.Topology{Replicas: *replicas, Nodes: *fleetSize},
		Elect:             clustered,
		Gossip:            gcfg,
		Auth:              iss,
		CredsFile:         *creds,
		CAFile:            *caFile,
		TLSHosts:          append(cli.SplitList(*tlsHosts), *name, hostname()),
		HTTPAddr:          *httpAddr,
		HTTPTokenFile:     *httpToken,
		Inventory:         inv,
		Thresholds:        registry.Thresholds{SuspectAfter: *suspectAfter, DeadAfter: *deadAfter},
		VastWebhookSecret: webhookSecret,
	}
	if *launchNATS == "" && *dev {
		scheme := "tls://"
		if iss == nil {
			scheme = "nats://"
		}
		*launchNATS = scheme + *natsListen
	}
	if *launchNATS != "" {
		as := coordinator.AgentScript{NATSURL: *launchNATS, AgentURL: *launchAgent}
		ca := *caFile
		if iss != nil {
			ca = iss.CAFile()
		}
		if ca != "" {
			if as.CAPEM, err = os.ReadFile(ca); err != nil {
				return fmt.Errorf("--launch-nats-url: the CA a launched node pins: %w", err)
			}
		}
		cfg.Startup = as
	}
	coord, err := coordinator.New(cfg, log)
	if err != nil {
		return err
	}
	coordErr, agentErr := make(chan error, 1), make(chan error, 1)
	cctx, cancelCoord := context.WithCancel(context.Background())
	defer cancelCoord()
	go func() { coordErr <- coord.Run(cctx) }()
	coordDone, agentRunning := false, false
	var runErr error

	actx, cancelAgent := context.WithCancel(context.Background())
	defer cancelAgent()
	var simDone chan struct{} // closed when the demo's simulated agents have said bye
	if *dev {
		select {
		case <-coord.Started():
		case runErr = <-coordErr:
			return runErr
		case <-ctx.Done():
			cancelCoord()
			return <-coordErr
		}
		a, err := devAgent(coord, iss, inv, *name, *dataDir, *heartbeat, log)
		if err != nil {
			cancelCoord()
			<-coordErr
			return err
		}
		// The in-process agent's series (ringmesh_agent_*) join the coordinator's /metrics.
		if err := metrics.Register(agentmetrics.NewCollector(a, *name, version.String())); err != nil {
			log.Warn().Err(err).Msg("dev agent metrics not registered")
		}
		agentRunning = true
		go func() { agentErr <- a.Run(actx) }()
		hint := "go run ./cmd/meshctl status --nats-url " + coord.ClientURL()
		if iss != nil && *dataDir != "ringmesh-data" {
			hint += " --creds " + filepath.Join(*dataDir, "creds", "admin.creds")
		}
		if *demoMode {
			// The demo's other nodes: simulated agents (internal/demosim), not this machine's.
			// One provider listing first, so that a stopped instance's agent never starts.
			rctx, rcancel := context.WithTimeout(ctx, 15*time.Second)
			coord.ReconcileNow(rctx)
			rcancel()
			simDone = make(chan struct{})
			opts := demosim.Options{URLs: []string{coord.ClientURL()}, Inventory: inv, Skip: []string{*name}, Heartbeat: *heartbeat,
				Down: func(node string) bool { return instanceDown(coord, node) }}
			if iss != nil {
				// Each simulated node connects as itself, with its own node credentials.
				opts.Connect = func(node string) (*nats.Conn, error) {
					creds := filepath.Join(*dataDir, "creds", node+".creds")
					if err := iss.EnsureCreds(auth.RoleNode, node, creds); err != nil {
						return nil, err
					}
					return bus.Connect(bus.ConnConfig{URLs: []string{coord.ClientURL()}, Name: node, CredsFile: creds, CAFile: iss.CAFile()}, log.With().Str("sim", node).Logger())
				}
			}
			go func() {
				defer close(simDone)
				if err := demosim.Run(actx, opts, log); err != nil {
					log.Error().Err(err).Msg("demo: simulated agents stopped")
				}
			}()
		}
		log.Info().Str("nats", coord.ClientURL()).Str("http", "http://"+coord.HTTPAddr()).
			Msg("dev mode: try `" + hint + "`")
	}
	select {
	case <-ctx.Done():
	case runErr = <-coordErr:
		coordDone = true
	case runErr = <-agentErr:
		agentRunning = false
	}
	// Stop the agent first so that its bye reaches the coordinator.
	cancelAgent()
	if agentRunning {
		select {
		case err := <-agentErr:
			if runErr == nil {
				runErr = err
			}
		case <-time.After(10 * time.Second):
			log.Warn().Msg("dev agent did not stop within 10s")
		}
	}
	if simDone != nil {
		select {
		case <-simDone:
		case <-time.After(10 * time.Second):
			log.Warn().Msg("demo: simulated agents did not stop within 10s")
		}
	}
	cancelCoord()
	if !coordDone {
		if err := <-coordErr; runErr == nil {
			runErr = err
		}
	}
	if errors.Is(runErr, context.Canceled) {
		runErr = nil
	}
	return runErr
}

func devAgent(coord *coordinator.Coordinator, iss *auth.Issuer, inv *config.Inventory, name, dataDir string, hb time.Duration, log zerolog.Logger) (*agent.Agent, error) {
	cfg := agent.Config{
		NodeID:            name,
		NATSURLs:          []string{coord.ClientURL()},
		StateDir:          filepath.Join(dataDir, "agent"),
		HeartbeatInterval: hb,
		Version:           version.String(),
		Dev:               true,
		Role:              "coordinator",
	}
	if inv != nil {
		cfg.Host = inv.Hosts[name]
	}
	if iss != nil {
		cfg.CredsFile = filepath.Join(dataDir, "creds", name+".creds")
		if err := iss.EnsureCreds(auth.RoleNode, name, cfg.CredsFile); err != nil {
			return nil, err
		}
		cfg.CAFile = iss.CAFile()
	}
	// The in-process agent does not gossip: the coordinator's own member,
	// named like this machine, already represents it.
	return agent.New(cfg, log)
}

// openAuth opens the issuer store. --dev and --demo create it and the
// operators' credentials under <data-dir>/creds (admin.creds, viewer.creds,
// ca.pem); a production voter needs a store made with `meshctl creds init`,
// or --insecure-no-auth. With --nats-url the store is optional (it enables
// signed-request checks and revoke).
func openAuth(dir, dataDir string, dev, noAuth, external bool, name string, log zerolog.Logger) (*auth.Issuer, error) {
	if noAuth {
		log.Warn().Msg("--insecure-no-auth: the bus has no authentication and no TLS; anyone who reaches it can read every node and command them")
		return nil, nil
	}
	if dir == "" {
		dir = filepath.Join(dataDir, "auth")
	}
	if !dev {
		iss, err := auth.OpenExisting(dir)
		if err != nil && external {
			log.Warn().Str("auth_dir", dir).Msg("no issuer store: API requests are not signature-checked and revoke is unavailable on this coordinator")
			return nil, nil
		}
		return iss, err
	}
	iss, err := auth.Open(dir)
	if err != nil {
		return nil, err
	}
	credsDir := filepath.Join(dataDir, "creds")
	for _, u := range []struct {
		role auth.Role
		name string
	}{{auth.RoleAdmin, "admin"}, {auth.RoleViewer, "viewer"}, {auth.RoleBootstrap, auth.BootstrapName}} {
		if err := iss.EnsureCreds(u.role, u.name, filepath.Join(credsDir, u.name+".creds")); err != nil {
			return nil, err
		}
	}
	ca, err := os.ReadFile(iss.CAFile())
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(credsDir, "ca.pem"), ca, 0o600); err != nil {
		return nil, err
	}
	log.Info().Str("creds", credsDir).Msg("dev: bus authentication on; operator credentials admin.creds and viewer.creds, bootstrap.creds for enrollment tokens, CA ca.pem")
	return iss, nil
}

// hostname is the machine's host name ("" when unknown), for the server certificate.
func hostname() string {
	h, _ := os.Hostname()
	return h
}

// instanceDown reports whether the providers list node's instance as not
// running (stopped, terminated, gone): the demo's simulated agent of a
// stopped instance is silent, as a real one would be.
func instanceDown(coord *coordinator.Coordinator, node string) bool {
	for _, r := range coord.Status().Nodes {
		if r.Node == node {
			in := r.Instance
			return in != nil && (in.Gone || (in.State != string(providers.StateRunning) && in.State != string(providers.StateStarting)))
		}
	}
	return false
}

func splitHostPort(s string) (string, int, error) {
	var host string
	var port int
	i := len(s) - 1
	for i >= 0 && s[i] != ':' {
		i--
	}
	if i < 0 {
		return "", 0, fmt.Errorf("%q: want host:port", s)
	}
	host = s[:i]
	if _, err := fmt.Sscanf(s[i+1:], "%d", &port); err != nil || port < -1 || port > 65535 {
		return "", 0, fmt.Errorf("%q: bad port", s)
	}
	return host, port, nil
}

func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			set = true
		}
	})
	return set
}
