// Package enroll puts the ringmesh agent on a node over SSH and takes it
// off again (meshctl enroll, meshctl revoke). One enrollment: connect with
// golang.org/x/crypto/ssh to the endpoint the coordinator knows for the
// node (fleet.SSHEntries: provider proxy or direct, or the inventory, host
// and port always from the same endpoint), verifying the host key against
// a pinned known_hosts file (Pins); detect OS, architecture and whether
// systemd is PID 1; upload the agent binary over SFTP under a temporary
// name and rename it; write the node's config, its own bus credential
// (issued by the coordinator, role node, named by the node ID), the CA and
// the gossip key as 0600 files; start it as a systemd unit where systemd
// runs, else under `ringmesh-agent supervise --detach` (containers: Vast,
// RunPod); and wait until the coordinator has the node's hello under its
// own identity. Re-running compares versions: equal is left alone, a
// different one is replaced in place (the state directory, with the
// outbox, is kept). docs/enrollment.md has the whole story.
package enroll

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
	"github.com/pkg/sftp"
	"github.com/rs/zerolog"
	"golang.org/x/crypto/ssh"

	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/cli"
	"github.com/ringmesh/ringmesh/pkg/events"
	"github.com/ringmesh/ringmesh/pkg/fleet"
	"github.com/ringmesh/ringmesh/pkg/mesh"
)

// DefaultPrefix is where the agent is installed on a node unless --prefix
// says otherwise.
const DefaultPrefix = "/opt/ringmesh"

// UnitName is the systemd unit enrollment writes where systemd is PID 1.
const UnitName = "ringmesh-agent.service"

// unitPath is where the unit file goes.
const unitPath = "/etc/systemd/system/" + UnitName

// Start modes.
const (
	ModeAuto       = "auto"
	ModeSystemd    = "systemd"
	ModeSupervisor = "supervisor"
)

// Outcome is the one word of a node's result line.
type Outcome string

// Outcomes of Enroll.
const (
	Enrolled Outcome = "enrolled"
	Current  Outcome = "already current"
	Upgraded Outcome = "upgraded"
	Failed   Outcome = "failed"
)

// Node is what one enrollment needs to know about a node.
type Node struct {
	// Entry is the SSH endpoint (fleet.SSHEntries). Entry.HostKey, the
	// fingerprint the node's agent or provider reported, is trusted for a
	// first connection.
	Entry      fleet.SSHEntry
	Provider   string
	InstanceID string
	Role       string
	// Ephemeral turns continuous sync on (the registry's rule).
	Ephemeral bool
}

// Result is the outcome for one node.
type Result struct {
	Node    string  `json:"node"`
	Outcome Outcome `json:"outcome"`
	Error   string  `json:"error,omitempty"`
	OS      string  `json:"os,omitempty"`
	Arch    string  `json:"arch,omitempty"`
	// Systemd is true when systemd runs as PID 1 on the node.
	Systemd bool `json:"systemd"`
	// Mode is how the agent runs: "systemd" or "supervisor".
	Mode            string `json:"mode,omitempty"`
	Version         string `json:"version,omitempty"`
	PreviousVersion string `json:"previous_version,omitempty"`
	// Prefix is the install directory on the node.
	Prefix string `json:"prefix,omitempty"`
	// Notes are things the operator should know (e.g. gossip left off).
	Notes []string `json:"notes,omitempty"`
	// Took is the enrollment's duration in seconds.
	Took float64 `json:"took_seconds"`
}

// Line is the result as one line of meshctl enroll's output.
func (r Result) Line() string {
	s := r.Node + ": "
	if r.Outcome == Failed {
		s += "failed: " + events.StripControl(r.Error)
	} else {
		s += string(r.Outcome)
		if r.Version != "" {
			s += " (" + r.Version
			if r.PreviousVersion != "" && r.PreviousVersion != r.Version {
				s += ", was " + r.PreviousVersion
			}
			if r.Mode != "" {
				s += ", " + r.Mode
			}
			s += ")"
		}
	}
	for _, n := range r.Notes {
		s += "; " + n
	}
	return s
}

