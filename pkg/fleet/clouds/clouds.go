// Package clouds builds the registry of real cloud adapters (Vast, RunPod,
// Lambda, Vultr, Hetzner, Nebius) from the inventory and credentials, each
// wrapped by fleet.Wrap. It is the one place that links the cloud SDKs, so
// that pkg/fleet's types (SSH entries, actions, reports) can be used by a
// client such as meshctl without linking them (internal/deptest checks it).
package clouds

import (
	"fmt"
	"net/http"
	"time"

	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/pkg/config"
	"github.com/ringmesh/ringmesh/pkg/fleet"
	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/providers"
	"github.com/ringmesh/ringmesh/pkg/providers/hetzner"
	"github.com/ringmesh/ringmesh/pkg/providers/lambda"
	"github.com/ringmesh/ringmesh/pkg/providers/nebius"
	"github.com/ringmesh/ringmesh/pkg/providers/runpod"
	"github.com/ringmesh/ringmesh/pkg/providers/vast"
	"github.com/ringmesh/ringmesh/pkg/providers/vultr"
)

// BuildProviders constructs every provider that the inventory does not
// disable: credentials come from providers.ResolveCredential (environment,
// then file); a missing one registers the provider as not configured (a
// clear state, not a crash). Providers marked retired in the inventory are
// wrapped so that every mutation is refused. Hetzner gets a voter guard
// holding the voters' server IDs.
func BuildProviders(inv *config.Inventory, log zerolog.Logger, opts fleet.BuildOptions) *providers.Registry {
	reg := providers.NewRegistry()
	hc := opts.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	for _, name := range mesh.Providers {
		set := fleet.ProviderSettings(inv, name)
		if set.Enabled != nil && !*set.Enabled {
			continue
		}
		p, err := build(name, set, inv, hc, log)
		if err != nil {
			reg.RegisterUnconfigured(name, err)
			log.Info().Str("provider", name).Err(err).Msg("provider not configured")
			continue
		}
		reg.Register(fleet.Wrap(p, inv, log, opts))
	}
	return reg
}

func build(name string, set config.ProviderSettings, inv *config.Inventory, hc *http.Client, log zerolog.Logger) (providers.Provider, error) {
	l := log.With().Str("provider", name).Logger()
	if name == mesh.ProviderNebius {
		return nebius.New(nebius.Options{ProjectID: set.Project, SubnetID: set.Subnet, ImageFamily: set.ImageFamily,
			BootDiskGiB: set.BootDiskGiB, Static: nebiusStatic(inv), Logger: &l})
	}
	key, err := providers.ResolveCredential(name, providers.CredentialSource{})
	if err != nil {
		return nil, err
	}
	switch name {
	case mesh.ProviderVast:
		return vast.New(vast.Options{BaseURL: set.BaseURL, APIKey: key, HTTPClient: hc, Log: l})
	case mesh.ProviderRunPod:
		return runpod.New(runpod.Options{BaseURL: set.BaseURL, APIKey: key, HTTPClient: hc, Log: l})
	case mesh.ProviderLambda:
		return lambda.New(lambda.Options{BaseURL: set.BaseURL, APIKey: key, HTTPClient: hc, Log: l})
	case mesh.ProviderVultr:
		return vultr.New(vultr.Options{BaseURL: set.BaseURL, APIKey: key, HTTPClient: hc, Logger: &l})
	case mesh.ProviderHetzner:
		return hetzner.New(hetzner.Options{Endpoint: set.BaseURL, Token: key, HTTPClient: hc, Guard: VoterGuard(inv), Logger: &l})
	}
	return nil, fmt.Errorf("%s: %w", name, providers.ErrUnknownName)
}

// VoterGuard protects every voter's Hetzner server (by hetzner_id and by name).
func VoterGuard(inv *config.Inventory) *hetzner.VoterGuard {
	var keys []string
	if inv != nil {
		for _, v := range inv.Voters {
			keys = append(keys, v)
			if h := inv.Hosts[v]; h != nil && h.HetznerID != "" {
				keys = append(keys, h.HetznerID)
			}
		}
	}
	return hetzner.NewVoterGuard(keys...)
}

// nebiusStatic is the config inventory of Nebius hosts, used when the CLI is absent.
func nebiusStatic(inv *config.Inventory) []nebius.StaticInstance {
	if inv == nil {
		return nil
	}
	var out []nebius.StaticInstance
	for _, name := range inv.Names() {
		h := inv.Hosts[name]
		if h.Provider != mesh.ProviderNebius || h.NebiusID == "" {
			continue
		}
		host, port, user := h.SSHEndpoint()
		si := nebius.StaticInstance{ID: h.NebiusID, Name: name, PublicIP: host, SSHUser: user, SSHPort: port,
			GPUModel: providers.NormalizeGPU(h.GPU), Region: h.Region, PerHour: h.PricePerHour, Preemptible: h.Ephemeral()}
		if h.PricePerHour > 0 {
			si.Currency = "USD"
		}
		out = append(out, si)
	}
	return out
}
