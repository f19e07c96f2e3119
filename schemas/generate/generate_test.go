package generate

import (
	"bytes"
	"testing"

	"github.com/ringmesh/ringmesh/schemas"
)

// TestSchemasMatchTypes fails when schemas/*.json drift from pkg/events.
func TestSchemasMatchTypes(t *testing.T) {
	gen, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	committed, err := schemas.Committed()
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range gen {
		got, ok := committed[name]
		if !ok {
			t.Errorf("%s: not committed; run go generate ./schemas", name)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: committed schema differs from the Go types; run go generate ./schemas", name)
		}
	}
	for name := range committed {
		if _, ok := gen[name]; !ok {
			t.Errorf("%s: committed but no Go type generates it", name)
		}
	}
}
