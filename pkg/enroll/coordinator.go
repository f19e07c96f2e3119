package enroll

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/registry"
)

// APICreds issues node credentials through the coordinator's enroll
// operation (admin, leader; api.OpEnroll).
type APICreds struct{ Client api.Client }

// Issue asks the coordinator for a node credential (none when current is
// still valid).
func (a APICreds) Issue(ctx context.Context, node, current string) (Credential, error) {
	var out api.Enrolled
	if err := a.Client.Call(ctx, api.OpEnroll, api.EnrollRequest{Node: node, CurrentKey: current}, &out); err != nil {
		return Credential{}, err
	}
	if current != "" && out.Valid && out.PublicKey == current {
		return Credential{Sync: out.Sync}, nil
	}
	if out.Node != node || out.Creds == "" || out.CAPEM == "" {
		return Credential{}, fmt.Errorf("the coordinator's enroll reply for %s is incomplete", node)
	}
	return Credential{Creds: []byte(out.Creds), CAPEM: []byte(out.CAPEM), Sync: out.Sync}, nil
}

// StatusWaiter watches the coordinator's status API for enrolled nodes.
// Nodes waited for in parallel share one status fetch per Interval.
type StatusWaiter struct {
	Client api.Client
	// Interval between status fetches (default 1 s).
	Interval time.Duration

	mu   sync.Mutex
	at   time.Time
	last map[string]registry.Record
}

func (w *StatusWaiter) records(ctx context.Context) (map[string]registry.Record, error) {
	iv := w.Interval
	if iv <= 0 {
		iv = time.Second
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.last != nil && time.Since(w.at) < iv {
		return w.last, nil
	}
	st, err := w.Client.StatusAll(ctx)
	if err != nil {
		return nil, err
	}
	m := make(map[string]registry.Record, len(st.Nodes))
	for _, r := range st.Nodes {
		m[r.Node] = r
	}
	w.last, w.at = m, time.Now()
	return m, nil
}

// Boot returns the boot the coordinator holds for node ("" when none).
func (w *StatusWaiter) Boot(ctx context.Context, node string) (string, error) {
	m, err := w.records(ctx)
	if err != nil {
		return "", err
	}
	return m[node].Boot, nil
}

// Wait polls until node has a new boot, reports version and is healthy or
// degraded (a heartbeat arrived after the hello), or ctx ends.
func (w *StatusWaiter) Wait(ctx context.Context, node, version, before string) error {
	iv := w.Interval
	if iv <= 0 {
		iv = time.Second
	}
	t := time.NewTicker(iv)
	defer t.Stop()
	var last registry.Record
	var lastErr error
	for {
		m, err := w.records(ctx)
		if err == nil {
			last = m[node]
			if last.Boot != "" && last.Boot != before && last.AgentVersion == version &&
				(last.State == mesh.StateHealthy || last.State == mesh.StateDegraded) {
				return nil
			}
		} else {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			if lastErr != nil && last.Node == "" {
				return fmt.Errorf("no hello from %s under its own identity before the deadline (coordinator: %v)", node, lastErr)
			}
			v := last.AgentVersion
			if v == "" {
				v = "none"
			}
			return fmt.Errorf("no hello from %s under its own identity before the deadline (coordinator has it %s, agent version %s, want %s)", node, dashState(last.State), v, version)
		case <-t.C:
		}
	}
}

func dashState(s mesh.NodeState) string {
	if s == "" {
		return "unknown"
	}
	return string(s)
}
