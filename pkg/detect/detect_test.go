package detect

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// envMap is an injectable environment.
func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func fixedHostname() (string, error) { return "node-under-test", nil }

// fakeIMDS serves the three metadata services on one httptest server, each
// behaving like the real one: Nebius wants GET and "Metadata: true".
type fakeIMDS struct {
	srv                   *httptest.Server
	nebius, hetzner, vult []byte // nil → 404
	hits                  atomic.Int32
}

func newFakeIMDS(t *testing.T) *fakeIMDS {
	f := &fakeIMDS{}
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/instance-data", func(w http.ResponseWriter, r *http.Request) {
		f.hits.Add(1)
		if r.Method != http.MethodGet {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if r.Header.Get("Metadata") != "true" {
			http.Error(w, `{"error":"Metadata header required"}`, http.StatusBadRequest)
			return
		}
		serve(w, f.nebius)
	})
	mux.HandleFunc("/hetzner/v1/metadata", func(w http.ResponseWriter, r *http.Request) {
		f.hits.Add(1)
		serve(w, f.hetzner)
	})
	mux.HandleFunc("/v1.json", func(w http.ResponseWriter, r *http.Request) {
		f.hits.Add(1)
		serve(w, f.vult)
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func serve(w http.ResponseWriter, body []byte) {
	if body == nil {
		http.NotFound(w, nil)
		return
	}
	_, _ = w.Write(body)
}

func (f *fakeIMDS) options() Options {
	return Options{
		Env:        envMap(nil),
		Hostname:   fixedHostname,
		NebiusURL:  f.srv.URL,
		HetznerURL: f.srv.URL + "/hetzner/v1/metadata",
		VultrURL:   f.srv.URL + "/v1.json",
		Timeout:    2 * time.Second,
	}
}

// closedURL returns a loopback URL on which nothing listens.
func closedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

func noIMDS(t *testing.T) Options {
	u := closedURL(t)
	return Options{
		Env: envMap(nil), Hostname: fixedHostname,
		NebiusURL: u, HetznerURL: u + "/hetzner/v1/metadata", VultrURL: u + "/v1.json",
		Timeout: 300 * time.Millisecond,
	}
}

func asJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestVastEnv(t *testing.T) {
	f := newFakeIMDS(t) // must not be asked: env wins without network
	o := f.options()
	o.Env = envMap(map[string]string{
		"CONTAINER_ID":        "31337001",
		"VAST_CONTAINERLABEL": "C.31337001",
		"CONTAINER_API_KEY":   "secret-not-reported",
		"PUBLIC_IPADDR":       "203.0.113.45",
		"VAST_TCP_PORT_22":    "40001",
		"GPU_COUNT":           "1",
	})
	r := Detect(context.Background(), o)
	want := Result{
		Provider: "vast", InstanceID: "31337001", Source: "env:CONTAINER_ID", PublicIP: "203.0.113.45",
		SSH:   []Endpoint{{Kind: "direct", Host: "203.0.113.45", Port: 40001, User: "root"}},
		Hints: map[string]string{"hostname": "node-under-test", "gpu_count": "1"},
	}
	if asJSON(t, r) != asJSON(t, want) {
		t.Errorf("got  %s\nwant %s", asJSON(t, r), asJSON(t, want))
	}
	if strings.Contains(asJSON(t, r), "secret") {
		t.Error("API key leaked into the result")
	}
	if n := f.hits.Load(); n != 0 {
		t.Errorf("IMDS asked %d times despite Vast env", n)
	}
}

func TestVastEnvVariants(t *testing.T) {
	cases := []struct {
		name         string
		env          map[string]string
		provider, id string
		source       string
		ssh          int
	}{
		{"label only", map[string]string{"VAST_CONTAINERLABEL": "C.424242"}, "vast", "424242", "env:VAST_CONTAINERLABEL", 0},
		{"port without ip gives no endpoint", map[string]string{"CONTAINER_ID": "7", "VAST_TCP_PORT_22": "40001"}, "vast", "7", "env:CONTAINER_ID", 0},
		{"bad port", map[string]string{"CONTAINER_ID": "7", "CONTAINER_API_KEY": "k", "PUBLIC_IPADDR": "203.0.113.1", "VAST_TCP_PORT_22": "70000"}, "vast", "7", "env:CONTAINER_ID", 0},
		{"generic CONTAINER_ID alone is not Vast", map[string]string{"CONTAINER_ID": "12345"}, "unknown", "", "none", 0},
		{"non-numeric CONTAINER_ID is not Vast", map[string]string{"CONTAINER_ID": "abc123", "VAST_TCP_PORT_22": "1"}, "unknown", "", "none", 0},
		{"bad label", map[string]string{"VAST_CONTAINERLABEL": "my-node"}, "unknown", "", "none", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := noIMDS(t)
			o.Env = envMap(c.env)
			r := Detect(context.Background(), o)
			if r.Provider != c.provider || r.InstanceID != c.id || r.Source != c.source || len(r.SSH) != c.ssh {
				t.Errorf("got %s", asJSON(t, r))
			}
		})
	}
}

func TestRunPodEnv(t *testing.T) {
	o := noIMDS(t)
	o.Env = envMap(map[string]string{
		"RUNPOD_POD_ID":       "xedezhzb9la3ye",
		"RUNPOD_PUBLIC_IP":    "203.0.113.77",
		"RUNPOD_TCP_PORT_22":  "34446",
		"RUNPOD_DC_ID":        "EU-RO-1",
		"RUNPOD_POD_HOSTNAME": "xedezhzb9la3ye-64411eb2",
		"RUNPOD_GPU_COUNT":    "2",
		"RUNPOD_API_KEY":      "secret-not-reported",
	})
	r := Detect(context.Background(), o)
	want := Result{
		Provider: "runpod", InstanceID: "xedezhzb9la3ye", Source: "env:RUNPOD_POD_ID", PublicIP: "203.0.113.77", Region: "EU-RO-1",
		SSH: []Endpoint{{Kind: "direct", Host: "203.0.113.77", Port: 34446, User: "root"}},
		Hints: map[string]string{"hostname": "node-under-test", "gpu_count": "2",
			"runpod_pod_hostname": "xedezhzb9la3ye-64411eb2"},
	}
	if asJSON(t, r) != asJSON(t, want) {
		t.Errorf("got  %s\nwant %s", asJSON(t, r), asJSON(t, want))
	}

	// A pod without a public IP: identified, no direct endpoint.
	o.Env = envMap(map[string]string{"RUNPOD_POD_ID": "abc", "RUNPOD_TCP_PORT_22": "22"})
	r = Detect(context.Background(), o)
	if r.Provider != "runpod" || r.InstanceID != "abc" || len(r.SSH) != 0 || r.SSH == nil {
		t.Errorf("got %s", asJSON(t, r))
	}
}

func TestNebiusIMDS(t *testing.T) {
	f := newFakeIMDS(t)
	f.nebius = readFixture(t, "nebius_instance_data.json")

	// The fake enforces the header, like Nebius does: without it, 400.
	resp, err := http.Get(f.srv.URL + "/v1/instance-data")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("fake answered %d without Metadata header", resp.StatusCode)
	}

	r := Detect(context.Background(), f.options())
	want := Result{
		Provider: "nebius", InstanceID: "computeinstance-e00abc123def456ghj", Source: "imds:nebius", SSH: []Endpoint{},
		Hints: map[string]string{
			"hostname": "node-under-test", "imds_hostname": "nebius-h100-1", "nebius_name": "nebius-h100-1",
			"nebius_parent_id": "project-e00xyz789", "nebius_platform": "gpu-h100-sxm",
			"nebius_preset": "8gpu-128vcpu-1600gb", "nebius_gpu_cluster_id": "computegpucluster-e00qwe987",
		},
	}
	if asJSON(t, r) != asJSON(t, want) {
		t.Errorf("got  %s\nwant %s", asJSON(t, r), asJSON(t, want))
	}
}

