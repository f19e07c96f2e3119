// Package mesh holds the small vocabulary every ringmesh part shares: node ID
// rules, provider names, node states and the one definition of "ephemeral".
// It has no dependencies so that config, bus and registry can all import it.
package mesh

import (
	"fmt"
	"regexp"
	"strings"
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

// EphemeralByDefault is the provider half of the one "ephemeral" definition:
// a host's explicit is_ephemeral wins; otherwise only Vast.ai instances are
// ephemeral by nature (interruptible, 15–30 s notice). RunPod pods keep a
// persistent /workspace and Nebius VMs are on-demand unless a host says
// is_ephemeral: true (spot/community pods, preemptible VMs).
func EphemeralByDefault(provider string) bool { return provider == ProviderVast }

// NodeState is the registry's state of a node (docs/ARCHITECTURE.md §5).
type NodeState string

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
