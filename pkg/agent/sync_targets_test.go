package agent

import (
	"strings"
	"testing"
)

// A sync_targets command whose remote_dir climbs out of the target's
// directory, or whose values fail their patterns, is refused whole.
func TestCheckTargetsRefusesTraversalAndInjection(t *testing.T) {
	good := TargetSpec{Node: "hetzner-cpu2", Host: "203.0.113.2", Port: 22, User: "root", RemoteDir: "/root/ringrift/ai-service/data/sync_incoming",
		Fingerprint: "SHA256:" + strings.Repeat("b", 43)}
	if err := checkTargets([]TargetSpec{good}); err != nil {
		t.Fatalf("good target refused: %v", err)
	}
	mut := func(f func(*TargetSpec)) TargetSpec { s := good; f(&s); return s }
	for name, s := range map[string]TargetSpec{
		"traversal":           mut(func(s *TargetSpec) { s.RemoteDir = "../../../../tmp/x" }),
		"inner traversal":     mut(func(s *TargetSpec) { s.RemoteDir = "root/ringrift/../../../tmp/x" }),
		"unclean":             mut(func(s *TargetSpec) { s.RemoteDir = "root//x/" }),
		"empty dir":           mut(func(s *TargetSpec) { s.RemoteDir = "" }),
		"user option":         mut(func(s *TargetSpec) { s.User = "-oProxyCommand=x" }),
		"host with newline":   mut(func(s *TargetSpec) { s.Host = "h\nx" }),
		"fingerprint newline": mut(func(s *TargetSpec) { s.Fingerprint += "\nHost *" }),
		"port":                mut(func(s *TargetSpec) { s.Port = 0 }),
	} {
		if err := checkTargets([]TargetSpec{good, s}); err == nil {
			t.Errorf("%s: accepted %+v", name, s)
		}
	}
}
