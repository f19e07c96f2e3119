package config

import "testing"

// FuzzParse: the inventory loader never panics, and a file it accepts has
// hosts whose names are valid node IDs.
func FuzzParse(f *testing.F) {
	f.Add([]byte("hosts:\n  vast-1: {provider: vast, ssh_host: ssh6.vast.ai, ssh_port: 19528}\n"))
	f.Add([]byte("sync_routing: {max_disk_usage_percent: 70}\nhosts:\n  hetzner-cpu1: {role: coordinator, is_coordinator: true}\n"))
	f.Add([]byte("hosts: [1, 2]\n"))
	f.Add([]byte("{{{"))
	f.Fuzz(func(t *testing.T, b []byte) {
		inv, err := Parse("fuzz.yaml", b)
		if err != nil || inv == nil {
			return
		}
		for _, name := range inv.Names() {
			if inv.Hosts[name] == nil {
				t.Fatalf("Names lists %q without a host", name)
			}
		}
	})
}
