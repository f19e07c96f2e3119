package gossip

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/hashicorp/memberlist"
	"github.com/rs/zerolog"
)

// DefaultPort is the conventional memberlist port (TCP and UDP), 7946. It is
// not applied automatically: BindPort 0 means "let the kernel choose", which
// tests need.
const DefaultPort = 7946

// Defaults applied by [Config.Validate] and [New] to zero-valued fields.
const (
	// DefaultRejoinInterval is how often seeds that are not seen alive are
	// joined again and one alive seed is synced with (30 s, like Serf's
	// ReconnectInterval).
	DefaultRejoinInterval = 30 * time.Second
	// DefaultDeadNodeReclaimTime is how long after a node was declared dead
	// its name may be taken by a node at a different address (30 s).
	DefaultDeadNodeReclaimTime = 30 * time.Second
	// DefaultLeaveTimeout bounds each step of a graceful leave: spreading
	// the leave intent, then memberlist's leave broadcast (5 s each).
	DefaultLeaveTimeout = 5 * time.Second
	// DefaultTombstoneTimeout is how long dead and left nodes stay in
	// [Member.Members] after their last state change (24 h, like Serf).
	DefaultTombstoneTimeout = 24 * time.Hour
	// DefaultEventBuffer is the capacity of the [Member.Events] channel,
	// in events.
	DefaultEventBuffer = 1024
)

// Profile selects memberlist's timing defaults.
type Profile string

// Timing profiles; see the package documentation for the figures.
const (
	// ProfileLAN uses memberlist.DefaultLANConfig (the default).
	ProfileLAN Profile = "lan"
	// ProfileWAN uses memberlist.DefaultWANConfig.
	ProfileWAN Profile = "wan"
	// ProfileLocal uses memberlist.DefaultLocalConfig (tests, one host).
	ProfileLocal Profile = "local"
	// ProfileCluster is tuned for ringmesh's real network (voters and GPU
	// nodes in nearby regions over the public internet, round trips up to
	// about 100 ms): DefaultLANConfig with a probe every 700 ms and a
	// 400 ms probe timeout (4× that round trip; Lifeguard awareness, up to
	// AwarenessMaxMultiplier 8, stretches both on a member that is itself
	// slow), suspicion multiplier 4 (2 independent confirmations bring the
	// suspicion timer down to its minimum), at most 6× that minimum
	// without confirmations. At 200 members a crash is suspected in about
	// 1–2 s and failed by all in about 7 s (BENCHMARKS.md).
	ProfileCluster Profile = "cluster"
)

// Timing of [ProfileCluster].
const (
	ClusterProbeInterval = 700 * time.Millisecond
	ClusterProbeTimeout  = 400 * time.Millisecond
	ClusterSuspicionMult = 4
)

// memberlistConfig returns a fresh memberlist configuration for the profile.
func (p Profile) memberlistConfig() (*memberlist.Config, error) {
	switch p {
	case "", ProfileLAN:
		return memberlist.DefaultLANConfig(), nil
	case ProfileWAN:
		return memberlist.DefaultWANConfig(), nil
	case ProfileLocal:
		return memberlist.DefaultLocalConfig(), nil
	case ProfileCluster:
		mc := memberlist.DefaultLANConfig()
		mc.ProbeInterval = ClusterProbeInterval
		mc.ProbeTimeout = ClusterProbeTimeout
		mc.SuspicionMult = ClusterSuspicionMult
		mc.SuspicionMaxTimeoutMult = 6
		mc.AwarenessMaxMultiplier = 8
		return mc, nil
	default:
		return nil, fmt.Errorf("unknown profile %q (want cluster, lan, wan or local)", string(p))
	}
}

