package hetzner

import (
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

// toInstance normalises an hcloud server. Hetzner Cloud has no GPU server
// types in the sources used (GPUs are dedicated/Robot products), so GPUCount
// is 0 and GPUModel empty. Memory is server_type.memory (GB as Hetzner states
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
	if !s.PublicNet.IPv4.IsUnspecified() {
		ip := s.PublicNet.IPv4.IP.String()
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
