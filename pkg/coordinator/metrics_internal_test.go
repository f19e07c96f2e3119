package coordinator

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ringmesh/ringmesh/pkg/health"
	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/registry"
)

// A node reporting 3,000 GPUs, or more nodes than maxNodeSeries, cannot
// grow a scrape without bound: each node gets at most maxGPUSeries GPU
// series, at most maxNodeSeries nodes get per-node series, and what was
// left out is counted in ringmesh_metrics_series_capped_total.
func TestNodeSeriesCapped(t *testing.T) {
	u := 50.0
	gpus := make([]health.GPU, 3000)
	for i := range gpus {
		gpus[i] = health.GPU{Index: i, Name: "NVIDIA H100 80GB HBM3", UtilizationPercent: &u}
	}
	now := time.Now()
	recs := []registry.Record{{Node: "big-gpu", Provider: "vast", State: mesh.StateHealthy, LastSeen: now, Health: &health.Sample{GPUs: gpus}}}
	for i := range maxNodeSeries + 10 {
		recs = append(recs, registry.Record{Node: fmt.Sprintf("n%05d", i), Provider: "vast", State: mesh.StateHealthy, LastSeen: now})
	}
	reg := registry.New(registry.Thresholds{})
	reg.Restore(recs, now)
	capped := prometheus.NewCounter(prometheus.CounterOpts{Name: "ringmesh_metrics_series_capped_total", Help: "test"})
	pr := prometheus.NewPedanticRegistry()
	pr.MustRegister(&nodeCollector{reg: reg, capped: capped})
	mfs, err := pr.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := map[string]int{}
	for _, mf := range mfs {
		series[mf.GetName()] = len(mf.GetMetric())
	}
	if n := series["ringmesh_node_gpu_utilization_percent"]; n != maxGPUSeries {
		t.Errorf("%d GPU series for a node reporting 3000 GPUs, want %d", n, maxGPUSeries)
	}
	if n := series["ringmesh_node_up"]; n != maxNodeSeries {
		t.Errorf("%d nodes with per-node series, want the cap %d", n, maxNodeSeries)
	}
	// Left out: 11 of the 2,011 nodes (big-gpu sorts first and is in) and 2,984 of its GPUs.
	if got, want := testutil.ToFloat64(capped), float64(11+3000-maxGPUSeries); got != want {
		t.Errorf("capped counter %v, want %v", got, want)
	}
}
