package vast

import "testing"

// FuzzParseInstance: the Vast mapper never panics on any API answer.
func FuzzParseInstance(f *testing.F) {
	f.Add([]byte(`{"id":29129529,"actual_status":"running","ssh_host":"ssh6.vast.ai","ssh_port":19528,"public_ipaddr":"1.2.3.4","gpu_name":"RTX 4090","num_gpus":2}`))
	f.Add([]byte(`{"id":null,"ports":{"22/tcp":[{"HostPort":"x"}]}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		in, err := parseInstance(raw)
		if err == nil && in.Provider == "" {
			t.Fatalf("accepted instance without provider: %+v", in)
		}
	})
}
