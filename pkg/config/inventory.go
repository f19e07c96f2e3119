// Package config loads the cluster inventory, distributed_hosts.yaml, in the
// format of the original system's README and the wider field set of its
// loader (docs/ARCHITECTURE.md §7), and validates it into one
// Inventory value.
//
// Rules:
//   - A broken file is an error carrying file:line:column and the field.
//     For YAML syntax errors the parser only knows the line; the column is
//     then that of the first non-blank character of the line.
//   - Unknown fields are kept (Host.Extra) and reported once each as a Warning.
//   - A host's provider is its provider: field; the node-name prefix is only
//     the fallback (mesh.ProviderFromName).
//   - Node IDs must be subject-safe tokens ([A-Za-z0-9_-]{1,64}).
//   - YAML anchors, aliases and merge keys are honoured as YAML defines
//     them (https://yaml.org/type/merge.html): `<<: *base` and
//     `<<: [*a, *b]` copy the keys of the merged mappings that the mapping
//     does not set itself, earlier mappings in a list winning over later
//     ones; a whole host may be an alias (`vast-2: *base`). A merged value is
//     checked like a written one; its errors and warnings carry the position
//     where it is written (the anchor), reported once however many hosts
//     merge it. Top-level keys starting with "x-" are free for anchors
//     (`x-gpu-defaults: &gpu {...}`) and are otherwise ignored.
//   - ssh_host is a host name or a bare IPv4/IPv6 address, optionally with a
//     user@ prefix; a port in it (`host:2222`, `[2001:db8::1]:22`) is
//     refused: the port belongs in ssh_port.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/ringmesh/ringmesh/pkg/mesh"
	yaml "go.yaml.in/yaml/v3"
)

// StoragePaths are per-host overrides of the data sub-paths (original field storage_paths).
type StoragePaths struct {
	Games        string `yaml:"games" json:"games,omitempty"`
	Models       string `yaml:"models" json:"models,omitempty"`
	TrainingData string `yaml:"training_data" json:"training_data,omitempty"` // NPZ exports
	Checkpoints  string `yaml:"checkpoints" json:"checkpoints,omitempty"`
	Logs         string `yaml:"logs" json:"logs,omitempty"`
	SyncIncoming string `yaml:"sync_incoming" json:"sync_incoming,omitempty"`
}

