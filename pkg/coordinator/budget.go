package coordinator

import (
	"sort"

	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/cost"
)

// costBudget compares today's accrued cost (UTC day of cfg.Now) with the
// inventory's budget caps; nil when there is no budget or no tracker.
func (c *Coordinator) costBudget() *api.CostBudget {
	if c.cfg.Cost == nil || c.cfg.Inventory == nil || c.cfg.Inventory.Budget.Empty() {
		return nil
	}
	now := c.cfg.Now().UTC()
	today := cost.Filter{From: now, To: now}
	b := c.cfg.Inventory.Budget
	out := &api.CostBudget{Day: now.Format(cost.DayFormat)}
	line := func(scope string, t cost.Totals, caps map[string]float64) {
		curs := make([]string, 0, len(caps))
		for cur := range caps {
			curs = append(curs, cur)
		}
		sort.Strings(curs)
		for _, cur := range curs {
			spent := t.Amount[cur]
			out.Lines = append(out.Lines, api.BudgetLine{Scope: scope, Currency: cur, Cap: caps[cur], Spent: spent,
				UnknownHours: t.UnknownHours, Over: spent > caps[cur]})
		}
	}
	line("all", c.cfg.Cost.Sum(today), b.Daily)
	provs := make([]string, 0, len(b.Providers))
	for p := range b.Providers {
		provs = append(provs, p)
	}
	sort.Strings(provs)
	for _, p := range provs {
		f := today
		f.Provider = p
		line(p, c.cfg.Cost.Sum(f), b.Providers[p])
	}
	return out
}
