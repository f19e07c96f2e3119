package vultr

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/vultr/govultr/v3"

	"github.com/ringmesh/ringmesh/pkg/providers"
)

func TestMapState(t *testing.T) {
	cases := []struct {
		status, power, server string
		want                  providers.State
	}{
		{"active", "running", "ok", providers.StateRunning},
		{"active", "running", "locked", providers.StateRunning},
		{"active", "running", "installingbooting", providers.StateStarting},
		{"active", "running", "none", providers.StateStarting},
		{"active", "running", "", providers.StateStarting},
		{"active", "stopped", "ok", providers.StateStopped},
		{"active", "stopped", "none", providers.StateStopped},
		{"ACTIVE", "Running", "OK", providers.StateRunning},
		{"pending", "running", "none", providers.StatePending},
		{"pending", "", "", providers.StatePending},
		{"suspended", "stopped", "ok", providers.StateStopped},
		{"resizing", "running", "locked", providers.StateStarting},
		{"active", "", "", providers.StateUnknown},
		{"active", "rebooting", "ok", providers.StateUnknown},
		{"", "", "", providers.StateUnknown},
		{"frozen", "running", "ok", providers.StateUnknown},
	}
	for _, c := range cases {
		if got := mapState(c.status, c.power, c.server); got != c.want {
			t.Errorf("mapState(%q,%q,%q) = %q, want %q", c.status, c.power, c.server, got, c.want)
		}
	}
}

// Documented instance JSON (Vultr OpenAPI "instance"), fake values, with nulls
// and a pending instance whose main_ip is 0.0.0.0.
const instancesJSON = `[
{"id":"cb676a46-66fd-4dfb-b839-443f2e6c0b60","os":"Ubuntu 22.04 LTS x64","ram":6144,"disk":70,
 "plan":"vcg-a100-1c-6g-4vram","main_ip":"192.0.2.10","vcpu_count":1,"region":"ewr",
 "date_created":"2026-11-28T10:00:00+00:00","status":"active","allowed_bandwidth":1000,
 "netmask_v4":"255.255.254.0","gateway_v4":"192.0.2.1","power_status":"running","server_status":"ok",
 "v6_network":"","v6_main_ip":"","v6_network_size":0,"label":"vultr-a100-1","internal_ip":"",
 "kvm":"https://my.vultr.com/subs/vps/novnc/api.php?data=x","os_id":1743,"app_id":0,"image_id":"",
 "snapshot_id":"","firewall_group_id":"","features":["ipv6"],"hostname":"vultr-a100-1",
 "tags":["role=gpu","ringmesh"],"user_scheme":"root","vpcs":[{"id":"v1","subnet":"10.0.0.0/24"}]},
{"id":"6e6fd5f3-0d0a-4b8c-9a2e-9b4a3f1a2b3c","os":null,"ram":0,"disk":0,"plan":"vcg-l40s-16c-180g-48vram",
 "main_ip":"0.0.0.0","vcpu_count":16,"region":"ewr","date_created":null,"status":"pending",
 "power_status":null,"server_status":null,"label":null,"hostname":"fresh","tags":null,"features":null},
{"id":"11111111-2222-3333-4444-555555555555","plan":"vc2-1c-1gb","main_ip":"198.51.100.7","vcpu_count":1,
 "ram":1024,"region":"ams","date_created":"not a date","status":"active","power_status":"stopped",
 "server_status":"ok","label":"cpu-box","tags":[]},
{"id":"99999999-2222-3333-4444-555555555555","plan":"vcg-b200-8c-64g-180vram","main_ip":"198.51.100.8",
 "status":"active","power_status":"running","server_status":"installingbooting","label":"new-gpu"}
]`