// Host is one entry of hosts:. Field names and meanings follow the original
// loader (ai-service/app/config/cluster_config.py); pointer fields are nil when absent.
type Host struct {
	Name     string `yaml:"-" json:"name"`            // the node ID (map key)
	Provider string `yaml:"provider" json:"provider"` // resolved: explicit field, else name prefix
	// ProviderExplicit is true when the provider came from the provider: field.
	ProviderExplicit bool `yaml:"-" json:"provider_explicit"`

	// Connectivity.
	SSHHost string `yaml:"ssh_host" json:"ssh_host,omitempty"`
	SSHPort int    `yaml:"ssh_port" json:"ssh_port,omitempty"` // 0 = absent (22 applies)
	SSHUser string `yaml:"ssh_user" json:"ssh_user,omitempty"`
	SSHKey  string `yaml:"ssh_key" json:"ssh_key,omitempty"`
	// SSHHostKey is the host's SSH host key fingerprint as ssh-keygen -lf
	// prints it ("SHA256:" and 43 base64 characters), checked by the
	// operator. A sync target not set up with `meshctl target setup` is
	// used only with this key pinned: what the node reports about itself
	// is never trusted for it.
	SSHHostKey     string `yaml:"ssh_host_key" json:"ssh_host_key,omitempty"`
	TailscaleIP    string `yaml:"tailscale_ip" json:"tailscale_ip,omitempty"`
	TailscaleIPv6  string `yaml:"tailscale_ipv6" json:"tailscale_ipv6,omitempty"`
	P2PPort        int    `yaml:"p2p_port" json:"p2p_port,omitempty"`
	DataServerPort int    `yaml:"data_server_port" json:"data_server_port,omitempty"`
	DataServerURL  string `yaml:"data_server_url" json:"data_server_url,omitempty"`
	// GossipAddr is ringmesh's memberlist advertise address "host:port" for this node (optional).
	GossipAddr string `yaml:"gossip_addr" json:"gossip_addr,omitempty"`

	// Paths.
	RingriftPath        string       `yaml:"ringrift_path" json:"ringrift_path,omitempty"`
	VenvActivate        string       `yaml:"venv_activate" json:"venv_activate,omitempty"`
	StoragePaths        StoragePaths `yaml:"storage_paths" json:"storage_paths,omitempty"`
	UseExternalStorage  bool         `yaml:"use_external_storage" json:"use_external_storage,omitempty"`
	ExternalStoragePath string       `yaml:"external_storage_path" json:"external_storage_path,omitempty"`

	// Hardware.
	MemoryGB      float64 `yaml:"memory_gb" json:"memory_gb,omitempty"`
	CPUs          int     `yaml:"cpus" json:"cpus,omitempty"`
	GPU           string  `yaml:"gpu" json:"gpu,omitempty"`           // free text: "2x RTX 4090", "none"
	GPUType       string  `yaml:"gpu_type" json:"gpu_type,omitempty"` // seed README field
	GPUVRAMGB     float64 `yaml:"gpu_vram_gb" json:"gpu_vram_gb,omitempty"`
	CUDACapable   *bool   `yaml:"cuda_capable" json:"cuda_capable,omitempty"`
	BandwidthMbps float64 `yaml:"bandwidth_mbps" json:"bandwidth_mbps,omitempty"` // MB/s as in the original

	// Role and state.
	Role              string   `yaml:"role" json:"role,omitempty"`
	Status            string   `yaml:"status" json:"status,omitempty"`
	SelfplayEnabled   *bool    `yaml:"selfplay_enabled" json:"selfplay_enabled,omitempty"`
	TrainingEnabled   *bool    `yaml:"training_enabled" json:"training_enabled,omitempty"`
	P2PEnabled        *bool    `yaml:"p2p_enabled" json:"p2p_enabled,omitempty"`
	PreferredWorkload []string `yaml:"preferred_workloads" json:"preferred_workloads,omitempty"`
	ExcludedWorkload  []string `yaml:"excluded_workloads" json:"excluded_workloads,omitempty"`
	IsCoordinator     bool     `yaml:"is_coordinator" json:"is_coordinator,omitempty"`
	SkipSyncReceive   bool     `yaml:"skip_sync_receive" json:"skip_sync_receive,omitempty"`
	GauntletEnabled   *bool    `yaml:"gauntlet_enabled" json:"gauntlet_enabled,omitempty"`
	ExportEnabled     *bool    `yaml:"export_enabled" json:"export_enabled,omitempty"`

	// Provider instance IDs (strings even when written as numbers).
	VastInstanceID string `yaml:"vast_instance_id" json:"vast_instance_id,omitempty"`
	RunPodID       string `yaml:"runpod_id" json:"runpod_id,omitempty"`
	NebiusID       string `yaml:"nebius_id" json:"nebius_id,omitempty"`
	HetznerID      string `yaml:"hetzner_id" json:"hetzner_id,omitempty"`
	VultrID        string `yaml:"vultr_id" json:"vultr_id,omitempty"`
	LambdaID       string `yaml:"lambda_id" json:"lambda_id,omitempty"`
	AWSInstanceID  string `yaml:"aws_instance_id" json:"aws_instance_id,omitempty"`
	Region         string `yaml:"region" json:"region,omitempty"`
	P2PVoter       *bool  `yaml:"p2p_voter" json:"p2p_voter,omitempty"` // legacy per-host voter flag

	// Networking flags.
	IsEphemeral             *bool  `yaml:"is_ephemeral" json:"is_ephemeral,omitempty"`
	IsContainer             bool   `yaml:"is_container" json:"is_container,omitempty"`
	NeedsUserspaceTailscale bool   `yaml:"needs_userspace_tailscale" json:"needs_userspace_tailscale,omitempty"`
	SOCKS5Port              int    `yaml:"socks5_port" json:"socks5_port,omitempty"`
	NATBlocked              bool   `yaml:"nat_blocked" json:"nat_blocked,omitempty"`
	ForceRelayMode          bool   `yaml:"force_relay_mode" json:"force_relay_mode,omitempty"`
	RelayPrimary            string `yaml:"relay_primary" json:"relay_primary,omitempty"`
	RelaySecondary          string `yaml:"relay_secondary" json:"relay_secondary,omitempty"`
	RelayCapable            bool   `yaml:"relay_capable" json:"relay_capable,omitempty"`
	NFSEnabled              bool   `yaml:"nfs_enabled" json:"nfs_enabled,omitempty"`
	HasNFS                  bool   `yaml:"has_nfs" json:"has_nfs,omitempty"`
	DisableGPUTree          bool   `yaml:"disable_gpu_tree" json:"disable_gpu_tree,omitempty"`
	Note                    string `yaml:"note" json:"note,omitempty"`

	// PricePerHour is an operator-supplied price (USD/hour) for providers whose API has none (Nebius).
	PricePerHour float64 `yaml:"price_per_hour" json:"price_per_hour,omitempty"`

	// Extra keeps unknown fields as decoded YAML values.
	Extra map[string]any `yaml:"-" json:"extra,omitempty"`
	// Pos is where the host's key appears in the file.
	Pos Pos `yaml:"-" json:"-"`
}

