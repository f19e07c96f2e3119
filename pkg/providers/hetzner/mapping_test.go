package hetzner

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/hetznercloud/hcloud-go/v2/hcloud"
	"github.com/hetznercloud/hcloud-go/v2/hcloud/schema"

	"github.com/ringmesh/ringmesh/pkg/providers"
)

func TestMapState(t *testing.T) {
	cases := map[string]providers.State{
		"initializing": providers.StatePending,
		"starting":     providers.StateStarting,
		"running":      providers.StateRunning,
		"stopping":     providers.StateStopping,
		"off":          providers.StateStopped,
		"deleting":     providers.StateTerminated,
		"migrating":    providers.StateStarting,
		"rebuilding":   providers.StateStarting,
		"unknown":      providers.StateUnknown,
		"":             providers.StateUnknown,
		"hibernating":  providers.StateUnknown,
		"RUNNING":      providers.StateRunning,
	}
	for in, want := range cases {
		if got := mapState(hcloud.ServerStatus(in)); got != want {
			t.Errorf("mapState(%q) = %q, want %q", in, got, want)
		}
	}
}

// Documented server JSON (schema.Server field names), fake values. The second
// server has a null ipv4, no price for its location and nulls elsewhere.
const serversJSON = `{"servers":[
{"id":42,"name":"hetzner-cpu1","status":"running","created":"2026-11-01T08:00:00+00:00",
 "public_net":{"ipv4":{"id":1,"ip":"203.0.113.5","blocked":false,"dns_ptr":"static.5.113.0.203.example"},
   "ipv6":{"id":2,"ip":"2001:db8::/64","blocked":false,"dns_ptr":[]},"floating_ips":[],"firewalls":[]},
 "private_net":[],
 "server_type":{"id":98,"name":"ccx33","description":"CCX33 Dedicated CPU","category":"dedicated_cpu","cores":8,
   "memory":32,"disk":240,"storage_type":"local","cpu_type":"dedicated","architecture":"x86",
   "prices":[{"location":"nbg1","price_hourly":{"net":"0.0750000000","gross":"0.0892500000000000"},
              "price_monthly":{"net":"46.41","gross":"55.2279"},"included_traffic":21990232555520,
              "price_per_tb_traffic":{"net":"1.00","gross":"1.19"}},
             {"location":"fsn1","price_hourly":{"net":"0.0700000000","gross":"0.0833000000000000"},
              "price_monthly":{"net":"43.00","gross":"51.17"},"included_traffic":21990232555520,
              "price_per_tb_traffic":{"net":"1.00","gross":"1.19"}}],
   "locations":[]},
 "location":{"id":1,"name":"fsn1","description":"Falkenstein DC Park 1","country":"DE","city":"Falkenstein",
   "latitude":50.47612,"longitude":12.370071,"network_zone":"eu-central"},
 "image":null,"iso":null,"labels":{"role":"voter"},"locked":false,"rescue_enabled":false,"backup_window":null,
 "outgoing_traffic":null,"ingoing_traffic":null,"included_traffic":21990232555520,
 "protection":{"delete":true,"rebuild":true},"volumes":[],"load_balancers":[],"placement_group":null,
 "primary_disk_size":240},
{"id":43,"name":"hetzner-cpu2","status":"off","created":"2026-11-02T08:00:00Z",
 "public_net":{"ipv4":null,"ipv6":null,"floating_ips":[],"firewalls":[]},
 "server_type":{"id":104,"name":"cx22","cores":2,"memory":4,"disk":40,
   "prices":[{"location":"hel1","price_hourly":{"net":"0.006","gross":"0.00714"}}]},
 "location":{"id":2,"name":"nbg1"},"labels":null},
{"id":44,"name":"weird","status":"migrating","created":"2026-11-03T08:00:00Z",
 "public_net":{"ipv4":{"ip":"198.51.100.1"}},
 "server_type":{"name":"cx32","cores":4,"memory":8,"prices":[{"location":"hel1","price_hourly":{"gross":"n/a"}}]},
 "location":{"name":"hel1"}}
]}`

func decodeServers(t *testing.T) []*hcloud.Server {
	t.Helper()
	var body schema.ServerListResponse
	if err := json.Unmarshal([]byte(serversJSON), &body); err != nil {
		t.Fatal(err)
	}
	out := make([]*hcloud.Server, len(body.Servers))
	for i, s := range body.Servers {
		out[i] = hcloud.ServerFromSchema(s)
	}
	return out
}

func TestToInstanceFromDocumentedJSON(t *testing.T) {
	s := decodeServers(t)
	a := toInstance(s[0])
	if a.ID != "42" || a.Name != "hetzner-cpu1" || a.Provider != "hetzner" || a.State != providers.StateRunning || a.RawState != "running" {
		t.Errorf("identity/state = %+v", a)
	}
	if a.Price != (providers.Price{PerHour: 0.0833, Currency: "EUR", Source: PriceSource}) {
		t.Errorf("price must be the fsn1 gross hourly price, got %+v", a.Price)
	}
	if a.CPUs != 8 || a.MemoryGiB != 32 || a.GPUCount != 0 || a.GPUModel != "" {
		t.Errorf("resources = %v cpu %v GiB gpu %q x%d", a.CPUs, a.MemoryGiB, a.GPUModel, a.GPUCount)
	}
	if a.Region != "fsn1" || a.PublicIP != "203.0.113.5" {
		t.Errorf("region/ip = %q %q", a.Region, a.PublicIP)
	}
	if len(a.SSH) != 1 || a.SSH[0].String() != "root@203.0.113.5:22" || a.SSH[0].Kind != providers.EndpointDirect {
		t.Errorf("ssh = %+v", a.SSH)
	}
	if !a.CreatedAt.Equal(time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)) {
		t.Errorf("created = %v", a.CreatedAt)
	}
	if a.Labels["role"] != "voter" || a.Labels[LabelServerType] != "ccx33" {
		t.Errorf("labels = %v", a.Labels)
	}

	b := toInstance(s[1])
	if b.State != providers.StateStopped || !b.Billable(providers.Capabilities{BillsWhileStopped: true}) {
		t.Errorf("off server: state %q", b.State)
	}
	if b.PublicIP != "" || len(b.SSH) != 0 {
		t.Errorf("null ipv4 must give no endpoint: %q %+v", b.PublicIP, b.SSH)
	}
	if b.Price.Known() {
		t.Errorf("no price for nbg1 must stay unknown, got %+v", b.Price)
	}

	c := toInstance(s[2])
	if c.State != providers.StateStarting || c.RawState != "migrating" {
		t.Errorf("migrating = %q", c.State)
	}
	if c.Price.Known() {
		t.Errorf("unparsable price must stay unknown, got %+v", c.Price)
	}
}