// Config is the user-facing configuration of a [Member]. Zero values of
// durations and sizes mean "use the default" (see the Default* constants).
type Config struct {
	// NodeName is the stable, unique member name: the node ID of
	// distributed_hosts.yaml, [A-Za-z0-9_-]{1,64}.
	NodeName string

	// BindAddr is the IP address to listen on (TCP and UDP). Empty means
	// 0.0.0.0, which then requires AdvertiseAddr unless Dev is set.
	BindAddr string
	// BindPort is the port to listen on (TCP and UDP, same number);
	// 0 lets the kernel choose (tests). See [DefaultPort].
	BindPort int

	// AdvertiseAddr is the IP address other members use to reach this one.
	// Required when BindAddr is unspecified (0.0.0.0 or ::) unless Dev:
	// it is never guessed on multi-NIC hosts. Empty with a specific
	// BindAddr means BindAddr.
	AdvertiseAddr string
	// AdvertisePort is the port other members use to reach this one
	// (e.g. behind a port mapping); 0 means the bound port.
	AdvertisePort int

	// Profile selects memberlist's timing defaults: "lan" (default),
	// "cluster" (tuned for ringmesh, see [ProfileCluster]), "wan" or
	// "local".
	Profile Profile

	// ClusterLabel is the cluster name, sent as memberlist's label with
	// every packet and stream (and authenticated with the key); members
	// with a different label are rejected. Required unless Dev; at most
	// 255 bytes.
	ClusterLabel string

	// Keys is the AES-GCM keyring; each key is 16, 24 or 32 bytes. Keys[0]
	// is the primary key (used to encrypt), all are accepted when
	// decrypting. Required unless Dev. See [ParseKey].
	Keys [][]byte

	// Seeds are the "host:port" addresses of the voters to join at start
	// and to re-join periodically. A member may list itself; it is skipped.
	Seeds []string

	// RejoinInterval is how often seeds that are not seen alive are joined
	// again, and one seen-alive seed is synced with, so that a healed
	// partition merges (default 30 s; ±10 % jitter).
	RejoinInterval time.Duration

	// DeadNodeReclaimTime is how long after a node was declared dead a node
	// with the same name but a different address may take its place
	// (default 30 s).
	DeadNodeReclaimTime time.Duration

	// LeaveTimeout bounds each of the two steps of a graceful leave
	// (spreading the leave intent; memberlist's leave broadcast);
	// default 5 s.
	LeaveTimeout time.Duration

	// TombstoneTimeout is how long a dead or left node stays visible in
	// Members after its last state change (default 24 h).
	TombstoneTimeout time.Duration

	// EventBuffer is the capacity of the Events channel in events
	// (default 1024). When it is full the oldest event is dropped.
	EventBuffer int

	// AllowedCIDRs, if not empty, restricts which source networks may
	// talk to this member (memberlist CIDRsAllowed), e.g. "10.0.0.0/8".
	AllowedCIDRs []string

	// Meta is this member's initial node metadata. Its Token is set by
	// the member from Sign.
	Meta Meta

	// Sign, if set, returns this member's identity token for its name at
	// its advertised address (addr is an IP, port the gossip port), carried
	// in Meta.Token. pkg/auth signs it with the node's own bus credential.
	Sign func(cluster, name, addr string, port int) (string, error)

	// VerifyPeer, if set, checks every alive claim of another member
	// (memberlist's AliveDelegate) before it enters this member's view:
	// a claim whose name, role and address are not bound by its token is
	// ignored and counted as rejected{reason="identity"}. Voters set it;
	// an agent's view decides nothing.
	VerifyPeer func(cluster, name, role, addr string, port int, token string) error

	// ReloadKeys, if set, is called every KeyReloadInterval; when it
	// returns a keyring different from the current one (first key
	// primary), the keyring is replaced in place: keys are added, the
	// primary switched, and keys no longer listed removed, without a
	// restart. Errors are logged and the keyring kept.
	ReloadKeys func() ([][]byte, error)

	// KeyReloadInterval is how often ReloadKeys is called (default 10 s).
	KeyReloadInterval time.Duration

	// Dev relaxes the production rules: no key and no cluster label are
	// required, and the advertise address may be guessed.
	Dev bool

	// Transport, if set, replaces memberlist's network transport (tests:
	// [PartitionTransport]). BindAddr and BindPort are then only used for
	// validation; the transport decides where it listens.
	Transport memberlist.NodeAwareTransport

	// Tune, if set, is called with the final memberlist configuration just
	// before memberlist is created: an escape hatch for tests and experts
	// (e.g. a shorter ProbeInterval). It must not replace Name, Label,
	// Keyring, Transport, Logger or any delegate.
	Tune func(*memberlist.Config)
}

var nodeNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// withDefaults returns a copy of c with zero values replaced by defaults.
func (c Config) withDefaults() Config {
	if c.BindAddr == "" {
		c.BindAddr = "0.0.0.0"
	}
	if c.Profile == "" {
		c.Profile = ProfileLAN
	}
	if c.RejoinInterval == 0 {
		c.RejoinInterval = DefaultRejoinInterval
	}
	if c.DeadNodeReclaimTime == 0 {
		c.DeadNodeReclaimTime = DefaultDeadNodeReclaimTime
	}
	if c.LeaveTimeout == 0 {
		c.LeaveTimeout = DefaultLeaveTimeout
	}
	if c.TombstoneTimeout == 0 {
		c.TombstoneTimeout = DefaultTombstoneTimeout
	}
	if c.EventBuffer == 0 {
		c.EventBuffer = DefaultEventBuffer
	}
	if c.KeyReloadInterval == 0 {
		c.KeyReloadInterval = 10 * time.Second
	}
	return c
}

// Validate checks the configuration (after defaults) and returns every
// problem found, each naming its field, joined into one error. It does not
// modify c.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("gossip: config %s: %s", field, fmt.Sprintf(format, args...)))
	}

	if !nodeNameRE.MatchString(c.NodeName) {
		bad("NodeName", "%q is not a node ID ([A-Za-z0-9_-]{1,64})", c.NodeName)
	}

	bindIP := net.ParseIP(c.BindAddr)
	if bindIP == nil {
		bad("BindAddr", "%q is not an IP address", c.BindAddr)
	}
	if c.BindPort < 0 || c.BindPort > 65535 {
		bad("BindPort", "%d is out of range 0..65535", c.BindPort)
	}
	if c.AdvertiseAddr != "" {
		ip := net.ParseIP(c.AdvertiseAddr)
		switch {
		case ip == nil:
			bad("AdvertiseAddr", "%q is not an IP address", c.AdvertiseAddr)
		case ip.IsUnspecified():
			bad("AdvertiseAddr", "%q is unspecified; give the address peers can reach", c.AdvertiseAddr)
		}
	} else if bindIP != nil && bindIP.IsUnspecified() && !c.Dev {
		bad("AdvertiseAddr", "required when BindAddr is %s: the address other members reach this one on is never guessed (multi-NIC hosts)", c.BindAddr)
	}
	if c.AdvertisePort < 0 || c.AdvertisePort > 65535 {
		bad("AdvertisePort", "%d is out of range 0..65535", c.AdvertisePort)
	}

	if _, err := c.Profile.memberlistConfig(); err != nil {
		bad("Profile", "%v", err)
	}

	switch {
	case c.ClusterLabel == "" && !c.Dev:
		bad("ClusterLabel", "required (the cluster name) outside dev mode")
	case len(c.ClusterLabel) > memberlist.LabelMaxSize:
		bad("ClusterLabel", "is %d bytes, limit %d", len(c.ClusterLabel), memberlist.LabelMaxSize)
	case strings.ContainsFunc(c.ClusterLabel, func(r rune) bool { return unicode.IsControl(r) || unicode.IsSpace(r) }):
		bad("ClusterLabel", "%q contains spaces or control characters", c.ClusterLabel)
	}

	if len(c.Keys) == 0 && !c.Dev {
		bad("Keys", "at least one gossip key is required outside dev mode (without a key anyone who reaches the port can read and forge membership)")
	}
	seen := map[string]int{}
	for i, k := range c.Keys {
		if err := memberlist.ValidateKey(k); err != nil {
			bad(fmt.Sprintf("Keys[%d]", i), "is %d bytes; an AES key is 16, 24 or 32 bytes", len(k))
		}
		if j, dup := seen[string(k)]; dup {
			bad(fmt.Sprintf("Keys[%d]", i), "duplicates Keys[%d]", j)
		}
		seen[string(k)] = i
	}

	for i, s := range c.Seeds {
		if err := validateHostPort(s); err != nil {
			bad(fmt.Sprintf("Seeds[%d]", i), "%v", err)
		}
	}

	if c.RejoinInterval < 100*time.Millisecond {
		bad("RejoinInterval", "%s is too short (minimum 100ms)", c.RejoinInterval)
	}
	if c.DeadNodeReclaimTime < 0 {
		bad("DeadNodeReclaimTime", "%s is negative", c.DeadNodeReclaimTime)
	}
	if c.LeaveTimeout < 0 {
		bad("LeaveTimeout", "%s is negative", c.LeaveTimeout)
	}
	if c.TombstoneTimeout < 0 {
		bad("TombstoneTimeout", "%s is negative", c.TombstoneTimeout)
	}
	if c.EventBuffer < 1 {
		bad("EventBuffer", "%d must be at least 1", c.EventBuffer)
	}
	if _, err := memberlist.ParseCIDRs(c.AllowedCIDRs); err != nil {
		bad("AllowedCIDRs", "%v", err)
	}
	if _, err := c.Meta.Encode(); err != nil {
		bad("Meta", "%v", err)
	}
	return errors.Join(errs...)
}

