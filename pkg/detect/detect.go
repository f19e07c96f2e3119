// Package detect tells the agent which cloud it runs on and as which
// provider instance, from inside the node (docs/ARCHITECTURE.md §4 step 1; facts from
// docs/provider-apis.md §7 and the in-container environment lists of
// §1 (Vast.ai, docs guides/instances/docker-environment.mdx) and §2 (RunPod,
// docs pods/templates/environment-variables.mdx)).
//
// Order, first match wins:
//
//  1. Config override (Options.Override with a Provider): always wins. When
//     it carries no instance ID, the ID (and IP, region, SSH endpoints the
//     config left empty) are taken from detection if detection finds the
//     same provider.
//  2. Vast.ai container environment: CONTAINER_ID / VAST_CONTAINERLABEL.
//  3. RunPod pod environment: RUNPOD_POD_ID.
//  4. Metadata services, probed concurrently, each with its own short
//     timeout; a probe counts only with a parsable payload naming an
//     instance, never for a bare 200. Priority among answers: Nebius, then
//     Hetzner, then Vultr.
//  5. Nothing matched: Provider "unknown", Source "none". Deciding that an
//     unknown node is a developer's machine ("local") is the caller's job in
//     dev mode; detect never guesses it.
//
// Lambda Cloud documents no metadata service and sets no identifying
// environment, so a Lambda node comes out "unknown": it must be identified
// by config (provider: lambda plus its instance ID), or later by the
// coordinator matching its public IP against the Lambda API.
//
// SSH endpoints: Vast and RunPod give a direct endpoint (public IP and the
// external port mapped to 22, user root) from their environment; their proxy
// endpoints are not visible from inside and come from the provider API on
// the coordinator. Hetzner and Vultr give the public IPv4; the endpoint
// assumes port 22 and user root, their images' defaults. Nebius gives none
// (the login user is chosen at instance creation). Config overrides all.
//
// IMDS requests never go through an HTTP proxy from the environment (the
// default client has no Proxy), and no probe writes anything: all are GETs.
package detect

