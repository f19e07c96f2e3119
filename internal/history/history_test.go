package history

import (
	"testing"
	"time"

	"github.com/ringmesh/ringmesh/pkg/events"
)

func f(v float64) *float64 { return &v }

// One point per interval, the last keep only; unmeasured values are nil.
func TestStoreDownsamplesBoundsAndKeepsUnknown(t *testing.T) {
	s := New(10*time.Second, 3)
	t0 := time.Unix(1_800_000_000, 0)
	h := &events.HealthSample{GPUs: []events.GPU{{UtilizationPercent: f(20), TemperatureC: f(60)}, {UtilizationPercent: f(40), TemperatureC: f(70)}, {}},
		Disks: []events.Disk{{UsedPercent: f(30)}, {UsedPercent: f(55)}}}
	b := int64(4096)
	for i := 0; i < 50; i++ { // a heartbeat every 2 s for 100 s
		s.Add("n", t0.Add(time.Duration(i)*2*time.Second), h, events.RPO{UnsyncedBytes: &b})
	}
	pts := s.Get("n")
	if len(pts) != 3 {
		t.Fatalf("%d points, want 3", len(pts))
	}
	if !pts[2].At.Equal(t0.Add(90*time.Second)) || !pts[0].At.Equal(t0.Add(70*time.Second)) {
		t.Fatalf("points at %v … %v", pts[0].At, pts[2].At)
	}
	p := pts[2]
	if *p.GPUUtilPercent != 30 || *p.GPUTempC != 70 || *p.DiskUsedPercent != 55 || *p.RPOBytes != 4096 {
		t.Fatalf("point %+v", p)
	}
	s.Add("m", t0, &events.HealthSample{GPUs: []events.GPU{{}}}, events.RPO{})
	if q := s.Get("m")[0]; q.GPUUtilPercent != nil || q.GPUTempC != nil || q.DiskUsedPercent != nil || q.RPOBytes != nil {
		t.Fatalf("unmeasured values filled in: %+v", q)
	}
	s.Forget("m")
	if len(s.Get("m")) != 0 {
		t.Fatal("Forget kept the history")
	}
}
