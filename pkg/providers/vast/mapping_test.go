package vast

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ringmesh/ringmesh/pkg/providers"
)

// docInstance is the example object of docs/provider-apis.md §1 (fake values).
const docInstance = `{"id": 31337001, "machine_id": 4242, "host_id": 77, "label": "fleet-node-3",
 "actual_status": "running", "intended_status": "running", "cur_state": "running", "next_state": "running",
 "status_msg": "success, running vastai/base-image_…/ssh",
 "image_uuid": "vastai/base-image:cuda-12.4", "image_runtype": "ssh_direc ssh_proxy", "image_args": [],
 "extra_env": [["FOO","bar"],["-p 8080:8080","1"]], "onstart": "bash start.sh",
 "gpu_name": "RTX 4090", "num_gpus": 1, "gpu_ram": 24564, "gpu_totalram": 24564, "gpu_util": 0.0, "gpu_temp": 38.0,
 "cpu_cores_effective": 8.0, "cpu_ram": 64000, "disk_space": 20.0, "inet_up": 900.0, "inet_down": 900.0,
 "public_ipaddr": "203.0.113.45", "local_ipaddrs": "10.0.0.5 172.17.0.2\n",
 "ssh_host": "ssh5.vast.ai", "ssh_port": 10600, "ssh_idx": "5", "machine_dir_ssh_port": 21000,
 "direct_port_start": 40000, "direct_port_end": 40010,
 "ports": {"22/tcp": [{"HostIp": "0.0.0.0", "HostPort": "40001"}], "8080/tcp": [{"HostIp": "0.0.0.0", "HostPort": "40002"}]},
 "dph_base": 0.30, "dph_total": 0.3021, "min_bid": 0.15, "is_bid": false,
 "start_date": 1764400000.12, "end_date": 1767000000.0, "uptime_mins": 42.5, "duration": 86400.0,
 "reliability2": 0.993, "verification": "verified", "geolocation": "Texas, US", "jupyter_token": "…",
 "template_id": null, "template_hash_id": null, "template_name": null}`

