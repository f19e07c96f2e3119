// Package meshctl implements the meshctl commands (cobra). It lives in a
// package so tests can run the real commands against an in-process
// coordinator.
package meshctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/auth"
	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/view"
)

// Options are the global flags.
type Options struct {
	NATSURL string
	// Creds is the operator's credentials file; CA the ringmesh CA to pin.
	Creds   string
	CA      string
	Timeout time.Duration
	JSON    bool
	out     io.Writer
	errOut  io.Writer
}

// NewRoot builds the command tree writing to out and errOut.
func NewRoot(out, errOut io.Writer) *cobra.Command {
	o := &Options{out: out, errOut: errOut}
	root := &cobra.Command{
		Use:           "meshctl",
		Short:         "Operate a ringmesh cluster",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(out)
	root.SetErr(errOut)
	defURL := os.Getenv("RINGMESH_NATS_URL")
	if defURL == "" {
		defURL = "nats://127.0.0.1:4222"
	}
	root.PersistentFlags().StringVar(&o.NATSURL, "nats-url", defURL, "NATS server URLs, comma-separated ($RINGMESH_NATS_URL)")
	root.PersistentFlags().StringVar(&o.Creds, "creds", os.Getenv("RINGMESH_CREDS"), "operator credentials file ($RINGMESH_CREDS; default: the first of "+strings.Join(DefaultCredsPaths, ", ")+" that exists)")
	root.PersistentFlags().StringVar(&o.CA, "ca", os.Getenv("RINGMESH_CA"), "ringmesh CA certificate to pin ($RINGMESH_CA; default: ca.pem next to the credentials file)")
	root.PersistentFlags().DurationVar(&o.Timeout, "timeout", 10*time.Second, "how long to wait for the coordinator")
	root.PersistentFlags().BoolVar(&o.JSON, "json", false, "print JSON instead of a table")
	root.AddCommand(statusCmd(o), eventsCmd(o), instancesCmd(o), actionCmd(o, "start"), actionCmd(o, "stop"), actionCmd(o, "terminate"),
		sshConfigCmd(o), sshCmd(o), pathsCmd(o), costCmd(o), offersCmd(o), membersCmd(o), syncCmd(o), rpoCmd(o),
		revokeCmd(o), credsCmd(o), tokenCmd(o), enrollCmd(o), forgetCmd(o), targetCmd(o), launchCmd(o))
	addVersion(root, o)
	root.AddCommand(auditCmd(o))
	return root
}

// client connects to NATS once per command.
func (o *Options) client() (api.Client, func(), error) {
	for _, u := range strings.Split(o.NATSURL, ",") {
		if u = strings.TrimSpace(u); u != "" && !strings.HasPrefix(u, "nats://") && !strings.HasPrefix(u, "tls://") && strings.Contains(u, "://") {
			return api.Client{}, nil, fmt.Errorf("--nats-url %q: want nats://host:port (the coordinator's NATS port, not its HTTP port)", bus.RedactURL(u))
		}
	}
	var nc *nats.Conn
	var signer *auth.Signer
	var cfg bus.ConnConfig
	var err error
	// With no --creds, try each dev default in turn (./ringmesh-data, then
	// ./ringmesh-demo: only one of them runs at a time).
	for _, creds := range o.credsCandidates() {
		if cfg, signer, err = o.security(creds); err != nil {
			return api.Client{}, nil, err
		}
		opts, oerr := cfg.Options()
		if oerr != nil {
			return api.Client{}, nil, oerr
		}
		nc, err = nats.Connect(o.NATSURL, append(opts, nats.Name("meshctl"), nats.Timeout(o.Timeout),
			nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))...) // refusals are reported by call
		if err == nil {
			break
		}
	}
	if err != nil {
		cerr := connectError(o.NATSURL, err) // names the host and a hint, never credentials
		switch {
		case errors.Is(err, nats.ErrNoServers):
			return api.Client{}, nil, cerr
		case cfg.CredsFile == "":
			return api.Client{}, nil, fmt.Errorf("%w (no operator credentials found: pass --creds, set RINGMESH_CREDS, or run where `coordinator --dev` wrote %s)", cerr, DefaultCredsPaths[0])
		}
		return api.Client{}, nil, fmt.Errorf("as %s: %w", cfg.CredsFile, cerr)
	}
	c := api.Client{NC: nc}
	if signer != nil {
		c.Sign = signer.Sign
	}
	return c, nc.Close, nil
}

// call connects, asks the coordinator one operation and decodes the answer into out.
func (o *Options) call(op string, req, out any) error {
	c, closeFn, err := o.client()
	if err != nil {
		return err
	}
	defer closeFn()
	ctx, cancel := o.ctx()
	defer cancel()
	return refused(c, c.Call(ctx, op, req, out))
}

// refused names a permission violation instead of "no coordinator answered"
// when the bus refused something the request needed other than its own
// subject (api.Client.Call reports that one as api.ErrRefused).
func refused(c api.Client, err error) error {
	if err == nil || errors.Is(err, api.ErrRefused) {
		return err
	}
	if le := c.NC.LastError(); le != nil && errors.Is(le, nats.ErrPermissionViolation) {
		return fmt.Errorf("refused by the bus: %v (the role of your credentials does not allow this)", le)
	}
	return err
}

func (o *Options) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), o.Timeout)
}

func (o *Options) printJSON(v any) error {
	enc := json.NewEncoder(o.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// status fetches the whole cluster picture, page by page (api.Client.StatusAll).
func (o *Options) status() (api.Status, error) {
	c, closeFn, err := o.client()
	if err != nil {
		return api.Status{}, err
	}
	defer closeFn()
	ctx, cancel := o.ctx()
	defer cancel()
	return c.StatusAll(ctx)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func eventsCmd(o *Options) *cobra.Command {
	var invalid bool
	var limit int
	var q eventQuery
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Show agents' events (--kind sync --node NODE: continuous sync and flush results); --invalid lists the dead-letter view",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if q.kind != "" && !invalid {
				q.limit = limit
				return o.showEvents(q)
			}
			if !invalid {
				return fmt.Errorf("want --kind KIND (e.g. --kind sync --node NODE) or --invalid (the dead-letter view)")
			}
			var d api.DeadLetters
			err := o.call(api.OpDeadLetters, api.DeadLettersRequest{Limit: limit}, &d)
			if err != nil {
				return err
			}
			if o.JSON {
				return o.printJSON(d)
			}
			if len(d.Items) == 0 {
				fmt.Fprintln(o.out, "no invalid messages")
				return nil
			}
			tw := tabwriter.NewWriter(o.out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "AT\tSTREAM SEQ\tSUBJECT\tREASON")
			for _, it := range d.Items {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", it.At.Format(time.RFC3339), it.Sequence, view.Clean(it.Subject), oneLine(view.Clean(it.Reason), 160))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&invalid, "invalid", false, "list messages the coordinator terminated as invalid")
	cmd.Flags().IntVar(&limit, "limit", 50, "how many (newest) to show")
	cmd.Flags().StringVar(&q.kind, "kind", "", "event kind to show: sync, preempt, health, hello, bye, heartbeat")
	cmd.Flags().StringVar(&q.node, "node", "", "only this node's events (default: all nodes)")
	cmd.Flags().DurationVar(&q.since, "since", time.Hour, "how far back to look")
	cmd.Flags().BoolVarP(&q.follow, "follow", "f", false, "keep printing new events")
	return cmd
}

func oneLine(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > n {
		return s[:n-1] + "…"
	}
	return s
}