// Ephemeral is the one definition of "ephemeral" (docs/ARCHITECTURE.md §2): explicit
// is_ephemeral wins, else the provider's nature (mesh.EphemeralByDefault).
func (h *Host) Ephemeral() bool {
	if h.IsEphemeral != nil {
		return *h.IsEphemeral
	}
	return mesh.EphemeralByDefault(h.Provider)
}

// Inactive reports whether the host's status takes it out of service
// (terminated, offline, setup, retired, archived), as the original loader did.
func (h *Host) Inactive() bool {
	switch strings.ToLower(h.Status) {
	case "terminated", "offline", "setup", "retired", "archived":
		return true
	}
	return false
}

// InstanceID returns the provider instance ID from the provider's *_id field ("" if none).
func (h *Host) InstanceID() string {
	switch h.Provider {
	case mesh.ProviderVast:
		return h.VastInstanceID
	case mesh.ProviderRunPod:
		return h.RunPodID
	case mesh.ProviderNebius:
		return h.NebiusID
	case mesh.ProviderHetzner:
		return h.HetznerID
	case mesh.ProviderVultr:
		return h.VultrID
	case mesh.ProviderLambda:
		return h.LambdaID
	}
	return ""
}

// SSHEndpoint returns (host, port, user) of the configured SSH endpoint.
// A user@host form in ssh_host is split; port defaults to 22; user to the
// provider's convention (ubuntu for Lambda and Nebius, root elsewhere).
func (h *Host) SSHEndpoint() (host string, port int, user string) {
	host, user = h.SSHHost, h.SSHUser
	if at := strings.LastIndex(host, "@"); at >= 0 {
		if user == "" {
			user = host[:at]
		}
		host = host[at+1:]
	}
	port = h.SSHPort
	if port == 0 {
		port = 22
	}
	if user == "" {
		switch h.Provider {
		case mesh.ProviderLambda, mesh.ProviderNebius:
			user = "ubuntu"
		default:
			user = "root"
		}
	}
	return host, port, user
}

// ExcludedHost is one sync_routing.excluded_hosts entry (a bare name or an object).
type ExcludedHost struct {
	Name          string `yaml:"name" json:"name"`
	ReceiveGames  *bool  `yaml:"receive_games" json:"receive_games,omitempty"`
	ReceiveNPZ    *bool  `yaml:"receive_npz" json:"receive_npz,omitempty"`
	ReceiveModels *bool  `yaml:"receive_models" json:"receive_models,omitempty"`
	Reason        string `yaml:"reason" json:"reason,omitempty"`
}

// UnmarshalYAML accepts both "name" and {name: ..., receive_games: ...}.
func (e *ExcludedHost) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		e.Name = n.Value
		return nil
	}
	type plain ExcludedHost
	return n.Decode((*plain)(e))
}

// SyncRouting is the sync_routing: section. Percentages are 0–100.
type SyncRouting struct {
	MaxDiskUsagePercent    float64        `yaml:"max_disk_usage_percent" json:"max_disk_usage_percent"`
	TargetDiskUsagePercent float64        `yaml:"target_disk_usage_percent" json:"target_disk_usage_percent"`
	MinFreeDiskPercent     float64        `yaml:"min_free_disk_percent" json:"min_free_disk_percent"`
	ReplicationTarget      int            `yaml:"replication_target" json:"replication_target"`
	ExcludedHosts          []ExcludedHost `yaml:"excluded_hosts" json:"excluded_hosts,omitempty"`
	PriorityHosts          []string       `yaml:"priority_hosts" json:"priority_hosts,omitempty"`
	UnderservedConfigs     []string       `yaml:"underserved_configs" json:"underserved_configs,omitempty"`
	AllowedExternalStorage []any          `yaml:"allowed_external_storage" json:"allowed_external_storage,omitempty"`
	S3                     map[string]any `yaml:"s3" json:"s3,omitempty"`
}

// AutoSync is the auto_sync: section. Bandwidth figures are MB/s as in the original.
type AutoSync struct {
	Enabled                bool               `yaml:"enabled" json:"enabled"`
	IntervalSeconds        int                `yaml:"interval_seconds" json:"interval_seconds"`
	GossipIntervalSeconds  int                `yaml:"gossip_interval_seconds" json:"gossip_interval_seconds"`
	SkipNFSSync            bool               `yaml:"skip_nfs_sync" json:"skip_nfs_sync"`
	MaxConcurrentSyncs     int                `yaml:"max_concurrent_syncs" json:"max_concurrent_syncs"`
	MinGamesToSync         int                `yaml:"min_games_to_sync" json:"min_games_to_sync"`
	BandwidthLimitMBps     float64            `yaml:"bandwidth_limit_mbps" json:"bandwidth_limit_mbps"`
	ExcludeHosts           []string           `yaml:"exclude_hosts" json:"exclude_hosts,omitempty"`
	HostBandwidthOverrides map[string]float64 `yaml:"host_bandwidth_overrides" json:"host_bandwidth_overrides,omitempty"`
	// DataClasses overrides which files of each data source an agent
	// protects: source name (games, training, models, checkpoints) → globs
	// relative to that data directory ("**/*.db"). A source not listed keeps
	// its default; see docs/data-protection.md.
	DataClasses map[string][]string `yaml:"data_classes" json:"data_classes,omitempty"`
}