import (
	"context"
	"maps"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Provider names, as in docs/ARCHITECTURE.md §2.
const (
	ProviderVast    = "vast"
	ProviderRunPod  = "runpod"
	ProviderHetzner = "hetzner"
	ProviderVultr   = "vultr"
	ProviderNebius  = "nebius"
	ProviderLambda  = "lambda"
	ProviderLocal   = "local"
	ProviderUnknown = "unknown"
)

// Source values of Result.Source besides "env:<VAR>".
const (
	SourceConfig  = "config"
	SourceNone    = "none"
	SourceNebius  = "imds:nebius"
	SourceHetzner = "imds:hetzner"
	SourceVultr   = "imds:vultr"
)

// Endpoint kinds of Endpoint.Kind.
const (
	EndpointDirect = "direct" // the node's public IP and the host port mapped to its sshd
	EndpointProxy  = "proxy"  // a provider SSH gateway (e.g. sshN.vast.ai); never known from inside
)

// Default metadata service URLs (docs/provider-apis.md §7).
const (
	// DefaultHetznerURL is Hetzner Cloud's metadata document (YAML).
	DefaultHetznerURL = "http://169.254.169.254/hetzner/v1/metadata"
	// DefaultVultrURL is Vultr's metadata document (JSON).
	DefaultVultrURL = "http://169.254.169.254/v1.json"
	// DefaultNebiusURL is the base of Nebius' metadata service; the probe
	// reads <base>/v1/instance-data.
	DefaultNebiusURL = "http://metadata.nebius.internal"
	// DefaultTimeout bounds each metadata probe. Detection runs at agent
	// start, so it must be short.
	DefaultTimeout = 300 * time.Millisecond
)

// Endpoint is one explicit SSH endpoint: host and port are a pair and are
// never mixed across endpoints (docs/ARCHITECTURE.md §11.1).
type Endpoint struct {
	Kind string `json:"kind"` // EndpointDirect or EndpointProxy
	Host string `json:"host"` // IP address or DNS name
	Port int    `json:"port"` // TCP port, 1..65535
	User string `json:"user"` // login user
}

// Result is what detection found.
type Result struct {
	// Provider is one of the Provider* constants.
	Provider string `json:"provider"`
	// InstanceID is the provider's instance ID: Vast contract id, RunPod pod
	// id, Hetzner server id, Vultr API v2 UUID, Nebius "computeinstance-…".
	// Empty when unknown.
	InstanceID string `json:"instance_id"`
	// Source says where Provider and InstanceID came from: "config",
	// "env:CONTAINER_ID", "env:VAST_CONTAINERLABEL", "env:RUNPOD_POD_ID",
	// "imds:nebius", "imds:hetzner", "imds:vultr" or "none".
	Source string `json:"source"`
	// PublicIP is the node's public IPv4 address when the source tells it.
	PublicIP string `json:"public_ip"`
	// Region is the provider's region word when the source tells it
	// (Hetzner network zone "eu-central"; Vultr region id "ewr"; RunPod
	// data-centre id "EU-RO-1").
	Region string `json:"region"`
	// SSH lists the endpoints known from inside the node.
	SSH []Endpoint `json:"ssh"`
	// Hints carries further facts as found (hostname, GPU count, the other
	// ID forms, probe failures as "probe.<name>"). Never nil.
	Hints map[string]string `json:"hints"`
}

// Options configure Detect. The zero value probes the real environment and
// metadata services with the defaults above.
type Options struct {
	// Env reads an environment variable. Default os.Getenv.
	Env func(string) string
	// HTTPClient makes the metadata requests. Default: a client with no
	// proxy and no keep-alive beyond the call.
	HTTPClient *http.Client
	// HetznerURL is the full URL of the Hetzner metadata document. Default
	// DefaultHetznerURL.
	HetznerURL string
	// VultrURL is the full URL of the Vultr metadata document. Default
	// DefaultVultrURL.
	VultrURL string
	// NebiusURL is the base URL of the Nebius metadata service. Default
	// DefaultNebiusURL.
	NebiusURL string
	// Timeout bounds each metadata probe (they run concurrently, so Detect
	// takes about one Timeout at most). Default DefaultTimeout.
	Timeout time.Duration
	// Override comes from config or flags. When Override.Provider is set it
	// wins; its other non-empty fields win over detected ones.
	Override Result
	// Hostname returns the host name, recorded as Hints["hostname"].
	// Default os.Hostname.
	Hostname func() (string, error)
}

func (o Options) withDefaults() Options {
	if o.Env == nil {
		o.Env = os.Getenv
	}
	if o.HetznerURL == "" {
		o.HetznerURL = DefaultHetznerURL
	}
	if o.VultrURL == "" {
		o.VultrURL = DefaultVultrURL
	}
	if o.NebiusURL == "" {
		o.NebiusURL = DefaultNebiusURL
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Hostname == nil {
		o.Hostname = os.Hostname
	}
	return o
}

// Detect identifies the node. It never fails: what it cannot find it
// reports as unknown. It returns within about Options.Timeout (or when ctx
// ends) even when a metadata service hangs.
func Detect(ctx context.Context, opts Options) Result {
	opts = opts.withDefaults()
	hints := map[string]string{}
	if h, err := opts.Hostname(); err == nil && h != "" {
		hints["hostname"] = h
	}

	ov := opts.Override
	if ov.Provider != "" && ov.InstanceID != "" {
		return finish(overrideResult(ov, nil), hints)
	}

	found, ok := fromEnv(opts.Env)
	if !ok {
		found, ok = fromIMDS(ctx, opts, hints)
	}
	if ov.Provider != "" {
		if ok && found.Provider != ov.Provider {
			hints["detected_provider"] = found.Provider
			hints["detected_source"] = found.Source
		}
		if !ok || found.Provider != ov.Provider {
			return finish(overrideResult(ov, nil), hints)
		}
		return finish(overrideResult(ov, &found), hints)
	}
	if !ok {
		return finish(Result{Provider: ProviderUnknown, Source: SourceNone}, hints)
	}
	return finish(found, hints)
}

// overrideResult applies the config override over what detection found for
// the same provider (found may be nil).
func overrideResult(ov Result, found *Result) Result {
	r := ov
	r.Hints = maps.Clone(ov.Hints) // never write into the caller's map
	r.SSH = slices.Clone(ov.SSH)
	if r.Source == "" {
		r.Source = SourceConfig
	}
	if found == nil {
		return r
	}
	if r.InstanceID == "" && found.InstanceID != "" {
		r.InstanceID = found.InstanceID
		if r.Hints == nil {
			r.Hints = map[string]string{}
		}
		r.Hints["instance_id_source"] = found.Source
	}
	if r.PublicIP == "" {
		r.PublicIP = found.PublicIP
	}
	if r.Region == "" {
		r.Region = found.Region
	}
	if len(r.SSH) == 0 {
		r.SSH = found.SSH
	}
	for k, v := range found.Hints {
		if r.Hints == nil {
			r.Hints = map[string]string{}
		}
		if _, set := r.Hints[k]; !set {
			r.Hints[k] = v
		}
	}
	return r
}

// finish merges hints (result's own win) and makes slices and maps non-nil.
func finish(r Result, hints map[string]string) Result {
	merged := maps.Clone(hints)
	if merged == nil {
		merged = map[string]string{}
	}
	maps.Copy(merged, r.Hints)
	r.Hints = merged
	r.SSH = slices.Clone(r.SSH)
	if r.SSH == nil {
		r.SSH = []Endpoint{}
	}
	return r
}

// fromEnv recognises Vast.ai and RunPod containers by their environment.
func fromEnv(env func(string) string) (Result, bool) {
	if r, ok := vastFromEnv(env); ok {
		return r, true
	}
	return runpodFromEnv(env)
}

// vastFromEnv: docs/provider-apis.md §1 "In-container environment". CONTAINER_ID is the
// instance id; VAST_CONTAINERLABEL is "C.<instance_id>" (3p scripts);
// PUBLIC_IPADDR is set at start and not refreshed; VAST_TCP_PORT_22 is the
// external port mapped to the container's port 22.
//
// CONTAINER_ID is a generic name, so it counts only when numeric and
// accompanied by another Vast variable.
func vastFromEnv(env func(string) string) (Result, bool) {
	id := strings.TrimSpace(env("CONTAINER_ID"))
	label := strings.TrimSpace(env("VAST_CONTAINERLABEL"))
	labelID, labelOK := strings.CutPrefix(label, "C.")
	labelOK = labelOK && isDigits(labelID)
	r := Result{Provider: ProviderVast, Hints: map[string]string{}}
	switch {
	case isDigits(id) && (labelOK || env("CONTAINER_API_KEY") != "" || env("VAST_TCP_PORT_22") != ""):
		r.InstanceID, r.Source = id, "env:CONTAINER_ID"
		if labelOK && labelID != id {
			r.Hints["vast_containerlabel"] = label // disagrees with CONTAINER_ID; kept for the operator
		}
	case labelOK:
		r.InstanceID, r.Source = labelID, "env:VAST_CONTAINERLABEL"
	default:
		return Result{}, false
	}
	r.PublicIP = strings.TrimSpace(env("PUBLIC_IPADDR"))
	if port, ok := parsePort(env("VAST_TCP_PORT_22")); ok && r.PublicIP != "" {
		r.SSH = []Endpoint{{Kind: EndpointDirect, Host: r.PublicIP, Port: port, User: "root"}}
	}
	addHint(r.Hints, "gpu_count", env("GPU_COUNT"))
	addHint(r.Hints, "data_directory", env("DATA_DIRECTORY"))
	return r, true
}

// runpodFromEnv: docs/provider-apis.md §2 "In-pod environment": RUNPOD_POD_ID,
// RUNPOD_PUBLIC_IP (if any), RUNPOD_TCP_PORT_22 (public port for SSH),
// RUNPOD_DC_ID, RUNPOD_POD_HOSTNAME, RUNPOD_GPU_COUNT. The proxy endpoint
// (ssh.runpod.io, user "<podid>-<suffix>") cannot be built from inside: the
// coordinator takes it from the API.
func runpodFromEnv(env func(string) string) (Result, bool) {
	id := strings.TrimSpace(env("RUNPOD_POD_ID"))
	if id == "" {
		return Result{}, false
	}
	r := Result{Provider: ProviderRunPod, InstanceID: id, Source: "env:RUNPOD_POD_ID", Hints: map[string]string{}}
	r.PublicIP = strings.TrimSpace(env("RUNPOD_PUBLIC_IP"))
	r.Region = strings.TrimSpace(env("RUNPOD_DC_ID"))
	if port, ok := parsePort(env("RUNPOD_TCP_PORT_22")); ok && r.PublicIP != "" {
		r.SSH = []Endpoint{{Kind: EndpointDirect, Host: r.PublicIP, Port: port, User: "root"}}
	}
	addHint(r.Hints, "runpod_pod_hostname", env("RUNPOD_POD_HOSTNAME"))
	addHint(r.Hints, "gpu_count", env("RUNPOD_GPU_COUNT"))
	return r, true
}

func addHint(h map[string]string, k, v string) {
	if v = strings.TrimSpace(v); v != "" {
		h[k] = v
	}
}

func parsePort(s string) (int, bool) {
	p, err := strconv.Atoi(strings.TrimSpace(s))
	return p, err == nil && p > 0 && p <= 65535
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
