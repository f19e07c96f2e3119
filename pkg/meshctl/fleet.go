package meshctl

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"

	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/events"
	"github.com/ringmesh/ringmesh/pkg/fleet"
	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/paths"
	"github.com/ringmesh/ringmesh/pkg/view"
)

func instancesCmd(o *Options) *cobra.Command {
	var provider string
	cmd := &cobra.Command{
		Use:   "instances",
		Short: "List every provider's instances with state, GPUs, price, SSH endpoints and the node each is linked to",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if provider != "" && !mesh.KnownProvider(provider) {
				return fmt.Errorf("--provider %q: want one of %s", provider, strings.Join(mesh.Providers, ", "))
			}
			var rep fleet.Report
			if err := o.call(api.OpInstances, api.InstancesRequest{Provider: provider}, &rep); err != nil {
				return err
			}
			if o.JSON {
				return o.printJSON(rep)
			}
			tw := tabwriter.NewWriter(o.out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "PROVIDER\tINSTANCE\tNAME\tNODE\tSTATE\tRAW\tGPU\tPRICE/H\tSSH")
			for _, iv := range rep.Instances {
				node := iv.Node
				if node == "" {
					node = "(no agent)"
				}
				state := string(iv.State)
				if iv.Stale {
					state += " (stale)"
				}
				gpu := "-"
				if iv.GPUCount > 0 {
					gpu = fmt.Sprintf("%dx %s", iv.GPUCount, iv.GPUModel)
				}
				price := view.Unknown
				if iv.Price.Known() {
					price = fmt.Sprintf("%.3f %s", iv.Price.PerHour, iv.Price.Currency)
				}
				var eps []string
				for _, e := range iv.SSH {
					eps = append(eps, string(e.Kind)+" "+e.String())
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", iv.Provider, iv.ID, iv.Name, node, state, iv.RawState, gpu, price, strings.Join(eps, ", "))
			}
			tw.Flush()
			fmt.Fprintln(o.out)
			for _, p := range rep.Providers {
				line := fmt.Sprintf("%s: %s", p.Name, p.State)
				if p.Retired {
					line += " (retired)"
				}
				if p.Error != "" {
					line += ": " + p.Error
				}
				fmt.Fprintln(o.out, line)
			}
			for _, n := range rep.AgentsWithoutInstances {
				fmt.Fprintf(o.out, "node without instance: %s (%s): %s\n", n.Node, n.Provider, n.Reason)
			}
			for _, ch := range rep.EndpointChanges {
				fmt.Fprintf(o.out, "endpoint moved: %s %s %s: %s -> %s\n", ch.Node, ch.Provider, ch.Kind, ch.From, ch.To)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&provider, "provider", "", "only this provider (vast, runpod, lambda, vultr, hetzner, nebius)")
	return cmd
}

func actionCmd(o *Options, op string) *cobra.Command {
	var yes, dryRun, force bool
	var reason string
	cmd := &cobra.Command{
		Use:               op + " NODE",
		ValidArgsFunction: completeNodes(o),
		Short:             strings.ToUpper(op[:1]) + op[1:] + " a node's instance through its provider (asks for confirmation; --dry-run shows the decision only)",
		Args:              cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			node := args[0]
			if !yes && !dryRun {
				ok, err := confirm(cmd.InOrStdin(), o.errOut, fmt.Sprintf("%s node %s? Type the node ID to confirm: ", op, node), node)
				if err != nil {
					return err
				}
				if !ok {
					return errors.New("not confirmed; nothing done")
				}
			}
			c, closeFn, err := o.client()
			if err != nil {
				return err
			}
			defer closeFn()
			ctx, cancel := o.ctx()
			defer cancel()
			req := fleet.ActionRequest{Node: node, Op: op, DryRun: dryRun, Force: force, Reason: reason, Actor: "meshctl:" + actor()}
			var res fleet.ActionResult
			if err := refused(c, c.Call(ctx, api.OpAct, req, &res)); err != nil {
				if errors.Is(err, api.ErrNoCoordinator) {
					return fmt.Errorf("%w (the act operation is answered by the leader only)", err)
				}
				return err
			}
			if o.JSON {
				return o.printJSON(res)
			}
			fmt.Fprintln(o.out, res.Message)
			return nil
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "run the gates and audit the decision, but do not call the provider")
	if op != fleet.OpStart {
		cmd.Flags().BoolVar(&force, "force", false, "override the safe-to-terminate gate and voter protection (audited)")
	}
	cmd.Flags().StringVar(&reason, "reason", "operator request", "why (recorded in the audit stream)")
	return cmd
}

func confirm(in io.Reader, out io.Writer, prompt, want string) (bool, error) {
	if in == nil {
		return false, errors.New("confirmation needed but no input; use --yes")
	}
	fmt.Fprint(out, prompt)
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && line == "" {
		fmt.Fprintln(out)
		return false, errors.New("confirmation needed but no input; use --yes")
	}
	return strings.TrimSpace(line) == want, nil
}

func actor() string {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	h, _ := os.Hostname()
	return name + "@" + h
}

func sshConfigCmd(o *Options) *cobra.Command {
	var knownHosts bool
	cmd := &cobra.Command{
		Use:   "ssh-config",
		Short: "Print an OpenSSH config block per node (host, port, user, key), meant to be Include'd from ~/.ssh/config",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sc, err := o.sshConfig()
			if err != nil {
				return err
			}
			if knownHosts {
				return writeKnownHosts(o, sc.Entries, expandHome(fleet.KnownHostsFile))
			}
			if o.JSON {
				return o.printJSON(sc)
			}
			_, err = io.WriteString(o.out, sc.Text)
			return err
		},
	}
	cmd.Flags().BoolVar(&knownHosts, "known-hosts", false, "fill "+fleet.KnownHostsFile+" with each node's host key, taken from ssh-keyscan only when its fingerprint matches the one the coordinator pinned")
	return cmd
}

// writeKnownHosts scans each entry's host keys and keeps, under the node's
// HostKeyAlias, only a key whose SHA256 fingerprint equals the pinned one;
// other lines of the file are kept.
func writeKnownHosts(o *Options, entries []fleet.SSHEntry, file string) error {
	lines := map[string]string{}
	if b, err := os.ReadFile(file); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 3 && events.Match("node", f[0]) {
				lines[f[0]] = l
			}
		}
	}
	for _, e := range entries {
		if e.Check() != nil || !events.ValidFingerprint(e.HostKey) {
			fmt.Fprintf(o.errOut, "%s: no valid pinned host key; not added\n", events.StripControl(e.Node))
			continue
		}
		out, err := exec.Command("ssh-keyscan", "-T", "5", "-p", fmt.Sprint(e.Port), e.Host).Output()
		if err != nil && len(out) == 0 {
			fmt.Fprintf(o.errOut, "%s: ssh-keyscan %s: %v\n", e.Node, e.Host, err)
			continue
		}
		found := false
		for _, l := range strings.Split(string(out), "\n") {
			f := strings.Fields(l)
			if len(f) < 3 || strings.HasPrefix(l, "#") {
				continue
			}
			key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(f[1] + " " + f[2]))
			if err != nil || ssh.FingerprintSHA256(key) != e.HostKey {
				continue
			}
			lines[e.Node] = e.Node + " " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key)))
			found = true
			break
		}
		if !found {
			fmt.Fprintf(o.errOut, "%s: no key of %s:%d matches the pinned %s; not added\n", e.Node, e.Host, e.Port, e.HostKey)
			continue
		}
		fmt.Fprintf(o.out, "%s: %s\n", e.Node, e.HostKey)
	}
	names := make([]string, 0, len(lines))
	for n := range lines {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		b.WriteString(lines[n] + "\n")
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return err
	}
	return os.WriteFile(file, []byte(b.String()), 0o600)
}

