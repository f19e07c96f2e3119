package policy

import (
	"strings"
	"testing"
)

// The plan stops the fewest lowest-priority nodes that bring each
// projection under its cap, self-play before training, dearer first, and
// counts a node stopped for one cap against the others.
func TestPlanBudgetStops(t *testing.T) {
	nodes := []BudgetNode{
		{Node: "vast-train", Provider: "vast", Role: "gpu_training_primary", PerHour: 2.0, Currency: "USD"},
		{Node: "vast-sp-cheap", Provider: "vast", Role: "gpu_selfplay", PerHour: 0.3, Currency: "USD"},
		{Node: "vast-sp-dear", Provider: "vast", Role: "gpu_selfplay", PerHour: 0.9, Currency: "USD"},
		{Node: "runpod-sp", Provider: "runpod", Role: "gpu_selfplay", PerHour: 0.5, Currency: "USD"},
		{Node: "hetzner-x", Provider: "hetzner", Role: "cpu", PerHour: 0.02, Currency: "EUR"},
	}
	// vast: spent 10, burn 3.2/h for 10 h → 42 > 35: stopping the dearer
	// self-play box (0.9/h → 33) is enough.
	got := PlanBudgetStops([]BudgetCap{{Scope: "vast", Currency: "USD", Cap: 35, Spent: 10, Burn: 3.2}}, nodes, 10)
	if len(got) != 1 || got[0].Node != "vast-sp-dear" || !strings.Contains(got[0].Why, "projected 42.00 > cap 35.00") {
		t.Fatalf("vast cap: %+v", got)
	}
	// Under the cap: nothing.
	if got := PlanBudgetStops([]BudgetCap{{Scope: "vast", Currency: "USD", Cap: 50, Spent: 10, Burn: 3.2}}, nodes, 10); len(got) != 0 {
		t.Fatalf("under the cap: %+v", got)
	}
	// all USD: spent 20, burn 3.7/h for 10 h = 57 > 30: self-play first
	// (0.9, 0.5, 0.3 → 40), then training (2.0 → 20). The EUR node is
	// never counted against a USD cap.
	got = PlanBudgetStops([]BudgetCap{{Scope: "all", Currency: "USD", Cap: 30, Spent: 20, Burn: 3.7}}, nodes, 10)
	var names []string
	for _, s := range got {
		names = append(names, s.Node)
	}
	if strings.Join(names, ",") != "vast-sp-dear,runpod-sp,vast-sp-cheap,vast-train" {
		t.Fatalf("all-clouds cap: %v", names)
	}
	// Two caps: the vast stop also counts for the all-clouds cap.
	got = PlanBudgetStops([]BudgetCap{
		{Scope: "vast", Currency: "USD", Cap: 35, Spent: 10, Burn: 3.2},
		{Scope: "all", Currency: "USD", Cap: 48, Spent: 10, Burn: 3.7},
	}, nodes, 10)
	if len(got) != 1 || got[0].Node != "vast-sp-dear" {
		t.Fatalf("two caps: %+v (the vast stop brings all to 38 < 48)", got)
	}
	if got := PlanBudgetStops([]BudgetCap{{Scope: "all", Currency: "USD", Cap: 1, Spent: 5, Burn: 3.7}}, nodes, 0); got != nil {
		t.Fatalf("no time left in the day: %+v", got)
	}
}

func TestCheckLaunchProjectsTheNewPrice(t *testing.T) {
	caps := []BudgetCap{
		{Scope: "all", Currency: "USD", Cap: 100, Spent: 40, Burn: 2},
		{Scope: "vast", Currency: "USD", Cap: 10, Spent: 4, Burn: 0.5},
		{Scope: "runpod", Currency: "USD", Cap: 1, Spent: 5}, // over already, other scope
		{Scope: "all", Currency: "EUR", Cap: 1, Spent: 5},    // other currency
	}
	got := CheckLaunch(caps, "vast", "USD", 0.5, 10)
	if len(got) != 2 {
		t.Fatalf("checked %d caps, want the two in scope and currency: %+v", len(got), got)
	}
	if got[0].Projected != 40+(2+0.5)*10 || got[0].Over {
		t.Errorf("all USD = %+v, want 65 projected, not over", got[0])
	}
	if got[1].Projected != 4+(0.5+0.5)*10 || !got[1].Over {
		t.Errorf("vast USD = %+v, want 14 projected, over 10", got[1])
	}
}
