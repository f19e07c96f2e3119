package config

import (
	"math"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/ringmesh/ringmesh/pkg/mesh"
)

// Budget is the inventory's budget: section: caps on what one UTC day's
// accrued cost may reach, per currency (ISO 4217, "USD" or "EUR"; the two
// are never added together). Example:
//
//	budget:
//	  daily: {USD: 100, EUR: 10}   # all clouds together
//	  providers:
//	    vast: {USD: 30}
//	    hetzner: {EUR: 5}
//
// ringmesh shows spend against the caps (meshctl cost), the budget policy
// (policies.go) stops nodes to stay under them, and a launch (meshctl
// launch, the fleet-size policy) that would cross one is refused.
type Budget struct {
	Daily     map[string]float64            `yaml:"daily" json:"daily,omitempty"`
	Providers map[string]map[string]float64 `yaml:"providers" json:"providers,omitempty"`
}

// Empty reports whether no cap is set.
func (b Budget) Empty() bool { return len(b.Daily) == 0 && len(b.Providers) == 0 }

// BudgetCurrencies are the currencies a cap may be in.
var BudgetCurrencies = []string{"EUR", "USD"}

func (p *parser) budget(v *yaml.Node) {
	var b Budget
	extra, nodes := p.strict(v, "budget", &b)
	for k := range extra {
		at := v
		if n := nodes[k]; n != nil {
			at = n
		}
		p.errorf(at, "budget."+k, "unknown field (want daily or providers): a cap that is not read would not hold")
	}
	check := func(field string, caps map[string]float64) {
		keys := make([]string, 0, len(caps))
		for c := range caps {
			keys = append(keys, c)
		}
		sort.Strings(keys)
		for _, c := range keys {
			amt := caps[c]
			if c != "USD" && c != "EUR" {
				p.errorf(v, field+"."+c, "unknown currency %q (want %s)", c, strings.Join(BudgetCurrencies, " or "))
			}
			if math.IsNaN(amt) || math.IsInf(amt, 0) || amt <= 0 {
				p.errorf(v, field+"."+c, "cap %v is not a positive amount", amt)
			}
		}
	}
	check("budget.daily", b.Daily)
	for prov, caps := range b.Providers {
		if !mesh.KnownProvider(prov) {
			p.errorf(v, "budget.providers."+prov, "unknown provider (want one of %s)", strings.Join(mesh.Providers, ", "))
			continue
		}
		check("budget.providers."+prov, caps)
	}
	p.inv.Budget = b
}