func (o *Options) sshConfig() (api.SSHConfig, error) {
	var sc api.SSHConfig
	err := o.call(api.OpSSHConfig, nil, &sc)
	return sc, err
}

func sshCmd(o *Options) *cobra.Command {
	var printOnly bool
	cmd := &cobra.Command{
		Use:               "ssh NODE [-- COMMAND...]",
		ValidArgsFunction: completeNodes(o),
		Short:             "SSH to a node using the endpoint the coordinator knows now",
		Args:              cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sc, err := o.sshConfig()
			if err != nil {
				return err
			}
			var e *fleet.SSHEntry
			for i := range sc.Entries {
				if sc.Entries[i].Node == args[0] {
					e = &sc.Entries[i]
				}
			}
			if e == nil {
				return fmt.Errorf("no SSH endpoint known for node %q", events.StripControl(args[0]))
			}
			sshArgs, err := sshArgv(*e, args[1:])
			if err != nil {
				return err
			}
			if printOnly {
				fmt.Fprintln(o.out, "ssh "+strings.Join(sshArgs, " "))
				return nil
			}
			c := exec.Command("ssh", sshArgs...)
			c.Stdin, c.Stdout, c.Stderr = os.Stdin, o.out, o.errOut
			return c.Run()
		},
	}
	cmd.Flags().BoolVar(&printOnly, "print", false, "print the ssh command instead of running it")
	return cmd
}

