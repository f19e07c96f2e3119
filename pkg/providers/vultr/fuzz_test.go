package vultr

import (
	"encoding/json"
	"testing"

	"github.com/vultr/govultr/v3"
)

// FuzzToInstance: any instance JSON the API could send (decoded with
// govultr's own types) maps without a panic, keeps its ID and names its
// provider.
func FuzzToInstance(f *testing.F) {
	f.Add([]byte(`{"id":"6f2a9c1e-0000-4000-8000-000000000001","plan":"vcg-a100-1c-6g-4vram","main_ip":"198.51.100.7","v6_main_ip":"","status":"active","power_status":"running","server_status":"ok","label":"vultr-a100-20gb","tags":["b","a"]}`))
	f.Add([]byte(`{"id":"x","plan":"","status":"","main_ip":"0.0.0.0"}`))
	hourly, monthly := 0.123, 5.0
	plans := map[string]plan{"vcg-a100-1c-6g-4vram": {ID: "vcg-a100-1c-6g-4vram", HourlyCost: &hourly, MonthlyCost: &monthly, GPUType: "NVIDIA_A100", GPUVRAMGB: 4}}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var in govultr.Instance
		if json.Unmarshal(raw, &in) != nil {
			return
		}
		got := toInstance(in, plans)
		if got.ID != in.ID || got.Provider != Name {
			t.Fatalf("instance %q mapped to ID %q provider %q", in.ID, got.ID, got.Provider)
		}
	})
}
