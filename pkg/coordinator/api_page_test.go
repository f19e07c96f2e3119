package coordinator

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/ringmesh/ringmesh/pkg/api"
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