// ProviderSettings is ringmesh's providers: section: per cloud, whether it
// is enabled, retired (listed for reference, every mutation refused) and its
// API base URL (for fakes and the demo mode).
type ProviderSettings struct {
	Enabled *bool  `yaml:"enabled" json:"enabled,omitempty"`
	Retired bool   `yaml:"retired" json:"retired,omitempty"`
	BaseURL string `yaml:"base_url" json:"base_url,omitempty"`
	// Project is the Nebius parent (project) ID for its CLI.
	Project string `yaml:"project" json:"project,omitempty"`
	// Subnet, ImageFamily and BootDiskGiB are what a Nebius launch needs
	// besides the offer: the VPC subnet of the VM's network interface
	// (vpcsubnet-…), the boot image family when the launch names no image,
	// and the boot disk size in GiB when the launch gives none.
	Subnet      string `yaml:"subnet" json:"subnet,omitempty"`
	ImageFamily string `yaml:"image_family" json:"image_family,omitempty"`
	BootDiskGiB int    `yaml:"boot_disk_gib" json:"boot_disk_gib,omitempty"`
	Note        string `yaml:"note" json:"note,omitempty"`
}

// Inventory is a validated distributed_hosts.yaml.
type Inventory struct {
	File             string                      `json:"file"`
	Hosts            map[string]*Host            `json:"hosts"`
	Voters           []string                    `json:"p2p_voters,omitempty"`
	RaftMembers      []string                    `json:"raft_members,omitempty"`
	CoordinatorNodes []string                    `json:"coordinator_nodes,omitempty"`
	ClusterName      string                      `json:"cluster_name,omitempty"`
	SyncRouting      SyncRouting                 `json:"sync_routing"`
	AutoSync         AutoSync                    `json:"auto_sync"`
	Providers        map[string]ProviderSettings `json:"providers,omitempty"`
	Budget           Budget                      `json:"budget,omitempty"` // budget: (budget.go)
	Policies         Policies                    `json:"policies"`         // policies: (policies.go); all off when absent
	// Sections of the original format that ringmesh reads but does not act on.
	Other map[string]any `json:"other,omitempty"`
	// Warnings are non-fatal findings (unknown fields), one per field occurrence.
	Warnings []Warning `json:"warnings,omitempty"`
}

// Names returns the host names sorted.
func (inv *Inventory) Names() []string {
	out := make([]string, 0, len(inv.Hosts))
	for n := range inv.Hosts {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// IsVoter reports whether node is in p2p_voters.
func (inv *Inventory) IsVoter(node string) bool {
	for _, v := range inv.Voters {
		if v == node {
			return true
		}
	}
	return false
}

// ProviderRetired reports whether provider p is marked retired in providers:.
func (inv *Inventory) ProviderRetired(p string) bool { return inv.Providers[p].Retired }

// Pos is a position in a file (1-based).
type Pos struct {
	File   string
	Line   int
	Column int
}

func (p Pos) String() string { return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Column) }

// Warning is a non-fatal finding with its position.
type Warning struct {
	Pos   Pos    `json:"-"`
	Where string `json:"where"`
	Field string `json:"field"`
	Msg   string `json:"msg"`
}

func (w Warning) String() string { return fmt.Sprintf("%s: %s: %s", w.Pos, w.Field, w.Msg) }

// Error is one problem in the file, with its position and field path.
type Error struct {
	Pos   Pos
	Field string // dotted path, e.g. hosts.vast-1.ssh_port
	Msg   string
}

func (e *Error) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("%s: %s", e.Pos, e.Msg)
	}
	return fmt.Sprintf("%s: %s: %s", e.Pos, e.Field, e.Msg)
}

// Errors is every problem found in one file.
type Errors []*Error

func (es Errors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "\n")
}

// LoadFile reads and validates the inventory at path.
func LoadFile(path string) (*Inventory, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read inventory: %w", err)
	}
	return Parse(path, b)
}

var yamlLineRe = regexp.MustCompile(`line (\d+): (.*)`)

// Parse validates the inventory in b; file names the source in errors.
// It returns *Inventory and nil, or nil and an Errors value listing every problem.
func Parse(file string, b []byte) (*Inventory, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, syntaxError(file, b, err)
	}
	p := &parser{file: file, inv: &Inventory{File: file, Hosts: map[string]*Host{}, Providers: map[string]ProviderSettings{}, Other: map[string]any{}, Policies: Policies{Idle: DefaultIdlePolicy(), Budget: BudgetPolicy{Mode: PolicyOff}}}}
	if len(doc.Content) == 0 {
		return nil, Errors{{Pos: Pos{file, 1, 1}, Msg: "empty inventory: expected a mapping with hosts:"}}
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, Errors{{Pos: p.pos(root), Msg: "top level must be a mapping with hosts:"}}
	}
	p.root(root)
	p.validate()
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	p.inv.SyncRouting.applyDefaults()
	p.inv.AutoSync.applyDefaults()
	return p.inv, nil
}

