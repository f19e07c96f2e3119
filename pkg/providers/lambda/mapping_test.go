package lambda

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/pkg/providers"
)

// docInstance is the example of docs/provider-apis.md §3 (the "data" value).
const docInstance = `{"id":"0920582c7ff041399e34823a0be62549","name":"fleet-gh200-1","ip":"198.51.100.2","private_ip":"10.0.2.100",
 "status":"active","ssh_key_names":["fleet"],"file_system_names":[],"hostname":"198-51-100-2",
 "region":{"name":"us-east-3","description":"Washington DC, USA"},
 "instance_type":{"name":"gpu_1x_gh200","description":"1x GH200 (96 GB)","gpu_description":"GH200 (96 GB)",
  "price_cents_per_hour":149,"specs":{"vcpus":64,"memory_gib":432,"storage_gib":4096,"gpus":1}},
 "actions":{"migrate":{"available":false},"rebuild":{"available":false},"restart":{"available":true},
  "cold_reboot":{"available":false},"terminate":{"available":true}}}`

func testClient(t *testing.T) *Client {
	t.Helper()
	c, err := New(Options{APIKey: "k", BaseURL: "http://127.0.0.1:1", Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func instWith(t *testing.T, set map[string]any) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(docInstance), &m); err != nil {
		t.Fatal(err)
	}
	for k, v := range set {
		if v == "<delete>" {
			delete(m, k)
			continue
		}
		m[k] = v
	}
	b, _ := json.Marshal(m)
	return b
}

func TestParseDocumentedInstance(t *testing.T) {
	in, err := testClient(t).parseInstance([]byte(docInstance))
	if err != nil {
		t.Fatal(err)
	}
	if in.ID != "0920582c7ff041399e34823a0be62549" || in.Provider != "lambda" || in.Name != "fleet-gh200-1" || in.Region != "us-east-3" {
		t.Errorf("identity %+v", in)
	}
	if in.State != providers.StateRunning || in.RawState != "active" {
		t.Errorf("state %s", in.State)
	}
	if in.GPUModel != "GH200" || in.GPUCount != 1 || in.GPUMemGiB != 96 || in.CPUs != 64 || in.MemoryGiB != 432 {
		t.Errorf("hw %s x%d %vGiB cpus %v mem %v", in.GPUModel, in.GPUCount, in.GPUMemGiB, in.CPUs, in.MemoryGiB)
	}
	if in.Price != (providers.Price{PerHour: 1.49, Currency: "USD", Source: "lambda:price_cents_per_hour"}) {
		t.Errorf("price %+v", in.Price)
	}
	want := providers.SSHEndpoint{Kind: providers.EndpointDirect, Host: "198.51.100.2", Port: 22, User: "ubuntu"}
	if len(in.SSH) != 1 || in.SSH[0] != want || in.PublicIP != "198.51.100.2" {
		t.Errorf("ssh %+v", in.SSH)
	}
	if !in.CreatedAt.IsZero() {
		t.Error("Lambda gives no creation time; CreatedAt must stay zero")
	}
}

func TestParseInstanceTypes(t *testing.T) {
	cases := []struct {
		typ, desc string
		gpus      any
		model     string
		count     int
		mem       float64
	}{
		{"gpu_1x_a10", "A10 (24 GB PCIe)", 1, "A10", 1, 24},
		{"gpu_8x_h100_sxm5", "H100 (80 GB SXM5)", 8, "H100", 8, 80},
		{"gpu_1x_a6000", "", "<delete>", "RTX A6000", 1, 0},
		{"gpu_2x_a100_sxm4", "", "<delete>", "A100", 2, 0},
		{"gpu_1x_mystery", "", "<delete>", "gpu_1x_mystery", 1, 0},
	}
	for _, c := range cases {
		specs := map[string]any{"vcpus": 30, "memory_gib": 200, "storage_gib": 1400}
		if c.gpus != "<delete>" {
			specs["gpus"] = c.gpus
		}
		b := instWith(t, map[string]any{"instance_type": map[string]any{"name": c.typ, "gpu_description": c.desc,
			"price_cents_per_hour": 86, "specs": specs}})
		in, err := testClient(t).parseInstance(b)
		if err != nil {
			t.Fatal(err)
		}
		if in.GPUModel != c.model || in.GPUCount != c.count || in.GPUMemGiB != c.mem || in.Price.PerHour != 0.86 {
			t.Errorf("%s: %s x%d %v GiB $%v; want %s x%d %v", c.typ, in.GPUModel, in.GPUCount, in.GPUMemGiB, in.Price.PerHour, c.model, c.count, c.mem)
		}
	}
}

func TestParseStatuses(t *testing.T) {
	cases := map[string]providers.State{
		"booting": providers.StateStarting, "active": providers.StateRunning, "unhealthy": providers.StateError,
		"terminating": providers.StateStopping, "terminated": providers.StateTerminated,
		"preempted": providers.StatePreempted, "sleeping": providers.StateUnknown,
	}
	for status, want := range cases {
		in, err := testClient(t).parseInstance(instWith(t, map[string]any{"status": status}))
		if err != nil {
			t.Fatal(err)
		}
		if in.State != want || in.Interrupted != (status == "preempted") || in.RawState != status {
			t.Errorf("%s: %s interrupted %v", status, in.State, in.Interrupted)
		}
	}
}

func TestParseBootingInstanceWithoutIP(t *testing.T) {
	in, err := testClient(t).parseInstance(instWith(t, map[string]any{"status": "booting", "ip": nil, "name": "<delete>"}))
	if err != nil {
		t.Fatal(err)
	}
	if len(in.SSH) != 0 || in.PublicIP != "" || in.Name != "" {
		t.Errorf("%+v", in)
	}
}

func TestParseRejectsBadFields(t *testing.T) {
	cases := []struct {
		set   map[string]any
		field string
	}{
		{map[string]any{"id": "<delete>"}, "id"},
		{map[string]any{"status": 3}, "status"},
		{map[string]any{"instance_type": map[string]any{"name": "gpu_1x_a10", "price_cents_per_hour": "86"}}, "price_cents_per_hour"},
		{map[string]any{"instance_type": map[string]any{"name": "gpu_1x_a10", "price_cents_per_hour": -5}}, "price_cents_per_hour"},
		{map[string]any{"region": "us-east-3"}, "region"},
	}
	for _, c := range cases {
		_, err := testClient(t).parseInstance(instWith(t, c.set))
		if err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%v: err = %v, want one naming %q", c.set, err, c.field)
		}
	}
}

func TestErrorCodes(t *testing.T) {
	cases := []struct {
		status int
		code   string
		want   providers.ErrorKind
	}{
		{401, "global/invalid-api-key", providers.KindAuth},
		{403, "global/account-inactive", providers.KindAuth},
		{404, "global/object-does-not-exist", providers.KindNotFound},
		{409, "global/conflict", providers.KindConflict},
		{400, "global/invalid-parameters", providers.KindInvalid},
		{400, "instance-operations/launch/insufficient-capacity", providers.KindInvalid},
		{502, "provider/internal-unavailable", providers.KindTransient},
		{500, "global/unknown", ""},
	}
	for _, c := range cases {
		body := `{"error":{"code":"` + c.code + `","message":"m","suggestion":"s"}}`
		info := parseError(c.status, nil, []byte(body))
		if info.Kind != c.want || info.Code != c.code || info.Message != "m (s)" {
			t.Errorf("%s: %+v", c.code, info)
		}
	}
}
