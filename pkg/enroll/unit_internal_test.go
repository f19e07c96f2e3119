package enroll

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The systemd unit meshctl enroll installs is one systemd itself accepts:
// systemd-analyze verify (offline, no running systemd needed) reports no
// error and no warning for it, with the agent binary in place.
func TestUnitFileVerifies(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed (apt-get install systemd to run this test)")
	}
	dir := t.TempDir()
	l := layout{p: dir}
	if err := os.MkdirAll(filepath.Dir(l.bin()), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(l.bin(), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	unit := filepath.Join(dir, UnitName)
	if err := os.WriteFile(unit, []byte(unitFile(l)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sa, "verify", "--man=no", unit).CombinedOutput()
	// Lines about other units (a container's own /etc) are not ours.
	var ours []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.Contains(line, UnitName) || strings.Contains(line, unit) {
			ours = append(ours, line)
		}
	}
	if err != nil || len(ours) > 0 {
		t.Fatalf("systemd-analyze verify %s: %v\n%s", UnitName, err, out)
	}
	// The checker is not silent on everything: a broken unit is reported.
	bad := filepath.Join(dir, "broken-"+UnitName)
	if err := os.WriteFile(bad, []byte(strings.Replace(unitFile(l), "ExecStart="+l.bin(), "ExecStart=relative/agent", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(sa, "verify", "--man=no", bad).CombinedOutput(); err == nil {
		t.Fatalf("systemd-analyze accepted a relative ExecStart:\n%s", out)
	}
}