func syntaxError(file string, b []byte, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line, col := 1, 1
	if m := yamlLineRe.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
		lines := bytes.Split(b, []byte("\n"))
		if line-1 < len(lines) {
			col = len(lines[line-1]) - len(bytes.TrimLeft(lines[line-1], " \t")) + 1
		}
	}
	return Errors{{Pos: Pos{file, line, col}, Msg: "invalid YAML: " + msg}}
}

func (s *SyncRouting) applyDefaults() {
	if s.MaxDiskUsagePercent == 0 {
		s.MaxDiskUsagePercent = 70
	}
	if s.TargetDiskUsagePercent == 0 {
		s.TargetDiskUsagePercent = 60
	}
	if s.MinFreeDiskPercent == 0 {
		s.MinFreeDiskPercent = 15
	}
	if s.ReplicationTarget == 0 {
		s.ReplicationTarget = 2
	}
}

func (a *AutoSync) applyDefaults() {
	if a.IntervalSeconds == 0 {
		a.IntervalSeconds = 60
	}
	if a.MaxConcurrentSyncs == 0 {
		a.MaxConcurrentSyncs = 1
	}
	if a.BandwidthLimitMBps == 0 {
		a.BandwidthLimitMBps = 100
	}
}

type parser struct {
	file   string
	inv    *Inventory
	errs   Errors
	voters *yaml.Node
	// flat caches the effective key/value pairs of each mapping node, so a
	// mapping merged into many hosts is expanded once (no alias bombs).
	flat map[*yaml.Node][]pair
	// inFlat marks mappings being expanded (a merge cycle is an error).
	inFlat map[*yaml.Node]bool
	// reported de-duplicates findings at one source position: content
	// merged into twenty hosts is one mistake, reported once.
	reported map[string]bool
}

func (p *parser) pos(n *yaml.Node) Pos { return Pos{p.file, n.Line, n.Column} }

// once reports whether a finding (kind, position, last field component,
// message) is new.
func (p *parser) once(kind string, n *yaml.Node, field, msg string) bool {
	if p.reported == nil {
		p.reported = map[string]bool{}
	}
	leaf := field
	if i := strings.LastIndex(field, "."); i >= 0 {
		leaf = field[i+1:]
	}
	k := fmt.Sprintf("%s\x00%d:%d\x00%s\x00%s", kind, n.Line, n.Column, leaf, msg)
	if p.reported[k] {
		return false
	}
	p.reported[k] = true
	return true
}

func (p *parser) errorf(n *yaml.Node, field, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if p.once("error", n, field, msg) {
		p.errs = append(p.errs, &Error{Pos: p.pos(n), Field: field, Msg: msg})
	}
}

func (p *parser) warnf(n *yaml.Node, field, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if !p.once("warning", n, field, msg) {
		return
	}
	pos := p.pos(n)
	p.inv.Warnings = append(p.inv.Warnings, Warning{Pos: pos, Where: pos.String(), Field: field, Msg: msg})
}

// pair is one effective key/value of a mapping after merges.
type pair struct {
	k, v *yaml.Node
	// merged is true when the pair came from a << merge, not the mapping itself.
	merged bool
}

// deref follows aliases to the node they name.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	return n
}

// isMergeKey reports whether k is the YAML merge key << (plain or tagged
// !!merge; a quoted "<<" is an ordinary string key), as the yaml package
// decides it.
func isMergeKey(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.Value == "<<" && (k.Tag == "" || k.Tag == "!" || k.Tag == "!!merge" || k.Tag == "tag:yaml.org,2002:merge")
}

