package cost_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringmesh/ringmesh/pkg/cost"
	"github.com/ringmesh/ringmesh/pkg/providers"
)

// TestHistoryEqualsBilledIntervals: with an injected clock, the per-day
// history of each instance is the sum of its billed intervals: a Vultr
// server bills while stopped at its full price, a stopped Vast instance
// bills its storage (instance.diskHour) when the API states it and nothing
// when it does not; intervals crossing midnight split into both days.
func TestHistoryEqualsBilledIntervals(t *testing.T) {
	c := newClock("2026-11-28T22:00:00Z")
	tr := cost.New(cost.Options{MaxGap: time.Hour})
	observe := func(caps providers.Capabilities, in providers.Instance) {
		t.Helper()
		if err := tr.Observe(cost.ObservationOf(caps, in, "", c.now())); err != nil {
			t.Fatal(err)
		}
	}
	vu := inst("vultr", "v1", providers.StateRunning)
	vu.Price = usd(0.62)
	vaStore := inst("vast", "s1", providers.StateRunning)
	vaStore.Price, vaStore.StoragePrice = usd(0.35), providers.Price{PerHour: 0.02, Currency: "USD", Source: "vast:instance.diskHour"}
	vaBare := inst("vast", "b1", providers.StateRunning)
	vaBare.Price = usd(0.30)
	each := func() {
		observe(vultrCaps, vu)
		observe(vastCaps, vaStore)
		observe(vastCaps, vaBare)
	}
	// 22:00-23:30 running (1.5 h), then stopped 23:30-01:30 (2 h, across midnight), in 30 min steps.
	for i := 0; i < 8; i++ {
		if i == 3 {
			vu.State, vaStore.State, vaBare.State = providers.StateStopped, providers.StateStopped, providers.StateStopped
		}
		each()
		c.advance(30 * time.Minute)
	}
	each() // closes the last interval at 02:00
	// billed intervals: running 22:00-23:30 (3 steps), stopped 23:30-02:00 (5 steps).
	want := map[string]map[string]float64{ // day -> instance -> USD
		"2026-11-28": {"vultr/v1": 2 * 0.62, "vast/s1": 1.5*0.35 + 0.5*0.02, "vast/b1": 1.5 * 0.30},
		"2026-11-29": {"vultr/v1": 2 * 0.62, "vast/s1": 2 * 0.02, "vast/b1": 0},
	}
	for day, insts := range want {
		d, _ := time.Parse(cost.DayFormat, day)
		got, err := tr.Group(cost.Filter{From: d, To: d}, cost.ByInstance)
		if err != nil {
			t.Fatal(err)
		}
		for id, usdWant := range insts {
			if g := got[id].Amount["USD"]; !near(g, usdWant) {
				t.Errorf("%s %s = %v USD, want %v", day, id, g, usdWant)
			}
		}
	}
	if b := tr.Sum(cost.Filter{Provider: "vast", InstanceID: "b1"}); !near(b.IdleHours, 2.5) || !near(b.BillableHours, 1.5) {
		t.Errorf("vast without storage price: %+v, want 1.5 h billed and 2.5 h idle", b)
	}
	if s := tr.Sum(cost.Filter{Provider: "vast", InstanceID: "s1"}); !near(s.BillableHours, 4) || s.IdleHours != 0 {
		t.Errorf("vast with storage price: %+v, want 4 h billed", s)
	}
}

// TestCurrencyCounters: ringmesh_cost_usd_total and ringmesh_cost_eur_total
// carry each provider's accrual in their own currency, never summed.
func TestCurrencyCounters(t *testing.T) {
	c := newClock("2026-11-29T10:00:00Z")
	tr := cost.New(cost.Options{MaxGap: 3 * time.Hour})
	for _, o := range []cost.Observation{
		{Provider: "hetzner", InstanceID: "42", State: providers.StateStopped, Billable: true, Price: eur(0.10)},
		{Provider: "vast", InstanceID: "1", State: providers.StateRunning, Billable: true, Price: usd(0.40)},
	} {
		o.At = c.now()
		if err := tr.Observe(o); err != nil {
			t.Fatal(err)
		}
		o.At = c.now().Add(2 * time.Hour)
		if err := tr.Observe(o); err != nil {
			t.Fatal(err)
		}
	}
	reg := prometheus.NewPedanticRegistry()
	if err := tr.Register(reg); err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "ringmesh_cost_usd_total" && mf.GetName() != "ringmesh_cost_eur_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			got[mf.GetName()+"/"+m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	if len(got) != 2 {
		t.Errorf("series = %v, want one USD (vast) and one EUR (hetzner)", got)
	}
	if !near(got["ringmesh_cost_usd_total/vast"], 0.80) || !near(got["ringmesh_cost_eur_total/hetzner"], 0.20) {
		t.Errorf("counters = %v", got)
	}
}