func TestHetznerIMDS(t *testing.T) {
	f := newFakeIMDS(t)
	f.hetzner = readFixture(t, "hetzner_metadata.yaml")
	r := Detect(context.Background(), f.options())
	want := Result{
		Provider: "hetzner", InstanceID: "51234567", Source: "imds:hetzner", PublicIP: "203.0.113.10", Region: "eu-central",
		SSH: []Endpoint{{Kind: "direct", Host: "203.0.113.10", Port: 22, User: "root"}},
		Hints: map[string]string{"hostname": "node-under-test", "imds_hostname": "hetzner-cpu1",
			"availability_zone": "fsn1-dc14"},
	}
	if asJSON(t, r) != asJSON(t, want) {
		t.Errorf("got  %s\nwant %s", asJSON(t, r), asJSON(t, want))
	}
}

func TestVultrIMDS(t *testing.T) {
	f := newFakeIMDS(t)
	f.vult = readFixture(t, "vultr_v1.json")
	r := Detect(context.Background(), f.options())
	want := Result{
		Provider: "vultr", InstanceID: "a1b2c3d4-e5f6-4789-8abc-def012345678", Source: "imds:vultr",
		PublicIP: "198.51.100.23", Region: "ewr",
		SSH: []Endpoint{{Kind: "direct", Host: "198.51.100.23", Port: 22, User: "root"}},
		Hints: map[string]string{"hostname": "node-under-test", "imds_hostname": "vultr-gpu-1",
			"vultr_subid": "98765432", "country_code": "US"},
	}
	if asJSON(t, r) != asJSON(t, want) {
		t.Errorf("got  %s\nwant %s", asJSON(t, r), asJSON(t, want))
	}

	// instanceid as a JSON number is accepted too.
	f.vult = []byte(`{"instanceid": 98765432, "instance-v2-id": "", "region": {"regioncode": "FRA"}}`)
	r = Detect(context.Background(), f.options())
	if r.Provider != "vultr" || r.InstanceID != "" || r.Hints["vultr_subid"] != "98765432" || r.Region != "fra" {
		t.Errorf("numeric instanceid: %s", asJSON(t, r))
	}
}