// pairs returns the effective key/value pairs of mapping m (an alias is
// followed): first its own keys in order (duplicates included, for the
// caller to report), then each key of the merged mappings that is not yet
// set, in merge order, so that explicit keys win and, in a list of merges,
// earlier mappings win over later ones (YAML merge key semantics). Bad
// merge values are reported at their position; field names the mapping.
func (p *parser) pairs(m *yaml.Node, field string) []pair {
	m = deref(m)
	if out, ok := p.flat[m]; ok {
		return out
	}
	if p.flat == nil {
		p.flat, p.inFlat = map[*yaml.Node][]pair{}, map[*yaml.Node]bool{}
	}
	if p.inFlat[m] {
		p.errorf(m, field, "merge (<<) includes the mapping it is part of")
		return nil
	}
	p.inFlat[m] = true
	defer delete(p.inFlat, m)
	var out []pair
	set := map[string]bool{}
	var merges []*yaml.Node
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if isMergeKey(k) {
			merges = append(merges, v)
			continue
		}
		out = append(out, pair{k: k, v: v})
		set[k.Value] = true
	}
	for _, mv := range merges {
		var srcs []*yaml.Node
		switch d := deref(mv); {
		case d.Kind == yaml.MappingNode:
			srcs = append(srcs, d)
		case mv.Kind == yaml.AliasNode: // an alias must name a mapping (as the yaml package decides)
			p.errorf(mv, field+".<<", "merge (<<) needs a mapping or a list of mappings (usually aliases such as *defaults), got an alias to %s", kindName(d))
		case d.Kind == yaml.SequenceNode:
			for _, e := range d.Content {
				if de := deref(e); de.Kind == yaml.MappingNode {
					srcs = append(srcs, de)
				} else {
					p.errorf(e, field+".<<", "a merge list holds mappings (usually aliases such as *defaults), got %s", kindName(de))
				}
			}
		default:
			p.errorf(mv, field+".<<", "merge (<<) needs a mapping or a list of mappings (usually aliases such as *defaults), got %s", kindName(d))
		}
		for _, src := range srcs {
			inSrc := map[string]*yaml.Node{}
			for _, sp := range p.pairs(src, field) {
				if prev, dup := inSrc[sp.k.Value]; dup {
					p.errorf(sp.k, field+"."+sp.k.Value, "duplicate key (first at line %d)", prev.Line)
					continue
				}
				inSrc[sp.k.Value] = sp.k
				if set[sp.k.Value] {
					continue
				}
				set[sp.k.Value] = true
				out = append(out, pair{k: sp.k, v: sp.v, merged: true})
			}
		}
	}
	p.flat[m] = out
	return out
}

// originalSections are top-level sections of the original format that
// ringmesh accepts and keeps without acting on them.
var originalSections = map[string]bool{
	"elo_sync": true, "protocols": true, "provider_timeouts": true, "disk_management": true,
	"consolidation": true, "membership_mode": true, "consensus_mode": true,
}

func (p *parser) root(root *yaml.Node) {
	seen := map[string]*yaml.Node{}
	for _, kv := range p.pairs(root, "") {
		k, v := kv.k, kv.v
		if prev, dup := seen[k.Value]; dup {
			p.errorf(k, k.Value, "duplicate key (first at line %d)", prev.Line)
			continue
		}
		seen[k.Value] = k
		if strings.HasPrefix(k.Value, "x-") {
			continue // a home for anchors (x-gpu-defaults: &gpu {...}); not read
		}
		switch k.Value {
		case "hosts":
			p.hosts(v)
		case "p2p_voters":
			p.voters = v
			p.decode(v, "p2p_voters", &p.inv.Voters)
		case "raft_members":
			p.decode(v, "raft_members", &p.inv.RaftMembers)
		case "coordinator_nodes":
			p.decode(v, "coordinator_nodes", &p.inv.CoordinatorNodes)
		case "cluster_name":
			p.decode(v, "cluster_name", &p.inv.ClusterName)
		case "sync_routing":
			p.strict(v, "sync_routing", &p.inv.SyncRouting)
		case "auto_sync":
			p.strict(v, "auto_sync", &p.inv.AutoSync)
		case "providers":
			p.providers(v)
		case "budget":
			p.budget(v)
		case "policies":
			p.policies(v)
		default:
			var val any
			p.decode(v, k.Value, &val)
			p.inv.Other[k.Value] = val
			if !originalSections[k.Value] {
				p.warnf(k, k.Value, "unknown top-level field (kept, ignored)")
			}
		}
	}
	if _, ok := seen["hosts"]; !ok {
		p.errs = append(p.errs, &Error{Pos: Pos{p.file, root.Line, root.Column}, Field: "hosts", Msg: "missing: the inventory needs a hosts: mapping"})
	}
}

// decode decodes v into out, recording a positioned error on failure.
func (p *parser) decode(v *yaml.Node, field string, out any) bool {
	if err := v.Decode(out); err != nil {
		p.errorf(v, field, "%s", typeErrMsg(err))
		return false
	}
	return true
}

func typeErrMsg(err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		m := te.Errors[0]
		if sm := yamlLineRe.FindStringSubmatch(m); sm != nil {
			m = sm[2]
		}
		return "wrong type: " + m
	}
	return err.Error()
}

