package synctarget

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/ringmesh/ringmesh/pkg/auth"
	"github.com/ringmesh/ringmesh/pkg/events"
)

// Runner runs a shell command on the target as root (or through sudo) and
// returns its standard output. stdin, when not nil, is the command's input.
// An error carries the command's standard error.
type Runner interface {
	Run(ctx context.Context, cmd string, stdin []byte) (string, error)
}

// LocalRunner runs commands on this host with /bin/sh (the target's own
// agent, running as root, applying a revocation the coordinator sent).
type LocalRunner struct{}

// Run runs cmd with sh -c, stdin on its standard input; the output is
// stdout, and a failure's error carries stderr.
func (LocalRunner) Run(ctx context.Context, cmd string, stdin []byte) (string, error) {
	c := exec.CommandContext(ctx, "/bin/sh", "-c", cmd)
	c.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// SSHRunner runs commands over an administrator's SSH connection. With Sudo,
// every command runs as "sudo -n sh -c '<cmd>'" (for a non-root admin with
// passwordless sudo).
type SSHRunner struct {
	Client *ssh.Client
	Sudo   bool
}

// Run implements Runner.
func (r SSHRunner) Run(ctx context.Context, cmd string, stdin []byte) (string, error) {
	sess, err := r.Client.NewSession()
	if err != nil {
		return "", err
	}
	defer sess.Close()
	stop := context.AfterFunc(ctx, func() { _ = sess.Close() })
	defer stop()
	if r.Sudo {
		cmd = "sudo -n sh -c " + shellQuote(cmd)
	}
	var stdout, stderr bytes.Buffer
	sess.Stdout, sess.Stderr = &stdout, &stderr
	if stdin != nil {
		sess.Stdin = bytes.NewReader(stdin)
	}
	if err := sess.Run(cmd); err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return stdout.String(), fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// Change is one item of a setup and what was (or, with DryRun, would be)
// done to it.
type Change struct {
	// Item names it ("account ringmesh-sync", "file /etc/ssh/...").
	Item string `json:"item"`
	// Action: "unchanged", "created", "updated", "reloaded", or with DryRun
	// "would create", "would update", "would reload".
	Action string `json:"action"`
	// Detail says what differs (or the content that would be written).
	Detail string `json:"detail,omitempty"`
}

// Report is the outcome of Setup.
type Report struct {
	Changes []Change `json:"changes"`
	// DryRun: nothing was written.
	DryRun bool `json:"dry_run,omitempty"`
}

// Changed reports whether anything was (or would be) changed.
func (r Report) Changed() bool {
	for _, c := range r.Changes {
		if c.Action != "unchanged" {
			return true
		}
	}
	return false
}

// Options of a Setup.
type Options struct {
	Layout Layout
	// CA is the ringmesh SSH CA public key written as TrustedUserCAKeys.
	CA ssh.PublicKey
	// DryRun inspects the target and reports what would change without
	// writing anything.
	DryRun bool
	// AllowVoter sets up a host that holds coordinator secrets anyway
	// (VoterSecrets found on it); otherwise that is an error.
	AllowVoter bool
	// Binary returns the local path of the static linux agent binary for
	// the target's architecture ("amd64" or "arm64", from uname -m): it is
	// installed in the chroot as the sync account's login shell, the SFTP
	// server that confines each node to its own directory
	// (internal/syncserve). Required.
	Binary func(ctx context.Context, arch string) (string, error)
}

// VoterSecrets are the files whose presence marks a host holding cloud API
// keys or the issuer store (a voter): Setup refuses it unless AllowVoter.
var VoterSecrets = []string{"/etc/ringmesh/coordinator.env", "/var/lib/ringmesh/auth", "/root/.config/ringmesh/credentials"}

type setup struct {
	ctx     context.Context
	run     Runner
	l       Layout
	dry     bool
	rep     Report
	sshdCfg bool // the sshd configuration changed: validate and reload

	allowVoter bool
	binary     func(ctx context.Context, arch string) (string, error)
}

// Setup makes the target match the layout, idempotently: it creates what is
// missing, corrects owner and mode of the chroot and incoming directories,
// rewrites files whose content differs, validates the sshd configuration
// with "sshd -t" (restoring the previous drop-in when it fails), checks with
// "sshd -T -C user=<account>" that the settings are in force, and reloads
// sshd only when its configuration changed. A directory above the chroot that
// is not root-owned or is group/world-writable, an existing account with uid
// 0, and a missing useradd or ssh-keygen are errors.
func Setup(ctx context.Context, run Runner, o Options) (Report, error) {
	l := o.Layout.WithDefaults()
	if err := l.Validate(); err != nil {
		return Report{}, err
	}
	if o.CA == nil {
		return Report{}, errors.New("sync target: no SSH CA key")
	}
	if o.Binary == nil {
		return Report{}, errors.New("sync target: no agent binary to install as the sync account's SFTP server")
	}
	s := &setup{ctx: ctx, run: run, l: l, dry: o.DryRun, allowVoter: o.AllowVoter, rep: Report{DryRun: o.DryRun}, binary: o.Binary}
	steps := []func() error{
		s.preflight,
		s.account,
		s.chroot,
		s.incoming,
		s.server,
		s.confDir,
		func() error {
			return s.file(l.CAFile(), string(ssh.MarshalAuthorizedKey(o.CA)), true)
		},
		func() error { return s.file(l.PrincipalsFile(), auth.SyncNodePrincipal(l.Account)+"\n", true) },
		s.revocations,
		s.partialSweep,
		s.dropIn,
		s.verify,
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return s.rep, err
		}
	}
	return s.rep, nil
}

func (s *setup) note(item, action, detail string) {
	if s.dry {
		if a, ok := map[string]string{"created": "would create", "updated": "would update", "reloaded": "would reload"}[action]; ok {
			action = a
		}
	}
	s.rep.Changes = append(s.rep.Changes, Change{Item: item, Action: action, Detail: detail})
}

func (s *setup) sh(cmd string, stdin []byte) (string, error) {
	out, err := s.run.Run(s.ctx, cmd, stdin)
	if err != nil {
		return out, fmt.Errorf("sync target: %s: %w", firstLine(cmd), err)
	}
	return out, nil
}

func (s *setup) preflight() error {
	q := shellQuote
	probe := ""
	for _, f := range VoterSecrets {
		probe += "[ -e " + q(f) + " ] && echo holds " + q(f) + "; "
	}
	out, err := s.sh("for c in useradd ssh-keygen install stat; do command -v $c >/dev/null 2>&1 || echo missing $c; done; "+
		"[ -x "+q(s.l.SSHD)+" ] || echo missing "+q(s.l.SSHD)+"; "+probe+"id -u", nil)
	if err != nil {
		return err
	}
	for _, ln := range strings.Split(strings.TrimSpace(out), "\n") {
		if f, ok := strings.CutPrefix(ln, "holds "); ok {
			if !s.allowVoter {
				return fmt.Errorf("sync target: the host holds %s, so it is a voter with cloud API keys or the issuer store; a sync login there puts untrusted nodes one sshd bug away from them: use another persistent host, or pass --allow-voter", f)
			}
			continue
		}
		if strings.HasPrefix(ln, "missing ") {
			return fmt.Errorf("sync target: %s not found on the target (install openssh-server and passwd)", strings.TrimPrefix(ln, "missing "))
		}
		if ln != "0" && ln != "" {
			return fmt.Errorf("sync target: commands run as uid %s, not root (log in as root, or as a user with passwordless sudo)", ln)
		}
	}
	return nil
}

func (s *setup) account() error {
	q := shellQuote
	acc := s.l.Account
	out, err := s.sh("id -u "+q(acc)+" 2>/dev/null || echo none", nil)
	if err != nil {
		return err
	}
	shell := s.l.ShellPath()
	switch uid := strings.TrimSpace(out); {
	case uid == "0":
		return fmt.Errorf("sync target: account %s exists with uid 0; refusing to use a privileged account for sync", acc)
	case uid != "none":
		cur, err := s.sh("getent passwd "+q(acc)+" | cut -d: -f7", nil)
		if err != nil {
			return err
		}
		if cur = strings.TrimSpace(cur); cur == shell {
			s.note("account "+acc, "unchanged", "uid "+uid)
			return nil
		}
		s.note("account "+acc, "updated", "login shell "+cur+" -> "+shell+" (the SFTP server inside the chroot)")
		if s.dry {
			return nil
		}
		_, err = s.sh("usermod --shell "+q(shell)+" "+q(acc), nil)
		return err
	}
	s.note("account "+acc, "created", "system account, no password, home "+s.l.ChrootDir+", login shell "+shell+" (the SFTP server inside the chroot)")
	if s.dry {
		return nil
	}
	// -p '*': no password that could ever match, but not "locked", which
	// sshd without PAM would refuse even for certificates. The shell is a
	// path inside the chroot (sshd checks it only there).
	_, err = s.sh("useradd --system --no-create-home --home-dir "+q(s.l.ChrootDir)+
		" --shell "+q(shell)+" -p '*' "+q(acc)+" 2>&1", nil)
	return err
}

// server installs the agent binary for the target's architecture in the
// chroot as the account's shell (root-owned 0755, replaced when its
// SHA-256 differs) and its configuration naming the incoming directory.
func (s *setup) server() error {
	q := shellQuote
	out, err := s.sh("uname -m", nil)
	if err != nil {
		return err
	}
	arch, ok := map[string]string{"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}[strings.TrimSpace(out)]
	if !ok {
		return fmt.Errorf("sync target: architecture %q: want x86_64 or aarch64", strings.TrimSpace(out))
	}
	local, err := s.binary(s.ctx, arch)
	if err != nil {
		return fmt.Errorf("sync target: agent binary for %s: %w", arch, err)
	}
	bin, err := os.ReadFile(local)
	if err != nil {
		return fmt.Errorf("sync target: agent binary: %w", err)
	}
	sum := sha256.Sum256(bin)
	want := hex.EncodeToString(sum[:])
	if err := s.dir(s.l.ServerDir(), "0", "755"); err != nil {
		return err
	}
	dst := path.Join(s.l.ChrootDir, ServerShell)
	cur, err := s.sh("sha256sum "+q(dst)+" 2>/dev/null || true", nil)
	if err != nil {
		return err
	}
	item := "file " + dst
	switch f := strings.Fields(cur); {
	case len(f) > 0 && f[0] == want:
		s.note(item, "unchanged", "")
	default:
		action := "created"
		if len(f) > 0 {
			action = "updated"
		}
		s.note(item, action, fmt.Sprintf("agent binary %s (%d bytes, SHA-256 %s) as the sync account's SFTP server", filepath.Base(local), len(bin), want))
		if !s.dry {
			tmp := q(dst + ".ringmesh-new")
			if _, err := s.sh("umask 022; cat > "+tmp+" && chown 0:0 "+tmp+" && chmod 0755 "+tmp+" && mv -f "+tmp+" "+q(dst), bin); err != nil {
				return err
			}
		}
	}
	return s.file(path.Join(s.l.ChrootDir, ServerConfigPath), RenderServerConfig(s.l.RemoteDir()), false)
}

// chroot checks every directory from the chroot up to / (root-owned, not
// group- or world-writable: sshd refuses a ChrootDirectory otherwise) and
// creates or corrects the chroot itself.
func (s *setup) chroot() error {
	if bad, uid, mode, err := s.unsafeParent(s.l.ChrootDir); err != nil {
		return err
	} else if bad != "" {
		return fmt.Errorf("sync target: %s (above the chroot %s) is owned by uid %s with mode %s; sshd requires every directory of a ChrootDirectory to be root-owned and not group/world-writable: choose another --chroot",
			bad, s.l.ChrootDir, uid, mode)
	}
	return s.dir(s.l.ChrootDir, "0", "755")
}

// confDir checks the directories above the configuration directory as
// sshd checks an AuthorizedPrincipalsFile's (StrictModes: root-owned, not
// group/world-writable, up to /), then creates it.
func (s *setup) confDir() error {
	if bad, uid, mode, err := s.unsafeParent(s.l.ConfDir); err != nil {
		return err
	} else if bad != "" {
		return fmt.Errorf("sync target: %s (above the configuration directory %s) is owned by uid %s with mode %s; sshd refuses an AuthorizedPrincipalsFile below a directory that is not root-owned or is group/world-writable: choose another --conf-dir",
			bad, s.l.ConfDir, uid, mode)
	}
	// sshd opens the principals file as the sync account.
	out, err := s.sh("p="+shellQuote(s.l.ConfDir)+"; while p=$(dirname \"$p\"); [ -e \"$p\" ] && stat -L -c '%a %n' \"$p\"; [ \"$p\" != / ]; do :; done", nil)
	if err != nil {
		return err
	}
	for _, ln := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.SplitN(ln, " ", 2)
		if m, perr := strconv.ParseUint(f[0], 8, 32); perr == nil && len(f) == 2 && m&0o001 == 0 {
			return fmt.Errorf("sync target: %s (above the configuration directory %s) has mode %s: the sync account cannot reach the principals file below it (sshd reads it as that account): choose another --conf-dir",
				f[1], s.l.ConfDir, f[0])
		}
	}
	return s.dir(s.l.ConfDir, "0", "755")
}

// unsafeParent returns the first existing directory above dir (dir itself
// excluded) that is not root-owned or is group- or world-writable, with its
// owner and mode; "" when there is none.
func (s *setup) unsafeParent(dir string) (bad, uid, mode string, err error) {
	q := shellQuote
	out, err := s.sh("p="+q(dir)+"; while :; do if [ -e \"$p\" ]; then stat -L -c '%u %a %n' \"$p\"; else echo \"missing - $p\"; fi; "+
		"[ \"$p\" = / ] && break; p=$(dirname \"$p\"); done", nil)
	if err != nil {
		return "", "", "", err
	}
	for _, ln := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.SplitN(ln, " ", 3)
		if len(f) != 3 || f[2] == dir || f[0] == "missing" {
			continue
		}
		m, _ := strconv.ParseUint(f[1], 8, 32)
		if f[0] != "0" || m&0o022 != 0 {
			return f[2], f[0], f[1], nil
		}
	}
	return "", "", "", nil
}