// sshArgv builds ssh's arguments for e: every value is checked against its
// pattern first (SSHEntry.Check), host keys are checked strictly against the
// ringmesh-managed known_hosts file, and "--" ends the options before the
// destination, so that nothing a node reported can become an ssh option.
func sshArgv(e fleet.SSHEntry, command []string) ([]string, error) {
	if err := e.Check(); err != nil {
		return nil, fmt.Errorf("refusing to ssh to %s: %w", events.StripControl(e.Node), err)
	}
	argv := []string{"-p", fmt.Sprint(e.Port), "-o", "HostKeyAlias=" + e.Node,
		"-o", "UserKnownHostsFile=" + expandHome(fleet.KnownHostsFile), "-o", "StrictHostKeyChecking=yes"}
	if e.IdentityFile != "" {
		argv = append(argv, "-i", expandHome(e.IdentityFile), "-o", "IdentitiesOnly=yes")
	}
	argv = append(argv, "--", e.User+"@"+e.Host)
	return append(argv, command...), nil
}

func expandHome(p string) string {
	if strings.HasPrefix(p, "~/") {
		if h, err := os.UserHomeDir(); err == nil {
			return h + p[1:]
		}
	}
	return p
}

func pathsCmd(o *Options) *cobra.Command {
	return &cobra.Command{
		Use:               "paths NODE",
		ValidArgsFunction: completeNodes(o),
		Short:             "Show a node's ringrift path and data paths",
		Args:              cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var p api.Paths
			if err := o.call(api.OpPaths, api.NodeRequest{Node: args[0]}, &p); err != nil {
				return err
			}
			if o.JSON {
				return o.printJSON(p)
			}
			fmt.Fprintf(o.out, "node      %s (from %s)\nringrift  %s (%s)\n", p.Node, p.Source, p.Layout.Ringrift, p.Layout.Source)
			if p.Layout.NFS != "" {
				fmt.Fprintf(o.out, "nfs       %s\n", p.Layout.NFS)
			}
			keys := make([]string, 0, len(p.Layout.Data))
			for k := range p.Layout.Data {
				keys = append(keys, string(k))
			}
			sort.Strings(keys)
			for _, k := range keys {
				fmt.Fprintf(o.out, "%-14s %s\n", k, p.Layout.Data[paths.Kind(k)])
			}
			return nil
		},
	}
}

