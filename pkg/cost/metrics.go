package cost

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringmesh/ringmesh/pkg/providers"
)

// Metric descriptors. Amounts are in the currency named by the "currency"
// label (USD, EUR); they are never summed across currencies.
var (
	descPrice = prometheus.NewDesc("ringmesh_instance_price_per_hour",
		"Price per hour of an instance in its provider's currency (known prices only).",
		[]string{"provider", "instance_id", "node", "currency"}, nil)
	descBillable = prometheus.NewDesc("ringmesh_instance_billable",
		"1 when the instance's last observed state accrues cost, else 0.",
		[]string{"provider", "instance_id", "node"}, nil)
	descAccrued = prometheus.NewDesc("ringmesh_cost_accrued_total",
		"Cost accrued since tracking began, in the currency label's units.",
		[]string{"provider", "currency"}, nil)
	// descUSD and descEUR are the per-currency counters: one metric per
	// currency so that no query can add USD to EUR by accident.
	descUSD = prometheus.NewDesc("ringmesh_cost_usd_total",
		"Cost accrued in USD since tracking began (restored across restarts and fail-over), per provider.",
		[]string{"provider"}, nil)
	descEUR = prometheus.NewDesc("ringmesh_cost_eur_total",
		"Cost accrued in EUR since tracking began (restored across restarts and fail-over), per provider. Never summed with USD.",
		[]string{"provider"}, nil)
	descUnknown = prometheus.NewDesc("ringmesh_cost_unknown_price_instance_seconds_total",
		"Billable instance time, in seconds, whose price was unknown (its cost is missing from ringmesh_cost_accrued_total).",
		[]string{"provider"}, nil)
	descUnobserved = prometheus.NewDesc("ringmesh_cost_unobserved_instance_seconds_total",
		"Instance time, in seconds, in observation gaps longer than the maximum gap (not charged).",
		[]string{"provider"}, nil)
)

type collector struct{ t *Tracker }

// Collector returns a prometheus.Collector over the Tracker's current state.
func (t *Tracker) Collector() prometheus.Collector { return collector{t} }

// Register registers the Tracker's collector on reg.
func (t *Tracker) Register(reg prometheus.Registerer) error { return reg.Register(t.Collector()) }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descPrice
	ch <- descBillable
	ch <- descAccrued
	ch <- descUSD
	ch <- descEUR
	ch <- descUnknown
	ch <- descUnobserved
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	for _, ic := range c.t.Current() {
		if ic.State == providers.StateTerminated {
			continue
		}
		b := 0.0
		if ic.Billable {
			b = 1
		}
		ch <- prometheus.MustNewConstMetric(descBillable, prometheus.GaugeValue, b, ic.Provider, ic.InstanceID, ic.NodeID)
		if ic.Price.Known() {
			ch <- prometheus.MustNewConstMetric(descPrice, prometheus.GaugeValue, ic.Price.PerHour,
				ic.Provider, ic.InstanceID, ic.NodeID, ic.Price.Currency)
		}
	}
	for p, tot := range c.t.Lifetime() {
		for cur, v := range tot.Amount {
			ch <- prometheus.MustNewConstMetric(descAccrued, prometheus.CounterValue, v, p, cur)
			switch cur {
			case "USD":
				ch <- prometheus.MustNewConstMetric(descUSD, prometheus.CounterValue, v, p)
			case "EUR":
				ch <- prometheus.MustNewConstMetric(descEUR, prometheus.CounterValue, v, p)
			}
		}
		ch <- prometheus.MustNewConstMetric(descUnknown, prometheus.CounterValue, tot.UnknownHours*3600, p)
		ch <- prometheus.MustNewConstMetric(descUnobserved, prometheus.CounterValue, tot.UnobservedHours*3600, p)
	}
}
