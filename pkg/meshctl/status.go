package meshctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/cli"
	"github.com/ringmesh/ringmesh/pkg/events"
	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/registry"
	"github.com/ringmesh/ringmesh/pkg/view"
)

// defaultStatusRows is how many node rows `status` shows without --all:
// the ones that need attention come first, so these are the ones to read.
const defaultStatusRows = 50

// statusQuery is what `meshctl status` asks for.
type statusQuery struct {
	states, providers string
	all, watch        bool
	interval          time.Duration
}

// request validates the flags into an API request (one page of
// defaultStatusRows unless all).
func (q statusQuery) request() (api.StatusRequest, error) {
	r := api.StatusRequest{ProblemsFirst: true}
	for _, s := range cli.SplitList(q.states) {
		if !mesh.KnownState(mesh.NodeState(s)) {
			return r, fmt.Errorf("--state %q: not a node state (healthy, degraded, suspect, dead, bus-partitioned, preempting, preempted, stopped, terminated, retired, left, joining, unknown)", events.StripControl(s))
		}
		r.States = append(r.States, mesh.NodeState(s))
	}
	for _, p := range cli.SplitList(q.providers) {
		if !events.Match("node", p) {
			return r, fmt.Errorf("--provider %q: not a provider name", events.StripControl(p))
		}
		r.Providers = append(r.Providers, p)
	}
	if !q.all {
		r.Limit = defaultStatusRows
	}
	return r, nil
}

func statusCmd(o *Options) *cobra.Command {
	var q statusQuery
	cmd := &cobra.Command{
		Use:               "status [NODE...]",
		ValidArgsFunction: completeNodes(o),
		Short:             "Show the cluster: a summary by state and provider, then the nodes that need attention first (--all for every node); with NODE, that node's detail",
		Args:              cobra.MaximumNArgs(32),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				if q.watch || q.all || q.states != "" || q.providers != "" {
					return errors.New("status NODE shows those nodes: --watch, --all, --state and --provider are for the cluster view")
				}
				return o.nodeStatus(args)
			}
			req, err := q.request()
			if err != nil {
				return err
			}
			if o.JSON {
				req.Limit = 0 // scripts get every matching node
			}
			if !q.watch {
				st, err := o.statusPage(req, q.all || o.JSON)
				if err != nil {
					return err
				}
				if o.JSON {
					return o.printJSON(st)
				}
				return printStatus(o.out, st)
			}
			if q.interval < 500*time.Millisecond {
				return fmt.Errorf("--interval %s: at least 500ms", q.interval)
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return o.watchStatus(ctx, req, q)
		},
	}
	cmd.Flags().StringVar(&q.states, "state", "", "only nodes in these states, comma-separated (e.g. dead,suspect)")
	cmd.Flags().StringVar(&q.providers, "provider", "", "only nodes of these providers, comma-separated (e.g. vast,runpod)")
	cmd.Flags().BoolVar(&q.all, "all", false, fmt.Sprintf("show every matching node, not only the first %d", defaultStatusRows))
	cmd.Flags().BoolVar(&q.watch, "watch", false, "redraw every --interval until interrupted")
	cmd.Flags().DurationVar(&q.interval, "interval", 2*time.Second, "refresh interval of --watch")
	return cmd
}

// statusPage fetches one page of req, or every page when all.
func (o *Options) statusPage(req api.StatusRequest, all bool) (api.Status, error) {
	c, closeFn, err := o.client()
	if err != nil {
		return api.Status{}, err
	}
	defer closeFn()
	ctx, cancel := o.ctx()
	defer cancel()
	if all {
		return c.StatusMatching(ctx, req)
	}
	var st api.Status
	return st, c.Call(ctx, api.OpStatus, req, &st)
}

// watchStatus redraws the status until ctx ends. On a terminal the screen
// is cleared before each frame; otherwise frames follow each other. A
// failed fetch is shown in the frame and retried, never fatal.
func (o *Options) watchStatus(ctx context.Context, req api.StatusRequest, q statusQuery) error {
	tty := isTerminal(o.out)
	for {
		st, err := o.statusPage(req, q.all)
		var b strings.Builder
		fmt.Fprintf(&b, "every %s, %s (Ctrl-C to stop)\n", q.interval, time.Now().Format("15:04:05"))
		if err != nil {
			fmt.Fprintf(&b, "status: %v\n", err)
		} else if err := printStatus(&b, st); err != nil {
			return err
		}
		if tty {
			fmt.Fprint(o.out, "\x1b[H\x1b[2J")
		} else {
			fmt.Fprintln(o.out)
		}
		fmt.Fprint(o.out, b.String())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(q.interval):
		}
	}
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// summaryLine is "healthy 9 · dead 2 · …  |  vast 5 · runpod 2 · …", states
// in severity order, providers by count.
func summaryLine(st api.Status) string {
	var states []string
	for s := range st.Counts {
		states = append(states, string(s))
	}
	sort.Slice(states, func(i, j int) bool {
		a, b := mesh.NodeState(states[i]), mesh.NodeState(states[j])
		if sa, sb := mesh.StateSeverity(a), mesh.StateSeverity(b); sa != sb {
			return sa < sb
		}
		return a < b
	})
	var parts []string
	for _, s := range states {
		if n := st.Counts[mesh.NodeState(s)]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", view.Clean(s), n))
		}
	}
	var provs []string
	for p := range st.ProviderCounts {
		provs = append(provs, p)
	}
	sort.Slice(provs, func(i, j int) bool {
		if a, b := st.ProviderCounts[provs[i]], st.ProviderCounts[provs[j]]; a != b {
			return a > b
		}
		return provs[i] < provs[j]
	})
	var pp []string
	for _, p := range provs {
		pp = append(pp, fmt.Sprintf("%s %d", view.Clean(dash(p)), st.ProviderCounts[p]))
	}
	line := strings.Join(parts, " · ")
	if len(pp) > 0 {
		line += "  |  " + strings.Join(pp, " · ")
	}
	if st.Quarantined > 0 {
		line += fmt.Sprintf("  |  quarantined %d", st.Quarantined)
	}
	return line
}

