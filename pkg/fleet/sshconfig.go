package fleet

import (
	"fmt"
	"sort"
	"strings"

	"github.com/ringmesh/ringmesh/pkg/config"
	"github.com/ringmesh/ringmesh/pkg/events"
	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/providers"
	"github.com/ringmesh/ringmesh/pkg/registry"
)

// SSHEntry is how to reach one node over SSH.
type SSHEntry struct {
	Node         string `json:"node"`
	Host         string `json:"host"`
	Port         int    `json:"port"`
	User         string `json:"user"`
	IdentityFile string `json:"identity_file,omitempty"`
	// Source says where the endpoint comes from: "provider:proxy",
	// "provider:direct", "config", "agent:<kind>".
	Source string `json:"source"`
	// HostKey is the fingerprint the node's agent reported ("SHA256:…"), if any.
	HostKey string `json:"host_key_fingerprint,omitempty"`
}

// defaultKeys are the original system's per-provider SSH keys (registry.py).
var defaultKeys = map[string]string{
	mesh.ProviderRunPod: "~/.runpod/ssh/RunPod-Key-Go",
	mesh.ProviderLambda: "~/.ssh/id_cluster",
	mesh.ProviderNebius: "~/.ssh/id_cluster",
}

// DefaultSSHKey is the SSH key used for a provider's nodes when the
// inventory names none ("" = the user's usual keys).
func DefaultSSHKey(provider string) string { return defaultKeys[provider] }

// NamedInstanceEntry finds the one live (not stale) instance that its
// provider lists under the name node and is linked to no other node, and
// returns its SSH endpoint (proxy first, else direct; host and port from
// the same endpoint, user root when the provider gives none): how a box
// rented under its node ID, before any agent or inventory entry, is
// reached for enrollment. ok is false when there is none, or several.
func NamedInstanceEntry(rep Report, node string) (e SSHEntry, iv InstanceView, ok bool) {
	n := 0
	for _, cand := range rep.Instances {
		if cand.Name != node || cand.Stale || (cand.Node != "" && cand.Node != node) {
			continue
		}
		n++
		iv = cand
	}
	if n != 1 {
		return SSHEntry{}, InstanceView{}, false
	}
	ep, found := iv.Endpoint(providers.EndpointProxy)
	if !found {
		if ep, found = iv.Endpoint(providers.EndpointDirect); !found {
			return SSHEntry{}, InstanceView{}, false
		}
	}
	e = SSHEntry{Node: node, Host: ep.Host, Port: ep.Port, User: ep.User, IdentityFile: defaultKeys[iv.Provider], Source: "provider:" + string(ep.Kind)}
	if e.User == "" {
		e.User = "root"
	}
	return e, iv, true
}

