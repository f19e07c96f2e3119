package cost_test

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringmesh/ringmesh/pkg/cost"
	"github.com/ringmesh/ringmesh/pkg/providers"
)

// clock is a fake clock: observations carry its time.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
func newClock(s string) *clock           { t, _ := time.Parse(time.RFC3339, s); return &clock{t} }
func usd(v float64) providers.Price {
	return providers.Price{PerHour: v, Currency: "USD", Source: "test"}
}
func eur(v float64) providers.Price {
	return providers.Price{PerHour: v, Currency: "EUR", Source: "test"}
}
func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
func inst(p, id string, st providers.State) providers.Instance {
	return providers.Instance{ID: id, Provider: p, State: st}
}

var (
	vultrCaps = providers.Capabilities{CanStop: true, CanStart: true, BillsWhileStopped: true}
	vastCaps  = providers.Capabilities{CanStop: true, CanStart: true, Ephemeral: true}
)

// step is one observation in a scenario.
type step struct {
	after time.Duration // advance the clock before observing
	state providers.State
	price providers.Price
	node  string
}

func TestAccrual(t *testing.T) {
	cases := []struct {
		name     string
		provider string
		caps     providers.Capabilities
		start    string
		steps    []step
		want     cost.Totals
		byDay    map[string]float64 // USD (or EUR) per day, optional
		currency string
	}{
		{
			name: "vultr stopped still billed", provider: "vultr", caps: vultrCaps, start: "2026-11-29T10:00:00Z", currency: "USD",
			steps: []step{
				{0, providers.StateRunning, usd(0.6), "vultr-1"},
				{10 * time.Minute, providers.StateStopped, usd(0.6), "vultr-1"},
				{10 * time.Minute, providers.StateStopped, usd(0.6), "vultr-1"},
				{10 * time.Minute, providers.StateStopped, usd(0.6), "vultr-1"},
			},
			want: cost.Totals{Amount: map[string]float64{"USD": 0.3}, BillableHours: 0.5},
		},
		{
			name: "vast stopped not billed", provider: "vast", caps: vastCaps, start: "2026-11-29T10:00:00Z", currency: "USD",
			steps: []step{
				{0, providers.StateRunning, usd(0.4), "vast-1"},
				{12 * time.Minute, providers.StateStopped, usd(0.4), "vast-1"},
				{12 * time.Minute, providers.StateStopped, usd(0.4), "vast-1"},
				{6 * time.Minute, providers.StateRunning, usd(0.4), "vast-1"},
			},
			want: cost.Totals{Amount: map[string]float64{"USD": 0.08}, BillableHours: 0.2, IdleHours: 0.3},
		},
		{
			name: "price change mid-way charges each interval at its start price", provider: "vast", caps: vastCaps,
			start: "2026-11-29T10:00:00Z", currency: "USD",
			steps: []step{
				{0, providers.StateRunning, usd(1.0), "n"},
				{12 * time.Minute, providers.StateRunning, usd(2.0), "n"}, // 0.2 h at 1.0
				{12 * time.Minute, providers.StateRunning, usd(2.0), "n"}, // 0.2 h at 2.0
			},
			want: cost.Totals{Amount: map[string]float64{"USD": 0.6}, BillableHours: 0.4},
		},
		{
			name: "unknown price is unknown hours, never zero", provider: "lambda", caps: providers.Capabilities{},
			start: "2026-11-29T10:00:00Z", currency: "USD",
			steps: []step{
				{0, providers.StateRunning, providers.Price{}, "l"},
				{15 * time.Minute, providers.StateRunning, usd(1.5), "l"}, // 0.25 h unknown
				{6 * time.Minute, providers.StateRunning, usd(1.5), "l"},  // 0.1 h at 1.5
			},
			want: cost.Totals{Amount: map[string]float64{"USD": 0.15}, BillableHours: 0.1, UnknownHours: 0.25},
		},
		{
			name: "gap longer than MaxGap is unobserved, not charged", provider: "runpod", caps: vastCaps,
			start: "2026-11-29T10:00:00Z", currency: "USD",
			steps: []step{
				{0, providers.StateRunning, usd(1), "r"},
				{6 * time.Minute, providers.StateRunning, usd(1), "r"}, // 0.1 h charged
				{2 * time.Hour, providers.StateRunning, usd(1), "r"},   // gap: 2 h unobserved
				{6 * time.Minute, providers.StateRunning, usd(1), "r"}, // 0.1 h charged
			},
			want: cost.Totals{Amount: map[string]float64{"USD": 0.2}, BillableHours: 0.2, UnobservedHours: 2},
		},
		{
			name: "multi-day split at UTC midnight", provider: "hetzner", caps: vultrCaps, start: "2026-11-29T23:54:00Z", currency: "EUR",
			steps: []step{
				{0, providers.StateRunning, eur(0.6), "h"},
				{12 * time.Minute, providers.StateRunning, eur(0.6), "h"}, // 23:54 -> 00:06: 0.1 h on each day
				{12 * time.Minute, providers.StateStopped, eur(0.6), "h"}, // 0.2 h on the 30th
				{6 * time.Minute, providers.StateStopped, eur(0.6), "h"},  // stopped Hetzner still bills: 0.1 h
			},
			want:  cost.Totals{Amount: map[string]float64{"EUR": 0.3}, BillableHours: 0.5},
			byDay: map[string]float64{"2026-11-29": 0.06, "2026-11-30": 0.24},
		},
		{
			name: "same timestamp twice charges nothing", provider: "vast", caps: vastCaps, start: "2026-11-29T10:00:00Z", currency: "USD",
			steps: []step{
				{0, providers.StateRunning, usd(1), "n"},
				{0, providers.StateRunning, usd(1), "n"},
			},
			want: cost.Totals{},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clk := newClock(c.start)
			tr := cost.New(cost.Options{MaxGap: 15 * time.Minute})
			for i, s := range c.steps {
				clk.advance(s.after)
				in := inst(c.provider, "i-1", s.state)
				in.Price = s.price
				if err := tr.Observe(cost.ObservationOf(c.caps, in, s.node, clk.now())); err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
			}
			got := tr.Sum(cost.Filter{})
			if !totalsNear(got, c.want) {
				t.Fatalf("totals = %+v, want %+v", got, c.want)
			}
			if c.byDay != nil {
				days, err := tr.Group(cost.Filter{}, cost.ByDay)
				if err != nil {
					t.Fatal(err)
				}
				if len(days) != len(c.byDay) {
					t.Fatalf("days = %v", days)
				}
				for d, v := range c.byDay {
					if !near(days[d].Amount[c.currency], v) {
						t.Errorf("day %s = %v, want %v", d, days[d].Amount, v)
					}
				}
			}
		})
	}
}

