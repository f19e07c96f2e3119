package config

import (
	"strings"
	"testing"
	"time"
)

// Policies are off unless the inventory says otherwise; a policy setting
// that is not read, or a value that would make a pause look like idleness,
// is an error naming the field.
func TestPoliciesSection(t *testing.T) {
	inv, err := Parse("p.yaml", []byte(budgetHosts))
	if err != nil {
		t.Fatal(err)
	}
	if inv.Policies.Idle.Mode != PolicyOff {
		t.Errorf("idle policy without a policies: section: %+v", inv.Policies.Idle)
	}
	inv, err = Parse("p.yaml", []byte(budgetHosts+"policies:\n  idle: {mode: dry-run, action: terminate, max_gpu_util_percent: 3, window: 45m}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := inv.Policies.Idle; got.Mode != PolicyDryRun || got.Action != "terminate" || got.MaxGPUUtilPercent != 3 || got.Window != 45*time.Minute {
		t.Errorf("idle policy = %+v", got)
	}
	for yaml, want := range map[string]string{
		"policies:\n  idle: {mode: on}\n":                    "policies.idle.mode",
		"policies:\n  idle: {action: reboot}\n":              "policies.idle.action",
		"policies:\n  idle: {max_gpu_util_percent: 120}\n":   "policies.idle.max_gpu_util_percent",
		"policies:\n  idle: {window: 30s}\n":                 "shorter than 1m",
		"policies:\n  idle: {window: soon}\n":                "not a duration",
		"policies:\n  idle: {mode: enforce, threshold: 5}\n": "policies.idle.threshold",
		"policies:\n  budget_stop: {mode: enforce}\n":        "policies.budget_stop",
		"policies:\n  budget: {mode: always}\n":              "policies.budget.mode",
	} {
		_, err := Parse("p.yaml", []byte(budgetHosts+yaml))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want %q", yaml, err, want)
		}
	}
}
