package hetzner

import (
	"encoding/json"
	"testing"

	"github.com/hetznercloud/hcloud-go/v2/hcloud"
	"github.com/hetznercloud/hcloud-go/v2/hcloud/schema"
)

// FuzzToInstance: any server JSON the API could send (decoded into
// hcloud-go's schema, as the SDK does) maps without a panic and names its
// provider.
func FuzzToInstance(f *testing.F) {
	f.Add([]byte(`{"id":42,"name":"hetzner-cpu1","status":"running","public_net":{"ipv4":null,"ipv6":{"ip":"2001:db8::/64"}},"server_type":{"name":"cx22","prices":[{"location":"hel1","price_hourly":{"gross":"0.00714"}}]},"location":{"name":"hel1"},"labels":{"role":"voter"},"protection":{"delete":true}}`))
	f.Add([]byte(`{"id":0,"status":"migrating","server_type":{"prices":[{"price_hourly":{"gross":"n/a"}}]}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var s schema.Server
		if json.Unmarshal(raw, &s) != nil {
			return
		}
		got := toInstance(hcloud.ServerFromSchema(s))
		if got.Provider != Name {
			t.Fatalf("server mapped to provider %q", got.Provider)
		}
	})
}