func totalsNear(a, b cost.Totals) bool {
	if len(a.Amount) != len(b.Amount) {
		return false
	}
	for k, v := range b.Amount {
		if !near(a.Amount[k], v) {
			return false
		}
	}
	return near(a.BillableHours, b.BillableHours) && near(a.UnknownHours, b.UnknownHours) &&
		near(a.IdleHours, b.IdleHours) && near(a.UnobservedHours, b.UnobservedHours)
}

// fleet builds a small mixed fleet observed for one hour every 6 minutes.
func fleet(t *testing.T) (*cost.Tracker, *clock) {
	t.Helper()
	clk := newClock("2026-11-29T12:00:00Z")
	tr := cost.New(cost.Options{})
	for i := 0; i <= 10; i++ {
		for _, o := range []cost.Observation{
			{Provider: "vultr", InstanceID: "v1", NodeID: "vultr-a100", State: providers.StateRunning, Billable: true, Price: usd(0.62)},
			{Provider: "hetzner", InstanceID: "42", NodeID: "hetzner-cpu1", State: providers.StateRunning, Billable: true, Price: eur(0.0833)},
			{Provider: "vast", InstanceID: "29129529", NodeID: "vast-29129529", State: providers.StateRunning, Billable: true, Price: usd(0.35)},
			{Provider: "vast", InstanceID: "555", NodeID: "", State: providers.StateRunning, Billable: true, Price: usd(0.2)},
		} {
			o.At = clk.now()
			if err := tr.Observe(o); err != nil {
				t.Fatal(err)
			}
		}
		clk.advance(6 * time.Minute)
	}
	return tr, clk
}

