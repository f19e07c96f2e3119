package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/cost"
	"github.com/ringmesh/ringmesh/pkg/providers"
)

// fakeAudit answers every node with three entries, newest first; the
// newest cause carries markup and a control character (node-reported).
func fakeAudit(now time.Time) func(context.Context, string, int) ([]api.AuditEntry, bool, error) {
	return func(_ context.Context, node string, limit int) ([]api.AuditEntry, bool, error) {
		out := []api.AuditEntry{
			{Seq: 3, At: now.Add(-time.Minute), Kind: "transition", Node: node, From: "healthy", To: "degraded",
				Cause: "heartbeat: degraded (<img src=x onerror=\"window.__pwned='yes'\">\x1b[2J)", Actor: "coordinator:c1"},
			{Seq: 2, At: now.Add(-2 * time.Minute), Kind: "provider_call", Node: node, Cause: "operator stop",
				Actor: "admin:alice via coordinator:c1", Detail: map[string]string{"op": "stop", "provider": "vast", "instance": "1", "phase": "intent"}},
			{Seq: 1, At: now.Add(-3 * time.Minute), Kind: "transition", Node: node, From: "joining", To: "healthy", Cause: "heartbeat: healthy", Actor: "coordinator:c1"},
		}
		return out[:min(limit, len(out))], false, nil
	}
}

// fakeCost has vast-00001 on instance vast/1 at 0.60 USD/h for 20 minutes,
// and vast-00002 on vast/2, billable at an unknown price.
func fakeCost(t testing.TB, now time.Time) *cost.Tracker {
	tr := cost.New(cost.Options{})
	price := providers.Price{PerHour: 0.6, Currency: "USD", Source: "vast:dph_total"}
	for i := 2; i >= 0; i-- {
		at := now.Add(-time.Duration(i) * 10 * time.Minute)
		for _, o := range []cost.Observation{
			{Provider: "vast", InstanceID: "1", NodeID: "vast-00001", State: providers.StateRunning, Billable: true, Price: price, At: at},
			{Provider: "vast", InstanceID: "2", NodeID: "vast-00002", State: providers.StateRunning, Billable: true, At: at},
		} {
			if err := tr.Observe(o); err != nil {
				t.Fatal(err)
			}
		}
	}
	return tr
}

// The audit endpoint validates the node ID, bounds and cleans the entries.
func TestAuditEndpoint(t *testing.T) {
	src := source(3, true)
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	h := New(src)
	if code, body := get(t, h, "/api/dashboard/audit?node=vast-00001"); code != 404 || !strings.Contains(body, "audit: not available") {
		t.Errorf("no Audit source: %d %q, want 404 naming the audit", code, body)
	}
	src.Audit = fakeAudit(now)
	h = New(src)
	for _, bad := range []string{"", "a%20b", "vast.1", "..%2Fx"} {
		if code, _ := get(t, h, "/api/dashboard/audit?node="+bad); code != 400 {
			t.Errorf("node %q: %d, want 400", bad, code)
		}
	}
	code, body := get(t, h, "/api/dashboard/audit?node=vast-00001")
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	var a NodeAudit
	if err := json.Unmarshal([]byte(body), &a); err != nil {
		t.Fatal(err)
	}
	if a.Node != "vast-00001" || len(a.Items) != 3 || a.Items[0].Seq != 3 || a.Items[2].Seq != 1 {
		t.Fatalf("reply %+v, want 3 entries for vast-00001 newest first", a)
	}
	if c := a.Items[0].Cause; strings.ContainsRune(c, 0x1b) || !strings.Contains(c, "<img") {
		t.Errorf("cause %q: want control characters stripped, the markup kept as data (the page shows it as text)", c)
	}
	src.Audit = func(context.Context, string, int) ([]api.AuditEntry, bool, error) {
		return nil, false, errors.New("stream MESH_AUDIT: timeout")
	}
	if code, body := get(t, New(src), "/api/dashboard/audit?node=vast-00001"); code != 502 || !strings.Contains(body, "audit of vast-00001: stream MESH_AUDIT: timeout") {
		t.Errorf("failing read: %d %q, want 502 naming the node and the reason", code, body)
	}
	src.Authorized = func(*http.Request) bool { return false }
	if code, _ := get(t, New(src), "/api/dashboard/audit?node=vast-00001"); code != 401 {
		t.Errorf("without the token: %d, want 401", code)
	}
}

// A node's cost: accrued with its currency and the price now; an unknown
// price stays unknown; no tracker says so.
func TestNodeCostOf(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	tr := fakeCost(t, now)
	c := NodeCostOf(tr, "vast-00001")
	if !c.Tracked || !c.Exact || c.PerHour == nil || *c.PerHour != 0.6 || c.Currency != "USD" || c.Instance != "1" {
		t.Errorf("vast-00001: %+v, want tracked, exact, 0.6 USD/h on vast/1", c)
	}
	if got := c.Accrued.Amount["USD"]; got < 0.1999 || got > 0.2001 {
		t.Errorf("vast-00001 accrued %v USD, want 0.20 (20 min at 0.60/h)", got)
	}
	c = NodeCostOf(tr, "vast-00002")
	if c.PerHour != nil || c.Exact || len(c.Accrued.Amount) != 0 || c.Accrued.UnknownHours <= 0 || !c.Billable {
		t.Errorf("vast-00002: %+v, want an unknown price and unknown hours, no amount", c)
	}
	if c = NodeCostOf(tr, "vast-00003"); !c.Tracked || c.Instance != "" || c.PerHour != nil {
		t.Errorf("vast-00003 (never observed): %+v, want no instance and no price", c)
	}
	if c = NodeCostOf(nil, "vast-00001"); c.Tracked {
		t.Errorf("no tracker: %+v, want untracked", c)
	}
}