// incoming makes the incoming directory and removes whatever at its top
// level is not a directory: only node directories belong there, and a
// symlink or file put there (by a session before the per-node server, or
// any process of the account) could stand in for a node's directory.
func (s *setup) incoming() error {
	if err := s.dir(s.l.IncomingDir(), s.l.Account, "750"); err != nil {
		return err
	}
	q := shellQuote
	list := "find " + q(s.l.IncomingDir()) + " -mindepth 1 -maxdepth 1 ! -type d"
	out, err := s.sh("[ ! -d "+q(s.l.IncomingDir())+" ] || "+list, nil)
	if err != nil {
		return err
	}
	stray := strings.Fields(strings.TrimSpace(out))
	if len(stray) == 0 {
		return nil
	}
	s.note("incoming "+s.l.IncomingDir(), "updated", fmt.Sprintf("removed %d entries that are not node directories: %s", len(stray), events.StripControl(strings.Join(stray, " "))))
	if s.dry {
		return nil
	}
	_, err = s.sh(list+" -delete", nil)
	return err
}

// dir makes path a directory owned by owner (a uid "0" or an account name,
// its group the account's primary group) with mode.
func (s *setup) dir(path, owner, mode string) error {
	q := shellQuote
	out, err := s.sh("if [ -d "+q(path)+" ]; then stat -c '%u %U %a' "+q(path)+"; elif [ -e "+q(path)+" ]; then echo notdir; else echo missing; fi", nil)
	if err != nil {
		return err
	}
	cur := strings.Fields(strings.TrimSpace(out))
	grp := "$(id -gn " + q(owner) + ")"
	if owner == "0" {
		grp = "0"
	}
	switch {
	case len(cur) == 1 && cur[0] == "notdir":
		return fmt.Errorf("sync target: %s exists and is not a directory", path)
	case len(cur) == 1 && cur[0] == "missing":
		s.note("directory "+path, "created", "owner "+owner+", mode "+mode)
		if s.dry {
			return nil
		}
		_, err := s.sh("umask 022; install -d -o "+q(owner)+" -g "+grp+" -m "+mode+" "+q(path), nil)
		return err
	case len(cur) == 3 && (cur[0] == owner || cur[1] == owner) && cur[2] == mode:
		s.note("directory "+path, "unchanged", "")
		return nil
	case len(cur) == 3:
		s.note("directory "+path, "updated", fmt.Sprintf("owner %s mode %s -> owner %s mode %s", cur[1], cur[2], owner, mode))
		if s.dry {
			return nil
		}
		_, err := s.sh("chown "+q(owner)+":"+grp+" "+q(path)+" && chmod "+mode+" "+q(path), nil)
		return err
	}
	return fmt.Errorf("sync target: cannot read %s: %q", path, strings.TrimSpace(out))
}