// strict decodes a mapping field by field into the struct pointed to by out,
// so that each wrong type is reported at its own position and unknown fields
// are warned about (and kept in the returned map). Merge keys (<<) and
// aliases are resolved first (see pairs). nodes maps each set field to the
// node its value came from, for positions in later checks.
func (p *parser) strict(v *yaml.Node, path string, out any) (extra map[string]any, nodes map[string]*yaml.Node) {
	v = deref(v)
	if v.Kind != yaml.MappingNode {
		if v.Tag == "!!null" {
			return nil, nil
		}
		p.errorf(v, path, "wrong type: expected a mapping, got %s", kindName(v))
		return nil, nil
	}
	fields := yamlFields(reflect.ValueOf(out).Elem())
	nodes = map[string]*yaml.Node{}
	seen := map[string]*yaml.Node{}
	for _, kv := range p.pairs(v, path) {
		k, val := kv.k, kv.v
		fp := path + "." + k.Value
		if prev, dup := seen[k.Value]; dup {
			p.errorf(k, fp, "duplicate key (first at line %d)", prev.Line)
			continue
		}
		seen[k.Value] = k
		f, ok := fields[k.Value]
		if !ok {
			var x any
			_ = val.Decode(&x)
			if extra == nil {
				extra = map[string]any{}
			}
			extra[k.Value] = x
			p.warnf(k, fp, "unknown field (kept, ignored)")
			continue
		}
		dv := deref(val)
		if dv.Tag == "!!null" {
			continue
		}
		nodes[k.Value] = dv
		if f.Kind() == reflect.Struct && f.Type().NumMethod() == 0 && !f.Addr().Type().Implements(reflect.TypeFor[yaml.Unmarshaler]()) {
			p.strict(dv, fp, f.Addr().Interface())
			continue
		}
		p.decode(dv, fp, f.Addr().Interface())
	}
	return extra, nodes
}

func kindName(n *yaml.Node) string {
	n = deref(n)
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.ScalarNode:
		return fmt.Sprintf("%s %q", strings.TrimPrefix(n.Tag, "!!"), n.Value)
	}
	return "something else"
}

func yamlFields(v reflect.Value) map[string]reflect.Value {
	out := map[string]reflect.Value{}
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		out[tag] = v.Field(i)
	}
	return out
}

func (p *parser) hosts(v *yaml.Node) {
	v = deref(v)
	if v.Kind != yaml.MappingNode {
		p.errorf(v, "hosts", "wrong type: expected a mapping of node ID to host, got %s", kindName(v))
		return
	}
	for _, kv := range p.pairs(v, "hosts") {
		k, hv := kv.k, deref(kv.v)
		name := k.Value
		path := "hosts." + name
		if err := mesh.ValidateNodeID(name); err != nil {
			p.errorf(k, path, "%v", err)
			continue
		}
		if prev, dup := p.inv.Hosts[name]; dup {
			p.errorf(k, path, "duplicate host (first defined at line %d)", prev.Pos.Line)
			continue
		}
		h := &Host{Name: name, Pos: p.pos(k)}
		nerr := len(p.errs)
		var nodes map[string]*yaml.Node
		if hv.Tag == "!!null" {
			p.errorf(hv, path, "empty host: expected a mapping of fields")
		} else {
			h.Extra, nodes = p.strict(hv, path, h)
		}
		if len(p.errs) > nerr {
			p.inv.Hosts[name] = h // keep for duplicate detection only; Parse fails anyway
			continue
		}
		at := func(field string) *yaml.Node {
			if n := nodes[field]; n != nil {
				return n
			}
			return hv
		}
		if h.Provider != "" {
			h.Provider = strings.ToLower(h.Provider)
			h.ProviderExplicit = true
			if !mesh.KnownProvider(h.Provider) {
				p.errorf(at("provider"), path+".provider", "unknown provider %q (want one of %s, local, unknown)", h.Provider, strings.Join(mesh.Providers, ", "))
			}
		} else {
			h.Provider = mesh.ProviderFromName(name)
		}
		if h.SSHPort < 0 || h.SSHPort > 65535 {
			p.errorf(at("ssh_port"), path+".ssh_port", "out of range: %d", h.SSHPort)
		}
		if msg := checkSSHHost(h.SSHHost, h.SSHPort); msg != "" {
			p.errorf(at("ssh_host"), path+".ssh_host", "%s", msg)
		}
		if h.SSHUser != "" && !sshUserRe.MatchString(h.SSHUser) {
			p.errorf(at("ssh_user"), path+".ssh_user", "%q is not a login name ([A-Za-z0-9_][A-Za-z0-9._-]{0,31})", h.SSHUser)
		}
		if h.SSHHostKey != "" && !hostKeyFPRe.MatchString(h.SSHHostKey) {
			p.errorf(at("ssh_host_key"), path+".ssh_host_key", "%q is not a host key fingerprint: want SHA256: and 43 base64 characters, as `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` prints it", h.SSHHostKey)
		}
		p.inv.Hosts[name] = h
	}
}

