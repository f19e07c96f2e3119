package runpod

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ringmesh/ringmesh/pkg/providers"
)

// docPod follows the v2 Pod of docs/provider-apis.md §2b (fake values).
const docPod = `{"id":"xedezhzb9la3ye","name":"runpod-h100-1","status":"RUNNING",
 "actions":["stop","restart","terminate"],"image":"runpod/pytorch:2.4.0","args":[],"disk":50,
 "mounts":{"persistent":{"size":20,"path":"/workspace"}},"ports":["22/tcp","8888/http"],"env":{},
 "registry":null,"cloud":"SECURE","dataCenterId":"EU-RO-1","cudaVersion":"12.4",
 "ssh":{"proxy":{"host":"ssh.runpod.io","port":22,"username":"xedezhzb9la3ye-64411eb2","command":"ssh xedezhzb9la3ye-64411eb2@ssh.runpod.io"},
        "direct":{"host":"203.0.113.77","port":34446,"username":"root","command":"ssh root@203.0.113.77 -p 34446"}},
 "template":null,"cost":2.69,"locked":false,
 "runtime":{"uptime":3600,"gpus":[{"util":97,"memoryUtil":80}],"cpu":12,"memory":40,
            "ports":[{"private":22,"public":34446,"type":"tcp","ip":"203.0.113.77"},{"private":8888,"public":34447,"type":"http","ip":"203.0.113.77"}]},
 "createdAt":"2026-11-28T09:00:00Z","startedAt":"2026-11-28T09:01:00Z","globalNetworking":false,
 "gpu":{"id":"NVIDIA H100 80GB HBM3","count":2}}`

func podWith(t *testing.T, set map[string]any) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(docPod), &m); err != nil {
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

func TestParseDocumentedPod(t *testing.T) {
	in, err := parsePod([]byte(docPod))
	if err != nil {
		t.Fatal(err)
	}
	if in.ID != "xedezhzb9la3ye" || in.Provider != "runpod" || in.Name != "runpod-h100-1" || in.Region != "EU-RO-1" {
		t.Errorf("identity %+v", in)
	}
	if in.State != providers.StateRunning || in.RawState != "RUNNING" || in.Interruptible || in.Interrupted {
		t.Errorf("state %s %q", in.State, in.RawState)
	}
	if in.GPUModel != "H100" || in.GPUCount != 2 || in.GPUMemGiB != 0 || in.CPUs != 0 {
		t.Errorf("gpu %s x%d mem %v cpus %v (v2 gives no memory/CPU figures: 0 = unknown)", in.GPUModel, in.GPUCount, in.GPUMemGiB, in.CPUs)
	}
	if in.Price != (providers.Price{PerHour: 2.69, Currency: "USD", Source: "runpod:cost"}) {
		t.Errorf("price %+v", in.Price)
	}
	if !in.CreatedAt.Equal(time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)) {
		t.Errorf("created %v", in.CreatedAt)
	}
	want := []providers.SSHEndpoint{
		{Kind: providers.EndpointProxy, Host: "ssh.runpod.io", Port: 22, User: "xedezhzb9la3ye-64411eb2"},
		{Kind: providers.EndpointDirect, Host: "203.0.113.77", Port: 34446, User: "root"},
	}
	if len(in.SSH) != 2 || in.SSH[0] != want[0] || in.SSH[1] != want[1] {
		t.Errorf("ssh %+v", in.SSH)
	}
	if in.PublicIP != "203.0.113.77" || in.Labels["cloud"] != "SECURE" {
		t.Errorf("ip %q labels %v", in.PublicIP, in.Labels)
	}
}