// Credentials issues a node's own bus credential.
type Credentials interface {
	// Issue returns a .creds file for node (role node) and the CA
	// certificate (PEM) its servers are signed with, and the coordinator's
	// data-protection settings for the node's agent.conf. When current (the
	// public key of the credential the node holds) is still a valid
	// credential of node, Creds and CAPEM are nil: nothing new is issued.
	Issue(ctx context.Context, node, current string) (Credential, error)
}

// Credential is what Credentials.Issue returns.
type Credential struct {
	Creds, CAPEM []byte
	// Sync, when set, goes into agent.conf (--replication-target,
	// --max-concurrent-syncs, --data-class).
	Sync *api.SyncSettings
}

// Waiter waits for the node's agent to speak under its own identity.
type Waiter interface {
	// Boot returns the boot ID the coordinator holds for node now ("" when none).
	Boot(ctx context.Context, node string) (string, error)
	// Wait returns nil once the coordinator has a hello from node with a
	// boot other than before, reporting version, and a heartbeat.
	Wait(ctx context.Context, node, version, before string) error
}

// Config is how nodes are enrolled; one Config serves many Enroll calls in
// parallel.
type Config struct {
	// Prefix is the install directory on the node (DefaultPrefix); "~/x"
	// is relative to the SSH user's home.
	Prefix string
	// Pins holds the pinned host keys.
	Pins *Pins
	// AcceptHostKey is a fingerprint the operator vouches for (one node).
	AcceptHostKey string
	// Confirm asks the operator about an unpinned key (nil = refuse).
	Confirm Confirm
	// Binaries gives the agent for the node's architecture.
	Binaries Binaries
	// Creds issues node credentials.
	Creds Credentials
	// Waiter, when set, is asked to confirm the node's hello.
	Waiter Waiter
	// NATSURLs are the bus URLs the node's agent connects to.
	NATSURLs []string
	// GossipKey is the gossip keyring text (base64 keys, one per line);
	// empty = the node runs without gossip.
	GossipKey []byte
	// GossipPort is the memberlist port on the node (default 7946).
	GossipPort int
	// MetricsListen is the agent's --metrics-listen; nil keeps the agent's
	// default (loopback 9108), "" turns it off.
	MetricsListen *string
	// Mode is ModeAuto (systemd where it is PID 1 and root or sudo -n is
	// available, else the supervisor), ModeSystemd or ModeSupervisor.
	Mode string
	// CoordinatorVersion is the coordinator's version (api.Status.Version);
	// an agent binary of another version is refused unless
	// AllowVersionSkew. Empty = not known (an older coordinator): not checked.
	CoordinatorVersion string
	// AllowVersionSkew installs an agent whose version differs from the
	// coordinator's (meshctl enroll --allow-version-skew).
	AllowVersionSkew bool
	// Deadline bounds one node's enrollment, the wait for its hello
	// included (default 2 minutes).
	Deadline time.Duration
	// Log receives progress at debug level; never a secret.
	Log zerolog.Logger
}

// layout is where things live on the node under prefix p.
type layout struct{ p string }

func (l layout) bin() string         { return l.p + "/bin/ringmesh-agent" }
func (l layout) etc() string         { return l.p + "/etc" }
func (l layout) conf() string        { return l.p + "/etc/agent.conf" }
func (l layout) creds() string       { return l.p + "/etc/node.creds" }
func (l layout) ca() string          { return l.p + "/etc/ca.pem" }
func (l layout) gossipKey() string   { return l.p + "/etc/gossip.key" }
func (l layout) state() string       { return l.p + "/var" }
func (l layout) run() string         { return l.p + "/run" }
func (l layout) pidFile() string     { return l.p + "/run/supervise.pid" }
func (l layout) agentPid() string    { return l.p + "/run/agent.pid" }
func (l layout) logDir() string      { return l.p + "/log" }
func (l layout) logFile() string     { return l.p + "/log/agent.log" }
func (l layout) startScript() string { return l.p + "/start-agent.sh" }

// superviseCmd is the shell command that starts the supervisor detached.
func (l layout) superviseCmd() string {
	return sq(l.bin()) + " supervise --detach --pid-file " + sq(l.pidFile()) + " --agent-pid-file " + sq(l.agentPid()) +
		" --log-file " + sq(l.logFile()) + " -- --config " + sq(l.conf())
}

