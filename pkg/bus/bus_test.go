package bus

import "testing"

func TestSubjectsRejectInvalidNodeIDs(t *testing.T) {
	if s, err := EventSubject("vast-29129529", KindHeartbeat); err != nil || s != "mesh.v1.evt.vast-29129529.heartbeat" {
		t.Fatalf("%q %v", s, err)
	}
	for _, bad := range []string{"", "a.b", "a*", "a>", "with space", "ünï", string(make([]byte, 65))} {
		if _, err := EventSubject(bad, KindHello); err == nil {
			t.Errorf("EventSubject(%q) accepted", bad)
		}
		if _, err := CommandSubject(bad, "sync"); err == nil {
			t.Errorf("CommandSubject(%q) accepted", bad)
		}
		if _, err := GossipSubject(bad); err == nil {
			t.Errorf("GossipSubject(%q) accepted", bad)
		}
	}
	if _, err := EventSubject("n1", "telemetry"); err == nil {
		t.Error("unknown kind accepted")
	}
	if _, err := CommandSubject("n1", "sync.now"); err == nil {
		t.Error("verb with a dot accepted")
	}
	node, kind, err := ParseEventSubject("mesh.v1.evt.runpod-1.preempt")
	if err != nil || node != "runpod-1" || kind != "preempt" {
		t.Fatalf("parse: %q %q %v", node, kind, err)
	}
	if _, _, err := ParseEventSubject("mesh.v1.evt.a.b.c"); err == nil {
		t.Error("5+ tokens accepted")
	}
	id := MessageID("n1", "boot7", 42)
	n, b, s, err := ParseMessageID(id)
	if err != nil || n != "n1" || b != "boot7" || s != 42 {
		t.Fatalf("id round trip: %s → %s %s %d %v", id, n, b, s, err)
	}
}