// SSHEntries picks one endpoint per node. Rule: the provider's live
// endpoint wins over the inventory (ports move after restarts): the live
// endpoint with the inventory's host (its port may have changed), else the
// provider's proxy, else its direct endpoint; without a live instance, the
// inventory's (host, port); else what the agent reported. Host and port
// always come from the same endpoint.
func SSHEntries(inv *config.Inventory, nodes []registry.Record, rep Report) []SSHEntry {
	var out []SSHEntry
	for _, n := range nodeIDs(inv, nodes) {
		if e, ok := sshEntry(inv, nodes, rep, n); ok {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out
}

func sshEntry(inv *config.Inventory, nodes []registry.Record, rep Report, node string) (SSHEntry, bool) {
	var h *config.Host
	if inv != nil {
		h = inv.Hosts[node]
	}
	var rec *registry.Record
	for i := range nodes {
		if nodes[i].Node == node {
			rec = &nodes[i]
		}
	}
	e := SSHEntry{Node: node}
	provider := ""
	if h != nil {
		provider = h.Provider
		e.IdentityFile = h.SSHKey
	} else if rec != nil {
		provider = rec.Provider
	}
	if rec != nil {
		e.HostKey = rec.HostKey
	}
	if e.IdentityFile == "" {
		e.IdentityFile = defaultKeys[provider]
	}
	cfgHost, cfgPort, cfgUser := "", 0, ""
	if h != nil && h.SSHHost != "" {
		cfgHost, cfgPort, cfgUser = h.SSHEndpoint()
	}
	if iv, ok := rep.Instance(node); ok && len(iv.SSH) > 0 {
		var pick *providers.SSHEndpoint
		for i := range iv.SSH {
			if cfgHost != "" && iv.SSH[i].Host == cfgHost {
				pick = &iv.SSH[i]
				break
			}
		}
		if pick == nil {
			if p, ok := iv.Endpoint(providers.EndpointProxy); ok {
				pick = &p
			} else if d, ok := iv.Endpoint(providers.EndpointDirect); ok {
				pick = &d
			}
		}
		if pick != nil {
			e.Host, e.Port, e.User, e.Source = pick.Host, pick.Port, pick.User, "provider:"+string(pick.Kind)
			if e.User == "" {
				e.User = cfgUser
			}
			return e, true
		}
	}
	if cfgHost != "" {
		e.Host, e.Port, e.User, e.Source = cfgHost, cfgPort, cfgUser, "config"
		return e, true
	}
	if rec != nil {
		for _, ep := range rec.SSH {
			e.Host, e.Port, e.User, e.Source = ep.Host, ep.Port, ep.User, "agent:"+ep.Kind
			return e, true
		}
	}
	return SSHEntry{}, false
}

// KnownHostsFile is the ringmesh-managed known_hosts file the generated
// config pins host keys in (one line per node, under its HostKeyAlias).
// `meshctl ssh-config --known-hosts` fills it with the keys whose
// fingerprints match the ones the coordinator pinned.
const KnownHostsFile = "~/.ssh/ringmesh_known_hosts"

// invalidField names the first field of e whose value fails its pattern
// (events.Patterns), or "" when every value may go into an ssh config or argv.
func (e SSHEntry) invalidField() (field, value string) {
	switch {
	case !events.Match("node", e.Node):
		return "node", e.Node
	case !events.ValidHost(e.Host):
		return "host", e.Host
	case !events.ValidUser(e.User):
		return "user", e.User
	case e.Port < 1 || e.Port > 65535:
		return "port", fmt.Sprint(e.Port)
	case e.IdentityFile != "" && !events.ValidPath(e.IdentityFile):
		return "identity file", e.IdentityFile
	case e.HostKey != "" && !events.ValidFingerprint(e.HostKey):
		return "host key", e.HostKey
	case !events.Match("token", e.Source):
		return "source", e.Source
	}
	return "", ""
}

// Check returns why e cannot go into an ssh config or argv: every value
// must match its pattern (events.Patterns), so nothing a node reported can
// add an option, a Host block or a command.
func (e SSHEntry) Check() error {
	if f, v := e.invalidField(); f != "" {
		return fmt.Errorf("%s %q fails its pattern", f, events.StripControl(v))
	}
	return nil
}

// RenderSSHConfig renders entries as OpenSSH config blocks meant to be
// Include'd from ~/.ssh/config (one Host block per node, named by node ID).
// Host keys are pinned in KnownHostsFile (StrictHostKeyChecking yes, so an
// unknown or changed key is refused); an entry with a value that fails its
// pattern is left out with a comment naming the node and the field.
func RenderSSHConfig(entries []SSHEntry) string {
	var b strings.Builder
	b.WriteString("# Generated by meshctl ssh-config; Include this file from ~/.ssh/config.\n")
	fmt.Fprintf(&b, "# Host keys are pinned in %s (meshctl ssh-config --known-hosts fills it).\n", KnownHostsFile)
	for _, e := range entries {
		if f, _ := e.invalidField(); f != "" {
			node := e.Node
			if !events.Match("node", node) {
				node = "(invalid node ID)"
			}
			// The value itself is not echoed: it is what failed.
			fmt.Fprintf(&b, "\n# %s: left out: its %s fails its pattern\n", node, f)
			continue
		}
		fmt.Fprintf(&b, "\n# %s (%s)", e.Node, e.Source)
		if e.HostKey != "" {
			fmt.Fprintf(&b, "; host key %s", e.HostKey)
		}
		fmt.Fprintf(&b, "\nHost %s\n  HostName %s\n  Port %d\n  User %s\n", e.Node, e.Host, e.Port, e.User)
		if e.IdentityFile != "" {
			fmt.Fprintf(&b, "  IdentityFile %s\n  IdentitiesOnly yes\n", e.IdentityFile)
		}
		// Ports of marketplace instances move: pin the host key to the node, not to host:port.
		fmt.Fprintf(&b, "  HostKeyAlias %s\n  UserKnownHostsFile %s\n  StrictHostKeyChecking yes\n", e.Node, KnownHostsFile)
	}
	return b.String()
}
