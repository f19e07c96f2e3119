package meshctl

import (
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/events"
)

// tokenCmd is `meshctl token create|list|revoke`: one-time enrollment
// tokens for nodes that boot by themselves (docs/enrollment-token.md).
func tokenCmd(o *Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "One-time enrollment tokens for nodes that boot by themselves (admin): create, list, revoke",
	}
	var req api.TokenCreateRequest
	var ttl time.Duration
	create := &cobra.Command{
		Use:   "create --node NODE --instance INSTANCE_ID [--provider P] [--ttl 30m]",
		Short: "Create a token that lets NODE, running as provider instance INSTANCE_ID, obtain its own credentials once; prints the token (only this once) on stdout",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if req.Node == "" || req.InstanceID == "" {
				return errors.New("--node and --instance are required")
			}
			req.TTLSeconds = int64(ttl / time.Second)
			var out api.TokenCreated
			if err := o.call(api.OpTokenCreate, req, &out); err != nil {
				return err
			}
			if o.JSON {
				return o.printJSON(out)
			}
			// The token alone on stdout (TOKEN=$(meshctl token create …)); the rest on stderr.
			fmt.Fprintln(o.out, out.Token)
			fmt.Fprintf(o.errOut, "token %s for node %s (instance %s) expires %s; it is shown only now. Give it to the node's startup script as RINGMESH_ENROLL_TOKEN (docs/enrollment-token.md)\n",
				out.Info.ID, out.Info.Node, out.Info.InstanceID, out.Info.ExpiresAt.Format(time.RFC3339))
			return nil
		},
	}
	create.Flags().StringVar(&req.Node, "node", "", "node ID the token enrolls")
	create.Flags().StringVar(&req.InstanceID, "instance", "", "the provider instance ID the node must present (Vast contract ID, RunPod pod ID)")
	create.Flags().StringVar(&req.Provider, "provider", "", "provider the node must report (vast, runpod, …; empty = not checked)")
	create.Flags().DurationVar(&ttl, "ttl", api.DefaultTokenTTL, "how long the token is valid (1m to 168h)")
	cmd.AddCommand(create)
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List enrollment tokens (never the tokens themselves): ID, node, instance, state, expiry, who created it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out api.TokenList
			if err := o.call(api.OpTokenList, nil, &out); err != nil {
				return err
			}
			if o.JSON {
				return o.printJSON(out)
			}
			tw := tabwriter.NewWriter(o.out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNODE\tPROVIDER\tINSTANCE\tSTATE\tEXPIRES\tUSED\tCREATED BY")
			for _, t := range out.Tokens {
				used := "-"
				if !t.UsedAt.IsZero() {
					used = t.UsedAt.Format(time.RFC3339)
				}
				prov := t.Provider
				if prov == "" {
					prov = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Node, prov, events.StripControl(t.InstanceID), t.State,
					t.ExpiresAt.Format(time.RFC3339), used, events.StripControl(t.CreatedBy))
			}
			return tw.Flush()
		},
	})
	var rnode string
	revoke := &cobra.Command{
		Use:   "revoke [ID] [--node NODE]",
		Short: "Revoke a pending token by ID (or every pending token of --node); a used token's credentials are revoked with `meshctl revoke NODE`",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r := api.TokenRevokeRequest{Node: rnode}
			if len(args) == 1 {
				r.ID = args[0]
			}
			var out api.TokenRevoked
			if err := o.call(api.OpTokenRevoke, r, &out); err != nil {
				return err
			}
			if o.JSON {
				return o.printJSON(out)
			}
			for _, id := range out.IDs {
				fmt.Fprintf(o.out, "revoked token %s\n", id)
			}
			return nil
		},
	}
	revoke.Flags().StringVar(&rnode, "node", "", "revoke every pending token of this node")
	cmd.AddCommand(revoke)
	return cmd
}