// read returns a file's content and whether it exists.
func (s *setup) read(path string) (string, bool, error) {
	out, err := s.sh("if [ -f "+shellQuote(path)+" ]; then echo present; cat "+shellQuote(path)+"; else echo missing; fi", nil)
	if err != nil {
		return "", false, err
	}
	if strings.HasPrefix(out, "missing") {
		return "", false, nil
	}
	return strings.TrimPrefix(out, "present\n"), true, nil
}

func (s *setup) write(path, content string) error {
	q := shellQuote
	_, err := s.sh("umask 022; mkdir -p "+q(filepath.Dir(path))+" && cat > "+q(path+".ringmesh-new")+" && chmod 0644 "+q(path+".ringmesh-new")+" && mv -f "+q(path+".ringmesh-new")+" "+q(path), []byte(content))
	return err
}

// file writes content to path when it differs; sshd marks the sshd
// configuration as changed.
func (s *setup) file(path, content string, sshd bool) error {
	cur, ok, err := s.read(path)
	if err != nil {
		return err
	}
	switch {
	case ok && cur == content:
		s.note("file "+path, "unchanged", "")
		return nil
	case ok:
		s.note("file "+path, "updated", content)
	default:
		s.note("file "+path, "created", content)
	}
	if sshd {
		s.sshdCfg = true
	}
	if s.dry {
		return nil
	}
	return s.write(path, content)
}

