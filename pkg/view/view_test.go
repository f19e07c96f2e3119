package view

import (
	"strings"
	"testing"
	"time"

	"github.com/ringmesh/ringmesh/pkg/registry"
)

// What a node reports cannot drive the operator's terminal.
func TestStatusRowsStripControlCharacters(t *testing.T) {
	rows := StatusRows([]registry.Record{{Node: "n1", Provider: "vast", AgentVersion: "v1\x1b]0;owned\x07", Cause: "bye: \x1b[2J\rgone\n", Role: "w\u009b31m\x9b", Quarantined: true}}, time.Now())
	r := rows[0]
	for _, s := range []string{r.Version, r.Cause, r.Role} {
		if strings.ContainsAny(s, "\x1b\x07\r\n\u009b") || strings.Contains(s, "\x9b") {
			t.Fatalf("control characters left in %q", s)
		}
	}
	if r.Trust != "quarantined" {
		t.Fatalf("trust = %q", r.Trust)
	}
}
