package coordinator

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/registry"
)

// Every page of a large status fits the max payload, and the pages
// together hold every node once.
func TestStatusPagesFitMaxPayload(t *testing.T) {
	var st api.Status
	for i := 0; i < 3000; i++ {
		st.Nodes = append(st.Nodes, registry.Record{Node: fmt.Sprintf("n-%04d", i), Cause: strings.Repeat("c", 300)})
	}
	const max = 64 << 10
	seen, offset, pages := map[string]bool{}, 0, 0
	for {
		p := statusPage(st, api.StatusRequest{Offset: offset}, max)
		b, _ := json.Marshal(api.Reply{Data: mustJSON(p)})
		if len(b) > max {
			t.Fatalf("page at %d is %d bytes > %d", offset, len(b), max)
		}
		if p.Total != 3000 || len(p.Nodes) == 0 {
			t.Fatalf("page at %d: total %d, %d nodes", offset, p.Total, len(p.Nodes))
		}
		for _, n := range p.Nodes {
			if seen[n.Node] {
				t.Fatalf("%s twice", n.Node)
			}
			seen[n.Node] = true
		}
		pages++
		if p.NextOffset == 0 {
			break
		}
		offset = p.NextOffset
	}
	if len(seen) != 3000 || pages < 2 {
		t.Fatalf("%d nodes in %d pages", len(seen), pages)
	}
}

// Filters keep only the asked states and providers, problems come first
// (dead, then suspect, … healthy, then nodes gone on purpose), provider
// counts cover the whole registry, and Matched counts what the pages cover.
func TestStatusFiltersAndProblemsFirst(t *testing.T) {
	recs := []registry.Record{
		{Node: "a-healthy", Provider: "vast", State: mesh.StateHealthy},
		{Node: "b-retired", Provider: "lambda", State: mesh.StateRetired},
		{Node: "c-dead", Provider: "vast", State: mesh.StateDead},
		{Node: "d-suspect", Provider: "runpod", State: mesh.StateSuspect},
		{Node: "e-dead", Provider: "runpod", State: mesh.StateDead},
		{Node: "f-degraded", Provider: "vast", State: mesh.StateDegraded},
	}
	names := func(rs []registry.Record) string {
		var out []string
		for _, r := range rs {
			out = append(out, r.Node)
		}
		return strings.Join(out, ",")
	}
	got, byProv := selectNodes(append([]registry.Record(nil), recs...), api.StatusRequest{ProblemsFirst: true})
	if want := "c-dead,e-dead,d-suspect,f-degraded,a-healthy,b-retired"; names(got) != want {
		t.Errorf("problems first: %s, want %s", names(got), want)
	}
	if byProv["vast"] != 3 || byProv["runpod"] != 2 || byProv["lambda"] != 1 {
		t.Errorf("provider counts %v", byProv)
	}
	got, byProv = selectNodes(append([]registry.Record(nil), recs...), api.StatusRequest{States: []mesh.NodeState{mesh.StateDead, mesh.StateHealthy}, Providers: []string{"vast"}})
	if want := "a-healthy,c-dead"; names(got) != want {
		t.Errorf("state+provider filter: %s, want %s", names(got), want)
	}
	if byProv["runpod"] != 2 {
		t.Errorf("provider counts must cover the whole registry: %v", byProv)
	}
	st := api.Status{Nodes: got, Total: len(recs)}
	p := statusPage(st, api.StatusRequest{Limit: 1}, 64<<10)
	if p.Total != len(recs) || p.Matched != 2 || len(p.Nodes) != 1 || p.NextOffset != 1 {
		t.Errorf("page: total %d matched %d nodes %d next %d", p.Total, p.Matched, len(p.Nodes), p.NextOffset)
	}
	if mesh.KnownState("new-state") || mesh.StateSeverity("new-state") != mesh.StateSeverity(mesh.StateUnknown) {
		t.Error("an unlisted state is known, or not ranked with unknown")
	}
}
