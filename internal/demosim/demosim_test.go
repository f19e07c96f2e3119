package demosim_test

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/internal/demosim"
	"github.com/ringmesh/ringmesh/pkg/bus/busserver"
	"github.com/ringmesh/ringmesh/pkg/config"
	"github.com/ringmesh/ringmesh/pkg/coordinator"
	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/providers/demo"
	"github.com/ringmesh/ringmesh/pkg/registry"
)

// The simulated demo nodes, seen by a real coordinator: every active host
// but the coordinator's own becomes healthy with GPUs and disks, an
// ephemeral node's RPO rises and is pushed back to zero by routed syncs, and
// a preemption is recorded and followed by a new boot.
func TestSimulatedDemoNodesLive(t *testing.T) {
	inv, err := config.Parse("demo-inventory.yaml", []byte(demo.DemoInventory))
	if err != nil {
		t.Fatal(err)
	}
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	c, err := coordinator.New(coordinator.Config{Name: "hetzner-cpu1", Inventory: inv, Embedded: busserver.ServerConfig{Port: -1, StoreDir: t.TempDir()},
		TickInterval: 100 * time.Millisecond, FlushInterval: 200 * time.Millisecond,
		Thresholds: registry.Thresholds{SuspectAfter: 3 * time.Second, DeadAfter: 10 * time.Second}}, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-c.Started():
	case err := <-done:
		t.Fatal(err)
	case <-time.After(30 * time.Second):
		t.Fatal("coordinator did not start")
	}

	opts := demosim.Options{URLs: []string{c.ClientURL()}, Inventory: inv, Skip: []string{"hetzner-cpu1"}, Seed: 7,
		Heartbeat: 200 * time.Millisecond, SyncEvery: time.Second, PreemptEvery: 2 * time.Second, DownFor: 500 * time.Millisecond}
	ids := opts.Nodes()
	for _, id := range ids {
		if id == "hetzner-cpu1" || inv.Hosts[id].Inactive() {
			t.Fatalf("Nodes() includes %s", id)
		}
	}
	if len(ids) != 10 {
		t.Fatalf("simulating %d nodes %v, want the 10 active hosts but hetzner-cpu1", len(ids), ids)
	}
	sctx, stopSim := context.WithCancel(context.Background())
	simDone := make(chan error, 1)
	go func() { simDone <- demosim.Run(sctx, opts, log) }()
	t.Cleanup(func() { stopSim(); <-simDone })

	healthy := map[string]bool{}
	var rpoUp, rpoDown, preempted, rebooted bool
	firstBoot := map[string]string{}
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) && !(len(healthy) == len(ids) && rpoUp && rpoDown && preempted && rebooted) {
		for _, r := range c.Status().Nodes {
			if r.Node == "hetzner-cpu1" {
				continue
			}
			if r.State == mesh.StateHealthy && r.Health != nil && len(r.Health.Disks) == 1 && r.Health.Disks[0].UsedPercent != nil &&
				(inv.Hosts[r.Node].GPU == "none") == (len(r.Health.GPUs) == 0) {
				healthy[r.Node] = true
			}
			if r.Ephemeral && r.RPO.UnsyncedBytes != nil {
				if *r.RPO.UnsyncedBytes > 0 {
					rpoUp = true
				} else if rpoUp && r.LastSync != nil && len(r.LastSync.Made) > 0 {
					rpoDown = true
				}
			}
			if r.State == mesh.StatePreempted || r.State == mesh.StatePreempting {
				preempted = true
			}
			if r.Boot != "" {
				if b, ok := firstBoot[r.Node]; !ok {
					firstBoot[r.Node] = r.Boot
				} else if b != r.Boot && r.State == mesh.StateHealthy {
					rebooted = true
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(healthy) != len(ids) {
		t.Errorf("healthy with data: %v, want all of %v", healthy, ids)
	}
	if !rpoUp || !rpoDown {
		t.Errorf("RPO rose %v, fell after a sync %v", rpoUp, rpoDown)
	}
	if !preempted || !rebooted {
		t.Errorf("preemption seen %v, node back with a new boot %v", preempted, rebooted)
	}
}