// validateHostPort checks a "host:port" seed address.
func validateHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %v", s, err)
	}
	if host == "" {
		return fmt.Errorf("%q has no host", s)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("%q has an invalid port (want 1..65535)", s)
	}
	return nil
}

// MarshalZerologObject logs the configuration without secrets: keys are
// reported by count only.
func (c Config) MarshalZerologObject(e *zerolog.Event) {
	e.Str("node", c.NodeName).
		Str("bind", net.JoinHostPort(c.BindAddr, strconv.Itoa(c.BindPort)))
	if c.AdvertiseAddr != "" {
		e.Str("advertise", net.JoinHostPort(c.AdvertiseAddr, strconv.Itoa(c.AdvertisePort)))
	}
	e.Str("profile", string(c.Profile)).
		Str("label", c.ClusterLabel).
		Int("keys", len(c.Keys)).
		Strs("seeds", c.Seeds).
		Dur("rejoin_interval", c.RejoinInterval).
		Dur("dead_node_reclaim_time", c.DeadNodeReclaimTime).
		Bool("dev", c.Dev)
}

// String describes the configuration without secrets (keys are counted,
// never printed), so that a Config can be logged with %v.
func (c Config) String() string {
	return fmt.Sprintf("gossip.Config{NodeName:%q BindAddr:%q BindPort:%d AdvertiseAddr:%q AdvertisePort:%d Profile:%q ClusterLabel:%q Keys:%d(redacted) Seeds:%q RejoinInterval:%s DeadNodeReclaimTime:%s Dev:%t}",
		c.NodeName, c.BindAddr, c.BindPort, c.AdvertiseAddr, c.AdvertisePort, c.Profile, c.ClusterLabel,
		len(c.Keys), c.Seeds, c.RejoinInterval, c.DeadNodeReclaimTime, c.Dev)
}

// ParseKey decodes a gossip key given in standard base64 (as produced by
// [GenerateKey] or `consul keygen`) and checks its length (16, 24 or 32
// bytes). Errors never contain the key.
func ParseKey(s string) ([]byte, error) {
	k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, errors.New("gossip: key is not valid base64")
	}
	if err := memberlist.ValidateKey(k); err != nil {
		return nil, fmt.Errorf("gossip: key is %d bytes; an AES key is 16, 24 or 32 bytes", len(k))
	}
	return k, nil
}

// GenerateKey returns a new random 32-byte (AES-256) gossip key in standard
// base64, suitable for [ParseKey].
func GenerateKey() (string, error) {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return "", fmt.Errorf("gossip: generate key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(k), nil
}

// ParseKeys decodes a keyring file: one base64 key per line (see
// [ParseKey]); blank lines and lines starting with # are skipped. The first
// key is the primary. Errors name the line, never the key.
func ParseKeys(s string) ([][]byte, error) {
	var keys [][]byte
	for i, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, err := ParseKey(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("gossip: no key")
	}
	return keys, nil
}