func TestIMDSPriority(t *testing.T) {
	f := newFakeIMDS(t)
	f.nebius = readFixture(t, "nebius_instance_data.json")
	f.hetzner = readFixture(t, "hetzner_metadata.yaml")
	f.vult = readFixture(t, "vultr_v1.json")
	if r := Detect(context.Background(), f.options()); r.Provider != "nebius" {
		t.Errorf("all answer: got %s, want nebius", r.Provider)
	}
	f.nebius = nil
	if r := Detect(context.Background(), f.options()); r.Provider != "hetzner" {
		t.Errorf("hetzner+vultr answer: got %s, want hetzner", r.Provider)
	}
}

func TestIMDSGarbageIsNotAProvider(t *testing.T) {
	html := []byte("<html><body><h1>Welcome to nginx!</h1></body></html>")
	f := newFakeIMDS(t)
	f.nebius, f.hetzner, f.vult = html, html, html
	r := Detect(context.Background(), f.options())
	if r.Provider != "unknown" || r.Source != "none" || r.InstanceID != "" {
		t.Fatalf("garbage 200s: %s", asJSON(t, r))
	}
	for _, p := range []string{"probe.nebius", "probe.hetzner", "probe.vultr"} {
		if r.Hints[p] == "" {
			t.Errorf("no %s hint: %v", p, r.Hints)
		}
	}

	// Well-formed documents that name no instance do not count either.
	f.nebius = []byte(`{"id":"","name":"x"}`)
	f.hetzner = []byte("hostname: x\nregion: eu-central\n")
	f.vult = []byte(`{"hostname":"x"}`)
	if r := Detect(context.Background(), f.options()); r.Provider != "unknown" {
		t.Errorf("documents without ids: %s", asJSON(t, r))
	}
	f.nebius = []byte(`{"id":"i-0123456789abcdef0"}`) // an EC2-looking id is not Nebius
	if r := Detect(context.Background(), f.options()); r.Provider != "unknown" {
		t.Errorf("foreign id: %s", asJSON(t, r))
	}
}