// ValidPrefix checks an install prefix: an absolute clean path or "~/…",
// matching the path pattern.
func ValidPrefix(p string) error {
	rest, home := strings.CutPrefix(p, "~/")
	if !home {
		rest = strings.TrimPrefix(p, "/")
	}
	switch {
	case !events.ValidPath(p) || p == "":
		return fmt.Errorf("--prefix %q: only letters, digits and ._+@~/=,- are allowed", events.StripControl(p))
	case !home && !strings.HasPrefix(p, "/"):
		return fmt.Errorf("--prefix %q: want an absolute path or ~/DIR", p)
	case path.Clean("/"+rest) != "/"+rest || strings.Contains(p, ".."):
		return fmt.Errorf("--prefix %q: want a clean path (no .., no trailing /)", p)
	case p == "/":
		return errors.New("--prefix /: choose a directory")
	}
	return nil
}

// probe is what the first command on the node tells.
type probe struct {
	os, arch, pid1, uid string
	systemctl, sudo     bool
	version             string // remote agent's version, "" when none installed
	running             bool
	// credsKey is the public key of the node's installed credential
	// ("" when there is none or it cannot be read).
	credsKey string
}

func (cfg *Config) probeScript(l layout) string {
	b := sq(l.bin())
	return strings.Join([]string{
		"uname -s", "uname -m",
		"(cat /proc/1/comm 2>/dev/null || echo unknown)",
		"id -u",
		"(command -v systemctl >/dev/null 2>&1 && echo yes || echo no)",
		"(command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1 && echo yes || echo no)",
		"(if [ -x " + b + " ]; then " + b + " --version 2>/dev/null | head -n 1 | grep . || echo unknown; else echo none; fi)",
		"(if pid=$(cat " + sq(l.pidFile()) + " 2>/dev/null) && kill -0 \"$pid\" 2>/dev/null; then echo running; " +
			"elif command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet ringmesh-agent 2>/dev/null; then echo running; else echo stopped; fi)",
		// The creds file's second line is its user JWT (public; the seed is not read).
		"echo \"creds:$(sed -n 2p " + sq(l.creds()) + " 2>/dev/null | head -c 4096 | tr -cd 'A-Za-z0-9._-')\"",
	}, "; ")
}

func parseProbe(out string) (probe, error) {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 9 {
		return probe{}, fmt.Errorf("unexpected answer to the probe (%d lines): %q", len(lines), events.StripControl(clip(out, 200)))
	}
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	p := probe{os: lines[0], arch: lines[1], pid1: lines[2], uid: lines[3], systemctl: lines[4] == "yes", sudo: lines[5] == "yes",
		running: lines[7] == "running", credsKey: userKey(strings.TrimPrefix(lines[8], "creds:"))}
	switch v := lines[6]; v {
	case "none":
	case "unknown":
		p.version = "unknown"
	default:
		if p.version = versionOf(v); p.version == "" {
			p.version = "unknown"
		}
	}
	return p, nil
}

// userKey returns the subject (a user public key) of a user JWT, or "".
func userKey(tok string) string {
	if tok == "" {
		return ""
	}
	uc, err := jwt.DecodeUserClaims(tok)
	if err != nil || !nkeys.IsValidPublicUserKey(uc.Subject) {
		return ""
	}
	return uc.Subject
}