// withFields returns docInstance with fields replaced (nil deletes a field).
func withFields(t *testing.T, set map[string]any) []byte {
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
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseDocumentedInstance(t *testing.T) {
	in, err := parseInstance([]byte(docInstance))
	if err != nil {
		t.Fatal(err)
	}
	if in.ID != "31337001" || in.Provider != "vast" || in.Name != "fleet-node-3" {
		t.Errorf("identity: %+v", in)
	}
	if in.State != providers.StateRunning || in.RawState != "running" || in.Interrupted || in.Interruptible {
		t.Errorf("state: %s raw %q interrupted %v", in.State, in.RawState, in.Interrupted)
	}
	if in.GPUModel != "RTX 4090" || in.GPUCount != 1 || in.GPUMemGiB != 24564.0/1024 {
		t.Errorf("gpu: %s x%d %.3f GiB", in.GPUModel, in.GPUCount, in.GPUMemGiB)
	}
	if in.CPUs != 8 || in.MemoryGiB != 64000.0/1024 || in.Region != "Texas, US" || in.PublicIP != "203.0.113.45" {
		t.Errorf("host: cpus %v mem %v region %q ip %q", in.CPUs, in.MemoryGiB, in.Region, in.PublicIP)
	}
	if in.Price != (providers.Price{PerHour: 0.3021, Currency: "USD", Source: "vast:dph_total"}) {
		t.Errorf("price: %+v", in.Price)
	}
	if want := time.Unix(1764400000, 120000000).UTC(); !in.CreatedAt.Equal(want) {
		t.Errorf("created %v, want %v", in.CreatedAt, want)
	}
	want := []providers.SSHEndpoint{
		{Kind: providers.EndpointProxy, Host: "ssh5.vast.ai", Port: 10600, User: "root"},
		{Kind: providers.EndpointDirect, Host: "203.0.113.45", Port: 40001, User: "root"},
	}
	if len(in.SSH) != 2 || in.SSH[0] != want[0] || in.SSH[1] != want[1] {
		t.Errorf("ssh = %+v, want %+v", in.SSH, want)
	}
}

// Seed README fact: node vast-29129529 is reached as root@ssh6.vast.ai -p 19528.
func TestSeedNodeProxyEndpoint(t *testing.T) {
	in, err := parseInstance(withFields(t, map[string]any{
		"id": 29129529, "label": "vast-29129529", "ssh_host": "ssh6.vast.ai", "ssh_port": 19528, "ssh_idx": "6",
	}))
	if err != nil {
		t.Fatal(err)
	}
	proxy, ok := in.Endpoint(providers.EndpointProxy)
	if !ok || proxy != (providers.SSHEndpoint{Kind: providers.EndpointProxy, Host: "ssh6.vast.ai", Port: 19528, User: "root"}) {
		t.Fatalf("proxy endpoint = %+v %v, want root@ssh6.vast.ai:19528", proxy, ok)
	}
	// Never mixed: the direct endpoint keeps its own host and port.
	direct, ok := in.Endpoint(providers.EndpointDirect)
	if !ok || direct.Host != "203.0.113.45" || direct.Port != 40001 {
		t.Errorf("direct endpoint = %+v", direct)
	}
	for _, e := range in.SSH {
		if (e.Host == "203.0.113.45" && e.Port == 19528) || (e.Host == "ssh6.vast.ai" && e.Port == 40001) {
			t.Errorf("mixed endpoint %v", e)
		}
		if strings.HasPrefix(e.Host, "6.vast.ai") {
			t.Errorf("host mangled: %v", e)
		}
	}
}

func TestParseNullsAndAbsentFields(t *testing.T) {
	in, err := parseInstance(withFields(t, map[string]any{
		"label": nil, "actual_status": nil, "ports": nil, "dph_total": nil, "public_ipaddr": nil,
		"gpu_name": nil, "start_date": nil, "ssh_host": "<delete>", "geolocation": nil,
	}))
	if err != nil {
		t.Fatal(err)
	}
	if in.Name != "" || in.State != providers.StatePending || in.RawState != "" {
		t.Errorf("null label/status: name %q state %s raw %q", in.Name, in.State, in.RawState)
	}
	if in.Price.Known() {
		t.Errorf("null dph_total must leave the price unknown, got %+v", in.Price)
	}
	if len(in.SSH) != 0 || in.PublicIP != "" || in.GPUModel != "" || !in.CreatedAt.IsZero() {
		t.Errorf("absent fields invented values: %+v", in)
	}
}

func TestParseJupyterRuntypeUsesNextProxyPort(t *testing.T) {
	in, err := parseInstance(withFields(t, map[string]any{"image_runtype": "jupyter_direc ssh_direc ssh_proxy"}))
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := in.Endpoint(providers.EndpointProxy); p.Port != 10601 {
		t.Errorf("jupyter proxy port = %d, want ssh_port+1", p.Port)
	}
}

func TestParseHostPortAsNumber(t *testing.T) {
	in, err := parseInstance(withFields(t, map[string]any{
		"ports": map[string]any{"22/tcp": []any{map[string]any{"HostIp": "0.0.0.0", "HostPort": 40555}}},
	}))
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := in.Endpoint(providers.EndpointDirect); d.Port != 40555 {
		t.Errorf("direct port = %d", d.Port)
	}
}

func TestParseRejectsBadFields(t *testing.T) {
	cases := []struct {
		name  string
		set   map[string]any
		field string
	}{
		{"id missing", map[string]any{"id": "<delete>"}, "id"},
		{"id string", map[string]any{"id": "31337001"}, "id"},
		{"gpu_ram string", map[string]any{"gpu_ram": "lots"}, "gpu_ram"},
		{"ssh_port string", map[string]any{"ssh_port": "19528"}, "ssh_port"},
		{"HostPort garbage", map[string]any{"ports": map[string]any{"22/tcp": []any{map[string]any{"HostPort": "22a"}}}}, "HostPort"},
		{"ports wrong shape", map[string]any{"ports": []any{22, 40001}}, "ports"},
		{"negative price", map[string]any{"dph_total": -1}, "dph_total"},
		{"fractional gpus", map[string]any{"num_gpus": 1.5}, "num_gpus"},
	}
	for _, c := range cases {
		_, err := parseInstance(withFields(t, c.set))
		if err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%s: err = %v, want one naming %q", c.name, err, c.field)
		}
	}
}