func TestIMDSSlowServerTimeout(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer slow.Close()
	defer close(release)

	o := Options{
		Env: envMap(nil), Hostname: fixedHostname, Timeout: 150 * time.Millisecond,
		NebiusURL: slow.URL, HetznerURL: slow.URL + "/hetzner/v1/metadata", VultrURL: slow.URL + "/v1.json",
	}
	// The slow server answers only when the test ends: without the
	// timeout Detect would never return.
	r := detectWithin(t, context.Background(), o)
	if r.Provider != "unknown" || r.Source != "none" {
		t.Errorf("got %s", asJSON(t, r))
	}
	if !strings.Contains(r.Hints["probe.hetzner"], "no answer within 150ms") {
		t.Errorf("hints %v", r.Hints)
	}

	// A hanging Nebius does not hide a Hetzner answer; the wait stays bounded.
	f := newFakeIMDS(t)
	f.hetzner = readFixture(t, "hetzner_metadata.yaml")
	o.HetznerURL = f.srv.URL + "/hetzner/v1/metadata"
	r = detectWithin(t, context.Background(), o)
	if r.Provider != "hetzner" {
		t.Errorf("got %s", asJSON(t, r))
	}
}

// detectWithin runs Detect and fails the test if it has not returned
// within a minute: a wait that is bounded by Options.Timeout or ctx ends
// long before that on any machine, an unbounded one never does.
func detectWithin(t *testing.T, ctx context.Context, o Options) Result {
	t.Helper()
	done := make(chan Result, 1)
	go func() { done <- Detect(ctx, o) }()
	select {
	case r := <-done:
		return r
	case <-time.After(time.Minute):
		t.Fatalf("Detect did not return within a minute (timeout %s)", o.Timeout)
		return Result{}
	}
}

// TestNoIMDSReachable is this machine as it is: no provider environment, no
// metadata service (URLs on a closed loopback port).
func TestNoIMDSReachable(t *testing.T) {
	o := noIMDS(t)
	r := detectWithin(t, context.Background(), o)
	if r.Provider != ProviderUnknown || r.Source != SourceNone || r.InstanceID != "" || r.SSH == nil || len(r.SSH) != 0 {
		t.Errorf("got %s", asJSON(t, r))
	}
	if r.Hints["hostname"] != "node-under-test" {
		t.Errorf("hints %v", r.Hints)
	}
	if !strings.Contains(asJSON(t, r), `"ssh":[]`) {
		t.Errorf("ssh not encoded as []: %s", asJSON(t, r))
	}
}

func TestDetectHonoursContext(t *testing.T) {
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	defer slow.Close()
	// The probes' own timeout (an hour) outlasts detectWithin's minute:
	// only ctx can end the wait.
	o := Options{Env: envMap(nil), Hostname: fixedHostname, Timeout: time.Hour,
		NebiusURL: slow.URL, HetznerURL: slow.URL, VultrURL: slow.URL}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if r := detectWithin(t, ctx, o); r.Provider != "unknown" {
		t.Errorf("got %s", asJSON(t, r))
	}
}

