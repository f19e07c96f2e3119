package coordinator

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/registry"
)

type metrics struct {
	applied     *prometheus.CounterVec
	invalid     prometheus.Counter
	duplicates  prometheus.Counter
	transitions *prometheus.CounterVec
	webhooks    *prometheus.CounterVec
}

func newMetrics(r *prometheus.Registry, reg *registry.Registry) *metrics {
	m := &metrics{
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ringmesh_events_applied_total", Help: "Bus events applied to the registry, by kind."}, []string{"kind"}),
		invalid: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ringmesh_events_invalid_total", Help: "Bus messages terminated as invalid (dead-lettered)."}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ringmesh_events_duplicate_total", Help: "Redelivered or republished events ignored by ID."}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ringmesh_node_transitions_total", Help: "Node state transitions, by new state."}, []string{"to"}),
	}
	m.webhooks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ringmesh_webhooks_total", Help: "Provider webhooks received, by outcome."}, []string{"outcome"})
	r.MustRegister(m.webhooks, m.applied, m.invalid, m.duplicates, m.transitions, &nodeCollector{reg: reg},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// nodeCollector exports the registry at scrape time.
type nodeCollector struct{ reg *registry.Registry }

var (
	descNodes   = prometheus.NewDesc("ringmesh_nodes", "Nodes by state.", []string{"state"}, nil)
	descUp      = prometheus.NewDesc("ringmesh_node_up", "1 when the node is healthy or degraded.", []string{"node", "provider"}, nil)
	descRPOB    = prometheus.NewDesc("ringmesh_node_rpo_unsynced_bytes", "Bytes that exist only on the node (absent when unknown).", []string{"node"}, nil)
	descRPOAge  = prometheus.NewDesc("ringmesh_node_rpo_oldest_unsynced_seconds", "Age of the oldest unsynced file, seconds (absent when unknown).", []string{"node"}, nil)
	descLastHB  = prometheus.NewDesc("ringmesh_node_last_seen_timestamp_seconds", "Unix time of the last event from the node.", []string{"node"}, nil)
	descGPUUtil = prometheus.NewDesc("ringmesh_node_gpu_utilization_percent", "Per-GPU utilisation as last reported (absent when unknown).", []string{"node", "gpu"}, nil)
)

func (n *nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descNodes, descUp, descRPOB, descRPOAge, descLastHB, descGPUUtil} {
		ch <- d
	}
}

func (n *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	counts := map[mesh.NodeState]int{}
	for _, r := range n.reg.Snapshot() {
		counts[r.State]++
		up := 0.0
		if r.State == mesh.StateHealthy || r.State == mesh.StateDegraded {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, up, r.Node, r.Provider)
		if r.RPO.UnsyncedBytes != nil {
			ch <- prometheus.MustNewConstMetric(descRPOB, prometheus.GaugeValue, float64(*r.RPO.UnsyncedBytes), r.Node)
		}
		if r.RPO.OldestUnsyncedSeconds != nil {
			ch <- prometheus.MustNewConstMetric(descRPOAge, prometheus.GaugeValue, *r.RPO.OldestUnsyncedSeconds, r.Node)
		}
		if !r.LastSeen.IsZero() {
			ch <- prometheus.MustNewConstMetric(descLastHB, prometheus.GaugeValue, float64(r.LastSeen.UnixNano())/1e9, r.Node)
		}
		if r.Health != nil {
			for _, g := range r.Health.GPUs {
				if g.UtilizationPercent != nil {
					ch <- prometheus.MustNewConstMetric(descGPUUtil, prometheus.GaugeValue, *g.UtilizationPercent, r.Node, itoa(g.Index))
				}
			}
		}
	}
	for st, c := range counts {
		ch <- prometheus.MustNewConstMetric(descNodes, prometheus.GaugeValue, float64(c), string(st))
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
