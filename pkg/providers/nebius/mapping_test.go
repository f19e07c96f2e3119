package nebius

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/ringmesh/ringmesh/pkg/providers"
)

// Documented CLI JSON (nebius.compute.v1.Instance, snake_case), fake values:
// a running H100 with a CIDR public address, a preemptible VM stopped by
// preemption, a CPU VM with nulls, and odd states.
const listJSON = `{"items":[
{"metadata":{"id":"computeinstance-e00aaa","parent_id":"project-e00p","name":"nebius-h100-1",
  "resource_version":"7","created_at":"2026-11-20T09:30:00.123456Z","updated_at":"2026-11-21T00:00:00Z",
  "labels":{"team":"rl"}},
 "spec":{"resources":{"platform":"gpu-h100-sxm","preset":"1gpu-16vcpu-200gb"},"stopped":false,
  "recovery_policy":"RECOVER","hostname":"nebius-h100-1"},
 "status":{"state":"RUNNING","network_interfaces":[{"index":0,"name":"eth0",
   "ip_address":{"address":"10.0.0.5/32"},"public_ip_address":{"address":"203.0.113.9/32","static":true}}],
   "reconciling":false}},
{"metadata":{"id":"computeinstance-e00bbb","name":"nebius-spot"},
 "spec":{"resources":{"platform":"gpu-h200-sxm","preset":"8gpu-128vcpu-1600gb"},
  "preemptible":{"on_preemption":"STOP"},"recovery_policy":"FAIL","stopped":false},
 "status":{"state":"STOPPED","network_interfaces":[{"index":0,"ip_address":{"address":"10.0.0.6/32"},"public_ip_address":null}]}},
{"metadata":{"id":"computeinstance-e00ccc","name":"cpu","labels":null,"created_at":null},
 "spec":{"resources":{"platform":"cpu-d3","preset":"4vcpu-16gb"}},"status":null},
{"metadata":{"id":"computeinstance-e00ddd","name":"b200"},
 "spec":{"resources":{"platform":"gpu-b200-sxm","preset":"weird"}},
 "status":{"state":"UPDATING","network_interfaces":[{"public_ip_address":{"address":"not-an-ip/32"}}]}}
],"next_page_token":""}`

func TestToInstanceFromDocumentedJSON(t *testing.T) {
	p, err := New(Options{Binary: "", Prices: map[string]providers.Price{
		"gpu-h100-sxm/1gpu-16vcpu-200gb": {PerHour: 2.95, Currency: "USD"},
		"computeinstance-e00bbb":         {PerHour: 9.6},
	}})
	if err != nil {
		t.Fatal(err)
	}
	var page wireList
	if err := json.Unmarshal([]byte(listJSON), &page); err != nil {
		t.Fatal(err)
	}
	var got []providers.Instance
	for _, in := range page.Items {
		got = append(got, p.toInstance(in))
	}

	a := got[0]
	if a.State != providers.StateRunning || a.RawState != "RUNNING" || a.Provider != "nebius" || a.Name != "nebius-h100-1" {
		t.Errorf("a = %+v", a)
	}
	if a.PublicIP != "203.0.113.9" || len(a.SSH) != 1 || a.SSH[0].String() != "ubuntu@203.0.113.9:22" {
		t.Errorf("CIDR must be stripped: %q %+v", a.PublicIP, a.SSH)
	}
	if a.GPUModel != "H100" || a.GPUCount != 1 || a.GPUMemGiB != 80 || a.CPUs != 16 || a.MemoryGiB != 200 {
		t.Errorf("resources = %q x%d %v GiB, %v cpu, %v GiB", a.GPUModel, a.GPUCount, a.GPUMemGiB, a.CPUs, a.MemoryGiB)
	}
	if a.Price != (providers.Price{PerHour: 2.95, Currency: "USD", Source: "config"}) {
		t.Errorf("price = %+v", a.Price)
	}
	if !a.CreatedAt.Equal(time.Date(2026, 11, 20, 9, 30, 0, 123456000, time.UTC)) {
		t.Errorf("created = %v", a.CreatedAt)
	}
	if a.Labels["team"] != "rl" || a.Labels[LabelPlatform] != "gpu-h100-sxm" || IsPreemptible(a) {
		t.Errorf("labels = %v", a.Labels)
	}

	b := got[1]
	if b.State != providers.StatePreempted || !b.Interrupted || !IsPreemptible(b) {
		t.Errorf("preempted VM = %q interrupted=%v labels=%v", b.State, b.Interrupted, b.Labels)
	}
	if b.PublicIP != "" || len(b.SSH) != 0 {
		t.Errorf("null public address must give no endpoint: %+v", b.SSH)
	}
	if b.GPUModel != "H200" || b.GPUCount != 8 || b.GPUMemGiB != 141 {
		t.Errorf("h200 = %q x%d %v", b.GPUModel, b.GPUCount, b.GPUMemGiB)
	}
	if b.Price.PerHour != 9.6 || b.Price.Currency != "USD" || b.Price.Source != "config" {
		t.Errorf("price by id = %+v", b.Price)
	}
	if b.Billable(p.Capabilities()) {
		t.Error("a stopped Nebius VM is not billed for compute")
	}

	c := got[2]
	if c.State != providers.StateUnknown || c.RawState != "" || c.GPUModel != "" || c.GPUCount != 0 || c.CPUs != 4 || c.MemoryGiB != 16 {
		t.Errorf("cpu vm = %+v", c)
	}
	if c.Price.Known() || !c.CreatedAt.IsZero() {
		t.Errorf("unknowns = %+v %v", c.Price, c.CreatedAt)
	}

	d := got[3]
	if d.State != providers.StateStarting || d.GPUModel != "gpu-b200-sxm" || d.GPUMemGiB != 0 || d.PublicIP != "" {
		t.Errorf("b200 = %+v", d)
	}
}

