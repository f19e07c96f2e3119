package meshctl

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"
	sshagent "golang.org/x/crypto/ssh/agent"

	"github.com/ringmesh/ringmesh/pkg/auth"
	"github.com/ringmesh/ringmesh/pkg/config"
	"github.com/ringmesh/ringmesh/pkg/events"
	"github.com/ringmesh/ringmesh/pkg/synctarget"
)

// defaultStores are the issuer stores `meshctl target` uses when --store is
// not given: a production voter's, then what --dev and --demo make.
var defaultStores = []string{"/var/lib/ringmesh/auth", filepath.Join("ringmesh-data", "auth"), filepath.Join("ringmesh-demo", "auth")}

func findStore(flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	for _, s := range defaultStores {
		if fileExists(filepath.Join(s, "operator.nk")) {
			return s, nil
		}
	}
	return "", fmt.Errorf("no issuer store found in %s: give --store (the coordinator's --auth-dir)", strings.Join(defaultStores, ", "))
}

func targetCmd(o *Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "target",
		Short: "Prepare persistent hosts to receive sync data: a chrooted SFTP-only account that accepts ringmesh SSH certificates (runs on a voter)",
	}
	var store string
	cmd.PersistentFlags().StringVar(&store, "store", "", "issuer store (the coordinator's --auth-dir; default: the first of "+strings.Join(defaultStores, ", ")+" that exists)")
	cmd.AddCommand(targetSetupCmd(o, &store), targetRevokeCmd(o, &store), targetListCmd(o, &store))
	return cmd
}

