package policy

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// RolePriority ranks inventory roles for the budget policy: lower is
// stopped first. Self-play boxes go before other GPU work, training last;
// a role the table does not know ranks with other GPU work.
func RolePriority(role string) int {
	switch {
	case strings.Contains(role, "selfplay"):
		return 1
	case strings.Contains(role, "training"):
		return 3
	}
	return 2
}

// BudgetNode is one running instance the budget policy may stop.
type BudgetNode struct {
	Node, Provider, Role string
	// PerHour is what the instance costs now in Currency, per hour; stopping
	// it saves at most this much.
	PerHour  float64
	Currency string
}

// BudgetCap is one cap of the inventory's budget with today's spend.
type BudgetCap struct {
	Scope    string // "all" or a provider name
	Currency string
	Cap      float64
	// Spent is today's accrued cost; Burn is the current cost per hour of
	// every billable instance in the scope (known prices only).
	Spent, Burn float64
}

// BudgetStop is a node the plan stops, with the figures that made it.
type BudgetStop struct {
	Node string
	// Why names the cap and the projection, e.g. "vast USD: projected
	// 41.20 > cap 30.00 (spent 12.00, 1.22/h for 23.9 h)".
	Why string
}

// PlanBudgetStops picks, for each cap whose projection (spent + burn ×
// hoursLeft in the UTC day) exceeds it, the nodes to stop until the
// projection is at or under the cap: lowest role priority first, then the
// most expensive, then by name. A node picked for one cap also lowers the
// projection of every other cap it counts in. Caps that cannot be brought
// under with the candidates given stop every candidate in scope.
func PlanBudgetStops(caps []BudgetCap, nodes []BudgetNode, hoursLeft float64) []BudgetStop {
	if hoursLeft <= 0 {
		return nil
	}
	inScope := func(c BudgetCap, n BudgetNode) bool {
		return n.Currency == c.Currency && (c.Scope == "all" || c.Scope == n.Provider)
	}
	cands := slices.Clone(nodes)
	slices.SortStableFunc(cands, func(a, b BudgetNode) int {
		return cmp.Or(cmp.Compare(RolePriority(a.Role), RolePriority(b.Role)), cmp.Compare(b.PerHour, a.PerHour), cmp.Compare(a.Node, b.Node))
	})
	picked := map[string]bool{}
	var out []BudgetStop
	for _, c := range caps {
		burn := c.Burn
		for _, n := range nodes {
			if picked[n.Node] && inScope(c, n) {
				burn -= n.PerHour
			}
		}
		projected := func() float64 { return c.Spent + max(burn, 0)*hoursLeft }
		for _, n := range cands {
			if projected() <= c.Cap {
				break
			}
			if picked[n.Node] || !inScope(c, n) || n.PerHour <= 0 {
				continue
			}
			before := projected()
			burn -= n.PerHour
			picked[n.Node] = true
			out = append(out, BudgetStop{Node: n.Node, Why: fmt.Sprintf("%s %s: projected %.2f > cap %.2f (spent %.2f, %.2f/h for %.1f h); stopping saves %.2f/h",
				c.Scope, c.Currency, before, c.Cap, c.Spent, burn+n.PerHour, hoursLeft, n.PerHour)})
		}
	}
	return out
}

// LaunchCheck is one cap checked for a launch: the projection to the end
// of the UTC day with the new instance's price added to the burn.
type LaunchCheck struct {
	Cap       BudgetCap
	Added     float64 // the new instance, per hour
	HoursLeft float64
	Projected float64 // Spent + (Burn + Added) × HoursLeft
	Over      bool
}

// CheckLaunch projects every cap in scope of a new instance on provider at
// perHour in currency (caps in another currency do not count it) and says
// which would end the UTC day over. A cap already over refuses any launch
// in its scope.
func CheckLaunch(caps []BudgetCap, provider, currency string, perHour, hoursLeft float64) []LaunchCheck {
	var out []LaunchCheck
	for _, c := range caps {
		if c.Currency != currency || (c.Scope != "all" && c.Scope != provider) {
			continue
		}
		proj := c.Spent + (max(c.Burn, 0)+perHour)*max(hoursLeft, 0)
		out = append(out, LaunchCheck{Cap: c, Added: perHour, HoursLeft: hoursLeft, Projected: proj, Over: proj > c.Cap || c.Spent > c.Cap})
	}
	return out
}
