package nebius

import (
	"testing"

	"github.com/ringmesh/ringmesh/pkg/providers"
)

// FuzzToInstance: any instance the CLI could print (protojson, either
// spelling of each field) decodes and maps without a panic and names its
// provider.
func FuzzToInstance(f *testing.F) {
	f.Add([]byte(`{"metadata":{"id":"computeinstance-e00aaa","name":"nebius-h100-1"},"spec":{"resources":{"platform":"gpu-h100-sxm","preset":"1gpu-16vcpu-200gb"},"preemptible":{}},"status":{"state":"RUNNING","network_interfaces":[{"public_ip_address":{"address":"198.51.100.9/32"}}]}}`))
	f.Add([]byte(`{"metadata":{"id":"x"},"status":{"state":"UPDATING","networkInterfaces":[{"publicIpAddress":{"address":"not-an-ip/32"}}]}}`))
	p, err := New(Options{Prices: map[string]providers.Price{"gpu-h100-sxm/1gpu-16vcpu-200gb": {PerHour: 2.95, Currency: "USD"}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var in wireInstance
		if decodeProto(raw, &in) != nil {
			return
		}
		if got := p.toInstance(in); got.Provider != Name {
			t.Fatalf("instance mapped to provider %q", got.Provider)
		}
	})
}