func TestMapStates(t *testing.T) {
	type st struct {
		actual, intended, cur, next any
		bid                         bool
		want                        providers.State
		interrupted                 bool
	}
	cases := []st{
		{nil, "running", "running", "running", false, providers.StatePending, false},
		{"created", "running", "running", "running", false, providers.StatePending, false},
		{"loading", "running", "running", "running", false, providers.StateStarting, false},
		{"scheduling", "running", "stopped", "running", false, providers.StateStarting, false},
		{"rebooting", "running", "running", "running", false, providers.StateStarting, false},
		{"running", "running", "running", "running", false, providers.StateRunning, false},
		{"running", "stopped", "running", "stopped", false, providers.StateStopping, false},
		{"stopped", "stopped", "stopped", "stopped", false, providers.StateStopped, false},
		{"stopped", "running", "stopped", "running", false, providers.StateStarting, false},
		{"frozen", "frozen", "running", "running", false, providers.StatePaused, false},
		{"exited", "running", "running", "running", false, providers.StateError, false},
		{"exited", "stopped", "stopped", "stopped", false, providers.StateStopped, false},
		{"unknown", "running", "running", "running", false, providers.StateUnknown, false},
		{"offline", "running", "running", "running", false, providers.StateUnknown, false},
		{"teleporting", "running", "running", "running", false, providers.StateUnknown, false},
		{"running", "running", "unloaded", "unloaded", false, providers.StateTerminated, false},
		// Preemption of bid instances.
		{"stopped", "running", "stopped", "stopped", true, providers.StatePreempted, true}, // rule (a)
		{"stopped", "running", "running", "running", true, providers.StatePreempted, true}, // rule (a), actual only
		{nil, "running", "stopped", "running", true, providers.StatePreempted, true},       // rule (a), null actual
		{"stopped", "stopped", "stopped", "stopped", true, providers.StatePreempted, true}, // rule (b), dstack
		{"running", "running", "running", "running", true, providers.StateRunning, false},  // healthy bid
		{"loading", "running", "running", "running", true, providers.StateStarting, false}, // bid starting
		{"stopped", "stopped", "running", "stopped", true, providers.StateStopped, false},  // being stopped, not yet all stopped
	}
	for _, c := range cases {
		b := withFields(t, map[string]any{"actual_status": c.actual, "intended_status": c.intended,
			"cur_state": c.cur, "next_state": c.next, "is_bid": c.bid})
		in, err := parseInstance(b)
		if err != nil {
			t.Fatal(err)
		}
		if in.State != c.want || in.Interrupted != c.interrupted || in.Interruptible != c.bid {
			t.Errorf("actual=%v intended=%v cur=%v next=%v bid=%v: %s interrupted=%v; want %s %v",
				c.actual, c.intended, c.cur, c.next, c.bid, in.State, in.Interrupted, c.want, c.interrupted)
		}
		if s, ok := c.actual.(string); ok && in.RawState != s {
			t.Errorf("RawState %q, want %q", in.RawState, s)
		}
	}
}

func TestParseErrorBodies(t *testing.T) {
	cases := []struct {
		body string
		kind providers.ErrorKind
		code string
	}{
		{"API requests too frequent", providers.KindRateLimited, ""},
		{"API requests too frequent: endpoint threshold=2.0", providers.KindRateLimited, ""},
		{`{"detail":"API requests too frequent endpoint threshold=2.0"}`, providers.KindRateLimited, ""},
		{`{"success":false,"error":"no_such_instance","msg":"Instance 1 not found."}`, providers.KindNotFound, "no_such_instance"},
		{`{"success":false,"error":"auth_error","msg":"Invalid user key"}`, providers.KindAuth, "auth_error"},
		{`{"success":false,"error":"invalid_args","msg":"bad"}`, "", "invalid_args"},
	}
	for _, c := range cases {
		info := parseError(400, nil, []byte(c.body))
		if info.Kind != c.kind || info.Code != c.code || info.Message == "" {
			t.Errorf("%s: %+v", c.body, info)
		}
	}
}

// Endpoint strings are trimmed; one with whitespace or option text inside
// is refused (no endpoint rather than an ssh config injection).
func TestParseTrimsEndpointStrings(t *testing.T) {
	in, err := parseInstance(withFields(t, map[string]any{"public_ipaddr": "\t203.0.113.45 \n", "ssh_host": " ssh5.vast.ai\n"}))
	if err != nil {
		t.Fatal(err)
	}
	d, okD := in.Endpoint(providers.EndpointDirect)
	p, okP := in.Endpoint(providers.EndpointProxy)
	if in.PublicIP != "203.0.113.45" || !okD || d.Host != "203.0.113.45" || !okP || p.Host != "ssh5.vast.ai" {
		t.Errorf("padded strings: ip %q endpoints %+v", in.PublicIP, in.SSH)
	}
	in, err = parseInstance(withFields(t, map[string]any{"public_ipaddr": "203.0.113.45\nProxyCommand x", "ssh_host": "-oProxyCommand=x"}))
	if err != nil {
		t.Fatal(err)
	}
	if in.PublicIP != "" || len(in.SSH) != 0 {
		t.Errorf("hostile strings became endpoints: ip %q %+v", in.PublicIP, in.SSH)
	}
}