func TestOverrideWins(t *testing.T) {
	f := newFakeIMDS(t)
	f.hetzner = readFixture(t, "hetzner_metadata.yaml")
	vastEnv := envMap(map[string]string{"CONTAINER_ID": "31337001", "VAST_CONTAINERLABEL": "C.31337001",
		"PUBLIC_IPADDR": "203.0.113.45", "VAST_TCP_PORT_22": "40001"})

	// Complete override: nothing is probed.
	o := f.options()
	o.Env = vastEnv
	o.Override = Result{Provider: "lambda", InstanceID: "0920582c7ff041399e34823a0be62549", PublicIP: "192.0.2.9"}
	r := Detect(context.Background(), o)
	if r.Provider != "lambda" || r.InstanceID != "0920582c7ff041399e34823a0be62549" || r.Source != "config" || r.PublicIP != "192.0.2.9" {
		t.Errorf("complete override: %s", asJSON(t, r))
	}
	if f.hits.Load() != 0 {
		t.Errorf("IMDS asked despite a complete override")
	}

	// Provider only, detection agrees: the ID and endpoint come from detection.
	o.Override = Result{Provider: "vast"}
	r = Detect(context.Background(), o)
	if r.Provider != "vast" || r.InstanceID != "31337001" || r.Source != "config" ||
		r.Hints["instance_id_source"] != "env:CONTAINER_ID" || len(r.SSH) != 1 {
		t.Errorf("provider-only override: %s", asJSON(t, r))
	}

	// Provider only, detection disagrees: config still wins, nothing of the
	// other provider is taken, the disagreement is recorded.
	o.Env = envMap(nil)
	o.Override = Result{Provider: "lambda", SSH: []Endpoint{{Kind: "direct", Host: "192.0.2.9", Port: 22, User: "ubuntu"}}}
	r = Detect(context.Background(), o)
	if r.Provider != "lambda" || r.InstanceID != "" || r.PublicIP != "" || r.Region != "" ||
		r.Hints["detected_provider"] != "hetzner" || len(r.SSH) != 1 || r.SSH[0].User != "ubuntu" {
		t.Errorf("disagreeing override: %s", asJSON(t, r))
	}

	// Explicit source and fields from config are kept over detected ones.
	o.Override = Result{Provider: "hetzner", Source: "flag", Region: "fsn1"}
	r = Detect(context.Background(), o)
	if r.Source != "flag" || r.Region != "fsn1" || r.InstanceID != "51234567" || r.PublicIP != "203.0.113.10" {
		t.Errorf("partial override: %s", asJSON(t, r))
	}
}

func TestOverrideDoesNotAliasCaller(t *testing.T) {
	o := noIMDS(t)
	ov := Result{Provider: "lambda", InstanceID: "x", SSH: []Endpoint{{Kind: "direct", Host: "h", Port: 22, User: "u"}},
		Hints: map[string]string{"a": "b"}}
	o.Override = ov
	r := Detect(context.Background(), o)
	r.SSH[0].Host = "changed"
	r.Hints["a"] = "changed"
	if ov.SSH[0].Host != "h" || ov.Hints["a"] != "b" {
		t.Error("Detect result aliases the caller's override")
	}
}

func TestSSHHostKeyFingerprint(t *testing.T) {
	dir := t.TempDir()
	ed := filepath.Join("testdata", "ssh_host_ed25519_key.pub")
	ecdsa := filepath.Join("testdata", "ssh_host_ecdsa_key.pub")
	broken := filepath.Join("testdata", "ssh_host_rsa_key.broken.pub")
	missing := filepath.Join(dir, "ssh_host_ed25519_key.pub")

	// Fingerprints as `ssh-keygen -lf` printed them for the fixtures.
	fp, err := SSHHostKeyFingerprint(ed, ecdsa)
	if err != nil || fp != "SHA256:Y/HqTGagTklQRwIvZhoH+LUThizlqmZ9iu+S3L6KkD8" {
		t.Errorf("ed25519: %q %v", fp, err)
	}
	fp, err = SSHHostKeyFingerprint(missing, broken, ecdsa)
	if err != nil || fp != "SHA256:ADICkKiTrbSgO/lFX0mnwUBU55MwuteXEnSyUlhyhYM" {
		t.Errorf("fallback to ecdsa: %q %v", fp, err)
	}
	_, err = SSHHostKeyFingerprint(missing, broken)
	if err == nil || !strings.Contains(err.Error(), missing+": not found") || !strings.Contains(err.Error(), broken) {
		t.Errorf("none usable: %v", err)
	}

	// This machine's real host key, when it has one.
	if fp, err := SSHHostKeyFingerprint(); err == nil {
		if !strings.HasPrefix(fp, "SHA256:") || len(fp) != len("SHA256:")+43 {
			t.Errorf("real host key fingerprint %q", fp)
		}
	} else {
		t.Logf("no host key here: %v", err)
	}
}
