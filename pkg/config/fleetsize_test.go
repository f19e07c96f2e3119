package config

import (
	"strings"
	"testing"
	"time"
)

// The fleet-size policy is off by default; a kind needs a name, a GPU and
// a positive max price; bad values are errors naming the field.
func TestFleetSizePolicy(t *testing.T) {
	inv, err := Parse("p.yaml", []byte(budgetHosts))
	if err != nil {
		t.Fatal(err)
	}
	if inv.Policies.FleetSize.On() || inv.Policies.Any() {
		t.Errorf("fleet size on without a policies: section: %+v", inv.Policies.FleetSize)
	}
	inv, err = Parse("p.yaml", []byte(budgetHosts+`policies:
  fleet_size:
    mode: enforce
    backoff: 2m
    kinds:
      - {name: rtx4090, count: 2, gpu: RTX 4090, providers: [vast, runpod], max_price: 0.4, kind: spot}
`))
	if err != nil {
		t.Fatal(err)
	}
	fs := inv.Policies.FleetSize
	if !fs.On() || fs.Backoff != 2*time.Minute || len(fs.Kinds) != 1 || !inv.Policies.Any() {
		t.Fatalf("fleet size = %+v", fs)
	}
	if k := fs.Kinds[0]; k.Name != "rtx4090" || k.Count != 2 || k.GPUCount != 1 || k.MaxPrice != 0.4 || k.Kind != "spot" || len(k.Providers) != 2 {
		t.Errorf("kind = %+v", k)
	}
	for yaml, want := range map[string]string{
		"policies:\n  fleet_size: {mode: on}\n":                                                         "policies.fleet_size.mode",
		"policies:\n  fleet_size: {backoff: 1s}\n":                                                      "shorter than 30s",
		"policies:\n  fleet_size: {kinds: [{name: Bad_Name, gpu: H100, max_price: 1}]}\n":               "kinds[0].name",
		"policies:\n  fleet_size: {kinds: [{name: h100, gpu: H100}]}\n":                                 "kinds[0].max_price",
		"policies:\n  fleet_size: {kinds: [{name: h100, gpu: H100, max_price: 1, providers: [aws]}]}\n": "unknown provider",
		"policies:\n  fleet_size: {kinds: [{name: h100, gpu: \"H100\\n; rm\", max_price: 1}]}\n":        "kinds[0].gpu",
		"policies:\n  fleet_size: {kinds: [{name: h100, gpu: H100, max_price: 1, kind: cheap}]}\n":      "kinds[0].kind",
		"policies:\n  fleet_size: {size: 3}\n":                                                          "policies.fleet_size.size",
	} {
		_, err := Parse("p.yaml", []byte(budgetHosts+yaml))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want %q", yaml, err, want)
		}
	}
}
