package coordinator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/bus/busserver"
	"github.com/ringmesh/ringmesh/pkg/config"
	"github.com/ringmesh/ringmesh/pkg/coordinator"
	"github.com/ringmesh/ringmesh/pkg/cost"
	"github.com/ringmesh/ringmesh/pkg/fleet"
	"github.com/ringmesh/ringmesh/pkg/providers"
	"github.com/ringmesh/ringmesh/pkg/providers/demo"
)

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func amountsNear(a, b map[string]float64) bool {
	for _, m := range []map[string]float64{a, b} {
		for k := range m {
			if math.Abs(a[k]-b[k]) > 1e-9 {
				return false
			}
		}
	}
	return true
}

// TestCostHistorySurvivesRestart: with an injected clock, the accrued
// history equals price x billed hours of every billable instance, split at
// UTC midnight; it is persisted by the coordinator, restored by a new one
// on the same store, and keeps accruing from there. meshctl cost --since
// and the inventory budget read the same history.
func TestCostHistorySurvivesRestart(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	fakes, err := demo.StartFakes(ctx, demo.Options{Delay: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fakes.Close)
	inv, err := config.Parse("demo.yaml", []byte(demo.DemoInventory))
	if err != nil {
		t.Fatal(err)
	}
	clock := &testClock{t: time.Date(2026, 11, 29, 23, 30, 0, 0, time.UTC)}
	store := t.TempDir()
	start := func() (*harness, *cost.Tracker) {
		list, err := fakes.Providers(testLog(t))
		if err != nil {
			t.Fatal(err)
		}
		reg := providers.NewRegistry()
		pol := providers.DefaultPolicy()
		pol.BaseDelay = 10 * time.Millisecond
		for _, p := range list {
			reg.Register(fleet.Wrap(p, inv, testLog(t), fleet.BuildOptions{Policy: &pol}))
		}
		tracker := cost.New(cost.Options{MaxGap: 2 * time.Hour})
		rec := fleet.NewReconciler(reg, inv, tracker, testLog(t), clock.Now)
		h := startCoordinator(t, coordinator.Config{Inventory: inv, Fleet: rec, ReconcileInterval: time.Hour, Cost: tracker,
			Now: clock.Now, Embedded: busserver.ServerConfig{Port: -1, StoreDir: store}})
		return h, tracker
	}

	h1, tr1 := start()
	h1.coord.ReconcileNow(ctx) // observations at 23:30
	perHour := map[string]float64{}
	for _, ic := range tr1.Current() {
		if ic.Billable && ic.Price.Known() {
			perHour[ic.Price.Currency] += ic.Price.PerHour
		}
	}
	if perHour["USD"] == 0 || perHour["EUR"] == 0 {
		t.Fatalf("burn rate %v: want USD and EUR instances billing", perHour)
	}
	scaled := func(h float64) map[string]float64 {
		out := map[string]float64{}
		for c, v := range perHour {
			out[c] = v * h
		}
		return out
	}
	clock.Advance(time.Hour) // 00:30 next day
	h1.coord.ReconcileNow(ctx)
	if got := tr1.Sum(cost.Filter{}).Amount; !amountsNear(got, scaled(1)) {
		t.Fatalf("after 1 h: %v, want %v", got, scaled(1))
	}
	byDay, _ := tr1.Group(cost.Filter{}, cost.ByDay)
	if !amountsNear(byDay["2026-11-29"].Amount, scaled(0.5)) || !amountsNear(byDay["2026-11-30"].Amount, scaled(0.5)) {
		t.Errorf("by day %v, want half an hour on each side of midnight", byDay)
	}
	h1.stop()

	h2, tr2 := start()
	if got := tr2.Sum(cost.Filter{}).Amount; !amountsNear(got, scaled(1)) {
		t.Fatalf("restored after restart: %v, want %v", got, scaled(1))
	}
	clock.Advance(30 * time.Minute)
	h2.coord.ReconcileNow(ctx)
	if got := tr2.Sum(cost.Filter{}).Amount; !amountsNear(got, scaled(1.5)) {
		t.Errorf("after restart + 30 min: %v, want %v", got, scaled(1.5))
	}

	out, err := run(t, h2.url, "", "cost", "--json", "--since", "2026-11-30")
	if err != nil {
		t.Fatalf("meshctl cost: %v\n%s", err, out)
	}
	var res api.Cost
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	if _, old := res.ByDay["2026-11-29"]; old || !amountsNear(res.Total.Amount, scaled(1)) {
		t.Errorf("--since 2026-11-30: by_day %v total %v, want only 2026-11-30 (%v)", res.ByDay, res.Total.Amount, scaled(1))
	}
	if res.Budget == nil || res.Budget.Day != "2026-11-30" || len(res.Budget.Lines) != 3 {
		t.Fatalf("budget = %+v, want the demo inventory's three caps for 2026-11-30", res.Budget)
	}
	for _, l := range res.Budget.Lines {
		if l.Scope == "all" && !(math.Abs(l.Spent-scaled(1)[l.Currency]) < 1e-9) {
			t.Errorf("budget line %+v: spent is not today's accrual %v", l, scaled(1)[l.Currency])
		}
	}
	text, err := run(t, h2.url, "", "cost", "--since", "2026-11-29", "--by", "provider")
	if err != nil || !strings.Contains(text, "budget for 2026-11-30") || !strings.Contains(text, "accrued by provider since") {
		t.Errorf("meshctl cost table: %v\n%s", err, text)
	}
}

// TestCostHistoryLargerThanMaxPayload: a history whose single JSON would
// exceed the bus's max payload (1 MiB) is still saved and restored whole
// (one KV value per day).
func TestCostHistoryLargerThanMaxPayload(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	fakes, err := demo.StartFakes(ctx, demo.Options{Delay: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fakes.Close)
	inv, err := config.Parse("demo.yaml", []byte(demo.DemoInventory))
	if err != nil {
		t.Fatal(err)
	}
	clock := &testClock{t: time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)}
	big := cost.Snapshot{Version: cost.SnapshotVersion, Lifetime: map[string]cost.Totals{}}
	day0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for d := 0; d < 300; d++ {
		for i := 0; i < 40; i++ {
			big.Buckets = append(big.Buckets, cost.Bucket{Day: day0.AddDate(0, 0, d).Format(cost.DayFormat), Provider: "vast",
				InstanceID: fmt.Sprintf("old-%d", i), NodeID: fmt.Sprintf("vast-old-%d", i),
				Totals: cost.Totals{Amount: map[string]float64{"USD": 0.5}, BillableHours: 1}})
		}
	}
	if b, _ := json.Marshal(big); len(b) <= 1<<20 {
		t.Fatalf("test history is only %d bytes; it must exceed the max payload", len(b))
	}
	store := t.TempDir()
	start := func(tracker *cost.Tracker) *harness {
		list, err := fakes.Providers(testLog(t))
		if err != nil {
			t.Fatal(err)
		}
		reg := providers.NewRegistry()
		for _, p := range list {
			reg.Register(p)
		}
		rec := fleet.NewReconciler(reg, inv, tracker, testLog(t), clock.Now)
		return startCoordinator(t, coordinator.Config{Inventory: inv, Fleet: rec, ReconcileInterval: time.Hour, Cost: tracker,
			Now: clock.Now, Embedded: busserver.ServerConfig{Port: -1, StoreDir: store}})
	}
	tr1 := cost.New(cost.Options{})
	if err := tr1.Restore(big); err != nil {
		t.Fatal(err)
	}
	h1 := start(tr1)
	h1.coord.ReconcileNow(ctx)
	old := cost.Filter{To: day0.AddDate(0, 0, 299)}
	want := tr1.Sum(old)
	h1.stop()

	tr2 := cost.New(cost.Options{})
	start(tr2)
	got := tr2.Sum(old)
	if n := len(tr2.Buckets(old)); n != 12000 || !amountsNear(got.Amount, want.Amount) {
		t.Fatalf("restored %d old buckets, %v; want 12000, %v", n, got.Amount, want.Amount)
	}
	if len(tr2.Current()) == 0 {
		t.Error("current instances not restored")
	}
}
