package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ringmesh/ringmesh/pkg/events"
	"github.com/ringmesh/ringmesh/pkg/paths"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func raw(t testing.TB, kind, id, node string, ts time.Time, body any) []byte {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]any{"schema": "mesh.v1." + kind, "id": id, "node": node, "ts": ts.Format(time.RFC3339Nano), "body": json.RawMessage(b)}
	out, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func newDec(t testing.TB) *Decoder {
	t.Helper()
	d, err := NewDecoder(Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func goodHello() events.Hello {
	return events.Hello{AgentVersion: "v1", Boot: "b1", Provider: "vast", Paths: paths.For("vast", "", nil), HeartbeatIntervalSeconds: 5,
		SSH: []events.Endpoint{{Kind: "direct", Host: "ssh6.vast.ai", Port: 19528, User: "root"}}, HostKeyFingerprint: "SHA256:" + strings.Repeat("a", 43)}
}

func TestDecodeHelloOnce(t *testing.T) {
	d := newDec(t)
	m, err := d.Decode("mesh.v1.evt.vast-1.hello", raw(t, "hello", "vast-1:b1:7", "vast-1", t0, goodHello()), t0)
	if err != nil {
		t.Fatal(err)
	}
	if m.Kind != "hello" || m.Node != "vast-1" || m.Boot != "b1" || m.Seq != 7 || m.Hello == nil || m.Hello.SSH[0].Host != "ssh6.vast.ai" {
		t.Fatalf("decoded %+v", m)
	}
}

func TestDecodeRefusals(t *testing.T) {
	d := newDec(t)
	h := goodHello()
	mut := func(f func(*events.Hello)) events.Hello { x := goodHello(); f(&x); return x }
	cases := []struct {
		name, subj string
		data       []byte
		want       string
	}{
		{"newline in fingerprint", "mesh.v1.evt.vast-1.hello", raw(t, "hello", "vast-1:b1:1", "vast-1", t0, mut(func(x *events.Hello) {
			x.HostKeyFingerprint = "SHA256:" + strings.Repeat("a", 43) + "\nHost *\n  ProxyCommand x"
		})), "host_key_fingerprint"},
		{"user as option", "mesh.v1.evt.vast-1.hello", raw(t, "hello", "vast-1:b1:1", "vast-1", t0, mut(func(x *events.Hello) { x.SSH[0].User = "-oProxyCommand=x" })), "/body/ssh/0/user"},
		{"host with space", "mesh.v1.evt.vast-1.hello", raw(t, "hello", "vast-1:b1:1", "vast-1", t0, mut(func(x *events.Hello) { x.SSH[0].Host = "a b" })), "/body/ssh/0/host"},
		{"path with newline", "mesh.v1.evt.vast-1.hello", raw(t, "hello", "vast-1:b1:1", "vast-1", t0, mut(func(x *events.Hello) { x.Paths.Ringrift = "/a\n/b" })), "/body/paths/ringrift"},
		{"escape in hostname", "mesh.v1.evt.vast-1.hello", raw(t, "hello", "vast-1:b1:1", "vast-1", t0, mut(func(x *events.Hello) { x.Hostname = "\x1b]0;pwn\x07" })), "/body/hostname"},
		{"envelope node differs", "mesh.v1.evt.vast-1.hello", raw(t, "hello", "vast-1:b1:1", "vast-2", t0, h), "does not match subject"},
		{"id node differs", "mesh.v1.evt.vast-1.hello", raw(t, "hello", "vast-2:b1:1", "vast-1", t0, h), "message id node"},
		{"far future ts", "mesh.v1.evt.vast-1.hello", raw(t, "hello", "vast-1:b1:1", "vast-1", t0.Add(time.Hour), h), "bus time"},
		{"ancient ts", "mesh.v1.evt.vast-1.hello", raw(t, "hello", "vast-1:b1:1", "vast-1", t0.Add(-30*24*time.Hour), h), "bus time"},
		{"bad subject", "mesh.v1.evt.vast 1.hello", raw(t, "hello", "vast-1:b1:1", "vast-1", t0, h), "bad subject"},
		{"unknown kind", "mesh.v1.evt.vast-1.evil", raw(t, "hello", "vast-1:b1:1", "vast-1", t0, h), "unknown event kind"},
		{"too large", "mesh.v1.evt.vast-1.hello", []byte(`{"x":"` + strings.Repeat("a", DefaultMaxBytes) + `"}`), "exceeds the"},
		{"gossip on another voter's subject", "mesh.v1.gossip.v2", raw(t, "gossip", "g:1", "v2", t0, events.Gossip{Voter: "v1", Type: "join", Member: "n1"}), "own subject"},
		{"heartbeat percent 1e308", "mesh.v1.evt.vast-1.heartbeat", []byte(`{"schema":"mesh.v1.heartbeat","id":"vast-1:b1:2","node":"vast-1","ts":"2026-12-01T12:00:00Z","body":{"status":"healthy","interval_seconds":5,"bus_connected":true,"rpo":{"unsynced_bytes":-1,"unsynced_files":null,"oldest_unsynced_seconds":null},"health":{"time":"2026-12-01T12:00:00Z","agent_version":"x","cpu_percent":1e308,"gpu_probe":"ok","disks":[],"processes":[],"errors":[],"gpus":[]}}}`), "cpu_percent"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := d.Decode(c.subj, c.data, t0)
			var we *Error
			if err == nil || !errors.As(err, &we) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want an *Error mentioning %q", err, c.want)
			}
		})
	}
}

