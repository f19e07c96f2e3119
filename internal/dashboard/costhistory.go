package dashboard

import (
	"net/http"
	"slices"
	"time"

	"github.com/ringmesh/ringmesh/pkg/cost"
)

// CostDays is how many UTC days GET /api/dashboard/cost covers (today included).
const CostDays = 14

// CostHistory is the reply of GET /api/dashboard/cost: the cluster's
// accrued cost and billed instances per UTC day, as the cost tracker holds
// them (persisted across restarts and fail-overs).
type CostHistory struct {
	// Tracked is false when this coordinator tracks no cost: Days is then
	// empty and the cost is unknown, never zero.
	Tracked bool `json:"tracked"`
	// Currencies are the currencies that occur, sorted (amounts are never
	// converted between them).
	Currencies []string  `json:"currencies"`
	Days       []CostDay `json:"days"`
}

// CostDay is one UTC day of CostHistory.
type CostDay struct {
	// Day is cost.DayFormat (YYYY-MM-DD, UTC).
	Day string `json:"day"`
	// Amount is the accrued cost per currency (ISO 4217).
	Amount map[string]float64 `json:"amount"`
	// Instances is how many instances billed that day (at a known or an
	// unknown price).
	Instances int `json:"instances"`
	// UnknownHours are billable hours at an unknown price: the day's
	// amount is then a lower bound. UnobservedHours are gaps nobody saw.
	UnknownHours    float64 `json:"unknown_hours"`
	UnobservedHours float64 `json:"unobserved_hours"`
}

// CostHistoryOf reads the last CostDays days ending at now from t (nil =
// not tracked). Days without any bucket are present with empty amounts.
func CostHistoryOf(t *cost.Tracker, now time.Time) CostHistory {
	if t == nil {
		return CostHistory{}
	}
	now = now.UTC()
	from := now.AddDate(0, 0, -(CostDays - 1))
	out := CostHistory{Tracked: true, Currencies: []string{}}
	byDay := map[string]int{}
	for d := range CostDays {
		day := from.AddDate(0, 0, d).Format(cost.DayFormat)
		byDay[day] = len(out.Days)
		out.Days = append(out.Days, CostDay{Day: day, Amount: map[string]float64{}})
	}
	type inst struct{ day, provider, id string }
	billed := map[inst]bool{}
	for _, b := range t.Buckets(cost.Filter{From: from, To: now}) {
		i, ok := byDay[b.Day]
		if !ok {
			continue
		}
		d := &out.Days[i]
		for c, v := range b.Amount {
			d.Amount[c] += v
			if !slices.Contains(out.Currencies, c) {
				out.Currencies = append(out.Currencies, c)
			}
		}
		d.UnknownHours += b.UnknownHours
		d.UnobservedHours += b.UnobservedHours
		if b.BillableHours+b.UnknownHours > 0 {
			k := inst{b.Day, b.Provider, b.InstanceID}
			if !billed[k] {
				billed[k] = true
				d.Instances++
			}
		}
	}
	slices.Sort(out.Currencies)
	return out
}

// CostHandler serves GET /api/dashboard/cost.
func CostHandler(src Source) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, r, CostHistoryOf(src.Cost, time.Now()))
	})
}
