package enroll

import (
	"strings"
	"testing"
)

// The agent installed is the coordinator's version: another one is refused
// with both versions named, unless the operator allows the skew; an
// unknown version on either side is not a mismatch.
func TestAgentVersionMustMatchCoordinator(t *testing.T) {
	cfg := &Config{CoordinatorVersion: "v0.4.0"}
	if err := cfg.checkVersion("v0.4.0"); err != nil {
		t.Fatalf("same version: %v", err)
	}
	err := cfg.checkVersion("v0.3.9")
	if err == nil || !strings.Contains(err.Error(), "v0.3.9") || !strings.Contains(err.Error(), "v0.4.0") || !strings.Contains(err.Error(), "--allow-version-skew") {
		t.Fatalf("older agent: %v", err)
	}
	if err := cfg.checkVersion("v0.4.0\x1b[2J"); err == nil || strings.Contains(err.Error(), "\x1b") {
		t.Fatalf("a version with a terminal escape: %q", err)
	}
	if err := cfg.checkVersion(""); err != nil {
		t.Fatalf("not known yet (asked on the node after the upload): %v", err)
	}
	cfg.AllowVersionSkew = true
	if err := cfg.checkVersion("v0.3.9"); err != nil {
		t.Fatalf("skew allowed: %v", err)
	}
	if err := (&Config{}).checkVersion("v0.3.9"); err != nil {
		t.Fatalf("coordinator version unknown: %v", err)
	}
}
