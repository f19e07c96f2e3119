// Package history keeps a short, bounded health history per node for the
// dashboard's charts: one point per interval (default 30 s) of the mean GPU
// utilisation, the hottest GPU, the fullest data disk and the RPO, the last
// Keep points (default 120: an hour). Unmeasured values stay nil (a gap in
// the chart), never 0. Memory: about 64 bytes a point, so 120 points for
// 10,000 nodes is under 80 MB at worst.
package history

import (
	"sync"
	"time"

	"github.com/ringmesh/ringmesh/pkg/events"
)

// Point is one sample of a node's health.
type Point struct {
	At time.Time `json:"at"`
	// GPUUtilPercent is the mean utilisation over the GPUs that reported one.
	GPUUtilPercent *float64 `json:"gpu_util_percent"`
	// GPUTempC is the hottest GPU, degrees Celsius.
	GPUTempC *float64 `json:"gpu_temp_c"`
	// DiskUsedPercent is the fullest data path's filesystem.
	DiskUsedPercent *float64 `json:"disk_used_percent"`
	// RPOBytes is the bytes that exist only on the node.
	RPOBytes *int64 `json:"rpo_bytes"`
}

// Store is safe for concurrent use.
type Store struct {
	every time.Duration
	keep  int

	mu    sync.Mutex
	nodes map[string][]Point
}

// New keeps one point per every (0 = 30 s), the last keep (0 = 120).
func New(every time.Duration, keep int) *Store {
	if every <= 0 {
		every = 30 * time.Second
	}
	if keep <= 0 {
		keep = 120
	}
	return &Store{every: every, keep: keep, nodes: map[string][]Point{}}
}

// Add records node's heartbeat taken at at, unless the node's last point
// is less than the interval older.
func (s *Store) Add(node string, at time.Time, h *events.HealthSample, rpo events.RPO) {
	s.mu.Lock()
	defer s.mu.Unlock()
	pts := s.nodes[node]
	if n := len(pts); n > 0 && at.Sub(pts[n-1].At) < s.every {
		return
	}
	p := Point{At: at, RPOBytes: rpo.UnsyncedBytes}
	if h != nil {
		var sum float64
		var n int
		for _, g := range h.GPUs {
			if g.UtilizationPercent != nil {
				sum += *g.UtilizationPercent
				n++
			}
			if g.TemperatureC != nil && (p.GPUTempC == nil || *g.TemperatureC > *p.GPUTempC) {
				p.GPUTempC = g.TemperatureC
			}
		}
		if n > 0 {
			mean := sum / float64(n)
			p.GPUUtilPercent = &mean
		}
		for _, d := range h.Disks {
			if d.UsedPercent != nil && (p.DiskUsedPercent == nil || *d.UsedPercent > *p.DiskUsedPercent) {
				p.DiskUsedPercent = d.UsedPercent
			}
		}
	}
	if len(pts) >= s.keep {
		pts = append(pts[:0:0], pts[len(pts)-s.keep+1:]...)
	}
	s.nodes[node] = append(pts, p)
}

// Get returns node's points, oldest first (a copy).
func (s *Store) Get(node string) []Point {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Point(nil), s.nodes[node]...)
}

// Forget drops node's history (it left the registry).
func (s *Store) Forget(node string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.nodes, node)
}
