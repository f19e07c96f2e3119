package lambda

import (
	"testing"

	"github.com/rs/zerolog"
)

// FuzzParseInstance: the Lambda mapper never panics on any API answer, and
// what it accepts has an ID and names its provider.
func FuzzParseInstance(f *testing.F) {
	f.Add([]byte(docInstance))
	f.Add([]byte(`{"id":"x","instance_type":{"name":"gpu_8x_h100_sxm5","gpu_description":"H100 (80 GB"},"ip":" 1.2.3.4 "}`))
	f.Add([]byte(`{"id":null}`))
	f.Add([]byte(`[]`))
	c, err := New(Options{APIKey: "k", BaseURL: "http://127.0.0.1:1", Log: zerolog.Nop()})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		in, err := c.parseInstance(raw)
		if err == nil && (in.ID == "" || in.Provider != Name) {
			t.Fatalf("accepted instance without ID or provider: %+v", in)
		}
	})
}
