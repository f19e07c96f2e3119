package fleet

import (
	"strings"
	"testing"

	"github.com/ringmesh/ringmesh/pkg/config"
	"github.com/ringmesh/ringmesh/pkg/events"
	"github.com/ringmesh/ringmesh/pkg/providers"
	"github.com/ringmesh/ringmesh/pkg/registry"
)

func ptr[T any](v T) *T { return &v }

func TestSafeToTerminate(t *testing.T) {
	cases := []struct {
		name  string
		rec   *registry.Record
		force bool
		ok    bool
		why   string
	}{
		{"never reported", nil, false, false, "never reported"},
		{"unknown RPO is not zero", &registry.Record{}, false, false, "RPO unknown"},
		{"data only on the node", &registry.Record{RPO: eventsRPO(10, 2)}, false, false, "10 bytes in 2 files"},
		{"zero", &registry.Record{RPO: eventsRPO(0, 0)}, false, true, "RPO is zero"},
		{"forced", nil, true, true, "forced"},
	}
	for _, c := range cases {
		ok, why := SafeToTerminate(c.rec, c.force)
		if ok != c.ok || !strings.Contains(why, c.why) {
			t.Errorf("%s: %v %q, want %v %q", c.name, ok, why, c.ok, c.why)
		}
	}
}

// The live endpoint with the inventory's host wins (its port moved); host
// and port always come from the same endpoint; without an instance, the
// inventory; without either, what the agent reported.
func TestSSHEntries(t *testing.T) {
	inv, err := config.Parse("t.yaml", []byte("hosts:\n  vast-29129529: {provider: vast, ssh_host: ssh6.vast.ai, ssh_port: 19528, vast_instance_id: \"29129529\"}\n  runpod-1: {provider: runpod, ssh_host: 203.0.113.50, ssh_port: 22041}\n"))
	if err != nil {
		t.Fatal(err)
	}
	rep := Report{Instances: []InstanceView{{Node: "vast-29129529", Instance: providers.Instance{ID: "29129529", Provider: "vast", SSH: []providers.SSHEndpoint{
		{Kind: providers.EndpointDirect, Host: "203.0.113.45", Port: 40001, User: "root"},
		{Kind: providers.EndpointProxy, Host: "ssh6.vast.ai", Port: 19999, User: "root"},
	}}}}}
	recs := []registry.Record{{Node: "agent-only", SSH: nil}, {Node: "lonely", HostKey: "SHA256:x"}}
	got := map[string]SSHEntry{}
	for _, e := range SSHEntries(inv, recs, rep) {
		got[e.Node] = e
	}
	if e := got["vast-29129529"]; e.Host != "ssh6.vast.ai" || e.Port != 19999 || e.User != "root" || e.Source != "provider:proxy" {
		t.Errorf("vast: %+v", e)
	}
	if e := got["runpod-1"]; e.Host != "203.0.113.50" || e.Port != 22041 || e.IdentityFile != "~/.runpod/ssh/RunPod-Key-Go" || e.Source != "config" {
		t.Errorf("runpod: %+v", e)
	}
	if _, ok := got["lonely"]; ok {
		t.Error("a node with no endpoint anywhere must not get an entry")
	}
	out := RenderSSHConfig([]SSHEntry{got["vast-29129529"]})
	if !strings.Contains(out, "Host vast-29129529\n  HostName ssh6.vast.ai\n  Port 19999\n  User root\n") {
		t.Errorf("rendered:\n%s", out)
	}
}

type registryRPO = events.RPO

func eventsRPO(b int64, n int) (r registryRPO) {
	r.UnsyncedBytes, r.UnsyncedFiles = ptr(b), ptr(n)
	return r
}
