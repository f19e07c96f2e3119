// Package synctarget prepares persistent hosts to receive sync data from
// ringmesh nodes that cannot be trusted (docs/security.md, "Sync targets"):
// `meshctl target setup NODE` connects as an administrator over SSH and
// creates a dedicated unprivileged account (default "ringmesh-sync"), a
// ChrootDirectory with one writable "incoming" directory, and an sshd
// drop-in that lets that account do nothing but SFTP inside the chroot,
// authenticated only by short-lived user certificates of ringmesh's SSH CA
// (TrustedUserCAKeys) that are not listed in its RevokedKeys KRL. It pins
// the target's host key at that moment; the Record it writes into the issuer
// store is what the coordinator sends agents (account, directory inside the
// chroot, host key) and what they verify.
package synctarget

import (
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/ringmesh/ringmesh/pkg/auth"
	"github.com/ringmesh/ringmesh/pkg/events"
)

// Defaults of a Layout.
const (
	DefaultAccount  = "ringmesh-sync"
	DefaultChroot   = "/srv/ringmesh-sync"
	DefaultIncoming = "incoming"
	DefaultConfDir  = "/etc/ssh/ringmesh-sync"
	DefaultDropIn   = "/etc/ssh/sshd_config.d/ringmesh-sync.conf"
	DefaultSSHD     = "/usr/sbin/sshd"
)

// DefaultReload reloads sshd after its configuration changed: the systemd
// unit (ssh on Debian/Ubuntu, sshd elsewhere), else SIGHUP to the pid in
// /run/sshd.pid. Existing sessions are not interrupted.
const DefaultReload = `if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet ssh; then systemctl reload ssh; ` +
	`elif command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet sshd; then systemctl reload sshd; ` +
	`elif [ -s /run/sshd.pid ]; then kill -HUP "$(cat /run/sshd.pid)"; ` +
	`else echo "cannot find a running sshd to reload" >&2; exit 1; fi`

// Layout is where a target's sync account lives. The zero value of each
// field means its default.
type Layout struct {
	// Account is the login agents use; never root. Default ringmesh-sync.
	Account string
	// ChrootDir is sshd's ChrootDirectory for the account: root-owned, mode
	// 0755, and so must be every directory above it. Default /srv/ringmesh-sync.
	ChrootDir string
	// Incoming is the one directory inside the chroot the account may write
	// (<ChrootDir>/<Incoming>, owned by the account, mode 0750); agents use
	// "/<Incoming>" as their remote directory. Default "incoming".
	Incoming string
	// ConfDir holds user_ca.pub (TrustedUserCAKeys), revoked_ids (the
	// revoked key IDs, "id: <node>" per line) and revoked.krl (RevokedKeys,
	// made from revoked_ids by ssh-keygen -k). Default /etc/ssh/ringmesh-sync.
	ConfDir string
	// DropIn is the sshd configuration file written. Default
	// /etc/ssh/sshd_config.d/ringmesh-sync.conf (included by Debian's and
	// Ubuntu's sshd_config).
	DropIn string
	// SSHDConfig is the main sshd configuration validated with "sshd -t -f";
	// "" = sshd's default.
	SSHDConfig string
	// SSHD is the sshd binary. Default /usr/sbin/sshd.
	SSHD string
	// Reload is the shell command run after the configuration changed.
	// Default DefaultReload.
	Reload string
	// PartialSweep is the cron file that removes uploads left half-done
	// (*.partial, .rsync-partial/) in the incoming directory once they are
	// a day old, as every agent does in its own sync_incoming: a source
	// preempted mid-upload never comes back for them. Default
	// DefaultPartialSweep; "none" = not written. Written only where its
	// directory exists (cron installed).
	PartialSweep string
}

// DefaultPartialSweep is where Setup writes the partial-sweep cron file.
const DefaultPartialSweep = "/etc/cron.d/ringmesh-sync-partials"

// PartialSweepMinutes is the age, minutes, after which a partial upload
// on a set-up target is removed (agent.PartialMaxAge, 24 hours).
const PartialSweepMinutes = 24 * 60

// WithDefaults fills every empty field with its default.
func (l Layout) WithDefaults() Layout {
	def := func(s *string, d string) {
		if *s == "" {
			*s = d
		}
	}
	def(&l.Account, DefaultAccount)
	def(&l.ChrootDir, DefaultChroot)
	def(&l.Incoming, DefaultIncoming)
	def(&l.ConfDir, DefaultConfDir)
	def(&l.DropIn, DefaultDropIn)
	def(&l.SSHD, DefaultSSHD)
	def(&l.Reload, DefaultReload)
	def(&l.PartialSweep, DefaultPartialSweep)
	return l
}

