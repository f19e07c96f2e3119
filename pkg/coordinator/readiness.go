package coordinator

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringmesh/ringmesh/pkg/bus"
)

// readiness says why the coordinator cannot serve ("" = ready): its
// consumer is not running, its bus connection is down, or JetStream has no
// quorum (see quorum). A load balancer or systemd watchdog then routes
// meshctl and scrapes to a voter that can answer with current data.
func (c *Coordinator) readiness(ctx context.Context) string {
	if !c.ready.Load() || c.nc == nil || !c.nc.IsConnected() {
		return "consumer not running or bus disconnected"
	}
	if err := c.quorum(ctx); err != nil {
		return "no quorum: " + err.Error()
	}
	return ""
}

// quorumCacheFor bounds how often /readyz and the quorum gauge ask
// JetStream: one probe per this interval, however many callers.
const quorumCacheFor = 2 * time.Second

type quorumState struct {
	mu    sync.Mutex
	at    time.Time
	err   error
	probe func(context.Context) error // nil: probeQuorum; tests inject one
}

// quorum returns the cached result of the quorum probe, probing again when
// it is older than quorumCacheFor.
func (c *Coordinator) quorum(ctx context.Context) error {
	q := &c.quorumSt
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.at.IsZero() && time.Since(q.at) < quorumCacheFor {
		return q.err
	}
	probe := q.probe
	if probe == nil {
		probe = c.probeQuorum
	}
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	q.err, q.at = probe(pctx), time.Now()
	return q.err
}

// probeQuorum asks JetStream through this coordinator's connection: the
// account info request needs a meta leader in a cluster, and the info of
// MESH_EVT needs that stream's leader (a majority of its replicas). With
// two of three voters gone both time out or answer "JetStream system
// temporarily unavailable". A standalone server always has its quorum.
func (c *Coordinator) probeQuorum(ctx context.Context) error {
	if c.js == nil {
		return errors.New("JetStream not connected")
	}
	if _, err := c.js.AccountInfo(ctx); err != nil {
		return fmt.Errorf("JetStream account info: %w (no meta leader: are a majority of the voters up?)", err)
	}
	st, err := c.js.Stream(ctx, bus.StreamEvents)
	if err != nil {
		return fmt.Errorf("stream %s info: %w", bus.StreamEvents, err)
	}
	if info := st.CachedInfo(); info != nil && info.Cluster != nil && info.Cluster.Leader == "" {
		return fmt.Errorf("stream %s has no leader", bus.StreamEvents)
	}
	return nil
}

// opsCollectors are the coordinator's own health series for alerts and
// dashboards: JetStream quorum and its consumer's lag.
func (c *Coordinator) opsCollectors() []prometheus.Collector {
	return []prometheus.Collector{c.quorumGauge(),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "ringmesh_coordinator_consumer_pending_messages",
			Help: "Events in MESH_EVT not yet delivered to this coordinator's consumer (its lag), as of the last voter beat (every 2 s).",
		}, func() float64 { return float64(c.pending.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "ringmesh_coordinator_consumer_ack_pending_messages",
			Help: "Events delivered to this coordinator's consumer but not acknowledged yet, as of the last voter beat.",
		}, func() float64 { return float64(c.ackPending.Load()) }),
	}
}

// quorumGauge exports the probe as ringmesh_coordinator_quorum (1/0).
func (c *Coordinator) quorumGauge() prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "ringmesh_coordinator_quorum",
		Help: "1 when this coordinator's JetStream has a quorum (meta leader and a leader for MESH_EVT), else 0; probed at most every 2 s.",
	}, func() float64 {
		if c.js == nil || c.quorum(context.Background()) != nil {
			return 0
		}
		return 1
	})
}
