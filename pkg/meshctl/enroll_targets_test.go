package meshctl

import (
	"testing"

	"github.com/ringmesh/ringmesh/pkg/fleet"
	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/registry"
)

// --all picks every trusted node without a live agent that is not
// retired, stopped or terminated; a node without an SSH endpoint is
// reported missing, never guessed.
func TestEnrollTargetsAll(t *testing.T) {
	entries := []fleet.SSHEntry{{Node: "dead-1"}, {Node: "new-1"}, {Node: "live-1"}, {Node: "retired-1"}, {Node: "quar-1"}}
	recs := []registry.Record{
		{Node: "dead-1", State: mesh.StateDead, Provider: "vast", Ephemeral: true},
		{Node: "new-1", State: mesh.StateUnknown, Provider: "runpod", InstanceID: "abc"},
		{Node: "noep-1", State: mesh.StateUnknown},
		{Node: "live-1", State: mesh.StateHealthy},
		{Node: "suspect-1", State: mesh.StateSuspect},
		{Node: "retired-1", State: mesh.StateRetired},
		{Node: "gone-1", State: mesh.StateTerminated},
		{Node: "quar-1", State: mesh.StateUnknown, Quarantined: true},
	}
	nodes, missing := enrollTargets(nil, true, entries, recs)
	var got []string
	for _, n := range nodes {
		got = append(got, n.Entry.Node)
	}
	if len(got) != 2 || got[0] != "dead-1" || got[1] != "new-1" {
		t.Fatalf("--all picked %v, want [dead-1 new-1]", got)
	}
	if !nodes[0].Ephemeral || nodes[0].Provider != "vast" || nodes[1].InstanceID != "abc" {
		t.Fatalf("registry facts not carried: %+v", nodes)
	}
	if len(missing) != 1 || missing[0] != "noep-1" {
		t.Fatalf("missing = %v, want [noep-1]", missing)
	}
	// Named nodes are taken as given (a live one too: re-running is safe).
	nodes, missing = enrollTargets([]string{"live-1", "nowhere"}, false, entries, recs)
	if len(nodes) != 1 || nodes[0].Entry.Node != "live-1" || len(missing) != 1 || missing[0] != "nowhere" {
		t.Fatalf("named: %v %v", nodes, missing)
	}
}

func TestNodeURLPattern(t *testing.T) {
	for _, u := range []string{"tls://hetzner-cpu1:4222", "nats://127.0.0.1:4222", "tls://[2001:db8::1]:4222", "tls://voter.example.com"} {
		if !nodeURLRe.MatchString(u) {
			t.Errorf("%q refused", u)
		}
	}
	for _, u := range []string{"tls://user:pw@h:4222", "tls://h:4222\ncreds=/tmp/x", "http://h:8077", "tls://h:4222/x", "h:4222"} {
		if nodeURLRe.MatchString(u) {
			t.Errorf("%q accepted", u)
		}
	}
}
