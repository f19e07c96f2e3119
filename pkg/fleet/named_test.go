package fleet_test

import (
	"testing"

	"github.com/ringmesh/ringmesh/pkg/fleet"
	"github.com/ringmesh/ringmesh/pkg/providers"
)

// A box rented under its node ID is reached through its provider's
// endpoint (proxy first, host and port of the same endpoint); a stale
// listing, an instance linked to another node or two instances of the
// same name give nothing.
func TestNamedInstanceEntry(t *testing.T) {
	vast := providers.Instance{Provider: "vast", ID: "29129529", Name: "vast-29129529", SSH: []providers.SSHEndpoint{
		{Kind: providers.EndpointDirect, Host: "203.0.113.9", Port: 41022, User: "root"},
		{Kind: providers.EndpointProxy, Host: "ssh6.vast.ai", Port: 19528},
	}}
	rep := fleet.Report{Instances: []fleet.InstanceView{{Instance: vast}}}
	e, iv, ok := fleet.NamedInstanceEntry(rep, "vast-29129529")
	if !ok || e.Host != "ssh6.vast.ai" || e.Port != 19528 || e.User != "root" || e.Source != "provider:proxy" || iv.ID != "29129529" {
		t.Fatalf("entry %+v %v", e, ok)
	}
	if err := e.Check(); err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]fleet.Report{
		"stale":        {Instances: []fleet.InstanceView{{Instance: vast, Stale: true}}},
		"other node":   {Instances: []fleet.InstanceView{{Instance: vast, Node: "vast-1"}}},
		"two of them":  {Instances: []fleet.InstanceView{{Instance: vast}, {Instance: vast}}},
		"no endpoint":  {Instances: []fleet.InstanceView{{Instance: providers.Instance{Provider: "vast", ID: "1", Name: "vast-29129529"}}}},
		"another name": {Instances: []fleet.InstanceView{{Instance: providers.Instance{Provider: "vast", ID: "1", Name: "x", SSH: vast.SSH}}}},
	} {
		if _, _, ok := fleet.NamedInstanceEntry(r, "vast-29129529"); ok {
			t.Errorf("%s: an entry was found", name)
		}
	}
}