// Validate checks every value that reaches a shell or sshd_config: the
// account is a non-root login name; every path is absolute, clean, matches
// the events "path" pattern and is not "/"; Incoming is one path segment.
func (l Layout) Validate() error {
	if !auth.ValidSyncAccount(l.Account) {
		return fmt.Errorf("sync target: account %q: want a login name of [A-Za-z0-9._-] that is not root", l.Account)
	}
	for _, p := range []struct{ name, v string }{{"chroot", l.ChrootDir}, {"conf dir", l.ConfDir}, {"drop-in", l.DropIn}, {"sshd", l.SSHD}} {
		if err := checkAbs(p.v); err != nil {
			return fmt.Errorf("sync target: %s: %w", p.name, err)
		}
	}
	if l.PartialSweep != "none" {
		if err := checkAbs(l.PartialSweep); err != nil {
			return fmt.Errorf("sync target: partial sweep: %w", err)
		}
		if strings.HasPrefix(l.PartialSweep, l.ChrootDir+"/") {
			return fmt.Errorf("sync target: the partial-sweep cron file %s must not lie inside the chroot %s", l.PartialSweep, l.ChrootDir)
		}
	}
	if l.SSHDConfig != "" {
		if err := checkAbs(l.SSHDConfig); err != nil {
			return fmt.Errorf("sync target: sshd config: %w", err)
		}
	}
	if l.Incoming == "" || strings.Contains(l.Incoming, "/") || l.Incoming == "." || l.Incoming == ".." || !events.ValidPath(l.Incoming) {
		return fmt.Errorf("sync target: incoming %q: want one directory name", l.Incoming)
	}
	if strings.HasPrefix(l.ConfDir+"/", l.ChrootDir+"/") || strings.HasPrefix(l.DropIn, l.ChrootDir+"/") {
		return fmt.Errorf("sync target: the configuration (%s, %s) must not lie inside the chroot %s", l.ConfDir, l.DropIn, l.ChrootDir)
	}
	return nil
}

func checkAbs(p string) error {
	if !events.ValidPath(p) || !path.IsAbs(p) || path.Clean(p) != p || p == "/" || strings.HasPrefix(p, "~") {
		return fmt.Errorf("%q: want a clean absolute path of [A-Za-z0-9._+@/=,-] other than /", p)
	}
	return nil
}

// Inside the chroot, /ringmesh holds the sync account's login shell, the
// agent binary as ServerName (internal/syncserve: SFTP confined to
// <incoming>/<node>, the node named by the certificate's force-command),
// and its configuration.
const (
	ServerDir        = "/ringmesh"
	ServerName       = auth.SyncShellName
	ServerShell      = ServerDir + "/" + ServerName
	ServerConfigPath = ServerDir + "/sftp.conf"
)

// RenderServerConfig is the content of ServerConfigPath for the incoming
// directory remoteDir (as the account sees it, e.g. "/incoming").
func RenderServerConfig(remoteDir string) string { return "incoming " + remoteDir + "\n" }

// ParseServerConfig returns the incoming directory a ServerConfigPath file
// names: "/<one directory name>".
func ParseServerConfig(b []byte) (string, error) {
	for _, ln := range strings.Split(string(b), "\n") {
		f := strings.Fields(ln)
		if len(f) == 2 && f[0] == "incoming" {
			d := f[1]
			if !path.IsAbs(d) || path.Clean(d) != d || d == "/" || strings.Count(d, "/") != 1 || !events.ValidPath(d) {
				return "", fmt.Errorf("%s: incoming %q: want /<one directory name>", ServerConfigPath, d)
			}
			return d, nil
		}
	}
	return "", fmt.Errorf("%s: no \"incoming\" line", ServerConfigPath)
}

// ShellPath is the account's login shell, a path inside the chroot.
func (l Layout) ShellPath() string { return ServerShell }

// ServerDir is the directory of the shell on the target's file system.
func (l Layout) ServerDir() string { return path.Join(l.ChrootDir, ServerDir) }

// RemoteDir is the directory agents write to, as the account sees it
// inside the chroot ("/incoming").
func (l Layout) RemoteDir() string { return "/" + l.Incoming }

// IncomingDir is the incoming directory on the target's file system.
func (l Layout) IncomingDir() string { return path.Join(l.ChrootDir, l.Incoming) }

// CAFile is the TrustedUserCAKeys file.
func (l Layout) CAFile() string { return path.Join(l.ConfDir, "user_ca.pub") }

// RevokedIDsFile lists the revoked certificate key IDs (ssh-keygen KRL spec).
func (l Layout) RevokedIDsFile() string { return path.Join(l.ConfDir, "revoked_ids") }

