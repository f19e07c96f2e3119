package runpod

import "testing"

// FuzzParsePod: the RunPod mapper never panics on any API answer.
func FuzzParsePod(f *testing.F) {
	f.Add([]byte(`{"id":"xedezhzb9la3ye","name":"runpod-a100-1","desiredStatus":"RUNNING","ssh":{"proxy":{"host":"ssh.runpod.io","port":22,"username":"u"}}}`))
	f.Add([]byte(`{"ssh":{"direct":{"host":"h","port":70000}}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		in, err := parsePod(raw)
		if err == nil && in.Provider == "" {
			t.Fatalf("accepted pod without provider: %+v", in)
		}
	})
}
