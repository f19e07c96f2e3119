package meshctl

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/auth"
	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/cli"
	"github.com/ringmesh/ringmesh/pkg/enroll"
	"github.com/ringmesh/ringmesh/pkg/fleet"
)

// DefaultCredsPaths are where meshctl looks for operator credentials when
// neither --creds nor $RINGMESH_CREDS is given: what `coordinator --dev`
// and `--demo` write in the directory they run in.
var DefaultCredsPaths = []string{
	filepath.Join("ringmesh-data", "creds", "admin.creds"),
	filepath.Join("ringmesh-demo", "creds", "admin.creds"),
}

// credsCandidates are the creds files to try: --creds/$RINGMESH_CREDS
// alone, or every dev default that exists ("" = none: a server without
// auth says so when it refuses).
func (o *Options) credsCandidates() []string {
	if o.Creds != "" {
		return []string{o.Creds}
	}
	var out []string
	for _, p := range DefaultCredsPaths {
		if fileExists(p) {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		out = []string{""}
	}
	return out
}

// security resolves the CA for creds and loads its signer.
func (o *Options) security(creds string) (bus.ConnConfig, *auth.Signer, error) {
	ca := o.CA
	if ca == "" && creds != "" {
		if p := filepath.Join(filepath.Dir(creds), "ca.pem"); fileExists(p) {
			ca = p
		}
	}
	cfg := bus.ConnConfig{CredsFile: creds, CAFile: ca}
	if creds == "" {
		return cfg, nil, nil
	}
	s, err := auth.LoadSigner(creds)
	if err != nil {
		return cfg, nil, err
	}
	return cfg, s, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func revokeCmd(o *Options) *cobra.Command {
	var keepRunning bool
	var prefix, knownHosts string
	cmd := &cobra.Command{
		Use:               "revoke NAME",
		ValidArgsFunction: completeNodes(o),
		Short:             "Revoke every credential of a node, coordinator or operator now (admin; the bus drops its connections at once), then stop the node's agent over SSH",
		Args:              cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out api.Revoked
			if err := o.call(api.OpRevoke, api.RevokeRequest{Name: args[0]}, &out); err != nil {
				return err
			}
			defer o.revokeSyncCredential(out.Name) // sync targets' KRL (target.go)
			var stopped, stopErr string
			if !keepRunning {
				stopped, stopErr = o.stopAgentAfterRevoke(out.Name, prefix, knownHosts)
			}
			if o.JSON {
				return o.printJSON(struct {
					api.Revoked
					AgentStopped string `json:"agent_stopped,omitempty"`
					StopError    string `json:"stop_error,omitempty"`
				}{out, stopped, stopErr})
			}
			fmt.Fprintf(o.out, "revoked %s: %d credential(s); its connections were dropped and it can no longer connect\n", out.Name, len(out.PublicKeys))
			switch {
			case keepRunning:
			case stopErr != "":
				fmt.Fprintf(o.errOut, "could not stop %s's agent over SSH: %s (the revoke stands)\n", out.Name, stopErr)
			case stopped == "":
				fmt.Fprintf(o.out, "no SSH endpoint known for %s; no agent stopped\n", out.Name)
			default:
				fmt.Fprintf(o.out, "stopped %s's agent over SSH (%s)\n", out.Name, stopped)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&keepRunning, "keep-running", false, "do not stop the node's agent over SSH")
	cmd.Flags().StringVar(&prefix, "prefix", enroll.DefaultPrefix, "install directory of the agent on the node (as given to meshctl enroll)")
	cmd.Flags().StringVar(&knownHosts, "known-hosts", fleet.KnownHostsFile, "known_hosts file of pinned host keys")
	return cmd
}

func credsCmd(o *Options) *cobra.Command {
	var store string
	cmd := &cobra.Command{
		Use:   "creds",
		Short: "Create the operator and CA, issue and revoke credentials (runs on a voter, against its issuer store)",
	}
	cmd.PersistentFlags().StringVar(&store, "store", "/var/lib/ringmesh/auth", "issuer store directory (the coordinator's --auth-dir)")
	cmd.AddCommand(&cobra.Command{
		Use:   "init",
		Short: "Create the issuer store: operator, system and ringmesh accounts, TLS CA (once, on the first voter; copy the directory to the others)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if fileExists(filepath.Join(store, "operator.nk")) {
				return fmt.Errorf("%s already holds an issuer store", store)
			}
			iss, err := auth.Open(store)
			if err != nil {
				return err
			}
			fmt.Fprintf(o.out, "issuer store created in %s (account %s); CA certificate %s\n", iss.Dir(), iss.AccountPublicKey(), iss.CAFile())
			return nil
		},
	})
	var role, name, out string
	issue := &cobra.Command{
		Use:   "issue",
		Short: "Issue a user: --role node --name <node ID>, or coordinator, viewer, admin, bootstrap (--name bootstrap: the one credential self-booting nodes share); writes a creds file (0600)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := auth.ParseRole(role)
			if err != nil {
				return err
			}
			if name == "" {
				return errors.New("--name is required")
			}
			iss, err := auth.OpenExisting(store)
			if err != nil {
				return err
			}
			if out == "" {
				out = name + ".creds"
			}
			if fileExists(out) {
				return fmt.Errorf("%s exists; remove it or choose --out", out)
			}
			if err := iss.IssueFile(r, name, out); err != nil {
				return err
			}
			fmt.Fprintf(o.out, "issued %s %s → %s (copy it to the machine with mode 0600, with %s)\n", r, name, out, iss.CAFile())
			return nil
		},
	}
	issue.Flags().StringVar(&role, "role", "node", "node, coordinator, viewer, admin or bootstrap")
	issue.Flags().StringVar(&name, "name", "", "node ID, coordinator-<voter> or operator name")
	issue.Flags().StringVar(&name, "node", "", "alias of --name")
	issue.Flags().StringVar(&out, "out", "", "creds file to write (default <name>.creds)")
	cmd.AddCommand(issue)
	var urls string
	revoke := &cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke NAME in the store and push it to the servers (prefer `meshctl revoke NAME` while a coordinator runs)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			iss, err := auth.OpenExisting(store)
			if err != nil {
				return err
			}
			ctx, cancel := o.ctx()
			defer cancel()
			revoked, err := iss.RevokeAndPush(ctx, cli.SplitList(urls), args[0])
			if len(revoked) > 0 {
				fmt.Fprintf(o.out, "revoked %d credential(s) of %s\n", len(revoked), args[0])
			}
			return err
		},
	}
	revoke.Flags().StringVar(&urls, "push-to", "tls://127.0.0.1:4222", "NATS URLs to push the revocation to")
	cmd.AddCommand(revoke)
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List issued users",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			iss, err := auth.OpenExisting(store)
			if err != nil {
				return err
			}
			users, err := iss.Users()
			if err != nil {
				return err
			}
			if o.JSON {
				return o.printJSON(users)
			}
			tw := tabwriter.NewWriter(o.out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tROLE\tISSUED\tREVOKED\tKEY")
			for _, u := range users {
				rev := "-"
				if !u.RevokedAt.IsZero() {
					rev = u.RevokedAt.Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", u.Name, u.Role, u.IssuedAt.Format(time.RFC3339), rev, u.PublicKey)
			}
			return tw.Flush()
		},
	})
	var outDir, resolverDir, tlsHosts string
	serverConf := &cobra.Command{
		Use:   "server-config",
		Short: "Write the auth and TLS files a standalone nats-server needs (deploy/nats/voterN.conf includes them), with a certificate for --tls-hosts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			hosts := cli.SplitList(tlsHosts)
			if len(hosts) == 0 {
				return errors.New("--tls-hosts is required: the names and addresses clients and the other voters use to reach this server (e.g. hetzner-cpu1,203.0.113.10)")
			}
			iss, err := auth.OpenExisting(store)
			if err != nil {
				return err
			}
			written, err := iss.WriteServerConfig(outDir, resolverDir, hosts)
			for _, p := range written {
				fmt.Fprintf(o.out, "wrote %s\n", p)
			}
			return err
		},
	}
	serverConf.Flags().StringVar(&outDir, "out", "/etc/ringmesh/nats", "directory to write auth.conf, route-tls.conf, the certificate, its key and ca.pem into (mode 0600)")
	serverConf.Flags().StringVar(&resolverDir, "resolver-dir", "/var/lib/ringmesh/nats/jwt", "nats-server's account JWT directory (absolute), where pushed revocations are kept")
	serverConf.Flags().StringVar(&tlsHosts, "tls-hosts", "", "comma-separated host names and IPs for this voter's certificate (loopback is always included)")
	cmd.AddCommand(serverConf)
	return cmd
}
