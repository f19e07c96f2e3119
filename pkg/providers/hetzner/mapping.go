package hetzner

import (
	"net"
	"strconv"
	"strings"

	"github.com/hetznercloud/hcloud-go/v2/hcloud"

	"github.com/ringmesh/ringmesh/pkg/providers"
)

// mapState maps Hetzner's 9 documented server statuses (API "server.status").
//
//	initializing -> pending     (being created)
//	starting     -> starting
//	running      -> running
//	stopping     -> stopping
//	off          -> stopped     (still billed)
//	deleting     -> terminated  (irreversibly going away)
//	migrating    -> starting    (moving hosts; transitional, billed)
//	rebuilding   -> starting    (image being reinstalled, then boots)
//	unknown, "", anything else -> unknown
func mapState(s hcloud.ServerStatus) providers.State {
	switch hcloud.ServerStatus(strings.ToLower(string(s))) {
	case hcloud.ServerStatusInitializing:
		return providers.StatePending
	case hcloud.ServerStatusStarting:
		return providers.StateStarting
	case hcloud.ServerStatusRunning:
		return providers.StateRunning
	case hcloud.ServerStatusStopping:
		return providers.StateStopping
	case hcloud.ServerStatusOff:
		return providers.StateStopped
	case hcloud.ServerStatusDeleting:
		return providers.StateTerminated
	case hcloud.ServerStatusMigrating, hcloud.ServerStatusRebuilding:
		return providers.StateStarting
	}
	return providers.StateUnknown
}

// hourlyPrice returns the gross hourly price (EUR/hour) of the server type at
// the server's location, or an unknown Price when the type has no price for
// that location or the string does not parse.
func hourlyPrice(st *hcloud.ServerType, loc *hcloud.Location) providers.Price {
	if st == nil || loc == nil || loc.Name == "" {
		return providers.Price{}
	}
	for _, pr := range st.Pricings {
		if pr.Location == nil || pr.Location.Name != loc.Name {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(pr.Hourly.Gross), 64)
		if err != nil || v < 0 {
			return providers.Price{}
		}
		return providers.Price{PerHour: v, Currency: "EUR", Source: PriceSource}
	}
	return providers.Price{}
}

// ipv6Host returns the SSH address of a server without public IPv4: the API
// gives only the server's /64 (public_net.ipv6.ip "2001:db8:1:2::/64",
// hcloud-go schema.ServerPublicNetIPv6), and Hetzner's convention is that
// the first host address of that network, <prefix>::1, is the one configured
// on the server (Hetzner Cloud docs on server IPv6 networking; the network
// config that Hetzner's metadata hands cloud-init assigns the same address).
// "" when the network is unusable.
func ipv6Host(v6 hcloud.ServerPublicNetIPv6) string {
	var base net.IP
	switch {
	case v6.Network != nil && v6.Network.IP.To16() != nil && v6.Network.IP.To4() == nil:
		base = v6.Network.IP.Mask(v6.Network.Mask).To16()
	case v6.IP.To16() != nil && v6.IP.To4() == nil:
		base = v6.IP.Mask(net.CIDRMask(64, 128)).To16()
	default:
		return ""
	}
	host := make(net.IP, net.IPv6len)
	copy(host, base)
	host[15] |= 1
	return host.String()
}

// toInstance normalises an hcloud server. Hetzner Cloud has no GPU server
// types in the sources used (GPUs are dedicated/Robot products), so GPUCount
// is 0 and GPUModel empty. SSH: root@ the public IPv4, or for an IPv6-only
// server (public_net.ipv4 null) the ::1 address of its /64 (ipv6Host). Memory is server_type.memory (GB as Hetzner states
// it; the figure is the GiB of RAM).
func toInstance(s *hcloud.Server) providers.Instance {
	out := providers.Instance{
		ID:        strconv.FormatInt(s.ID, 10),
		Provider:  Name,
		Name:      s.Name,
		State:     mapState(s.Status),
		RawState:  string(s.Status),
		CreatedAt: s.Created.UTC(),
	}
	if s.ServerType != nil {
		out.CPUs = float64(s.ServerType.Cores)
		out.MemoryGiB = float64(s.ServerType.Memory)
	}
	if s.Location != nil {
		out.Region = s.Location.Name
	}
	out.Price = hourlyPrice(s.ServerType, s.Location)
	ip := ""
	switch {
	case !s.PublicNet.IPv4.IsUnspecified():
		ip = s.PublicNet.IPv4.IP.String()
	case !s.PublicNet.IPv6.IsUnspecified():
		ip = ipv6Host(s.PublicNet.IPv6)
	}
	if ip != "" {
		out.PublicIP = ip
		out.SSH = []providers.SSHEndpoint{{Kind: providers.EndpointDirect, Host: ip, Port: 22, User: "root"}}
	}
	if len(s.Labels) > 0 || (s.ServerType != nil && s.ServerType.Name != "") {
		out.Labels = make(map[string]string, len(s.Labels)+1)
		for k, v := range s.Labels {
			out.Labels[k] = v
		}
		if s.ServerType != nil && s.ServerType.Name != "" {
			out.Labels[LabelServerType] = s.ServerType.Name
		}
	}
	return out
}