func TestMapStates(t *testing.T) {
	for s, want := range map[string]providers.State{
		"CREATING": providers.StatePending, "UPDATING": providers.StateStarting, "STARTING": providers.StateStarting,
		"RUNNING": providers.StateRunning, "STOPPING": providers.StateStopping, "STOPPED": providers.StateStopped,
		"DELETING": providers.StateTerminated, "ERROR": providers.StateError, "UNSPECIFIED": providers.StateUnknown,
		"": providers.StateUnknown, "HIBERNATING": providers.StateUnknown, "running": providers.StateRunning,
	} {
		got, _ := mapState(wireInstance{Status: &wireStatus{State: s}})
		if got != want {
			t.Errorf("%q -> %q, want %q", s, got, want)
		}
	}
	// A preemptible VM stopped on request is "stopped", not "preempted".
	in := wireInstance{Status: &wireStatus{State: "STOPPED"}}
	in.Spec.Stopped = true
	in.Spec.Preemptible = &struct {
		OnPreemption string `json:"on_preemption"`
	}{"STOP"}
	if got, interrupted := mapState(in); got != providers.StateStopped || interrupted {
		t.Errorf("requested stop of preemptible -> %q %v", got, interrupted)
	}
}

func TestClassifyStderr(t *testing.T) {
	for msg, want := range map[string]providers.ErrorKind{
		"Error: rpc error: code = NotFound desc = instance x not found":    providers.KindNotFound,
		"Error: rpc error: code = Unauthenticated desc = token expired":    providers.KindAuth,
		"Error: rpc error: code = PermissionDenied desc = nope":            providers.KindAuth,
		"Error: rpc error: code = ResourceExhausted desc = quota":          providers.KindRateLimited,
		"Error: rpc error: code = Unavailable desc = connection error":     providers.KindTransient,
		"Error: rpc error: code = FailedPrecondition desc = instance is x": providers.KindConflict,
		"Error: unknown flag: --bogus":                                     providers.KindInvalid,
		"segmentation fault":                                               providers.KindTransient,
		// Not-found words from the CLI itself are not the VM's not-found.
		`Error: profile "prod" not found`:                     providers.KindTransient,
		"open /root/.nebius/config.yaml: file does not exist": providers.KindTransient,
		"": providers.KindTransient,
	} {
		if got, _ := classifyStderr(msg); got != want {
			t.Errorf("%q -> %q, want %q", msg, got, want)
		}
	}
}

// protojson (grpcurl, the CLI) prints lowerCamelCase JSON names; the same
// instance in either spelling maps to the same Instance. Label keys are data
// and keep their spelling. A preemptible VM is Interruptible (the node's
// ephemeral default).
func TestCamelCaseAndSnakeCaseAreTheSame(t *testing.T) {
	const camel = `{"items":[
{"metadata":{"id":"computeinstance-e00bbb","parentId":"project-e00p","name":"nebius-spot",
  "resourceVersion":"7","createdAt":"2026-11-20T09:30:00Z","labels":{"teamName":"rl","cost_center":"x"}},
 "spec":{"resources":{"platform":"gpu-h200-sxm","preset":"8gpu-128vcpu-1600gb"},
  "preemptible":{"onPreemption":"STOP"},"recoveryPolicy":"FAIL","stopped":false},
 "status":{"state":"RUNNING","networkInterfaces":[{"index":0,"ipAddress":{"address":"10.0.0.6/32"},
   "publicIpAddress":{"address":"203.0.113.10/32"}}],"reconciling":false}}
],"nextPageToken":"tok-2"}`
	const snake = `{"items":[
{"metadata":{"id":"computeinstance-e00bbb","parent_id":"project-e00p","name":"nebius-spot",
  "resource_version":"7","created_at":"2026-11-20T09:30:00Z","labels":{"teamName":"rl","cost_center":"x"}},
 "spec":{"resources":{"platform":"gpu-h200-sxm","preset":"8gpu-128vcpu-1600gb"},
  "preemptible":{"on_preemption":"STOP"},"recovery_policy":"FAIL","stopped":false},
 "status":{"state":"RUNNING","network_interfaces":[{"index":0,"ip_address":{"address":"10.0.0.6/32"},
   "public_ip_address":{"address":"203.0.113.10/32"}}],"reconciling":false}}
],"next_page_token":"tok-2"}`
	p, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got [2]providers.Instance
	for i, doc := range []string{camel, snake} {
		var page wireList
		if err := decode([]byte(doc), &page); err != nil {
			t.Fatalf("doc %d: %v", i, err)
		}
		if page.NextPageToken != "tok-2" || len(page.Items) != 1 {
			t.Fatalf("doc %d: token %q, %d items", i, page.NextPageToken, len(page.Items))
		}
		got[i] = p.toInstance(page.Items[0])
	}
	c, s := got[0], got[1]
	if c.PublicIP != "203.0.113.10" || c.CreatedAt.IsZero() || !IsPreemptible(c) || c.Labels["teamName"] != "rl" {
		t.Errorf("camelCase instance: %+v", c)
	}
	if !c.Interruptible || !s.Interruptible {
		t.Errorf("preemptible VM not interruptible: camel %v snake %v", c.Interruptible, s.Interruptible)
	}
	cj, _ := json.Marshal(c)
	sj, _ := json.Marshal(s)
	if string(cj) != string(sj) {
		t.Errorf("spellings differ:\ncamel %s\nsnake %s", cj, sj)
	}
	var in wireInstance
	if err := json.Unmarshal([]byte(`{"metadata":{"id":"x","parentId":"a","parent_id":"b"}}`), &in); err == nil {
		t.Error("a field given in both spellings must be refused")
	}
}