func TestQueries(t *testing.T) {
	tr, _ := fleet(t)
	total := tr.Sum(cost.Filter{})
	if !near(total.Amount["USD"], 0.62+0.35+0.2) || !near(total.Amount["EUR"], 0.0833) {
		t.Fatalf("currencies must be kept apart: %v", total.Amount)
	}
	if !total.Exact() {
		t.Errorf("totals should be exact: %+v", total)
	}
	byProv, _ := tr.Group(cost.Filter{}, cost.ByProvider)
	if !near(byProv["vast"].Amount["USD"], 0.55) || byProv["hetzner"].Amount["USD"] != 0 || !near(byProv["hetzner"].Amount["EUR"], 0.0833) {
		t.Errorf("by provider = %v", byProv)
	}
	byNode, _ := tr.Group(cost.Filter{}, cost.ByNode)
	if !near(byNode["vultr-a100"].Amount["USD"], 0.62) || !near(byNode[""].Amount["USD"], 0.2) {
		t.Errorf("by node = %v", byNode)
	}
	if got := tr.Sum(cost.Filter{NodeID: "vast-29129529"}); !near(got.Amount["USD"], 0.35) {
		t.Errorf("node filter = %v", got.Amount)
	}
	if got := tr.Sum(cost.Filter{Unlinked: true}); !near(got.Amount["USD"], 0.2) {
		t.Errorf("unlinked = %v", got.Amount)
	}
	day := time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)
	if got := tr.Sum(cost.Filter{From: day, To: day}); !near(got.Amount["USD"], 1.17) {
		t.Errorf("day filter = %v", got.Amount)
	}
	if got := tr.Sum(cost.Filter{From: day.AddDate(0, 0, 1)}); len(got.Amount) != 0 {
		t.Errorf("future day = %v", got.Amount)
	}
	if _, err := tr.Group(cost.Filter{}, "colour"); err == nil {
		t.Error("unknown grouping accepted")
	}
	byInst, _ := tr.Group(cost.Filter{Provider: "vast"}, cost.ByInstance)
	if len(byInst) != 2 || !near(byInst["vast/555"].Amount["USD"], 0.2) {
		t.Errorf("by instance = %v", byInst)
	}

	rate, unknown := tr.BurnRate()
	if !near(rate["USD"], 1.17) || !near(rate["EUR"], 0.0833) || unknown != 0 {
		t.Errorf("burn rate = %v %d", rate, unknown)
	}
	ic, ok := tr.Instance("hetzner", "42")
	if !ok || ic.Price.Currency != "EUR" || ic.NodeID != "hetzner-cpu1" {
		t.Errorf("instance = %+v", ic)
	}
	if cur := tr.Current(); len(cur) != 4 || cur[0].Provider != "hetzner" {
		t.Errorf("current = %+v", cur)
	}
}

func TestRemoveClosesInterval(t *testing.T) {
	clk := newClock("2026-11-29T12:00:00Z")
	tr := cost.New(cost.Options{})
	_ = tr.Observe(cost.Observation{Provider: "vast", InstanceID: "1", State: providers.StateRunning, Billable: true, Price: usd(1), At: clk.now()})
	clk.advance(6 * time.Minute)
	if !tr.Remove("vast", "1", clk.now()) {
		t.Fatal("unknown instance")
	}
	if got := tr.Sum(cost.Filter{}); !near(got.Amount["USD"], 0.1) {
		t.Errorf("after remove = %v", got.Amount)
	}
	if _, ok := tr.Instance("vast", "1"); ok || tr.Remove("vast", "1", clk.now()) {
		t.Error("instance not forgotten")
	}
}