// PrincipalsFile is the AuthorizedPrincipalsFile: auth.SyncNodePrincipal(Account) only.
func (l Layout) PrincipalsFile() string { return path.Join(l.ConfDir, "principals") }

// NoClientEnv is the only variable name the drop-in's AcceptEnv lets a
// client send: none, in effect (inside the Match block it replaces the
// global list, e.g. Debian's LANG LC_*), so nothing the client sends can
// reach the SFTP server's environment (SSH_ORIGINAL_COMMAND among them).
const NoClientEnv = "RINGMESH_SYNC_NO_CLIENT_ENV"

// KRLFile is the RevokedKeys file (an OpenSSH KRL).
func (l Layout) KRLFile() string { return path.Join(l.ConfDir, "revoked.krl") }

// RenderDropIn is the sshd drop-in for l: for the sync account only, no
// password or keyboard-interactive login, no authorized_keys (only
// certificates of the CA in CAFile with the principal auth.SyncNodePrincipal(Account),
// the one line of PrincipalsFile, which RevokedKeys does not list), no
// client environment (AcceptEnv NoClientEnv), chrooted to ChrootDir, and no TTY,
// forwarding of any kind, tunnels or user rc. It sets no ForceCommand: the
// certificate's force-command (auth.SyncForceCommand) runs through the
// account's login shell, the SFTP server in the chroot (ShellPath), which
// serves only the node's own directory. It ends with "Match all" so that
// nothing after it in sshd_config falls under the Match block.
func RenderDropIn(l Layout) string {
	var b strings.Builder
	b.WriteString("# Written by `meshctl target setup` (ringmesh); re-running it rewrites this file.\n")
	b.WriteString("# The sync account may only use SFTP inside its chroot, with a ringmesh SSH certificate whose\n")
	b.WriteString("# force-command names the node; its shell, the ringmesh SFTP server, serves only that node's directory.\n")
	fmt.Fprintf(&b, "Match User %s\n", l.Account)
	for _, kv := range [][2]string{
		{"ChrootDirectory", l.ChrootDir},
		{"AuthenticationMethods", "publickey"},
		{"PubkeyAuthentication", "yes"},
		{"PasswordAuthentication", "no"},
		{"KbdInteractiveAuthentication", "no"},
		{"AuthorizedKeysFile", "none"},
		{"TrustedUserCAKeys", l.CAFile()},
		{"AuthorizedPrincipalsFile", l.PrincipalsFile()},
		{"AcceptEnv", NoClientEnv},
		{"RevokedKeys", l.KRLFile()},
		{"DisableForwarding", "yes"},
		{"AllowTcpForwarding", "no"},
		{"AllowAgentForwarding", "no"},
		{"AllowStreamLocalForwarding", "no"},
		{"X11Forwarding", "no"},
		{"PermitTTY", "no"},
		{"PermitTunnel", "no"},
		{"PermitUserRC", "no"},
	} {
		fmt.Fprintf(&b, "    %s %s\n", kv[0], kv[1])
	}
	b.WriteString("Match all\n")
	return b.String()
}

// effective are the settings `sshd -T -C user=<account>` must show once the
// drop-in is in force (lower-case keyword, value).
func effective(l Layout) [][2]string {
	return [][2]string{
		{"chrootdirectory", l.ChrootDir},
		// No ForceCommand: the certificate's force-command picks the node,
		// and a configured one would override it.
		{"forcecommand", "none"},
		{"trustedusercakeys", l.CAFile()},
		{"authorizedprincipalsfile", l.PrincipalsFile()},
		{"acceptenv", NoClientEnv},
		{"revokedkeys", l.KRLFile()},
		{"permittty", "no"},
		{"allowtcpforwarding", "no"},
		{"x11forwarding", "no"},
		{"passwordauthentication", "no"},
		{"authorizedkeysfile", "none"},
	}
}

// RenderPartialSweep is the cron file of l.PartialSweep: hourly, as root,
// remove regular files named *.partial or under .rsync-partial/ in the
// incoming directory (not crossing filesystems) older than
// PartialSweepMinutes. Final files are never touched.
func RenderPartialSweep(l Layout) string {
	dir := shellQuote(path.Join(l.ChrootDir, l.Incoming))
	return "# Written by meshctl target setup: remove uploads left half-done for a day (their source was\n" +
		"# preempted mid-upload and never comes back for them). Final files are never touched.\n" +
		"SHELL=/bin/sh\nPATH=/usr/sbin:/usr/bin:/sbin:/bin\n" +
		"17 * * * * root [ -d " + dir + " ] && find " + dir + " -xdev -type f \\( -name '*.partial' -o -path '*/.rsync-partial/*' \\) -mmin +" +
		strconv.Itoa(PartialSweepMinutes) + " -delete\n"
}
