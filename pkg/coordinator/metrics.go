package coordinator

import (
	"regexp"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/ringmesh/ringmesh/pkg/events"
	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/registry"
)

type metrics struct {
	applied     *prometheus.CounterVec
	invalid     prometheus.Counter
	duplicates  prometheus.Counter
	transitions *prometheus.CounterVec
	webhooks    *prometheus.CounterVec
	// dropped counts inbound messages refused by the trust rules, by reason
	// (quarantine_full, gossip_not_from_voter).
	dropped *prometheus.CounterVec
	// respondErrors counts API replies that could not be sent, by op.
	respondErrors *prometheus.CounterVec
	// seriesCapped counts per-node series left out of a scrape by the cap.
	seriesCapped prometheus.Counter
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
	m.dropped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ringmesh_events_dropped_total", Help: "Inbound bus messages refused by the trust rules, by reason."}, []string{"reason"})
	m.respondErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ringmesh_api_respond_errors_total", Help: "API replies that could not be sent (too large, connection closed), by op."}, []string{"op"})
	m.seriesCapped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ringmesh_metrics_series_capped_total", Help: "Per-node series left out of scrapes by the per-node and node-count caps."})
	r.MustRegister(m.dropped, m.respondErrors, m.seriesCapped, m.webhooks, m.applied, m.invalid, m.duplicates, m.transitions, &nodeCollector{reg: reg, capped: m.seriesCapped},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Per-node series caps: a node contributes at most maxGPUSeries GPU series,
// and at most maxNodeSeries nodes get per-node series (quarantined nodes,
// bounded by the registry, included; ringmesh_nodes_quarantined counts them).
const (
	maxGPUSeries  = 16
	maxNodeSeries = 2000
)

// nodeCollector exports the registry at scrape time.
type nodeCollector struct {
	reg    *registry.Registry
	capped prometheus.Counter
}

var (
	descNodes   = prometheus.NewDesc("ringmesh_nodes", "Nodes by state.", []string{"state"}, nil)
	descUp      = prometheus.NewDesc("ringmesh_node_up", "1 when the node is healthy or degraded.", []string{"node", "provider"}, nil)
	descRPOB    = prometheus.NewDesc("ringmesh_node_rpo_unsynced_bytes", "Bytes that exist only on the node (absent when unknown).", []string{"node"}, nil)
	descRPOAge  = prometheus.NewDesc("ringmesh_node_rpo_oldest_unsynced_seconds", "Age of the oldest unsynced file, seconds (absent when unknown).", []string{"node"}, nil)
	descLastHB  = prometheus.NewDesc("ringmesh_node_last_seen_timestamp_seconds", "Unix time of the last event from the node.", []string{"node"}, nil)
	descQuar    = prometheus.NewDesc("ringmesh_nodes_quarantined", "Nodes neither in the inventory nor admitted by a provider listing or enrollment.", nil, nil)
	descGPUUtil = prometheus.NewDesc("ringmesh_node_gpu_utilization_percent", "Per-GPU utilisation as last reported (absent when unknown).", []string{"node", "gpu"}, nil)
	// Per-node state and facts for alerts and dashboards (joins on node).
	descState    = prometheus.NewDesc("ringmesh_node_state", "1 for the node's current state (one series per node).", []string{"node", "state"}, nil)
	descInfo     = prometheus.NewDesc("ringmesh_node_info", "Always 1; labels carry the node's provider, role and whether it is ephemeral (its data must be moved off).", []string{"node", "provider", "role", "ephemeral"}, nil)
	descSyncFail = prometheus.NewDesc("ringmesh_node_sync_failing", "1 when the node's last sync result reported an error or missed files, 0 when it succeeded; absent before the first result and while a sync is in progress.", []string{"node"}, nil)
)

// roleRe bounds the role label (it comes from the agent's hello or the inventory).
var roleRe = regexp.MustCompile(`^[A-Za-z0-9_.-]{0,32}$`)

func (n *nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descQuar, descNodes, descUp, descRPOB, descRPOAge, descLastHB, descGPUUtil, descState, descInfo, descSyncFail} {
		ch <- d
	}
}

func (n *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	counts := map[mesh.NodeState]int{}
	quarantined, exported, capped := 0, 0, 0
	for _, r := range n.reg.Snapshot() {
		counts[r.State]++
		if r.Quarantined {
			quarantined++ // still exported: the registry holds at most registry.DefaultMaxQuarantined of them
		}
		if exported >= maxNodeSeries || !events.Match("node", r.Node) {
			capped++
			continue
		}
		exported++
		provider := r.Provider
		if !mesh.KnownProvider(provider) {
			provider = mesh.ProviderUnknown
		}
		up := 0.0
		if r.State == mesh.StateHealthy || r.State == mesh.StateDegraded {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, up, r.Node, provider)
		ch <- prometheus.MustNewConstMetric(descState, prometheus.GaugeValue, 1, r.Node, string(r.State))
		role := r.Role
		if !roleRe.MatchString(role) {
			role = ""
		}
		ch <- prometheus.MustNewConstMetric(descInfo, prometheus.GaugeValue, 1, r.Node, provider, role, strconv.FormatBool(r.Ephemeral))
		if ls := r.LastSync; ls != nil && ls.Phase != "progress" {
			failing := 0.0
			if ls.Error != "" || len(ls.Missed) > 0 {
				failing = 1
			}
			ch <- prometheus.MustNewConstMetric(descSyncFail, prometheus.GaugeValue, failing, r.Node)
		}
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
			for i, g := range r.Health.GPUs {
				if i >= maxGPUSeries {
					capped += len(r.Health.GPUs) - i
					break
				}
				if g.UtilizationPercent != nil {
					ch <- prometheus.MustNewConstMetric(descGPUUtil, prometheus.GaugeValue, *g.UtilizationPercent, r.Node, itoa(g.Index))
				}
			}
		}
	}
	if capped > 0 {
		n.capped.Add(float64(capped))
	}
	ch <- prometheus.MustNewConstMetric(descQuar, prometheus.GaugeValue, float64(quarantined))
	for st, c := range counts {
		ch <- prometheus.MustNewConstMetric(descNodes, prometheus.GaugeValue, float64(c), string(st))
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
