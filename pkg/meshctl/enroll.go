package meshctl

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/cli"
	"github.com/ringmesh/ringmesh/pkg/enroll"
	"github.com/ringmesh/ringmesh/pkg/events"
	"github.com/ringmesh/ringmesh/pkg/fleet"
	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/registry"
	"github.com/ringmesh/ringmesh/pkg/version"
)

// enrollFlags are meshctl enroll's flags.
type enrollFlags struct {
	all           bool
	prefix        string
	acceptHostKey string
	agentBinary   string
	nodeNATSURL   string
	deadline      time.Duration
	parallel      int
	mode          string
	gossipKeyFile string
	gossipPort    int
	metrics       string
	knownHosts    string
	versionSkew   bool
}

func enrollCmd(o *Options) *cobra.Command {
	var f enrollFlags
	cmd := &cobra.Command{
		Use:               "enroll NODE... | --all",
		ValidArgsFunction: completeNodes(o),
		Short:             "Install the agent on nodes over SSH with their own credentials, start it (systemd or the supervisor) and wait until each shows healthy",
		Long: `Connects to each node's SSH endpoint (as meshctl ssh-config knows it), verifies
its host key (pinned in ` + fleet.KnownHostsFile + `; a first key must match what the
provider or agent reported, --accept-host-key, or be confirmed at the prompt), uploads the agent
for the node's architecture, writes its config, its own node credential (issued by the
coordinator), the CA and the gossip key (mode 0600), starts it and waits for its hello.
Re-running is safe: an agent of the same version is left alone, another one is replaced in
place (its state directory and outbox are kept). One line per node: enrolled, already
current, upgraded, or failed: why. docs/enrollment.md has the details.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.runEnroll(cmd, args, f)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&f.all, "all", false, "every trusted node without a live agent (not retired, stopped or terminated)")
	fl.StringVar(&f.prefix, "prefix", enroll.DefaultPrefix, "install directory on the node (absolute, or ~/DIR in the SSH user's home)")
	fl.StringVar(&f.acceptHostKey, "accept-host-key", "", "trust this host key fingerprint (SHA256:...) for a node not pinned yet (one node)")
	fl.StringVar(&f.agentBinary, "agent-binary", "", "static linux agent binary to upload (default: build ./cmd/agent for the node's architecture when run in a ringmesh source tree)")
	fl.StringVar(&f.nodeNATSURL, "node-nats-url", "", "NATS URLs the node's agent connects to, comma-separated (default: --nats-url)")
	fl.DurationVar(&f.deadline, "deadline", 2*time.Minute, "per node: give up when it has not said hello by then")
	fl.IntVar(&f.parallel, "parallel", 8, "nodes enrolled at the same time")
	fl.StringVar(&f.mode, "mode", enroll.ModeAuto, "how the agent runs: auto (systemd where it is PID 1, else the supervisor), systemd, supervisor")
	fl.StringVar(&f.gossipKeyFile, "gossip-key-file", "", "gossip keyring to install on the node (default $RINGMESH_GOSSIP_KEY; none = the node runs without gossip)")
	fl.IntVar(&f.gossipPort, "gossip-port", 7946, "memberlist port on the node")
	fl.StringVar(&f.metrics, "metrics-listen", "", "the agent's --metrics-listen on the node (default: the agent's own, loopback)")
	fl.BoolVar(&f.versionSkew, "allow-version-skew", false, "install an agent whose version differs from the coordinator's (default: refused)")
	fl.StringVar(&f.knownHosts, "known-hosts", fleet.KnownHostsFile, "known_hosts file of pinned host keys (one line per node ID)")
	return cmd
}

func (o *Options) runEnroll(cmd *cobra.Command, args []string, f enrollFlags) error {
	if f.all == (len(args) > 0) {
		return errors.New("give node IDs or --all (not both)")
	}
	for _, n := range args {
		if err := mesh.ValidateNodeID(n); err != nil {
			return err
		}
	}
	if err := enroll.ValidPrefix(f.prefix); err != nil {
		return err
	}
	if f.acceptHostKey != "" && !events.ValidFingerprint(f.acceptHostKey) {
		return fmt.Errorf("--accept-host-key %q: want SHA256:<43 base64 characters> as ssh-keygen -lf prints it", events.StripControl(f.acceptHostKey))
	}
	if f.acceptHostKey != "" && len(args) != 1 {
		return errors.New("--accept-host-key is for one node at a time")
	}
	switch f.mode {
	case enroll.ModeAuto, enroll.ModeSystemd, enroll.ModeSupervisor:
	default:
		return fmt.Errorf("--mode %q: want auto, systemd or supervisor", f.mode)
	}
	if f.parallel < 1 {
		f.parallel = 1
	}
	var gossipKey []byte
	if f.gossipKeyFile != "" {
		b, err := os.ReadFile(f.gossipKeyFile)
		if err != nil {
			return fmt.Errorf("--gossip-key-file: %w", err)
		}
		gossipKey = b
	} else if k := os.Getenv("RINGMESH_GOSSIP_KEY"); k != "" {
		gossipKey = []byte(strings.TrimSpace(k) + "\n")
	}
	urls := cli.SplitList(f.nodeNATSURL)
	if len(urls) == 0 {
		urls = cli.SplitList(o.NATSURL)
	}
	for _, u := range urls {
		// They go into the node's config file: no user info, nothing but scheme://host:port.
		if !nodeURLRe.MatchString(u) {
			return fmt.Errorf("--node-nats-url %q: want nats://host:port or tls://host:port, comma-separated", bus.RedactURL(u))
		}
	}
	if cmd.Flags().Changed("metrics-listen") && f.metrics != "" && !events.Match("hostport", f.metrics) {
		return fmt.Errorf("--metrics-listen %q: want host:port, or empty for off", events.StripControl(f.metrics))
	}

	c, closeFn, err := o.client()
	if err != nil {
		return err
	}
	defer closeFn()
	ctx, cancel := o.ctx()
	var sc api.SSHConfig
	err = refused(c, c.Call(ctx, api.OpSSHConfig, nil, &sc))
	var st api.Status
	if err == nil {
		st, err = c.StatusAll(ctx)
	}
	cancel()
	if err != nil {
		return err
	}
	nodes, missing := enrollTargets(args, f.all, sc.Entries, st.Nodes)
	if len(missing) > 0 {
		// Boxes rented under their node ID, not in the inventory yet: their
		// provider's listing gives the endpoint.
		var rep fleet.Report
		ctx, cancel := o.ctx()
		err := c.Call(ctx, api.OpInstances, api.InstancesRequest{}, &rep)
		cancel()
		if err == nil {
			nodes, missing = addNamedInstances(nodes, missing, rep)
		}
	}

	bins, cleanup, err := agentBinaries(f.agentBinary, "meshctl enroll")
	if err != nil {
		return err
	}
	defer cleanup()
	ecfg := &enroll.Config{
		Prefix: f.prefix, Pins: enroll.NewPins(expandHome(f.knownHosts)), AcceptHostKey: f.acceptHostKey,
		Binaries: bins, Creds: enroll.APICreds{Client: c}, Waiter: &enroll.StatusWaiter{Client: c},
		NATSURLs: urls, GossipKey: gossipKey, GossipPort: f.gossipPort, Mode: f.mode, Deadline: f.deadline,
		CoordinatorVersion: st.Version, AllowVersionSkew: f.versionSkew,
	}
	if cmd.Flags().Changed("metrics-listen") {
		ecfg.MetricsListen = &f.metrics
	}
	if in, ok := cmd.InOrStdin().(*os.File); ok && isTTY(in) {
		r := bufio.NewReader(in)
		ecfg.Confirm = func(node, fp string) (bool, error) {
			fmt.Fprintf(o.errOut, "%s offers host key %s, which is not pinned and was not reported by its provider or agent.\nCheck it (e.g. on the provider's console: ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub). Trust and pin it? [y/N] ", node, fp)
			line, err := r.ReadString('\n')
			if err != nil && line == "" {
				return false, errors.New("no answer")
			}
			a := strings.ToLower(strings.TrimSpace(line))
			return a == "y" || a == "yes", nil
		}
	}

	var results []enroll.Result
	var mu sync.Mutex
	report := func(r enroll.Result) {
		mu.Lock()
		defer mu.Unlock()
		results = append(results, r)
		if !o.JSON {
			fmt.Fprintln(o.out, r.Line())
		}
	}
	for _, n := range missing {
		report(enroll.Result{Node: n, Outcome: enroll.Failed, Error: "no SSH endpoint known (not in the inventory, no instance of that name at a provider, no agent report): see meshctl ssh-config and meshctl instances"})
	}
	if len(nodes) == 0 && len(missing) == 0 {
		if !o.JSON {
			fmt.Fprintln(o.out, "nothing to enroll: every trusted node has a live agent")
		}
	}
	if len(nodes) > 1 && !o.JSON {
		fmt.Fprintf(o.errOut, "enrolling %d nodes, %d at a time\n", len(nodes), f.parallel)
	}
	sem := make(chan struct{}, f.parallel)
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		sem <- struct{}{}
		go func(n enroll.Node) {
			defer wg.Done()
			defer func() { <-sem }()
			report(ecfg.Enroll(context.Background(), n))
		}(n)
	}
	wg.Wait()
	failed := 0
	for _, r := range results {
		if r.Outcome == enroll.Failed {
			failed++
		}
	}
	if o.JSON {
		if err := o.printJSON(results); err != nil {
			return err
		}
	}
	if failed > 0 {
		return reportedError{fmt.Errorf("%d of %d node(s) failed", failed, len(results))}
	}
	return nil
}

// addNamedInstances moves each missing node that one live instance is
// listed under (fleet.NamedInstanceEntry) into nodes.
func addNamedInstances(nodes []enroll.Node, missing []string, rep fleet.Report) ([]enroll.Node, []string) {
	var still []string
	for _, n := range missing {
		e, iv, ok := fleet.NamedInstanceEntry(rep, n)
		if !ok {
			still = append(still, n)
			continue
		}
		nodes = append(nodes, enroll.Node{Entry: e, Provider: iv.Provider, InstanceID: iv.ID, Ephemeral: mesh.EphemeralByDefault(iv.Provider)})
	}
	return nodes, still
}

// nodeURLRe is what a bus URL written into a node's config may look like.
var nodeURLRe = regexp.MustCompile(`^(nats|tls)://[A-Za-z0-9._-]+(:[0-9]{1,5})?$|^(nats|tls)://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$`)

// enrollTargets pairs each requested node (or, with all, each trusted
// node without a live agent) with its SSH endpoint and registry facts;
// missing are the requested nodes without an endpoint.
func enrollTargets(args []string, all bool, entries []fleet.SSHEntry, recs []registry.Record) (nodes []enroll.Node, missing []string) {
	byNode := map[string]fleet.SSHEntry{}
	for _, e := range entries {
		byNode[e.Node] = e
	}
	recOf := map[string]registry.Record{}
	for _, r := range recs {
		recOf[r.Node] = r
	}
	want := args
	if all {
		want = nil
		for _, r := range recs {
			switch {
			case r.Quarantined, registry.Live(r.State), r.State == mesh.StatePreempting,
				r.State == mesh.StateRetired, r.State == mesh.StateStopped, r.State == mesh.StateTerminated:
				continue
			}
			want = append(want, r.Node)
		}
	}
	for _, n := range want {
		e, ok := byNode[n]
		if !ok {
			missing = append(missing, n)
			continue
		}
		r := recOf[n]
		nodes = append(nodes, enroll.Node{Entry: e, Provider: r.Provider, InstanceID: r.InstanceID, Role: r.Role, Ephemeral: r.Ephemeral})
	}
	return nodes, missing
}

// stopAgentAfterRevoke stops name's agent over SSH when an endpoint is
// known; it returns what was stopped ("" when no endpoint is known) or
// why it could not. A failure never undoes the revoke.
func (o *Options) stopAgentAfterRevoke(name, prefix, knownHosts string) (stopped, problem string) {
	sc, err := o.sshConfig()
	if err != nil {
		return "", err.Error()
	}
	var e *fleet.SSHEntry
	for i := range sc.Entries {
		if sc.Entries[i].Node == name {
			e = &sc.Entries[i]
		}
	}
	if e == nil {
		return "", ""
	}
	cfg := &enroll.Config{Prefix: prefix, Pins: enroll.NewPins(expandHome(knownHosts))}
	what, err := cfg.Stop(context.Background(), *e)
	if err != nil {
		return "", err.Error()
	}
	return what, ""
}

func forgetCmd(o *Options) *cobra.Command {
	return &cobra.Command{
		Use:               "forget NODE",
		ValidArgsFunction: completeNodes(o),
		Short:             "Remove a departed node (dead, terminated, stopped, retired, left, or revoked) from the registry (admin; audited; a live node is refused)",
		Args:              cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := mesh.ValidateNodeID(args[0]); err != nil {
				return err
			}
			var out api.Forgotten
			if err := o.call(api.OpForget, api.ForgetRequest{Node: args[0]}, &out); err != nil {
				return err
			}
			if o.JSON {
				return o.printJSON(out)
			}
			fmt.Fprintf(o.out, "forgot %s (it was %s)\n", out.Node, out.State)
			if out.Configured {
				fmt.Fprintf(o.out, "%s is still in the inventory: it comes back (as unknown) when the coordinator restarts unless you remove it from distributed_hosts.yaml\n", out.Node)
			}
			return nil
		},
	}
}

// agentBinaries gives the agent binaries to upload: the file given with
// --agent-binary, else builds of ./cmd/agent when cmd runs inside a
// ringmesh source tree (removed by cleanup).
func agentBinaries(flag, cmd string) (enroll.Binaries, func(), error) {
	if flag != "" {
		return enroll.File{Path: flag}, func() {}, nil
	}
	wd, _ := os.Getwd()
	root := enroll.FindSourceTree(wd)
	if root == "" {
		return nil, nil, fmt.Errorf("no agent binary: pass --agent-binary (ringmesh-agent from the release archive for the node's architecture), or run %s inside a ringmesh source tree to build it", cmd)
	}
	dir, err := os.MkdirTemp("", "ringmesh-agent-build-")
	if err != nil {
		return nil, nil, err
	}
	return &enroll.SourceBuild{Dir: root, Version: version.String(), OutDir: dir}, func() { os.RemoveAll(dir) }, nil
}
