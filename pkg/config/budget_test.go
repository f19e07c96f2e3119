package config

import (
	"strings"
	"testing"
)

const budgetHosts = "hosts:\n  a:\n    provider: vast\n    ssh_host: 203.0.113.1\n"

func TestBudgetSection(t *testing.T) {
	inv, err := Parse("b.yaml", []byte(budgetHosts+"budget:\n  daily: {USD: 100, EUR: 10}\n  providers:\n    vast: {USD: 30}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if inv.Budget.Daily["USD"] != 100 || inv.Budget.Daily["EUR"] != 10 || inv.Budget.Providers["vast"]["USD"] != 30 {
		t.Errorf("budget = %+v", inv.Budget)
	}
	if _, other := inv.Other["budget"]; other || len(inv.Warnings) != 0 {
		t.Errorf("budget kept as unknown section: other %v warnings %v", inv.Other, inv.Warnings)
	}
	for yaml, want := range map[string]string{
		"budget:\n  daily: {GBP: 5}\n":               `unknown currency "GBP"`,
		"budget:\n  daily: {USD: -1}\n":              "not a positive amount",
		"budget:\n  providers:\n    aws: {USD: 1}\n": "unknown provider",
		"budget:\n  daily: {USD: lots}\n":            "wrong type",
		"budget:\n  weekly: {USD: 1}\n":              "weekly",
	} {
		_, err := Parse("b.yaml", []byte(budgetHosts+yaml))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want %q", yaml, err, want)
		}
	}
}