var (
	sshUserRe = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,31}$`)
	// hostKeyFPRe is an OpenSSH SHA-256 fingerprint (events "fingerprint").
	hostKeyFPRe = regexp.MustCompile(`^SHA256:[A-Za-z0-9+/]{43}$`)
	// hostNameRe is a DNS name (RFC 1123 labels; '_' tolerated as in
	// internal names). It has no ':' and no space: the value goes into an
	// ssh config HostName line and onto ssh's command line.
	hostNameRe = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}))*\.?$`)
	portTailRe = regexp.MustCompile(`^(.*):([0-9]+)$`)
)

// checkSSHHost returns why ssh_host s cannot be used ("" when it can). It
// accepts [user@]host where host is a DNS name, an IPv4 address or a bare
// IPv6 address (2001:db8::1; no %zone). A port inside it is refused,
// since ssh_port is the port's one place: "host:2222" would otherwise
// become an endpoint host:2222:22. port is the host's ssh_port (0 = unset),
// quoted in the message.
func checkSSHHost(s string, port int) string {
	if s == "" {
		return ""
	}
	host := s
	if at := strings.LastIndex(host, "@"); at >= 0 {
		if u := host[:at]; !sshUserRe.MatchString(u) {
			return fmt.Sprintf("%q: user %q before @ is not a login name", s, u)
		}
		host = host[at+1:]
	}
	portNote := "ssh_port is not set (22 applies)"
	if port != 0 {
		portNote = fmt.Sprintf("ssh_port says %d", port)
	}
	if strings.HasPrefix(host, "[") {
		inner, tail, _ := strings.Cut(strings.TrimPrefix(host, "["), "]")
		if tail == "" {
			return fmt.Sprintf("%q: write an IPv6 address bare, without brackets (ssh_host: %s)", s, inner)
		}
		return fmt.Sprintf("%q holds a port (%s), and %s: ringmesh takes the port only from ssh_port. Write either `ssh_host: %s` with `ssh_port: %s`, or `ssh_host: %s` alone for port 22", s, strings.TrimPrefix(tail, ":"), portNote, inner, strings.TrimPrefix(tail, ":"), inner)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			return fmt.Sprintf("%q: an IPv6 zone (%%%s) cannot be used: ssh config reads %% as a token; use a routable address", s, a.Zone())
		}
		return "" // IPv4, or a bare IPv6 literal (its colons are the address's own)
	}
	if m := portTailRe.FindStringSubmatch(host); m != nil && !strings.Contains(m[1], ":") {
		return fmt.Sprintf("%q holds a port (%s), and %s: ringmesh takes the port only from ssh_port. Write either `ssh_host: %s` with `ssh_port: %s`, or `ssh_host: %s` alone for port 22", s, m[2], portNote, m[1], m[2], m[1])
	}
	if strings.Contains(host, ":") {
		return fmt.Sprintf("%q is neither a host name nor an IP address; for IPv6 write the bare address (2001:db8::1) and the port in ssh_port", s)
	}
	if !hostNameRe.MatchString(host) || len(host) > 253 {
		return fmt.Sprintf("%q is not a host name or IP address (letters, digits, '-', '_' and '.')", s)
	}
	return ""
}

func (p *parser) providers(v *yaml.Node) {
	v = deref(v)
	if v.Kind != yaml.MappingNode {
		p.errorf(v, "providers", "wrong type: expected a mapping of provider name to settings, got %s", kindName(v))
		return
	}
	for _, kv := range p.pairs(v, "providers") {
		k, sv := kv.k, kv.v
		if !mesh.KnownProvider(k.Value) {
			p.errorf(k, "providers."+k.Value, "unknown provider (want one of %s)", strings.Join(mesh.Providers, ", "))
			continue
		}
		var s ProviderSettings
		p.strict(sv, "providers."+k.Value, &s)
		p.inv.Providers[k.Value] = s
	}
}

// validate checks p2p_voters against hosts. A voter listed twice is a
// warning naming it, and counts once (quorum is a majority of the distinct
// configured voters); a voter that is not a host is a warning naming it and
// is left out, since it has no address to reach and would count towards
// quorum while never voting (nor may gossip from it count).
func (p *parser) validate() {
	if len(p.errs) > 0 || p.voters == nil {
		return
	}
	items := deref(p.voters).Content
	first := map[string]int{}
	var uniq []string
	for i, n := range p.inv.Voters {
		at := p.voters
		if i < len(items) {
			at = items[i]
		}
		if j, dup := first[n]; dup {
			line := p.voters.Line
			if j < len(items) {
				line = deref(items[j]).Line
			}
			p.warnf(at, "p2p_voters", "voter %q is listed twice (first at line %d); it counts once", n, line)
			continue
		}
		first[n] = i
		if _, ok := p.inv.Hosts[n]; !ok {
			p.warnf(at, "p2p_voters", "voter %q is not in hosts: it is left out (no address, and it must not count towards quorum)", n)
			continue
		}
		uniq = append(uniq, n)
	}
	p.inv.Voters = uniq
}