func TestBadInput(t *testing.T) {
	tr := cost.New(cost.Options{})
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	bad := []cost.Observation{
		{InstanceID: "1", At: now},
		{Provider: "vast", At: now},
		{Provider: "vast", InstanceID: "1"},
		{Provider: "vast", InstanceID: "1", At: now, Price: providers.Price{PerHour: -1, Currency: "USD", Source: "x"}},
		{Provider: "vast", InstanceID: "1", At: now, Price: providers.Price{PerHour: math.NaN(), Currency: "USD", Source: "x"}},
		{Provider: "vast", InstanceID: "1", At: now, Price: providers.Price{PerHour: 1, Source: "x"}},
	}
	for i, o := range bad {
		if err := tr.Observe(o); err == nil {
			t.Errorf("%d accepted: %+v", i, o)
		}
	}
	ok := cost.Observation{Provider: "vast", InstanceID: "1", At: now, Billable: true, Price: usd(1)}
	if err := tr.Observe(ok); err != nil {
		t.Fatal(err)
	}
	old := ok
	old.At = now.Add(-time.Minute)
	if err := tr.Observe(old); !errors.Is(err, cost.ErrOutOfOrder) {
		t.Errorf("out of order: %v", err)
	}
	if ic, _ := tr.Instance("vast", "1"); !ic.LastSeen.Equal(now) {
		t.Errorf("out-of-order observation changed state: %v", ic.LastSeen)
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	tr, clk := fleet(t)
	b, err := json.Marshal(tr.Snapshot())
	if err != nil {
		t.Fatal(err)
	}
	var snap cost.Snapshot
	if err := json.Unmarshal(b, &snap); err != nil {
		t.Fatal(err)
	}
	tr2 := cost.New(cost.Options{})
	if err := tr2.Restore(snap); err != nil {
		t.Fatal(err)
	}
	if a, b := tr.Sum(cost.Filter{}), tr2.Sum(cost.Filter{}); !totalsNear(a, b) {
		t.Fatalf("restored totals %+v != %+v", b, a)
	}
	// Accrual continues from the restored last observations.
	o := cost.Observation{Provider: "vultr", InstanceID: "v1", NodeID: "vultr-a100", State: providers.StateRunning,
		Billable: true, Price: usd(0.62), At: clk.now()} // 6 min after the last one
	if err := tr2.Observe(o); err != nil {
		t.Fatal(err)
	}
	if got := tr2.Sum(cost.Filter{NodeID: "vultr-a100"}); !near(got.Amount["USD"], 0.62*1.1) {
		t.Errorf("continued = %v", got.Amount)
	}

	// A bad snapshot changes nothing.
	before := tr2.Sum(cost.Filter{})
	broken := snap
	broken.Buckets = append([]cost.Bucket(nil), snap.Buckets...)
	broken.Buckets[0].Day = "29/11/2026"
	if err := tr2.Restore(broken); err == nil || !strings.Contains(err.Error(), "buckets[0]") {
		t.Fatalf("bad day accepted: %v", err)
	}
	if err := tr2.Restore(cost.Snapshot{Version: 99}); err == nil {
		t.Fatal("bad version accepted")
	}
	if after := tr2.Sum(cost.Filter{}); !totalsNear(before, after) {
		t.Fatal("failed restore changed state")
	}
}

func TestMetrics(t *testing.T) {
	tr, _ := fleet(t)
	_ = tr.Observe(cost.Observation{Provider: "lambda", InstanceID: "l1", NodeID: "lambda-gh200", State: providers.StateRunning,
		Billable: true, At: time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)})
	reg := prometheus.NewPedanticRegistry()
	if err := tr.Register(reg); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName() + "{"
			for i, lp := range m.GetLabel() {
				if i > 0 {
					key += ","
				}
				key += lp.GetName() + "=" + lp.GetValue()
			}
			key += "}"
			switch {
			case m.GetGauge() != nil:
				got[key] = m.GetGauge().GetValue()
			case m.GetCounter() != nil:
				got[key] = m.GetCounter().GetValue()
			}
		}
	}
	want := map[string]float64{
		"ringmesh_cost_accrued_total{currency=EUR,provider=hetzner}":                                           0.0833,
		"ringmesh_cost_accrued_total{currency=USD,provider=vast}":                                              0.55,
		"ringmesh_cost_accrued_total{currency=USD,provider=vultr}":                                             0.62,
		"ringmesh_instance_price_per_hour{currency=EUR,instance_id=42,node=hetzner-cpu1,provider=hetzner}":     0.0833,
		"ringmesh_instance_price_per_hour{currency=USD,instance_id=29129529,node=vast-29129529,provider=vast}": 0.35,
		"ringmesh_instance_price_per_hour{currency=USD,instance_id=555,node=,provider=vast}":                   0.2,
		"ringmesh_instance_price_per_hour{currency=USD,instance_id=v1,node=vultr-a100,provider=vultr}":         0.62,
		"ringmesh_instance_billable{instance_id=l1,node=lambda-gh200,provider=lambda}":                         1,
		"ringmesh_cost_unknown_price_instance_seconds_total{provider=vast}":                                    0,
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || !near(g, v) {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	var prices, billable int
	for k := range got {
		if strings.HasPrefix(k, "ringmesh_instance_price_per_hour{") {
			prices++
		}
		if strings.HasPrefix(k, "ringmesh_instance_billable{") {
			billable++
		}
	}
	if prices != 4 || billable != 5 {
		t.Errorf("price series = %d (unknown prices must not export 0), billable series = %d", prices, billable)
	}
	if _, unknown := tr.BurnRate(); unknown != 1 {
		t.Errorf("unknown-priced billable = %d", unknown)
	}
}

func TestPruning(t *testing.T) {
	tr := cost.New(cost.Options{RetainDays: 2})
	at := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	for d := 0; d < 5; d++ {
		for _, off := range []time.Duration{0, 6 * time.Minute} {
			_ = tr.Observe(cost.Observation{Provider: "vast", InstanceID: "1", Billable: true, Price: usd(1), At: at.AddDate(0, 0, d).Add(off)})
		}
	}
	days, _ := tr.Group(cost.Filter{}, cost.ByDay)
	if len(days) != 3 {
		t.Errorf("kept days = %v", days)
	}
	// Lifetime totals are not pruned (counters stay monotonic).
	lt := tr.Lifetime()["vast"]
	if lt.UnobservedHours < 4*23 || !near(lt.Amount["USD"], 0.5) {
		t.Errorf("lifetime = %+v", lt)
	}
}
