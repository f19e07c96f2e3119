package api

// CostBudget is today's spend against the inventory's budget caps (one UTC
// day). Spent counts accrued cost only (it lags by one reconcile interval);
// UnknownHours are billable hours at an unknown price in the same scope, so
// Spent is then a lower bound and Over may be false while the cap is crossed.
type CostBudget struct {
	Day   string       `json:"day"` // cost.DayFormat, UTC
	Lines []BudgetLine `json:"lines"`
}

// BudgetLine is one cap: Scope "all" (every cloud) or a provider name.
type BudgetLine struct {
	Scope        string  `json:"scope"`
	Currency     string  `json:"currency"`
	Cap          float64 `json:"cap"`
	Spent        float64 `json:"spent"`
	UnknownHours float64 `json:"unknown_hours,omitempty"`
	Over         bool    `json:"over"`
}