func TestDecodeGPUCountBounded(t *testing.T) {
	d := newDec(t)
	var gpus []string
	for i := 0; i < 65; i++ {
		gpus = append(gpus, fmt.Sprintf(`{"index":%d,"name":"g","uuid":"u","utilization_percent":null,"memory_total_bytes":null,"memory_used_bytes":null,"temperature_c":null,"power_watts":null,"ecc_errors_uncorrected":null,"xid_errors":null}`, i%64))
	}
	data := `{"schema":"mesh.v1.heartbeat","id":"vast-1:b1:2","node":"vast-1","ts":"2026-12-01T12:00:00Z","body":{"status":"healthy","interval_seconds":5,"bus_connected":true,"rpo":{"unsynced_bytes":null,"unsynced_files":null,"oldest_unsynced_seconds":null},"health":{"time":"2026-12-01T12:00:00Z","agent_version":"x","gpu_probe":"ok","disks":[],"processes":[],"errors":[],"gpus":[` + strings.Join(gpus, ",") + `]}}}`
	if _, err := d.Decode("mesh.v1.evt.vast-1.heartbeat", []byte(data), t0); err == nil || !strings.Contains(err.Error(), "gpus") {
		t.Fatalf("65 GPUs: %v", err)
	}
}

func TestCheckRemoteDir(t *testing.T) {
	for _, ok := range []string{"root/ringrift/ai-service/data/sync_incoming", "/workspace/ringrift/ai-service/data/sync_incoming", "ringrift/ai-service/data/sync_incoming"} {
		if err := CheckRemoteDir(ok, ""); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"../../../../tmp/x", "ringrift/../../x", "a//b", "a/./b", "a/", "", ".", "/", "~/x", "a b", "a\nb", "/workspace/x/.."} {
		if err := CheckRemoteDir(bad, ""); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if err := CheckRemoteDir("/data/in/x", "/data/in"); err != nil {
		t.Error(err)
	}
	if err := CheckRemoteDir("/data/inx", "/data/in"); err == nil {
		t.Error("sibling of the base accepted")
	}
}

// FuzzDecode: whatever arrives, Decode never panics, and whatever it
// accepts has every string within its pattern where it matters.
func FuzzDecode(f *testing.F) {
	d := newDec(f)
	f.Add("mesh.v1.evt.vast-1.hello", raw(f, "hello", "vast-1:b1:7", "vast-1", t0, goodHello()))
	f.Add("mesh.v1.gossip.v1", raw(f, "gossip", "g:1", "v1", t0, events.Gossip{Voter: "v1", Type: "join", Member: "n1"}))
	f.Add("mesh.v1.evt.vast-1.heartbeat", []byte(`{"schema":"mesh.v1.heartbeat","id":"vast-1:b1:2","node":"vast-1","ts":"2026-12-01T12:00:00Z","body":{"status":"healthy","interval_seconds":5,"bus_connected":true,"rpo":{"unsynced_bytes":null,"unsynced_files":null,"oldest_unsynced_seconds":null},"health":{"time":"2026-12-01T12:00:00Z","agent_version":"x","gpu_probe":"ok","disks":[],"processes":[],"errors":[],"gpus":[]}}}`))
	f.Add("mesh.v1.cmd.vast-1.sync_targets", raw(f, "command", "cmd:1", "hetzner-cpu1", t0, events.Command{Verb: "sync_targets", Args: map[string]string{"targets": "[]"}}))
	f.Fuzz(func(t *testing.T, subj string, data []byte) {
		m, err := d.Decode(subj, data, t0)
		if err != nil {
			return
		}
		if !events.Match("node", m.Node) {
			t.Fatalf("accepted node %q", m.Node)
		}
		if h := m.Hello; h != nil {
			for _, e := range h.SSH {
				if !events.ValidHost(e.Host) || !events.Match("user", e.User) {
					t.Fatalf("accepted endpoint %+v", e)
				}
			}
			if h.HostKeyFingerprint != "" && !events.ValidFingerprint(h.HostKeyFingerprint) {
				t.Fatalf("accepted fingerprint %q", h.HostKeyFingerprint)
			}
			if strings.ContainsAny(h.Hostname+h.AgentVersion, "\n\r\x1b") {
				t.Fatalf("accepted control characters %q", h.Hostname)
			}
		}
		if hb := m.Heartbeat; hb != nil {
			if len(hb.Health.GPUs) > 64 {
				t.Fatalf("accepted %d GPUs", len(hb.Health.GPUs))
			}
			if p := hb.Health.CPUPercent; p != nil && (*p < 0 || *p > 100) {
				t.Fatalf("accepted cpu %v", *p)
			}
		}
	})
}

// FuzzCheckRemoteDir: an accepted directory never climbs out.
func FuzzCheckRemoteDir(f *testing.F) {
	for _, s := range []string{"a/b", "../x", "/workspace/x", "a/../b", "~/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, dir string) {
		if CheckRemoteDir(dir, "") != nil {
			return
		}
		for _, el := range strings.Split(dir, "/") {
			if el == ".." || el == "." {
				t.Fatalf("accepted %q", dir)
			}
		}
		if strings.ContainsAny(dir, " \n\r\t\x00'\"") {
			t.Fatalf("accepted %q", dir)
		}
	})
}