func costCmd(o *Options) *cobra.Command {
	var by, sinceArg string
	cmd := &cobra.Command{
		Use:   "cost",
		Short: "Price per hour of each instance and accrued cost per node, provider and day (per currency)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch by {
			case "", "node", "provider", "day":
			default:
				return fmt.Errorf("--by %q: want node, provider or day", by)
			}
			since, err := parseSince(sinceArg, time.Now())
			if err != nil {
				return err
			}
			var res api.Cost
			if err := o.call(api.OpCost, api.CostRequest{Since: since}, &res); err != nil {
				return err
			}
			if o.JSON {
				return o.printJSON(res)
			}
			tw := tabwriter.NewWriter(o.out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "PROVIDER\tINSTANCE\tNODE\tBILLABLE\tPRICE/H")
			for _, ic := range res.Current {
				price := view.Unknown
				if ic.Price.Known() {
					price = fmt.Sprintf("%.4f %s", ic.Price.PerHour, ic.Price.Currency)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\n", ic.Provider, ic.InstanceID, dash(ic.NodeID), ic.Billable, price)
			}
			tw.Flush()
			fmt.Fprintf(o.out, "\nburn rate: %s", money(res.BurnRate))
			if res.UnknownPriced > 0 {
				fmt.Fprintf(o.out, " (+ %d billable instances of unknown price)", res.UnknownPriced)
			}
			fmt.Fprintln(o.out, " per hour")
			groups := map[string]map[string]costTotals{}
			for k, v := range res.ByNode {
				add(groups, "node", k, v.Amount, v.UnknownHours)
			}
			for k, v := range res.ByProvider {
				add(groups, "provider", k, v.Amount, v.UnknownHours)
			}
			for k, v := range res.ByDay {
				add(groups, "day", k, v.Amount, v.UnknownHours)
			}
			printBudget(o, res.Budget)
			for _, g := range []string{"node", "provider", "day"} {
				if by != "" && by != g {
					continue
				}
				if res.Since.IsZero() {
					fmt.Fprintf(o.out, "\naccrued by %s:\n", g)
				} else {
					fmt.Fprintf(o.out, "\naccrued by %s since %s (UTC days):\n", g, res.Since.UTC().Format("2006-01-02"))
				}
				keys := make([]string, 0, len(groups[g]))
				for k := range groups[g] {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				for _, k := range keys {
					t := groups[g][k]
					line := fmt.Sprintf("  %-24s %s", dash(k), money(t.amount))
					if t.unknownHours > 0 {
						line += fmt.Sprintf(" + %.1f h at unknown price", t.unknownHours)
					}
					fmt.Fprintln(o.out, line)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&by, "by", "", "only one grouping: node, provider or day")
	cmd.Flags().StringVar(&sinceArg, "since", "", "only the accrued history from this UTC day on: 7d, 36h or 2026-11-25 (default: all)")
	return cmd
}

type costTotals struct {
	amount       map[string]float64
	unknownHours float64
}

func add(groups map[string]map[string]costTotals, g, k string, amount map[string]float64, unknown float64) {
	if groups[g] == nil {
		groups[g] = map[string]costTotals{}
	}
	groups[g][k] = costTotals{amount: amount, unknownHours: unknown}
}

func money(m map[string]float64) string {
	if len(m) == 0 {
		return "0"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%.2f %s", m[k], k)
	}
	return strings.Join(parts, " + ")
}

func membersCmd(o *Options) *cobra.Command {
	return &cobra.Command{
		Use:   "members",
		Short: "List gossip members as a voter sees them: address, state and metadata",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var m api.Members
			if err := o.call(api.OpMembers, nil, &m); err != nil {
				return err
			}
			if o.JSON {
				return o.printJSON(m)
			}
			fmt.Fprintf(o.out, "as seen by voter %s\n\n", m.Voter)
			tw := tabwriter.NewWriter(o.out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "MEMBER\tADDRESS\tSTATE\tROLE\tPROVIDER\tVERSION\tSINCE")
			for _, mi := range m.Members {
				// Gossip meta is written by the members themselves: no control characters reach the terminal.
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", clean(mi.Name, 64), clean(mi.Addr, 64), clean(string(mi.State), 16), dash(clean(mi.Meta.Role, 32)),
					dash(clean(mi.Meta.Provider, 32)), dash(clean(mi.Meta.AgentVersion, 64)), mi.Since.UTC().Format("15:04:05"))
			}
			return tw.Flush()
		},
	}
}

func syncCmd(o *Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:               "sync NODE",
		ValidArgsFunction: completeNodes(o),
		Short:             "Ask a node's agent to push its data to its targets now, with a progress bar",
		Args:              cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			node := args[0]
			c, closeFn, err := o.client()
			if err != nil {
				return err
			}
			defer closeFn()
			subj, err := bus.EventSubject(node, bus.KindSync)
			if err != nil {
				return err
			}
			evs := make(chan *nats.Msg, 256)
			sub, err := c.NC.ChanSubscribe(subj, evs)
			if err != nil {
				return err
			}
			defer sub.Unsubscribe()
			reqID := fmt.Sprintf("%d", time.Now().UnixNano())
			ctx, cancel := o.ctx()
			defer cancel()
			var acc api.SyncAccepted
			if err := refused(c, c.Call(ctx, api.OpSync, api.SyncRequest{Node: node, RequestID: reqID}, &acc)); err != nil {
				return err
			}
			fmt.Fprintf(o.errOut, "sync of %s requested\n", node)
			// A push may take long, but silence may not: give up when the agent
			// has said nothing for a minute (or --timeout, if longer).
			quiet := max(time.Minute, o.Timeout)
			idle := time.NewTimer(quiet)
			defer idle.Stop()
			for {
				select {
				case <-idle.C:
					return fmt.Errorf("no word from %s's agent for %s; it may be unreachable (see meshctl status)", node, quiet)
				case m := <-evs:
					idle.Reset(quiet)
					var env bus.Envelope
					var ev events.Sync
					if json.Unmarshal(m.Data, &env) != nil || json.Unmarshal(env.Body, &ev) != nil || ev.Trigger != acc.Trigger {
						continue
					}
					if ev.Phase == "progress" {
						fmt.Fprintf(o.errOut, "\r%s", bar(ev.BytesSent, ev.BytesTotal))
						continue
					}
					fmt.Fprintf(o.errOut, "\r%s\n", bar(ev.BytesSent, ev.BytesSent))
					if o.JSON {
						return o.printJSON(ev)
					}
					fmt.Fprintf(o.out, "%s: %d files pushed, %d failed, %s sent", node, len(ev.Made), len(ev.Missed), view.Bytes(ev.BytesSent))
					if ev.RPO.UnsyncedBytes != nil {
						fmt.Fprintf(o.out, "; still at risk: %s", view.Bytes(*ev.RPO.UnsyncedBytes))
					}
					fmt.Fprintln(o.out)
					for _, f := range ev.Missed {
						fmt.Fprintf(o.out, "  not pushed: %s: %s\n", f.Path, f.Reason)
					}
					if ev.Error != "" {
						return errors.New(view.Clean(ev.Error))
					}
					// The data the operator asked to protect is not all protected:
					// a script running `meshctl sync NODE && …` must not go on.
					if len(ev.Missed) > 0 {
						return fmt.Errorf("%d files of %s were not pushed (see above; `meshctl sync targets %s` explains the targets)", len(ev.Missed), node, node)
					}
					if b := ev.RPO.UnsyncedBytes; b != nil && *b > 0 {
						return fmt.Errorf("%s of %s is still at risk, not pushed to enough targets (`meshctl sync targets %s` explains the targets)", view.Bytes(*b), node, node)
					}
					return nil
				}
			}
		},
	}
	cmd.AddCommand(syncTargetsCmd(o))
	return cmd
}