func targetSetupCmd(o *Options, store *string) *cobra.Command {
	var (
		invPath, identity, user, host, fingerprint string
		agentBinary                                string
		port                                       int
		allowVoter, dryRun                         bool
		l                                          synctarget.Layout
	)
	cmd := &cobra.Command{
		Use:   "setup NODE",
		Short: "Create the sync account, chroot and sshd drop-in on a persistent target over SSH, idempotently, and pin its host key",
		Long: `Connects to NODE (a persistent host of the inventory) as an administrator over SSH and makes sure that:
  - a system account (--account, default ringmesh-sync; never root) exists without password;
  - --chroot (default /srv/ringmesh-sync) is root-owned 0755, and <chroot>/incoming belongs to the account (0750);
  - <chroot>/ringmesh/ringmesh-sync-sftp is the agent binary (--agent-binary) and the account's login shell:
    it serves SFTP confined to <chroot>/incoming/<node>, the node named by the certificate's force-command,
    so a node can neither read nor overwrite another node's copies;
  - /etc/ssh/ringmesh-sync holds the ringmesh SSH CA (user_ca.pub), revoked_ids and the KRL revoked.krl;
  - /etc/ssh/sshd_config.d/ringmesh-sync.conf matches the account: ChrootDirectory, TrustedUserCAKeys,
    RevokedKeys, no ForceCommand (the certificate's applies), no password, no authorized_keys, no TTY, no forwarding;
then validates with sshd -t (the previous drop-in comes back when it fails), checks with sshd -T that the settings
apply, and reloads sshd only if its configuration changed. Re-running changes nothing ("unchanged").
The host key is accepted only with --fingerprint (or the one pinned by an earlier setup) and recorded in the
issuer store: agents syncing to NODE log in as the account, in /incoming, and verify that key.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			node := args[0]
			if !events.Match("node", node) {
				return fmt.Errorf("node %q: want [A-Za-z0-9_-]{1,64}", events.StripControl(node))
			}
			if invPath == "" {
				return errors.New("--inventory is required (the target's SSH endpoint and role come from it)")
			}
			inv, err := config.LoadFile(invPath)
			if err != nil {
				return err
			}
			h := inv.Hosts[node]
			if h == nil {
				return fmt.Errorf("%s is not a host of %s", node, invPath)
			}
			if h.Ephemeral() {
				return fmt.Errorf("%s is ephemeral: sync targets must be persistent hosts", node)
			}
			if isVoter(inv, h) && !allowVoter {
				return fmt.Errorf("%s is a voter/coordinator, which holds the cloud API keys: a sync login there puts untrusted nodes one sshd bug away from them; use another persistent host, or pass --allow-voter", node)
			}
			storeDir, err := findStore(*store)
			if err != nil {
				return err
			}
			iss, err := auth.OpenExisting(storeDir)
			if err != nil {
				return err
			}
			recs, err := synctarget.LoadRecords(storeDir)
			if err != nil {
				return err
			}
			ih, ip, iu := h.SSHEndpoint()
			if host == "" {
				host = ih
			}
			if port == 0 {
				port = ip
			}
			if user == "" {
				user = iu
			}
			if identity == "" && h.SSHKey != "" {
				identity = expandHome(h.SSHKey)
			}
			fp := fingerprint
			if prev, ok := recs[node]; ok && fp == "" {
				fp = prev.Fingerprint
			}
			signers, closeAgent, err := adminSigners(identity)
			if err != nil {
				return err
			}
			defer closeAgent()
			ctx, cancel := context.WithTimeout(context.Background(), max(o.Timeout, 2*time.Minute))
			defer cancel()
			client, hostKey, err := synctarget.DialAdmin(ctx, synctarget.Admin{Node: node, Host: host, Port: port, User: user, Signers: signers, Fingerprint: fp})
			if err != nil {
				return err
			}
			defer client.Close()

			var ca ssh.PublicKey
			if dryRun {
				ca, err = iss.SSHCAPublicKey()
				if errors.Is(err, auth.ErrNoSSHCA) {
					fmt.Fprintf(o.out, "would create the ringmesh SSH CA in %s (the key below is a placeholder)\n", storeDir)
					ca, err = placeholderKey()
				}
			} else {
				ca, err = iss.EnsureSSHCA()
			}
			if err != nil {
				return err
			}
			l.SSHD = strings.TrimSpace(l.SSHD)
			bins, cleanup, err := agentBinaries(agentBinary, "meshctl target setup")
			if err != nil {
				return err
			}
			defer cleanup()
			binary := func(ctx context.Context, arch string) (string, error) {
				p, _, err := bins.Binary(ctx, arch)
				return p, err
			}
			rep, err := synctarget.Setup(ctx, synctarget.SSHRunner{Client: client, Sudo: user != "root"},
				synctarget.Options{Layout: l, CA: ca, DryRun: dryRun, AllowVoter: allowVoter, Binary: binary})
			printChanges(o, rep, dryRun)
			if err != nil {
				return err
			}
			full := l.WithDefaults()
			rec := synctarget.Record{Node: node, Addr: net.JoinHostPort(host, strconv.Itoa(port)), AdminUser: user, AdminKey: identity,
				Account: full.Account, RemoteDir: full.RemoteDir(), ChrootDir: full.ChrootDir, ConfDir: full.ConfDir,
				HostKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(hostKey))), Fingerprint: ssh.FingerprintSHA256(hostKey),
				CAFingerprint: ssh.FingerprintSHA256(ca), SetupAt: time.Now().UTC()}
			if dryRun {
				fmt.Fprintf(o.out, "%s: dry run, nothing written (host key %s)\n", node, rec.Fingerprint)
				return nil
			}
			prev, had := recs[node]
			recChanged := !had || prev.Fingerprint != rec.Fingerprint || prev.Account != rec.Account || prev.RemoteDir != rec.RemoteDir ||
				prev.ChrootDir != rec.ChrootDir || prev.ConfDir != rec.ConfDir || prev.CAFingerprint != rec.CAFingerprint || prev.Addr != rec.Addr
			if recChanged {
				if err := synctarget.SaveRecord(storeDir, rec); err != nil {
					return err
				}
			}
			if !rep.Changed() && !recChanged {
				fmt.Fprintf(o.out, "%s: unchanged (account %s, %s in chroot %s, host key %s)\n", node, rec.Account, rec.RemoteDir, rec.ChrootDir, rec.Fingerprint)
				return nil
			}
			fmt.Fprintf(o.out, "%s: set up; agents sync as %s into %s (chroot %s), host key %s pinned in %s\n",
				node, rec.Account, rec.RemoteDir, rec.ChrootDir, rec.Fingerprint, filepath.Join(storeDir, synctarget.RecordsFile))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&invPath, "inventory", os.Getenv("RINGMESH_INVENTORY"), "distributed_hosts.yaml ($RINGMESH_INVENTORY)")
	f.StringVar(&identity, "identity", "", "admin's SSH private key (default: the host's ssh_key in the inventory; else the ssh-agent)")
	f.StringVar(&user, "user", "", "admin login (default: the inventory's ssh_user; not root: commands run with sudo -n)")
	f.StringVar(&host, "host", "", "override the inventory's ssh_host")
	f.IntVar(&port, "port", 0, "override the inventory's ssh_port")
	f.StringVar(&fingerprint, "fingerprint", "", "the target's SSH host key fingerprint, checked out of band (SHA256:...); needed the first time")
	f.StringVar(&agentBinary, "agent-binary", "", "static linux agent binary for the target's architecture, installed in the chroot as the sync account's SFTP server (default: build ./cmd/agent when run in a ringmesh source tree)")
	f.BoolVar(&allowVoter, "allow-voter", false, "set up a voter/coordinator (which holds the cloud API keys) anyway")
	f.BoolVar(&dryRun, "dry-run", false, "connect and inspect, print what would be written, change nothing")
	f.StringVar(&l.Account, "account", synctarget.DefaultAccount, "sync account (never root)")
	f.StringVar(&l.ChrootDir, "chroot", synctarget.DefaultChroot, "ChrootDirectory (it and every directory above it root-owned, not group/world-writable)")
	f.StringVar(&l.ConfDir, "conf-dir", synctarget.DefaultConfDir, "directory of user_ca.pub, revoked_ids, revoked.krl")
	f.StringVar(&l.DropIn, "drop-in", synctarget.DefaultDropIn, "sshd drop-in to write (sshd_config must include it)")
	f.StringVar(&l.SSHDConfig, "sshd-config", "", "main sshd_config to validate with sshd -t -f (default: sshd's own)")
	f.StringVar(&l.SSHD, "sshd", synctarget.DefaultSSHD, "sshd binary on the target")
	f.StringVar(&l.Reload, "reload-command", "", "shell command that reloads sshd (default: systemctl reload ssh/sshd, else SIGHUP to /run/sshd.pid)")
	f.StringVar(&l.PartialSweep, "partial-sweep", synctarget.DefaultPartialSweep, "cron file on the target that removes partial uploads older than a day from the incoming directory (none = do not write one)")
	return cmd
}

func isVoter(inv *config.Inventory, h *config.Host) bool {
	return inv.IsVoter(h.Name) || h.IsCoordinator || strings.EqualFold(h.Role, "coordinator")
}

func printChanges(o *Options, rep synctarget.Report, dry bool) {
	for _, c := range rep.Changes {
		if c.Action == "unchanged" {
			continue
		}
		fmt.Fprintf(o.out, "  %-13s %s\n", c.Action, c.Item)
		if dry && strings.HasPrefix(c.Item, "file ") && strings.Contains(c.Detail, "\n") {
			for _, ln := range strings.Split(strings.TrimRight(c.Detail, "\n"), "\n") {
				fmt.Fprintf(o.out, "      | %s\n", events.StripControl(ln))
			}
		}
	}
}

// adminSigners loads the admin's key file and, when $SSH_AUTH_SOCK is set,
// the ssh-agent's keys.
func adminSigners(identity string) ([]ssh.Signer, func(), error) {
	var signers []ssh.Signer
	closeFn := func() {}
	if identity != "" {
		b, err := os.ReadFile(identity)
		if err != nil {
			return nil, closeFn, fmt.Errorf("admin key: %w", err)
		}
		s, err := ssh.ParsePrivateKey(b)
		if err != nil {
			return nil, closeFn, fmt.Errorf("admin key %s: %w (an encrypted key must be loaded into ssh-agent instead)", identity, err)
		}
		signers = append(signers, s)
	}
	if sock := os.Getenv("SSH_AUTH_SOCK"); sock != "" {
		if c, err := net.Dial("unix", sock); err == nil {
			if ss, err := sshagent.NewClient(c).Signers(); err == nil {
				signers = append(signers, ss...)
			}
			closeFn = func() { _ = c.Close() }
		}
	}
	return signers, closeFn, nil
}

func placeholderKey() (ssh.PublicKey, error) {
	blob := make([]byte, 32)
	return ssh.ParsePublicKey(ssh.Marshal(struct {
		Type string
		Key  []byte
	}{ssh.KeyAlgoED25519, blob}))
}

func targetRevokeCmd(o *Options, store *string) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke NODE",
		Short: "Revoke NODE's sync certificates on every target set up from this store (its key ID goes into their KRL)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			storeDir, err := findStore(*store)
			if err != nil {
				return err
			}
			if n := revokeSyncOn(o, storeDir, args[0]); n > 0 {
				return fmt.Errorf("%d target(s) could not be updated", n)
			}
			return nil
		},
	}
}

func targetListCmd(o *Options, store *string) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the targets set up from this store: account, directory, pinned host key",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			storeDir, err := findStore(*store)
			if err != nil {
				return err
			}
			recs, err := synctarget.LoadRecords(storeDir)
			if err != nil {
				return err
			}
			if o.JSON {
				return o.printJSON(recs)
			}
			names := make([]string, 0, len(recs))
			for n := range recs {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				r := recs[n]
				fmt.Fprintf(o.out, "%s\t%s\t%s:%s\t%s\tset up %s\n", r.Node, r.Addr, r.Account, r.RemoteDir, r.Fingerprint, r.SetupAt.Format(time.RFC3339))
			}
			return nil
		},
	}
}

// revokeSyncOn adds node's key ID to the KRL of every target recorded in
// storeDir, reaching each as the admin that set it up (host key as pinned),
// prints one line per target and returns how many failed.
func revokeSyncOn(o *Options, storeDir, node string) int {
	recs, err := synctarget.LoadRecords(storeDir)
	if err != nil {
		fmt.Fprintf(o.errOut, "sync: %v\n", err)
		return 1
	}
	w := o.out
	if o.JSON {
		w = o.errOut // keep stdout JSON
	}
	failed := 0
	for _, r := range recs {
		err := func() error {
			signers, closeAgent, err := adminSigners(r.AdminKey)
			if err != nil {
				return err
			}
			defer closeAgent()
			h, p, err := net.SplitHostPort(r.Addr)
			if err != nil {
				return err
			}
			port, _ := strconv.Atoi(p)
			ctx, cancel := context.WithTimeout(context.Background(), max(o.Timeout, time.Minute))
			defer cancel()
			client, _, err := synctarget.DialAdmin(ctx, synctarget.Admin{Node: r.Node, Host: h, Port: port, User: r.AdminUser, Signers: signers, Fingerprint: r.Fingerprint})
			if err != nil {
				return err
			}
			defer client.Close()
			changed, err := synctarget.RevokeNode(ctx, synctarget.SSHRunner{Client: client, Sudo: r.AdminUser != "root"}, r.Layout(), node)
			if err == nil && !changed {
				fmt.Fprintf(w, "sync: %s already refuses %s's certificates\n", r.Node, node)
			} else if err == nil {
				fmt.Fprintf(w, "sync: %s now refuses %s's certificates (KRL)\n", r.Node, node)
			}
			return err
		}()
		if err != nil {
			failed++
			fmt.Fprintf(o.errOut, "sync: could not revoke %s on %s: %v (its certificate still expires within %s, and is not renewed)\n", node, r.Node, err, auth.DefaultSyncCertValidity)
		}
	}
	return failed
}

// revokeSyncCredential is what `meshctl revoke NAME` does for sync: the
// coordinator no longer signs certificates for a revoked node, and, where
// this machine has an issuer store with targets set up, each target's KRL
// refuses the node's key ID at once. It never fails the revoke.
func (o *Options) revokeSyncCredential(name string) {
	storeDir, err := findStore("")
	if err != nil {
		w := o.out
		if o.JSON {
			w = o.errOut
		}
		fmt.Fprintf(w, "sync: no issuer store here to reach the sync targets; %s's sync certificates are no longer renewed and expire within %s (run `meshctl target revoke %s` on a voter to refuse them now)\n",
			name, auth.DefaultSyncCertValidity, name)
		return
	}
	if recs, err := synctarget.LoadRecords(storeDir); err == nil && len(recs) == 0 {
		return
	}
	revokeSyncOn(o, storeDir, name)
}