// versionOf reads the version from `ringmesh-agent --version` output
// ("ringmesh-agent v1.2.3 (commit …)"); "" when it is not that.
func versionOf(out string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
	f := strings.Fields(line)
	if len(f) >= 2 && f[0] == "ringmesh-agent" && events.Match("token", f[1]) && len(f[1]) <= 64 {
		return f[1]
	}
	return ""
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// GoArch maps `uname -m` to a Go architecture ("" when unsupported).
func GoArch(machine string) string {
	switch machine {
	case "x86_64", "amd64":
		return "amd64"
	case "aarch64", "arm64", "armv8l":
		return "arm64"
	}
	return ""
}

// Enroll enrolls one node; it never panics on a node's answers and always
// returns a Result (Outcome Failed with Error on any failure).
func (cfg *Config) Enroll(ctx context.Context, n Node) (res Result) {
	start := time.Now()
	res = Result{Node: n.Entry.Node}
	defer func() { res.Took = time.Since(start).Seconds() }()
	out, err := cfg.enroll(ctx, n, &res)
	if err != nil {
		res.Outcome, res.Error = Failed, err.Error()
		return res
	}
	res.Outcome = out
	return res
}

func (cfg *Config) enroll(ctx context.Context, n Node, res *Result) (Outcome, error) {
	e := n.Entry
	if err := e.Check(); err != nil {
		return "", fmt.Errorf("SSH endpoint: %w", err)
	}
	if err := mesh.ValidateNodeID(e.Node); err != nil {
		return "", err
	}
	prefix := cfg.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if err := ValidPrefix(prefix); err != nil {
		return "", err
	}
	if cfg.Pins == nil || cfg.Binaries == nil || cfg.Creds == nil {
		return "", errors.New("enroll: Pins, Binaries and Creds are required")
	}
	if len(cfg.NATSURLs) == 0 {
		return "", errors.New("enroll: no NATS URLs for the node's agent")
	}
	d := cfg.Deadline
	if d <= 0 {
		d = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	log := cfg.Log.With().Str("node", e.Node).Logger()

	auth, closeAuth, err := authMethods(e.IdentityFile)
	if err != nil {
		return "", err
	}
	defer closeAuth()
	cb := cfg.Pins.callback(e.Node, trust{expected: e.HostKey, accepted: cfg.AcceptHostKey, confirm: cfg.Confirm})
	log.Debug().Str("host", e.Host).Int("port", e.Port).Str("source", e.Source).Msg("connecting")
	client, err := dial(ctx, e.Host, e.Port, e.User, auth, cfg.Pins.algorithms(e.Node), cb, 20*time.Second)
	if err != nil {
		if errors.Is(err, ErrHostKeyChanged) || errors.Is(err, ErrHostKeyUntrusted) {
			return "", unwrapHandshake(err)
		}
		return "", fmt.Errorf("ssh %s@%s:%d (%s): %w", e.User, e.Host, e.Port, e.Source, err)
	}
	defer client.Close()
	sc, err := sftp.NewClient(client)
	if err != nil {
		return "", fmt.Errorf("sftp: %w (the node's sshd needs the sftp subsystem)", err)
	}
	defer sc.Close()
	if strings.HasPrefix(prefix, "~/") {
		home, err := sc.Getwd()
		if err != nil || !strings.HasPrefix(home, "/") || !events.ValidPath(home) {
			return "", fmt.Errorf("resolve --prefix %s: home directory %q: %v", prefix, events.StripControl(home), err)
		}
		prefix = strings.TrimSuffix(home, "/") + prefix[1:]
	}
	l := layout{p: prefix}
	res.Prefix = prefix

	out, err := run(ctx, client, cfg.probeScript(l))
	if err != nil {
		return "", fmt.Errorf("probe: %w", err)
	}
	pr, err := parseProbe(out)
	if err != nil {
		return "", err
	}
	res.OS, res.Systemd = pr.os, pr.pid1 == "systemd"
	if pr.os != "Linux" {
		return "", fmt.Errorf("the node runs %q; the agent is built for Linux only", events.StripControl(pr.os))
	}
	arch := GoArch(pr.arch)
	if arch == "" {
		return "", fmt.Errorf("unsupported architecture %q (want x86_64 or aarch64)", events.StripControl(pr.arch))
	}
	res.Arch = arch
	root := pr.uid == "0"
	mode, note := cfg.chooseMode(pr, root)
	if mode == "" {
		return "", errors.New(note)
	}
	if note != "" {
		res.Notes = append(res.Notes, note)
	}
	res.Mode = mode

	bin, version, err := cfg.Binaries.Binary(ctx, arch)
	if err != nil {
		return "", err
	}
	if err := cfg.checkVersion(version); err != nil {
		return "", err
	}
	res.PreviousVersion = pr.version
	// A credential already on the node is kept while the coordinator says
	// it is valid; a revoked one is replaced.
	var newCreds, newCA []byte
	var syncSettings *api.SyncSettings
	credsValid := false
	if pr.credsKey != "" {
		cr, err := cfg.Creds.Issue(ctx, e.Node, pr.credsKey)
		if err != nil {
			return "", fmt.Errorf("check the node's credential: %w", err)
		}
		newCreds, newCA, syncSettings = cr.Creds, cr.CAPEM, cr.Sync
		credsValid = newCreds == nil
		if !credsValid {
			res.Notes = append(res.Notes, "its credential was revoked: a new one was issued")
		}
	}
	current := func() (Outcome, error) {
		if pr.running {
			return Current, nil
		}
		// Installed and current, but not running (a rebooted container):
		// start it again, nothing else changes.
		res.Notes = append(res.Notes, "was not running; started")
		before, err := cfg.boot(ctx, e.Node)
		if err != nil {
			return "", err
		}
		if err := cfg.start(ctx, client, l, mode, root, false); err != nil {
			return "", err
		}
		if err := cfg.wait(ctx, e.Node, version, before, l); err != nil {
			return "", err
		}
		return Current, nil
	}
	if version != "" && pr.version == version && credsValid {
		res.Version = version
		return current()
	}
	if err := mkdirs(sc, 0o755, l.p, l.p+"/bin"); err != nil {
		return "", err
	}
	if err := mkdirs(sc, 0o700, l.etc(), l.state(), l.run(), l.logDir()); err != nil {
		return "", err
	}
	f, err := os.Open(bin)
	if err != nil {
		return "", fmt.Errorf("agent binary: %w", err)
	}
	log.Debug().Str("binary", bin).Str("version", version).Msg("uploading the agent")
	tmp, err := putTemp(sc, l.bin(), f, 0o755)
	f.Close()
	if err != nil {
		return "", fmt.Errorf("upload the agent: %w", err)
	}
	installed := false
	defer func() {
		if !installed {
			_ = sc.Remove(tmp)
		}
	}()
	if version == "" {
		// A binary given by the operator: it says its version on the node
		// (--version starts nothing).
		out, err := run(ctx, client, sq(tmp)+" --version")
		if err != nil {
			return "", fmt.Errorf("the uploaded agent does not run on the node: %w", err)
		}
		v := versionOf(out)
		if v == "" {
			return "", fmt.Errorf("the uploaded binary is not a ringmesh agent (--version said %q)", events.StripControl(clip(out, 100)))
		}
		version = v
		if err := cfg.checkVersion(version); err != nil {
			return "", err
		}
	}
	res.Version = version
	if pr.version == version && credsValid {
		return current()
	}
	if err := sc.PosixRename(tmp, l.bin()); err != nil {
		return "", fmt.Errorf("install the agent: rename %s to %s: %w", tmp, l.bin(), err)
	}
	installed = true
	upgrade := pr.version != "" && pr.version != version
	if !credsValid && newCreds == nil {
		cr, err := cfg.Creds.Issue(ctx, e.Node, "")
		if err != nil {
			return "", fmt.Errorf("issue the node's credential: %w", err)
		}
		newCreds, newCA, syncSettings = cr.Creds, cr.CAPEM, cr.Sync
		if newCreds == nil {
			return "", errors.New("issue the node's credential: the coordinator issued none")
		}
	}
	if newCreds != nil {
		if err := putFile(sc, l.creds(), bytes.NewReader(newCreds), 0o600); err != nil {
			return "", err
		}
		if err := putFile(sc, l.ca(), bytes.NewReader(newCA), 0o600); err != nil {
			return "", err
		}
	}
	conf, notes := cfg.agentConf(n, l, syncSettings)
	res.Notes = append(res.Notes, notes...)
	if len(cfg.GossipKey) > 0 && strings.Contains(conf, "gossip-key-file") {
		if err := putFile(sc, l.gossipKey(), bytes.NewReader(cfg.GossipKey), 0o600); err != nil {
			return "", err
		}
	}
	if err := putFile(sc, l.conf(), strings.NewReader(conf), 0o600); err != nil {
		return "", err
	}
	script := "#!/bin/sh\n# Starts the ringmesh agent under its supervisor, detached (written by meshctl enroll).\n# Put this line in the provider's on-start script so the agent comes back after a container restart.\nexec " + l.superviseCmd() + "\n"
	if err := putFile(sc, l.startScript(), strings.NewReader(script), 0o700); err != nil {
		return "", err
	}
	if mode == ModeSystemd {
		if err := putFile(sc, l.etc()+"/"+UnitName, strings.NewReader(unitFile(l)), 0o644); err != nil {
			return "", err
		}
	}
	before, err := cfg.boot(ctx, e.Node)
	if err != nil {
		return "", err
	}
	if pr.running && mode == ModeSupervisor {
		// The supervisor runs the old binary: stop it (SIGINT, forwarded)
		// and start a new one. Under systemd the restart is start's job.
		if _, err := StopAgent(ctx, client, prefix); err != nil {
			return "", fmt.Errorf("stop the old agent: %w", err)
		}
	}
	if err := cfg.start(ctx, client, l, mode, root, pr.running); err != nil {
		return "", err
	}
	if err := cfg.wait(ctx, e.Node, version, before, l); err != nil {
		return "", err
	}
	if upgrade {
		return Upgraded, nil
	}
	return Enrolled, nil
}

// unwrapHandshake strips x/crypto's "ssh: handshake failed: " around a host key refusal.
func unwrapHandshake(err error) error {
	for _, target := range []error{ErrHostKeyChanged, ErrHostKeyUntrusted} {
		if errors.Is(err, target) {
			msg := err.Error()
			if i := strings.Index(msg, target.Error()); i >= 0 {
				return fmt.Errorf("%w%s", target, msg[i+len(target.Error()):])
			}
		}
	}
	return err
}

func (cfg *Config) chooseMode(pr probe, root bool) (string, string) {
	systemd := pr.pid1 == "systemd" && pr.systemctl
	canSystemd := systemd && (root || pr.sudo)
	switch cfg.Mode {
	case ModeSupervisor:
		return ModeSupervisor, ""
	case ModeSystemd:
		if !canSystemd {
			if !systemd {
				return "", fmt.Sprintf("--mode systemd: systemd is not PID 1 on the node (PID 1 is %q)", events.StripControl(pr.pid1))
			}
			return "", "--mode systemd: needs root or passwordless sudo (sudo -n) on the node"
		}
		return ModeSystemd, ""
	}
	if canSystemd {
		return ModeSystemd, ""
	}
	if systemd {
		return ModeSupervisor, "systemd runs but the SSH user is neither root nor allowed sudo -n: using the supervisor"
	}
	return ModeSupervisor, ""
}

func (cfg *Config) boot(ctx context.Context, node string) (string, error) {
	if cfg.Waiter == nil {
		return "", nil
	}
	b, err := cfg.Waiter.Boot(ctx, node)
	if err != nil {
		return "", fmt.Errorf("ask the coordinator for %s: %w", node, err)
	}
	return b, nil
}

// checkVersion refuses an agent binary whose version is known and differs
// from the coordinator's, unless the operator allows the skew ("" = not
// known yet: a binary given by the operator says it on the node).
func (cfg *Config) checkVersion(agent string) error {
	if agent == "" || cfg.CoordinatorVersion == "" || agent == cfg.CoordinatorVersion || cfg.AllowVersionSkew {
		return nil
	}
	return fmt.Errorf("the agent binary is version %s, the coordinator runs %s: give the agent of the coordinator's release (--agent-binary), or --allow-version-skew to install it anyway",
		events.StripControl(clip(agent, 64)), events.StripControl(clip(cfg.CoordinatorVersion, 64)))
}

func (cfg *Config) wait(ctx context.Context, node, version, before string, l layout) error {
	if cfg.Waiter == nil {
		return nil
	}
	if err := cfg.Waiter.Wait(ctx, node, version, before); err != nil {
		return fmt.Errorf("%w; the agent's log is %s on the node (meshctl ssh %s -- tail -n 50 %s)", err, l.logFile(), node, l.logFile())
	}
	return nil
}

// agentConf is the node's agent.conf (flag=value lines, read by the
// agent's --config) and notes about what was left out.
func (cfg *Config) agentConf(n Node, l layout, ss *api.SyncSettings) (string, []string) {
	var notes []string
	var b strings.Builder
	b.WriteString("# ringmesh agent configuration, written by meshctl enroll.\n# One flag per line (name=value); flags on the command line win.\n")
	kv := func(k, v string) { fmt.Fprintf(&b, "%s=%s\n", k, v) }
	kv("node", n.Entry.Node)
	kv("nats-url", strings.Join(cfg.NATSURLs, ","))
	kv("creds", l.creds())
	kv("ca", l.ca())
	kv("state-dir", l.state())
	if n.Provider != "" && n.Provider != mesh.ProviderUnknown && events.Match("node", n.Provider) {
		kv("provider", n.Provider)
	}
	if n.InstanceID != "" && events.Match("token", n.InstanceID) {
		kv("instance-id", n.InstanceID)
	}
	if n.Role != "" && events.Match("token", n.Role) {
		kv("role", n.Role)
	}
	if n.Ephemeral {
		kv("sync", "on")
	} else {
		kv("sync", "off")
	}
	if ss != nil {
		// The coordinator's inventory (sync_routing, auto_sync): the node
		// has no inventory of its own.
		if ss.ReplicationTarget > 0 {
			kv("replication-target", strconv.Itoa(ss.ReplicationTarget))
		}
		if ss.MaxConcurrentSyncs > 0 {
			kv("max-concurrent-syncs", strconv.Itoa(ss.MaxConcurrentSyncs))
		}
		names := slices.Sorted(maps.Keys(ss.DataClasses))
		for _, name := range names {
			var d cli.DataClasses
			if err := d.Set(cli.FormatDataClass(name, ss.DataClasses[name])); err != nil {
				notes = append(notes, "data class left out of agent.conf: "+err.Error())
				continue
			}
			kv("data-class", d.String())
		}
	}
	if cfg.MetricsListen != nil {
		kv("metrics-listen", *cfg.MetricsListen)
	}
	kv("log-format", "json")
	if len(cfg.GossipKey) > 0 {
		port := cfg.GossipPort
		if port == 0 {
			port = 7946
		}
		host := n.Entry.Host
		if strings.HasPrefix(n.Entry.Source, "provider:proxy") || !isIP(host) {
			notes = append(notes, "gossip off: the node's SSH endpoint is not a direct IP address to advertise")
		} else {
			kv("gossip-listen", "0.0.0.0:"+strconv.Itoa(port))
			kv("gossip-advertise", joinHostPort(host, port))
			kv("gossip-key-file", l.gossipKey())
		}
	}
	return b.String(), notes
}

func unitFile(l layout) string {
	return `[Unit]
Description=ringmesh agent (written by meshctl enroll)
After=network-online.target
Wants=network-online.target

[Service]
ExecStart=` + l.bin() + ` --config ` + l.conf() + `
Restart=always
RestartSec=5
# SIGTERM starts the agent's preemption flush; give it the longest notice.
KillSignal=SIGTERM
TimeoutStopSec=90
UMask=0077

[Install]
WantedBy=multi-user.target
`
}

// start starts the agent in mode; restart is true when an agent runs
// already (under systemd it is then signalled to restart).
func (cfg *Config) start(ctx context.Context, c *ssh.Client, l layout, mode string, root, restart bool) error {
	if mode == ModeSystemd {
		sudo := ""
		if !root {
			sudo = "sudo -n "
		}
		cmd := sudo + "install -m 0644 " + sq(l.etc()+"/"+UnitName) + " " + unitPath + " && " + sudo + "systemctl daemon-reload && " +
			sudo + "systemctl enable --quiet ringmesh-agent && "
		if restart {
			// SIGINT, not systemctl restart (SIGTERM would read as a
			// preemption): the agent flushes, says bye and exits, and
			// Restart=always starts the new binary RestartSec later.
			cmd += "if systemctl is-active --quiet ringmesh-agent; then " + sudo + "systemctl kill --signal=SIGINT --kill-whom=main ringmesh-agent; else " +
				sudo + "systemctl start ringmesh-agent; fi"
		} else {
			cmd += sudo + "systemctl restart ringmesh-agent"
		}
		if _, err := run(ctx, c, cmd); err != nil {
			return fmt.Errorf("start the systemd unit: %w", err)
		}
		return nil
	}
	if _, err := run(ctx, c, l.superviseCmd()); err != nil {
		return fmt.Errorf("start the supervisor: %w", err)
	}
	return nil
}