func bar(done, total int64) string {
	const width = 30
	frac := 1.0
	if total > 0 {
		frac = float64(done) / float64(total)
	}
	n := int(frac * width)
	if n > width {
		n = width
	}
	return fmt.Sprintf("[%s%s] %3.0f%% %s / %s", strings.Repeat("#", n), strings.Repeat(" ", width-n), frac*100, view.Bytes(done), view.Bytes(total))
}

func rpoCmd(o *Options) *cobra.Command {
	return &cobra.Command{
		Use:   "rpo",
		Short: "Per node: bytes and files that exist only on it, and the age of the oldest",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := o.status()
			if err != nil {
				return err
			}
			type row struct {
				Node      string   `json:"node"`
				Ephemeral bool     `json:"ephemeral"`
				State     string   `json:"state"`
				Bytes     *int64   `json:"unsynced_bytes"`
				Files     *int     `json:"unsynced_files"`
				Oldest    *float64 `json:"oldest_unsynced_seconds"`
				LastSync  string   `json:"last_sync,omitempty"`
			}
			var rows []row
			for _, n := range st.Nodes {
				r := row{Node: n.Node, Ephemeral: n.Ephemeral, State: string(n.State), Bytes: n.RPO.UnsyncedBytes, Files: n.RPO.UnsyncedFiles, Oldest: n.RPO.OldestUnsyncedSeconds}
				if n.LastSync != nil {
					r.LastSync = view.Clean(n.LastSync.Phase + " " + n.LastSync.Trigger)
				}
				rows = append(rows, r)
			}
			if o.JSON {
				return o.printJSON(rows)
			}
			tw := tabwriter.NewWriter(o.out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "NODE\tEPHEMERAL\tSTATE\tAT RISK\tFILES\tOLDEST\tLAST SYNC")
			for _, r := range rows {
				b, f, age := view.Unknown, view.Unknown, view.Unknown
				if r.Bytes != nil {
					b = view.Bytes(*r.Bytes)
				}
				if r.Files != nil {
					f = fmt.Sprint(*r.Files)
				}
				if r.Oldest != nil {
					age = view.Ago(time.Duration(*r.Oldest * float64(time.Second)))
				}
				fmt.Fprintf(tw, "%s\t%v\t%s\t%s\t%s\t%s\t%s\n", r.Node, r.Ephemeral, r.State, b, f, age, dash(r.LastSync))
			}
			return tw.Flush()
		},
	}
}