func printStatus(w io.Writer, st api.Status) error {
	fmt.Fprintf(w, "coordinator %s  leader %s  nodes %d  (suspect after %gs, dead after %gs)\n",
		view.Clean(st.Coordinator), view.Clean(dash(st.Leader)), max(st.Total, len(st.Nodes)), st.Thresholds.SuspectAfterSeconds, st.Thresholds.DeadAfterSeconds)
	if st.Matched > 0 && st.Matched < st.Total {
		fmt.Fprintf(w, "%d match the filters\n", st.Matched)
	}
	if line := summaryLine(st); line != "" {
		fmt.Fprintln(w, line)
	}
	fmt.Fprintln(w)
	if len(st.Voters) > 0 {
		vw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(vw, "VOTER\tLEADER\tSTATE\tNATS SERVER\tPENDING")
		for _, v := range st.Voters {
			lead := ""
			if v.Leader {
				lead = "*"
			}
			fmt.Fprintf(vw, "%s\t%s\t%s\t%s\t%d\n", view.Clean(v.Name), lead, view.Clean(v.State), view.Clean(dash(v.Server)), v.Pending)
		}
		vw.Flush()
		fmt.Fprintln(w)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tPROVIDER\tROLE\tSTATE\tGOSSIP\tGPUS\tGPU UTIL\tDISK FREE\tRPO\tLAST SEEN\tAGENT\tTRUST")
	for _, r := range view.StatusRows(st.Nodes, st.GeneratedAt) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Node, r.Provider, r.Role, r.State, r.Gossip, r.GPUs, r.GPUUtil, r.DiskFree, r.RPO, r.LastSeen, r.Version, r.Trust)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	warned := 0
	for _, n := range st.Nodes {
		if strings.Contains(n.Cause, "no sync target") && warned < 20 {
			if warned == 0 {
				fmt.Fprintln(w)
			}
			fmt.Fprintf(w, "warning: %s: %s\n", view.Clean(n.Node), view.Clean(n.Cause))
			warned++
		}
	}
	if more := st.Matched - st.Offset - len(st.Nodes); st.NextOffset > 0 && more > 0 {
		fmt.Fprintf(w, "… and %d more (--all to show every node, --state/--provider to filter)\n", more)
	}
	return nil
}

// completeNodes completes a NODE argument with the node IDs the
// coordinator knows (at most a short wait; nothing on error).
func completeNodes(o *Options) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(_ *cobra.Command, args []string, prefix string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		saved := o.Timeout
		o.Timeout = min(o.Timeout, 3*time.Second)
		st, err := o.statusPage(api.StatusRequest{}, true)
		o.Timeout = saved
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []string
		for _, n := range st.Nodes {
			if strings.HasPrefix(n.Node, prefix) && events.Match("node", n.Node) {
				out = append(out, n.Node)
			}
		}
		slices.Sort(out)
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// nodeStatus prints the named nodes' detail (or their records with
// --json); a node the coordinator does not know is an error naming it.
func (o *Options) nodeStatus(nodes []string) error {
	for _, n := range nodes {
		if err := mesh.ValidateNodeID(n); err != nil {
			return err
		}
	}
	st, err := o.statusPage(api.StatusRequest{Nodes: nodes}, true)
	if err != nil {
		return err
	}
	byName := map[string]registry.Record{}
	for _, r := range st.Nodes {
		byName[r.Node] = r
	}
	var missing []string
	for _, n := range nodes {
		if _, ok := byName[n]; !ok {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("not known to the coordinator: %s (meshctl status lists the nodes)", strings.Join(missing, ", "))
	}
	if o.JSON {
		return o.printJSON(st.Nodes)
	}
	now := st.GeneratedAt
	if now.IsZero() {
		now = time.Now()
	}
	for i, n := range nodes {
		if i > 0 {
			fmt.Fprintln(o.out)
		}
		if err := printNodeDetail(o.out, byName[n], now); err != nil {
			return err
		}
	}
	return nil
}