func TestParseExitedPodHasKnownZeroPrice(t *testing.T) {
	in, err := parsePod(podWith(t, map[string]any{"status": "EXITED", "cost": 0.0, "runtime": nil,
		"ssh": map[string]any{"proxy": map[string]any{"host": "ssh.runpod.io", "port": 22, "username": "xedezhzb9la3ye-64411eb2"}, "direct": nil}}))
	if err != nil {
		t.Fatal(err)
	}
	if in.State != providers.StateStopped || in.Interrupted {
		t.Errorf("state %s", in.State)
	}
	if !in.Price.Known() || in.Price.PerHour != 0 {
		t.Errorf("EXITED cost 0 is a measured price, got %+v", in.Price)
	}
	if len(in.SSH) != 1 || in.SSH[0].Kind != providers.EndpointProxy || in.PublicIP != "" {
		t.Errorf("ssh %+v ip %q", in.SSH, in.PublicIP)
	}
	noCost, err := parsePod(podWith(t, map[string]any{"cost": nil}))
	if err != nil || noCost.Price.Known() {
		t.Errorf("null cost must be unknown: %+v %v", noCost.Price, err)
	}
}

func TestParseStatuses(t *testing.T) {
	cases := []struct {
		status        any
		interruptible bool
		want          providers.State
	}{
		{"PROVISIONING", false, providers.StatePending},
		{"STARTING", false, providers.StateStarting},
		{"RUNNING", false, providers.StateRunning},
		{"RUNNING", true, providers.StateRunning},
		{"EXITED", false, providers.StateStopped},
		{"EXITED", true, providers.StatePreempted},
		{"ERROR", false, providers.StateError},
		{"TERMINATED", false, providers.StateTerminated},
		{"MIGRATING", false, providers.StateUnknown},
		{nil, false, providers.StateUnknown},
	}
	for _, c := range cases {
		in, err := parsePod(podWith(t, map[string]any{"status": c.status, "interruptible": c.interruptible}))
		if err != nil {
			t.Fatal(err)
		}
		if in.State != c.want || in.Interrupted != (c.want == providers.StatePreempted) || in.Interruptible != c.interruptible {
			t.Errorf("status %v interruptible %v: %s interrupted %v", c.status, c.interruptible, in.State, in.Interrupted)
		}
	}
}

func TestParseDirectFromRuntimePortsWhenSSHDirectNull(t *testing.T) {
	in, err := parsePod(podWith(t, map[string]any{
		"ssh": map[string]any{"proxy": nil, "direct": nil},
		"runtime": map[string]any{"ports": []any{
			map[string]any{"private": 8888, "public": 30000, "type": "http", "ip": "203.0.113.9"},
			map[string]any{"private": 22, "public": 30001, "type": "tcp", "ip": "203.0.113.9"},
		}},
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := providers.SSHEndpoint{Kind: providers.EndpointDirect, Host: "203.0.113.9", Port: 30001, User: "root"}
	if len(in.SSH) != 1 || in.SSH[0] != want {
		t.Errorf("ssh %+v, want %+v", in.SSH, want)
	}
}

func TestParseRejectsBadFields(t *testing.T) {
	cases := []struct {
		set   map[string]any
		field string
	}{
		{map[string]any{"id": "<delete>"}, "id"},
		{map[string]any{"id": 42}, "id"},
		{map[string]any{"cost": "0.69"}, "cost"},
		{map[string]any{"createdAt": "yesterday"}, "createdAt"},
		{map[string]any{"gpu": map[string]any{"id": "x", "count": 1.5}}, "gpu.count"},
		{map[string]any{"ssh": map[string]any{"direct": map[string]any{"host": "h", "port": 70000}}}, "ssh.direct.port"},
		{map[string]any{"runtime": map[string]any{"ports": []any{map[string]any{"private": 22, "public": "x"}}}}, "public"},
	}
	for _, c := range cases {
		_, err := parsePod(podWith(t, c.set))
		if err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%v: err = %v, want one naming %q", c.set, err, c.field)
		}
	}
}

func TestParseProblemDocument(t *testing.T) {
	info := parseError(409, nil, []byte(`{"title":"Conflict","status":409,"detail":"pod is not running"}`))
	if info.Message != "Conflict: pod is not running" || info.Kind != "" {
		t.Errorf("%+v", info)
	}
	if info := parseError(500, nil, []byte("<html>oops</html>")); info.Message != "" {
		t.Errorf("non-JSON body: %+v", info)
	}
}
