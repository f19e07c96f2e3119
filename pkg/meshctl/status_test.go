package meshctl

import (
	"strings"
	"testing"
	"time"

	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/registry"
)

// The status flags become a validated request: problems first, one page
// unless --all, unknown states and odd provider names refused.
func TestStatusQueryRequest(t *testing.T) {
	r, err := statusQuery{states: "dead, suspect", providers: "vast"}.request()
	if err != nil {
		t.Fatal(err)
	}
	if !r.ProblemsFirst || r.Limit != defaultStatusRows || len(r.States) != 2 || r.States[1] != mesh.StateSuspect || r.Providers[0] != "vast" {
		t.Fatalf("request %+v", r)
	}
	if r, _ := (statusQuery{all: true}).request(); r.Limit != 0 {
		t.Errorf("--all asks for a limit %d", r.Limit)
	}
	for _, q := range []statusQuery{{states: "deadish"}, {providers: "va st"}, {providers: "vast\x1b[31m"}} {
		if _, err := q.request(); err == nil {
			t.Errorf("%+v accepted", q)
		}
	}
}

// The summary counts by state (problems first) and by provider, and a cut
// list says how many rows are not shown.
func TestPrintStatusSummaryAndMore(t *testing.T) {
	st := api.Status{
		Coordinator: "hetzner-cpu1", GeneratedAt: time.Now(), Total: 120, Matched: 120, NextOffset: 50,
		Counts:         map[mesh.NodeState]int{mesh.StateHealthy: 100, mesh.StateDead: 15, mesh.StateSuspect: 5},
		ProviderCounts: map[string]int{"vast": 80, "runpod": 40},
	}
	for i := 0; i < 50; i++ {
		st.Nodes = append(st.Nodes, registry.Record{Node: "n", State: mesh.StateDead})
	}
	var b strings.Builder
	if err := printStatus(&b, st); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"dead 15 · suspect 5 · healthy 100", "vast 80 · runpod 40", "… and 70 more (--all"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