// partialSweep writes the cron file that removes old partial uploads, where
// cron's directory exists (else it notes why not).
func (s *setup) partialSweep() error {
	if s.l.PartialSweep == "none" {
		return nil
	}
	dir := filepath.Dir(s.l.PartialSweep)
	out, err := s.sh("[ -d "+shellQuote(dir)+" ] && echo yes || echo no", nil)
	if err != nil {
		return err
	}
	if strings.TrimSpace(out) != "yes" {
		s.note("file "+s.l.PartialSweep, "skipped", "no "+dir+" (cron not installed): remove old *.partial files under "+path.Join(s.l.ChrootDir, s.l.Incoming)+" yourself")
		return nil
	}
	return s.file(s.l.PartialSweep, RenderPartialSweep(s.l), false)
}

// revocations keeps revoked_ids as it is (creating it empty) and makes the
// KRL from it when the KRL is missing or older.
func (s *setup) revocations() error {
	q := shellQuote
	ids, krl := s.l.RevokedIDsFile(), s.l.KRLFile()
	if _, ok, err := s.read(ids); err != nil {
		return err
	} else if !ok {
		s.note("file "+ids, "created", "(empty: no key ID revoked)")
		if !s.dry {
			if err := s.write(ids, ""); err != nil {
				return err
			}
		}
	} else {
		s.note("file "+ids, "unchanged", "")
	}
	out, err := s.sh("if [ ! -f "+q(krl)+" ]; then echo missing; elif [ "+q(ids)+" -nt "+q(krl)+" ]; then echo stale; else echo ok; fi", nil)
	if err != nil {
		return err
	}
	switch strings.TrimSpace(out) {
	case "ok":
		s.note("file "+krl, "unchanged", "")
		return nil
	case "missing":
		s.note("file "+krl, "created", "KRL made by ssh-keygen -k from "+ids)
	default:
		s.note("file "+krl, "updated", "KRL made by ssh-keygen -k from "+ids)
	}
	if s.dry {
		return nil
	}
	return s.makeKRL()
}

