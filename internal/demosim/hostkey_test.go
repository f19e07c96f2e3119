package demosim

import (
	"testing"

	"github.com/ringmesh/ringmesh/pkg/config"
	"github.com/ringmesh/ringmesh/pkg/providers/demo"
)

// A sync target not set up with meshctl is routed to only with the
// inventory's ssh_host_key, so the demo inventory must pin the key each
// simulated persistent node reports, or the demo never syncs.
func TestDemoInventoryPinsSimulatedHostKeys(t *testing.T) {
	inv, err := config.Parse("demo-inventory.yaml", []byte(demo.DemoInventory))
	if err != nil {
		t.Fatal(err)
	}
	pinned := 0
	for id, h := range inv.Hosts {
		if h.Inactive() || h.Ephemeral() {
			continue
		}
		if h.SSHHostKey != hostKey(id) {
			t.Errorf("%s: ssh_host_key %q, the simulated node reports %q", id, h.SSHHostKey, hostKey(id))
		}
		pinned++
	}
	if pinned == 0 {
		t.Fatal("no persistent active host in the demo inventory")
	}
}
