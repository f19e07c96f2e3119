package main

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/auth"
	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/mesh"
)

// --demo runs simulated agents for the demo inventory's other active
// hosts: `meshctl status` sees them healthy with GPUs, but not the one whose
// instance the fake Vast lists as stopped, and the voter that runs the
// in-process agent appears once.
func TestDemoRunsSimulatedAgents(t *testing.T) {
	natsAddr := freeAddr(t)
	dataDir := t.TempDir()
	args := []string{"--demo", "--data-dir", dataDir, "--nats-listen", natsAddr, "--http", "127.0.0.1:0",
		"--agent-heartbeat", "300ms", "--log-level", "error"}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, args) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("coordinator did not stop within 30s")
		}
	})
	var st api.Status
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		// As an operator would: the demo's own admin credentials and CA,
		// every request signed.
		creds := filepath.Join(dataDir, "creds", "admin.creds")
		nc, err := bus.Connect(bus.ConnConfig{URLs: []string{"tls://" + natsAddr}, Name: "demo-test", CredsFile: creds,
			CAFile: filepath.Join(dataDir, "creds", "ca.pem"), Timeout: 2 * time.Second}, zerolog.Nop())
		if err == nil {
			var signer *auth.Signer
			if signer, err = auth.LoadSigner(creds); err == nil {
				cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
				st, err = api.Client{NC: nc, Sign: signer.Sign}.StatusAll(cctx)
				ccancel()
			}
			nc.Close()
		}
		if err == nil && st.Counts[mesh.StateHealthy] == 10 && stateOf(st, "vast-29129531") == mesh.StateStopped {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	seen := map[string]int{}
	gpus := 0
	for _, r := range st.Nodes {
		seen[r.Node]++
		if r.State == mesh.StateHealthy && r.Health != nil {
			gpus += len(r.Health.GPUs)
		}
	}
	if st.Counts[mesh.StateHealthy] != 10 || seen["hetzner-cpu1"] != 1 || len(st.Nodes) != 13 || stateOf(st, "vast-29129531") != mesh.StateStopped {
		t.Fatalf("counts %v over %d nodes (hetzner-cpu1 %d times, vast-29129531 %s), want 10 healthy of 13 (2 retired, the stopped vast-29129531 stopped), hetzner-cpu1 once",
			st.Counts, len(st.Nodes), seen["hetzner-cpu1"], stateOf(st, "vast-29129531"))
	}
	if gpus != 8 {
		t.Errorf("%d GPUs reported by healthy nodes, want the 8 of the demo's running GPU hosts", gpus)
	}
}

func stateOf(st api.Status, node string) mesh.NodeState {
	for _, r := range st.Nodes {
		if r.Node == node {
			return r.State
		}
	}
	return ""
}