func (s *setup) makeKRL() error {
	q := shellQuote
	krl := s.l.KRLFile()
	_, err := s.sh("umask 022; rm -f "+q(krl+".ringmesh-new")+" && ssh-keygen -q -k -f "+q(krl+".ringmesh-new")+" -s "+q(s.l.CAFile())+" "+q(s.l.RevokedIDsFile())+
		" && chmod 0644 "+q(krl+".ringmesh-new")+" && mv -f "+q(krl+".ringmesh-new")+" "+q(krl), nil)
	return err
}

func (s *setup) sshdArgs() string {
	if s.l.SSHDConfig != "" {
		return " -f " + shellQuote(s.l.SSHDConfig)
	}
	return ""
}

// dropIn writes the drop-in and, when it or the CA changed, validates the
// whole configuration with sshd -t: a failure puts the previous drop-in back.
func (s *setup) dropIn() error {
	prev, had, err := s.read(s.l.DropIn)
	if err != nil {
		return err
	}
	if err := s.file(s.l.DropIn, RenderDropIn(s.l), true); err != nil {
		return err
	}
	if !s.sshdCfg || s.dry {
		return nil
	}
	if out, err := s.sh(shellQuote(s.l.SSHD)+" -t"+s.sshdArgs()+" 2>&1", nil); err != nil {
		var restore error
		if had {
			restore = s.write(s.l.DropIn, prev)
		} else {
			_, restore = s.sh("rm -f "+shellQuote(s.l.DropIn), nil)
		}
		if restore != nil {
			return fmt.Errorf("sync target: sshd -t refused the configuration (%v %s), and restoring %s failed: %v", err, strings.TrimSpace(out), s.l.DropIn, restore)
		}
		return fmt.Errorf("sync target: sshd -t refused the configuration, previous %s restored: %w", s.l.DropIn, err)
	}
	return nil
}

