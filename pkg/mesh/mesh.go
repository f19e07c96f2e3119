// Package mesh holds the small vocabulary every ringmesh part shares: node ID
// rules, provider names, node states and the one definition of "ephemeral".
// It has no dependencies so that config, bus and registry can all import it.
package mesh

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

var nodeIDRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// ValidateNodeID returns an error unless id is a subject-safe token
// [A-Za-z0-9_-]{1,64} (docs/ARCHITECTURE.md §2): node IDs become NATS subject tokens.
func ValidateNodeID(id string) error {
	if !nodeIDRe.MatchString(id) {
		return fmt.Errorf("invalid node ID %q: must match [A-Za-z0-9_-]{1,64}", id)
	}
	return nil
}

// Provider names.
const (
	ProviderVast    = "vast"
	ProviderRunPod  = "runpod"
	ProviderLambda  = "lambda"
	ProviderVultr   = "vultr"
	ProviderHetzner = "hetzner"
	ProviderNebius  = "nebius"
	ProviderLocal   = "local"
	ProviderUnknown = "unknown"
)

// Providers lists the cloud provider names (not local/unknown).
var Providers = []string{ProviderVast, ProviderRunPod, ProviderLambda, ProviderVultr, ProviderHetzner, ProviderNebius}

// KnownProvider reports whether name is one of the provider names, local or unknown included.
func KnownProvider(name string) bool {
	switch name {
	case ProviderLocal, ProviderUnknown:
		return true
	}
	for _, p := range Providers {
		if p == name {
			return true
		}
	}
	return false
}

// ProviderFromName is the fallback used when a host has no explicit
// provider field: the node-name prefix, as the original system did
// (cluster_config.get_host_provider). An explicit field always wins.
func ProviderFromName(node string) string {
	n := strings.ToLower(node)
	for _, p := range Providers {
		if strings.HasPrefix(n, p+"-") {
			return p
		}
	}
	for _, pre := range []string{"local-", "localhost", "mac-studio", "macbook", "mac-"} {
		if strings.HasPrefix(n, pre) {
			return ProviderLocal
		}
	}
	return ProviderUnknown
}

// ProviderFacts are the static facts about a cloud that config, the
// providers, the agent and the coordinator act on. They are written once, in
// the providerFacts table below; every other package asks Facts (or
// EphemeralByDefault / PreemptNotice) instead of restating them, and a test
// (TestProviderFactsHaveOneDefinition) fails on a second definition.
type ProviderFacts struct {
	// Ephemeral: an instance of this provider can vanish with little or no
	// notice by its nature, so a host of it is ephemeral unless its inventory
	// entry says otherwise (docs/ARCHITECTURE.md §2: explicit is_ephemeral wins, else this).
	// A provider whose instances are only sometimes interruptible (RunPod
	// spot/community pods, Nebius preemptible VMs) is false here; those hosts
	// say is_ephemeral: true, or the provider reports the instance as
	// interruptible.
	Ephemeral bool
	// Notice is the documented time from the provider's termination signal
	// (SIGTERM, outbid, preemption) to the end of the instance; 0 when the
	// provider documents no figure (PreemptNotice then uses FallbackNotice).
	Notice time.Duration
}

// providerFacts is the one table of provider facts. Sources, per provider,
// are the providers' documentation as collected in the project's provider
// API notes:
var providerFacts = map[string]ProviderFacts{
	// Vast.ai: interruptible (bid) instances are stopped when outbid and the
	// marketplace gives no guarantee on any instance, so every Vast host is
	// ephemeral. Vast documents no in-container advance notice; the original
	// system's documentation states "15–30 s termination notice", of which
	// the lower bound is taken.
	ProviderVast: {Ephemeral: true, Notice: 15 * time.Second},
	// RunPod: on-demand pods keep a persistent /workspace volume (not
	// ephemeral); spot/interruptible pods "can be terminated with only a
	// 5-second warning (SIGTERM, then SIGKILL)" (RunPod docs, until removed
	// 2026-05-06).
	ProviderRunPod: {Ephemeral: false, Notice: 5 * time.Second},
	// Lambda Cloud: on-demand instances, no stop; status "preempted" exists
	// (API 1.10.0) but no notice figure is documented.
	ProviderLambda: {Ephemeral: false},
	// Vultr: on-demand instances, billed until destroyed; no preemption.
	ProviderVultr: {Ephemeral: false},
	// Hetzner Cloud: on-demand servers, billed until deleted; no preemption.
	ProviderHetzner: {Ephemeral: false},
	// Nebius: on-demand VMs are not ephemeral; preemptible VMs get "SIGTERM
	// 60 s before stopping, then SIGKILL" (docs.nebius.com,
	// compute/virtual-machines/preemptible).
	ProviderNebius: {Ephemeral: false, Notice: 60 * time.Second},
}

