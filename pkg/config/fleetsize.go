package config

import (
	"fmt"
	"math"
	"regexp"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/ringmesh/ringmesh/pkg/mesh"
)

// FleetSizePolicy keeps, for each kind, Count healthy nodes: when a node of
// the kind is preempted or dies, the leader launches the cheapest matching
// offer (through the same gates as meshctl launch: budget caps, request-ID
// record, audit), backing off after failures. Example:
//
//	policies:
//	  fleet_size:
//	    mode: dry-run          # off (default), dry-run or enforce
//	    backoff: 5m            # after a failed launch; doubles per failure, at most 1h
//	    kinds:
//	      - name: rtx4090      # names the launches: node <name>-<generation>
//	        count: 2           # healthy nodes to keep
//	        gpu: RTX 4090
//	        gpu_count: 1       # exact GPU count (default 1)
//	        providers: [vast, runpod]   # default: every cloud
//	        max_price: 0.40    # USD per GPU-hour (required)
//	        kind: spot         # any (default), on-demand or spot
type FleetSizePolicy struct {
	// Mode is off, dry-run or enforce (default off).
	Mode string `json:"mode"`
	// Backoff is the wait after a failed launch (default 5 min, at least 30 s).
	Backoff time.Duration `json:"backoff"`
	Kinds   []FleetKind   `json:"kinds"`
}

// On reports whether the policy is dry-run or enforce.
func (f FleetSizePolicy) On() bool { return f.Mode == PolicyDryRun || f.Mode == PolicyEnforce }

// FleetKind is one kind of node the fleet-size policy keeps Count of.
type FleetKind struct {
	Name      string   `json:"name" yaml:"name"`
	Count     int      `json:"count" yaml:"count"`
	GPU       string   `json:"gpu" yaml:"gpu"`
	GPUCount  int      `json:"gpu_count" yaml:"gpu_count"`
	Providers []string `json:"providers,omitempty" yaml:"providers"`
	// MaxPrice is the ceiling in USD per GPU-hour of an offer it launches.
	MaxPrice float64 `json:"max_price" yaml:"max_price"`
	// Kind is any, on-demand or spot.
	Kind string `json:"kind" yaml:"kind"`
}

var fleetKindNameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,23}$`)

var gpuNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9 ._,()-]{0,63}$`)

func (p *parser) fleetSize(v *yaml.Node) FleetSizePolicy {
	out := FleetSizePolicy{Mode: PolicyOff, Backoff: 5 * time.Minute}
	var y struct {
		Mode    string      `yaml:"mode"`
		Backoff string      `yaml:"backoff"`
		Kinds   []FleetKind `yaml:"kinds"`
	}
	extra, _ := p.strict(v, "policies.fleet_size", &y)
	for k := range extra {
		p.errorf(v, "policies.fleet_size."+k, "unknown field (want mode, backoff, kinds)")
	}
	switch y.Mode {
	case "", PolicyOff, PolicyDryRun, PolicyEnforce:
		if y.Mode != "" {
			out.Mode = y.Mode
		}
	default:
		p.errorf(v, "policies.fleet_size.mode", "%q is not off, dry-run or enforce", y.Mode)
	}
	if y.Backoff != "" {
		d, err := time.ParseDuration(y.Backoff)
		switch {
		case err != nil:
			p.errorf(v, "policies.fleet_size.backoff", "%q is not a duration (e.g. 5m): %v", y.Backoff, err)
		case d < 30*time.Second:
			p.errorf(v, "policies.fleet_size.backoff", "%s is shorter than 30s: failed launches would hammer the cloud", d)
		default:
			out.Backoff = d
		}
	}
	seen := map[string]bool{}
	for i, k := range y.Kinds {
		at := fmt.Sprintf("policies.fleet_size.kinds[%d]", i)
		if !fleetKindNameRe.MatchString(k.Name) {
			p.errorf(v, at+".name", "%q: want 1-24 lower-case letters, digits and '-' (it names the launched nodes)", k.Name)
		}
		if seen[k.Name] {
			p.errorf(v, at+".name", "%q twice", k.Name)
		}
		seen[k.Name] = true
		if k.Count < 0 || k.Count > 1000 {
			p.errorf(v, at+".count", "%d is not 0..1000", k.Count)
		}
		if !gpuNameRe.MatchString(k.GPU) {
			p.errorf(v, at+".gpu", "%q: want a GPU model such as \"RTX 4090\"", k.GPU)
		}
		if k.GPUCount == 0 {
			k.GPUCount = 1
		}
		if k.GPUCount < 0 || k.GPUCount > 64 {
			p.errorf(v, at+".gpu_count", "%d is not 1..64", k.GPUCount)
		}
		for _, pr := range k.Providers {
			if !mesh.KnownProvider(pr) {
				p.errorf(v, at+".providers", "unknown provider %q", pr)
			}
		}
		if math.IsNaN(k.MaxPrice) || math.IsInf(k.MaxPrice, 0) || k.MaxPrice <= 0 {
			p.errorf(v, at+".max_price", "%v: a positive ceiling in USD per GPU-hour is required (an unbounded replacement would not hold a budget)", k.MaxPrice)
		}
		switch k.Kind {
		case "":
			k.Kind = "any"
		case "any", "on-demand", "spot":
		default:
			p.errorf(v, at+".kind", "%q is not any, on-demand or spot", k.Kind)
		}
		out.Kinds = append(out.Kinds, k)
	}
	return out
}