// verify checks the effective settings for the account (sshd -T) and
// reloads sshd when its configuration changed.
func (s *setup) verify() error {
	if s.dry {
		if s.sshdCfg {
			s.note("sshd", "reloaded", "after sshd -t accepts the configuration")
		}
		return nil
	}
	out, err := s.sh(shellQuote(s.l.SSHD)+" -T"+s.sshdArgs()+" -C "+shellQuote("user="+s.l.Account+",host=ringmesh-setup-check,addr=127.0.0.1"), nil)
	if err != nil {
		return err
	}
	got := map[string]string{}
	for _, ln := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(ln), " "); ok {
			if _, seen := got[k]; !seen {
				got[k] = v
			}
		}
	}
	for _, kv := range effective(s.l) {
		if got[kv[0]] != kv[1] {
			return fmt.Errorf("sync target: sshd does not apply the drop-in to %s (%s is %q, want %q): make sure sshd_config includes %s (e.g. \"Include /etc/ssh/sshd_config.d/*.conf\" at its top) and that no earlier Match block sets it",
				s.l.Account, kv[0], got[kv[0]], kv[1], s.l.DropIn)
		}
	}
	if !s.sshdCfg {
		return nil
	}
	if _, err := s.sh(s.l.Reload, nil); err != nil {
		return err
	}
	s.note("sshd", "reloaded", "")
	return nil
}

// RevokeNode adds node's certificate key ID to the target's revoked_ids and
// rebuilds its KRL, so that sshd refuses every certificate with KeyId node
// from the next login on (sshd reads RevokedKeys at each authentication; no
// reload). It reports whether anything changed (false: already revoked).
func RevokeNode(ctx context.Context, run Runner, layout Layout, node string) (bool, error) {
	l := layout.WithDefaults()
	if err := l.Validate(); err != nil {
		return false, err
	}
	if !validNode(node) {
		return false, fmt.Errorf("sync target: revoke: node %q is not a node ID", node)
	}
	s := &setup{ctx: ctx, run: run, l: l}
	line := "id: " + node
	q := shellQuote
	out, err := s.sh("[ -f "+q(l.CAFile())+" ] || { echo nosetup; exit 0; }; grep -qxF "+q(line)+" "+q(l.RevokedIDsFile())+" 2>/dev/null && echo present || echo absent", nil)
	if err != nil {
		return false, err
	}
	switch strings.TrimSpace(out) {
	case "nosetup":
		return false, fmt.Errorf("sync target: %s missing: run meshctl target setup first", l.CAFile())
	case "present":
		return false, nil
	}
	if _, err := s.sh("printf '%s\\n' "+q(line)+" >> "+q(l.RevokedIDsFile()), nil); err != nil {
		return false, err
	}
	return true, s.makeKRL()
}

func validNode(n string) bool {
	if n == "" || len(n) > 64 {
		return false
	}
	for _, c := range n {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, ';'); i > 0 && i < 80 {
		return s[:i]
	}
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