func TestToInstanceFromDocumentedJSON(t *testing.T) {
	var raw []govultr.Instance
	if err := json.Unmarshal([]byte(instancesJSON), &raw); err != nil {
		t.Fatal(err)
	}
	hourly := 0.123
	monthly := 5.0
	plans := map[string]plan{
		"vcg-a100-1c-6g-4vram": {ID: "vcg-a100-1c-6g-4vram", HourlyCost: &hourly, MonthlyCost: &monthly, GPUType: "NVIDIA_A100", GPUVRAMGB: 4},
		"vc2-1c-1gb":           {ID: "vc2-1c-1gb", MonthlyCost: &monthly},
	}
	got := make([]providers.Instance, len(raw))
	for i, in := range raw {
		got[i] = toInstance(in, plans)
	}

	a := got[0]
	if a.State != providers.StateRunning || a.RawState != "active/running/ok" {
		t.Errorf("a100 state = %q raw %q", a.State, a.RawState)
	}
	if a.Provider != "vultr" || a.Name != "vultr-a100-1" || a.Region != "ewr" {
		t.Errorf("a100 identity = %+v", a)
	}
	if a.GPUModel != "A100" || a.GPUCount != 1 || a.GPUMemGiB != 4 {
		t.Errorf("a100 gpu = %q x%d %v GiB", a.GPUModel, a.GPUCount, a.GPUMemGiB)
	}
	if a.CPUs != 1 || a.MemoryGiB != 6 {
		t.Errorf("a100 cpu/mem = %v/%v", a.CPUs, a.MemoryGiB)
	}
	if a.Price != (providers.Price{PerHour: 0.123, Currency: "USD", Source: SourceHourly}) {
		t.Errorf("a100 price = %+v", a.Price)
	}
	if len(a.SSH) != 1 || a.SSH[0] != (providers.SSHEndpoint{Kind: providers.EndpointDirect, Host: "192.0.2.10", Port: 22, User: "root"}) {
		t.Errorf("a100 ssh = %+v", a.SSH)
	}
	if !a.CreatedAt.Equal(time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("a100 created = %v", a.CreatedAt)
	}
	if a.Labels["role"] != "gpu" || a.Labels[LabelPlan] != "vcg-a100-1c-6g-4vram" {
		t.Errorf("a100 labels = %v", a.Labels)
	}
	if _, ok := a.Labels["ringmesh"]; !ok {
		t.Errorf("tag without '=' lost: %v", a.Labels)
	}

	b := got[1] // pending, nulls, plan not in catalogue
	if b.State != providers.StatePending || b.RawState != "pending//" {
		t.Errorf("pending state = %q raw %q", b.State, b.RawState)
	}
	if b.PublicIP != "" || len(b.SSH) != 0 {
		t.Errorf("0.0.0.0 must not become an endpoint: %q %+v", b.PublicIP, b.SSH)
	}
	if b.Name != "fresh" {
		t.Errorf("null label should fall back to hostname, got %q", b.Name)
	}
	if b.Price.Known() {
		t.Errorf("plan missing from catalogue must give unknown price, got %+v", b.Price)
	}
	if b.GPUModel != "L40S" || b.GPUCount != 1 || b.GPUMemGiB != 48 {
		t.Errorf("gpu from plan id = %q x%d %v", b.GPUModel, b.GPUCount, b.GPUMemGiB)
	}
	if !b.CreatedAt.IsZero() || b.MemoryGiB != 0 {
		t.Errorf("unknowns must stay zero: %v %v", b.CreatedAt, b.MemoryGiB)
	}

	c := got[2] // halted CPU box, monthly-only price
	if c.State != providers.StateStopped {
		t.Errorf("halted state = %q", c.State)
	}
	if c.GPUModel != "" || c.GPUCount != 0 {
		t.Errorf("cpu plan gpu = %q x%d", c.GPUModel, c.GPUCount)
	}
	if c.Price.Source != SourceMonthly || math.Abs(c.Price.PerHour-5.0/730) > 1e-12 {
		t.Errorf("monthly price = %+v", c.Price)
	}
	if !c.CreatedAt.IsZero() {
		t.Errorf("bad date must stay unknown, got %v", c.CreatedAt)
	}
	if !c.Billable((&Provider{}).Capabilities()) {
		t.Error("a halted Vultr instance must be billable")
	}

	d := got[3] // unknown GPU word kept raw
	if d.GPUModel != "b200" || d.State != providers.StateStarting {
		t.Errorf("unknown gpu = %q state %q", d.GPUModel, d.State)
	}
}

func TestPlanPrice(t *testing.T) {
	h, m, neg := 0.5, 730.0, -1.0
	cases := []struct {
		p    plan
		want providers.Price
	}{
		{plan{HourlyCost: &h, MonthlyCost: &m}, providers.Price{PerHour: 0.5, Currency: "USD", Source: SourceHourly}},
		{plan{MonthlyCost: &m}, providers.Price{PerHour: 1, Currency: "USD", Source: SourceMonthly}},
		{plan{}, providers.Price{}},
		{plan{HourlyCost: &neg}, providers.Price{}},
	}
	for i, c := range cases {
		if got := c.p.price(); got != c.want {
			t.Errorf("%d: price = %+v, want %+v", i, got, c.want)
		}
	}
}

func TestGPUInfoFromPlanID(t *testing.T) {
	cases := []struct {
		id    string
		model string
		count int
		mem   float64
	}{
		{"vcg-a100-1c-6g-4vram", "A100", 1, 4},
		{"vcg-a100-3c-30g-20vram", "A100", 1, 20},
		{"vcg-h100-1c-80g", "H100", 1, 0},
		{"vcg-a40-24c-120g-48vram", "A40", 1, 48},
		{"vc2-1c-1gb", "", 0, 0},
		{"", "", 0, 0},
		{"vhf-2c-4gb", "", 0, 0},
	}
	for _, c := range cases {
		m, n, mem := gpuInfo(c.id, nil)
		if m != c.model || n != c.count || mem != c.mem {
			t.Errorf("gpuInfo(%q) = %q,%d,%v want %q,%d,%v", c.id, m, n, mem, c.model, c.count, c.mem)
		}
	}
	// gpu_count from the API divides the plan's total VRAM.
	m, n, mem := gpuInfo("vcg-h100-8c-640g-640vram", &plan{GPUType: "NVIDIA_H100", GPUCount: 8, GPUVRAMGB: 640})
	if m != "H100" || n != 8 || mem != 80 {
		t.Errorf("8x plan = %q,%d,%v", m, n, mem)
	}
}