// FallbackNotice is the flush deadline used for a provider that documents
// no notice figure (Lambda, Vultr, Hetzner, local, unknown): 15 s, the
// shortest figure documented for a provider that gives none in-container
// (Vast, above).
const FallbackNotice = 15 * time.Second

// Facts returns the facts of provider p (the zero value for local, unknown
// and names that are not providers: not ephemeral, no documented notice).
func Facts(p string) ProviderFacts { return providerFacts[p] }

// EphemeralByDefault is the provider half of the one "ephemeral" definition
// (docs/ARCHITECTURE.md §2): a host's explicit is_ephemeral wins; otherwise
// Facts(provider).Ephemeral.
func EphemeralByDefault(provider string) bool { return Facts(provider).Ephemeral }

// PreemptNotice is the time from a termination signal to the node's end
// that the agent plans its final flush for, and the deadline the
// coordinator announces: Facts(provider).Notice, else FallbackNotice.
func PreemptNotice(provider string) time.Duration {
	if n := Facts(provider).Notice; n > 0 {
		return n
	}
	return FallbackNotice
}

// NoticeSummary describes PreemptNotice for help texts, e.g.
// "vast 15s, runpod 5s, nebius 60s, else 15s".
func NoticeSummary() string {
	var parts []string
	for _, p := range Providers {
		if n := Facts(p).Notice; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %ds", p, n/time.Second))
		}
	}
	return strings.Join(append(parts, fmt.Sprintf("else %ds", FallbackNotice/time.Second)), ", ")
}

// NoticeSeconds is Notice in whole seconds (0 = no documented figure), the
// unit of providers.Capabilities.NoticeSeconds.
func (f ProviderFacts) NoticeSeconds() int { return int(f.Notice / time.Second) }

// NodeState is the registry's state of a node (docs/ARCHITECTURE.md §5).
type NodeState string

// StateSeverity ranks states by how much they need an operator's attention
// (0 first): failures, then states in transition, then healthy, then nodes
// that are gone on purpose. Unlisted states rank with unknown.
func StateSeverity(s NodeState) int {
	switch s {
	case StateDead:
		return 0
	case StateSuspect, StateBusPartitioned:
		return 1
	case StatePreempting, StateDegraded:
		return 2
	case StatePreempted:
		return 3
	case StateUnknown, StateJoining:
		return 4
	case StateHealthy:
		return 5
	case StateStopped:
		return 6
	default: // terminated, retired, left
		if KnownState(s) {
			return 7
		}
		return 4
	}
}

// KnownState reports whether s is one of the node states above.
func KnownState(s NodeState) bool {
	switch s {
	case StateUnknown, StateJoining, StateHealthy, StateDegraded, StateSuspect, StateDead, StateBusPartitioned,
		StatePreempting, StatePreempted, StateStopped, StateTerminated, StateRetired, StateLeft:
		return true
	}
	return false
}

// Node states.
const (
	StateUnknown        NodeState = "unknown"
	StateJoining        NodeState = "joining"
	StateHealthy        NodeState = "healthy"
	StateDegraded       NodeState = "degraded"
	StateSuspect        NodeState = "suspect"
	StateDead           NodeState = "dead"
	StateBusPartitioned NodeState = "bus-partitioned" // alive in gossip, silent on the bus
	StatePreempting     NodeState = "preempting"
	StatePreempted      NodeState = "preempted"
	StateStopped        NodeState = "stopped"
	StateTerminated     NodeState = "terminated"
	StateRetired        NodeState = "retired"
	StateLeft           NodeState = "left" // said bye
)
