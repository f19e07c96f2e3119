package config

import (
	"math"
	"time"

	"go.yaml.in/yaml/v3"
)

// Policy modes: off does nothing, dry-run audits what it would do, enforce
// acts (through the same gates as an operator's meshctl command).
const (
	PolicyOff     = "off"
	PolicyDryRun  = "dry-run"
	PolicyEnforce = "enforce"
)

// Policies is the inventory's policies: section. Every policy is off
// unless its mode says otherwise. Example:
//
//	policies:
//	  idle:
//	    mode: dry-run              # off (default), dry-run or enforce
//	    action: stop               # stop (default) or terminate
//	    max_gpu_util_percent: 5    # every GPU at or below this ...
//	    window: 30m                # ... for this long, with no watched process running
type Policies struct {
	Idle      IdlePolicy      `json:"idle"`
	Budget    BudgetPolicy    `json:"budget"`
	FleetSize FleetSizePolicy `json:"fleet_size"` // fleetsize.go
}

// BudgetPolicy stops nodes when today's projected spend (accrued plus the
// current burn until the end of the UTC day) would cross a cap of the
// inventory's budget: section, lowest role priority first (self-play, other
// GPU work, training), until the projection is under the cap. Voters and
// instances that bill while stopped are never stopped by it.
type BudgetPolicy struct {
	// Mode is off, dry-run or enforce (default off).
	Mode string `json:"mode"`
}

// Any reports whether some policy is not off.
func (p Policies) Any() bool {
	return p.Idle.Mode != PolicyOff || p.Budget.Mode != PolicyOff || p.FleetSize.On()
}

// IdlePolicy stops or terminates a node whose GPUs all stayed at or below
// MaxGPUUtilPercent for Window while none of its watched processes (the
// agent's process patterns, e.g. train, selfplay) ran. A node whose
// utilisation or processes could not be measured is never idle.
type IdlePolicy struct {
	// Mode is off, dry-run or enforce (default off).
	Mode string `json:"mode"`
	// Action is stop or terminate (default stop).
	Action string `json:"action"`
	// MaxGPUUtilPercent is the idle threshold, 0..100 (default 5).
	MaxGPUUtilPercent float64 `json:"max_gpu_util_percent"`
	// Window is how long the node must stay idle (default 30 min, at least 1 min).
	Window time.Duration `json:"window"`
}

// DefaultIdlePolicy is the idle policy when the inventory sets none: off,
// stop, 5 %, 30 min.
func DefaultIdlePolicy() IdlePolicy {
	return IdlePolicy{Mode: PolicyOff, Action: "stop", MaxGPUUtilPercent: 5, Window: 30 * time.Minute}
}

type idleYAML struct {
	Mode              string   `yaml:"mode"`
	Action            string   `yaml:"action"`
	MaxGPUUtilPercent *float64 `yaml:"max_gpu_util_percent"`
	Window            string   `yaml:"window"`
}

func (p *parser) policies(v *yaml.Node) {
	v = deref(v)
	if v.Kind != yaml.MappingNode {
		if v.Tag != "!!null" {
			p.errorf(v, "policies", "wrong type: expected a mapping, got %s", kindName(v))
		}
		p.inv.Policies = Policies{Idle: DefaultIdlePolicy(), Budget: BudgetPolicy{Mode: PolicyOff}}
		return
	}
	var idleNode *yaml.Node
	budget := BudgetPolicy{Mode: PolicyOff}
	fleetSize := FleetSizePolicy{Mode: PolicyOff}
	for _, kv := range p.pairs(v, "policies") {
		switch kv.k.Value {
		case "idle":
			idleNode = kv.v
			continue
		case "fleet_size":
			fleetSize = p.fleetSize(kv.v)
			continue
		case "budget":
			var y struct {
				Mode string `yaml:"mode"`
			}
			extra, _ := p.strict(kv.v, "policies.budget", &y)
			for k := range extra {
				p.errorf(kv.k, "policies.budget."+k, "unknown field (want mode)")
			}
			switch y.Mode {
			case "", PolicyOff, PolicyDryRun, PolicyEnforce:
				if y.Mode != "" {
					budget.Mode = y.Mode
				}
			default:
				p.errorf(kv.v, "policies.budget.mode", "%q is not off, dry-run or enforce", y.Mode)
			}
			continue
		}
		p.errorf(kv.k, "policies."+kv.k.Value, "unknown policy (want idle, budget or fleet_size): a policy that is not read would not act")
	}
	var raw struct{ Idle yaml.Node }
	if idleNode != nil {
		raw.Idle = *idleNode
	}
	idle := DefaultIdlePolicy()
	if raw.Idle.Kind != 0 {
		var y idleYAML
		at := &raw.Idle
		extra, nodes := p.strict(at, "policies.idle", &y)
		for k := range extra {
			n := at
			if nodes[k] != nil {
				n = nodes[k]
			}
			p.errorf(n, "policies.idle."+k, "unknown field (want mode, action, max_gpu_util_percent, window)")
		}
		switch y.Mode {
		case "", PolicyOff, PolicyDryRun, PolicyEnforce:
			if y.Mode != "" {
				idle.Mode = y.Mode
			}
		default:
			p.errorf(at, "policies.idle.mode", "%q is not off, dry-run or enforce", y.Mode)
		}
		switch y.Action {
		case "":
		case "stop", "terminate":
			idle.Action = y.Action
		default:
			p.errorf(at, "policies.idle.action", "%q is not stop or terminate", y.Action)
		}
		if y.MaxGPUUtilPercent != nil {
			if u := *y.MaxGPUUtilPercent; math.IsNaN(u) || u < 0 || u > 100 {
				p.errorf(at, "policies.idle.max_gpu_util_percent", "%v is not a percentage 0..100", u)
			} else {
				idle.MaxGPUUtilPercent = u
			}
		}
		if y.Window != "" {
			d, err := time.ParseDuration(y.Window)
			switch {
			case err != nil:
				p.errorf(at, "policies.idle.window", "%q is not a duration (e.g. 30m): %v", y.Window, err)
			case d < time.Minute:
				p.errorf(at, "policies.idle.window", "%s is shorter than 1m: a short pause would stop the node", d)
			default:
				idle.Window = d
			}
		}
	}
	p.inv.Policies = Policies{Idle: idle, Budget: budget, FleetSize: fleetSize}
}
