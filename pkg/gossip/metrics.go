package gossip

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the Prometheus series of one Member.
//
//	ringmesh_gossip_members{state}            gauge   members in our view by state (alive|suspect|dead|left), incl. ourselves
//	ringmesh_gossip_events_total{type}        counter events emitted (join|leave|fail|update)
//	ringmesh_gossip_events_dropped_total      counter events dropped because the Events channel was full (oldest dropped)
//	ringmesh_gossip_rejected_total{reason}    counter inbound packets/streams/claims rejected (key|label|conflict|identity)
//	ringmesh_gossip_joins_total{result}       counter join attempts to seeds (ok|error)
//	ringmesh_gossip_health_score              gauge   memberlist's Lifeguard awareness score (0 = healthy; higher = this node is slow)
type metrics struct {
	events   *prometheus.CounterVec
	dropped  prometheus.Counter
	rejected *prometheus.CounterVec
	joins    *prometheus.CounterVec
	members  *prometheus.Desc
	health   prometheus.GaugeFunc
	m        *Member
}

func newMetrics(m *Member) *metrics {
	x := &metrics{
		m: m,
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ringmesh_gossip_events_total",
			Help: "Gossip membership events emitted, by type (join, leave, fail, update).",
		}, []string{"type"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ringmesh_gossip_events_dropped_total",
			Help: "Gossip events dropped (oldest first) because the event channel was full.",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ringmesh_gossip_rejected_total",
			Help: "Inbound gossip traffic or claims rejected, by reason (key: wrong or missing encryption key, label: other cluster, conflict: node name already taken, identity: name not bound to the member's credential).",
		}, []string{"reason"}),
		joins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ringmesh_gossip_joins_total",
			Help: "Join attempts to seed addresses, by result (ok, error).",
		}, []string{"result"}),
		members: prometheus.NewDesc("ringmesh_gossip_members",
			"Members in this node's gossip view by state (alive, suspect, dead, left), including itself.",
			[]string{"state"}, nil),
	}
	x.health = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "ringmesh_gossip_health_score",
		Help: "memberlist Lifeguard awareness score of this node (0 = healthy, higher = probing is being slowed down because this node seems slow).",
	}, func() float64 { return float64(m.ml.GetHealthScore()) })
	// Pre-create label values so that series exist (at 0) from the start.
	for _, t := range []EventType{EventJoin, EventLeave, EventFail, EventUpdate, EventSuspect, EventAlive} {
		x.events.WithLabelValues(string(t))
	}
	for _, r := range []string{ReasonKey, ReasonLabel, ReasonConflict, ReasonIdentity} {
		x.rejected.WithLabelValues(r)
	}
	x.joins.WithLabelValues("ok")
	x.joins.WithLabelValues("error")
	return x
}

// register adds all series to reg (nil: none).
func (x *metrics) register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{x.events, x.dropped, x.rejected, x.joins, x.health, memberCollector{x}} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("gossip: register metrics: %w", err)
		}
	}
	return nil
}

// unregister removes the series again (after shutdown).
func (x *metrics) unregister(reg prometheus.Registerer) {
	if reg == nil {
		return
	}
	for _, c := range []prometheus.Collector{x.events, x.dropped, x.rejected, x.joins, x.health, memberCollector{x}} {
		reg.Unregister(c)
	}
}

// memberCollector computes ringmesh_gossip_members from the view on scrape.
type memberCollector struct{ x *metrics }

func (c memberCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.x.members }

func (c memberCollector) Collect(ch chan<- prometheus.Metric) {
	counts := map[State]int{StateAlive: 0, StateSuspect: 0, StateDead: 0, StateLeft: 0}
	for _, mi := range c.x.m.Members() {
		counts[mi.State]++
	}
	for _, s := range []State{StateAlive, StateSuspect, StateDead, StateLeft} {
		ch <- prometheus.MustNewConstMetric(c.x.members, prometheus.GaugeValue, float64(counts[s]), string(s))
	}
}
