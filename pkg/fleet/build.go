// Package fleet is the coordinator's provider side: it wraps providers in
// the resilience layer (pkg/fleet/clouds builds the registry of real cloud
// adapters from the inventory and credentials), reconciles every provider's
// instances with the nodes the registry knows, renders SSH config, and
// carries out start/stop/terminate behind the gates (leader, voter
// protection, retired providers, safe-to-terminate).
package fleet

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/pkg/config"
	"github.com/ringmesh/ringmesh/pkg/providers"
)

// BuildOptions tune Wrap and clouds.BuildProviders.
type BuildOptions struct {
	// Policy is the retry/breaker policy of every provider (default providers.DefaultPolicy()).
	Policy *providers.Policy
	// HTTPClient is used by the REST clients (default: 30 s timeout).
	HTTPClient *http.Client
	// Registerer receives the resilience metrics (optional).
	Registerer prometheus.Registerer
}

// Wrap adds the resilience layer and, for a retired provider, the refusal of mutations.
func Wrap(p providers.Provider, inv *config.Inventory, log zerolog.Logger, opts BuildOptions) providers.Provider {
	pol := providers.DefaultPolicy()
	if opts.Policy != nil {
		pol = *opts.Policy
	}
	p = providers.Resilient(p, pol, log, opts.Registerer)
	if set := ProviderSettings(inv, p.Name()); set.Retired {
		why := "marked retired in config"
		if set.Note != "" {
			why += ": " + set.Note
		}
		p = providers.RetireWithReason(p, why)
	}
	return p
}

// ProviderSettings returns the inventory's settings of provider name (zero
// when inv is nil or does not mention it).
func ProviderSettings(inv *config.Inventory, name string) config.ProviderSettings {
	if inv == nil {
		return config.ProviderSettings{}
	}
	return inv.Providers[name]
}
