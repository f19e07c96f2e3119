package dashboard

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/ringmesh/ringmesh/pkg/cost"
	"github.com/ringmesh/ringmesh/pkg/providers"
)

// The cost history sums the tracker's buckets per UTC day and currency
// (never converting), counts each instance billed that day once, marks
// unknown-price hours, covers CostDays days ending today (older days left
// out), and says "not tracked" without a tracker.
func TestCostHistoryOf(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	tr := cost.New(cost.Options{MaxGap: time.Hour})
	usd := providers.Price{PerHour: 1, Currency: "USD", Source: "vast:dph_total"}
	eur := providers.Price{PerHour: 0.5, Currency: "EUR", Source: "hetzner:price_hourly"}
	observe := func(o cost.Observation, from time.Time, hours int) {
		for h := 0; h <= hours; h++ {
			o.At = from.Add(time.Duration(h) * time.Hour)
			if err := tr.Observe(o); err != nil {
				t.Fatal(err)
			}
		}
	}
	yesterday := now.AddDate(0, 0, -1).Truncate(24 * time.Hour).Add(10 * time.Hour)
	observe(cost.Observation{Provider: "vast", InstanceID: "1", NodeID: "vast-1", State: providers.StateRunning, Billable: true, Price: usd}, yesterday, 3) // 3 h yesterday
	observe(cost.Observation{Provider: "vast", InstanceID: "2", NodeID: "vast-2", State: providers.StateRunning, Billable: true, Price: usd}, now.Add(-2*time.Hour), 2)
	observe(cost.Observation{Provider: "hetzner", InstanceID: "9", NodeID: "cpu-9", State: providers.StateRunning, Billable: true, Price: eur}, now.Add(-4*time.Hour), 4)
	observe(cost.Observation{Provider: "runpod", InstanceID: "p", NodeID: "rp-1", State: providers.StateRunning, Billable: true}, now.Add(-time.Hour), 1) // price unknown
	old := now.AddDate(0, 0, -CostDays-2)
	observe(cost.Observation{Provider: "vast", InstanceID: "3", State: providers.StateRunning, Billable: true, Price: usd}, old, 2)

	h := CostHistoryOf(tr, now)
	if !h.Tracked || len(h.Days) != CostDays || h.Days[CostDays-1].Day != "2026-12-04" || h.Days[0].Day != "2026-11-21" {
		t.Fatalf("days: tracked %v, %d days, %+v … %+v", h.Tracked, len(h.Days), h.Days[0], h.Days[len(h.Days)-1])
	}
	if len(h.Currencies) != 2 || h.Currencies[0] != "EUR" || h.Currencies[1] != "USD" {
		t.Fatalf("currencies %v, want [EUR USD] (never converted)", h.Currencies)
	}
	today, yday := h.Days[CostDays-1], h.Days[CostDays-2]
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-6 }
	if !near(yday.Amount["USD"], 3) || yday.Instances != 1 {
		t.Errorf("yesterday %+v, want 3 USD, 1 instance", yday)
	}
	if !near(today.Amount["USD"], 2) || !near(today.Amount["EUR"], 2) || today.Instances != 3 || !near(today.UnknownHours, 1) {
		t.Errorf("today %+v, want 2 USD, 2 EUR, 3 instances, 1 unknown-price hour", today)
	}
	for _, d := range h.Days[:CostDays-2] {
		if len(d.Amount) != 0 || d.Instances != 0 {
			t.Errorf("day %s: %+v, want nothing (the old instance is before the window)", d.Day, d)
		}
	}
	if b, _ := json.Marshal(CostHistoryOf(nil, now)); string(b) != `{"tracked":false,"currencies":null,"days":null}` {
		t.Errorf("no tracker: %s", b)
	}
}
