// Package deploy_test checks the operator files in deploy/: the standalone
// NATS configs parse with the nats-server version ringmesh pins and describe
// one 3-voter cluster, the example inventory loads, the units and drop-ins
// agree with the inventory's voters and pass only flags the binaries have,
// and the local-cluster script is valid bash.
package deploy_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"crypto/tls"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/ringmesh/ringmesh/pkg/auth"
	"github.com/ringmesh/ringmesh/pkg/config"
)

var voters = []string{"hetzner-cpu1", "hetzner-cpu2", "hetzner-cpu3"}

// standaloneNATS installs voter i's config the way deploy/README.md says:
// the issuer store's server files (meshctl creds server-config) in
// <dir>/nats/, the config as <dir>/nats.conf, with the absolute paths of
// the installed layout rewritten into dir. It returns the config path and
// the issuer.
func standaloneNATS(t *testing.T, i int) (string, *auth.Issuer) {
	t.Helper()
	dir := t.TempDir()
	iss, err := auth.Open(filepath.Join(dir, "auth"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := iss.WriteServerConfig(filepath.Join(dir, "nats"), filepath.Join(dir, "jwt"), []string{voters[i]}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join("nats", fmt.Sprintf("voter%d.conf", i+1)))
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(conf, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return conf, iss
}

func TestNATSVoterConfigs(t *testing.T) {
	for i, me := range voters {
		path, iss := standaloneNATS(t, i)
		o, err := server.ProcessConfigFile(path)
		if err != nil {
			t.Fatalf("voter%d.conf: %v", i+1, err)
		}
		check := func(what string, got, want any) {
			t.Helper()
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("voter%d.conf: %s = %v, want %v", i+1, what, got, want)
			}
		}
		check("server_name", o.ServerName, "ringmesh-"+me)
		check("listen", fmt.Sprintf("%s:%d", o.Host, o.Port), "0.0.0.0:4222")
		check("jetstream", o.JetStream, true)
		check("store_dir", o.StoreDir, "/var/lib/ringmesh/nats")
		check("max_mem", o.JetStreamMaxMemory, int64(1e9)) // NATS: G = 10^9, GB = 2^30
		check("max_file", o.JetStreamMaxStore, int64(50e9))
		check("sync_interval always", o.SyncAlways, true)
		check("max_payload", o.MaxPayload, int32(1)<<20)
		check("cluster name", o.Cluster.Name, "ringmesh")
		check("cluster listen", fmt.Sprintf("%s:%d", o.Cluster.Host, o.Cluster.Port), "0.0.0.0:6222")
		var routes, want []string
		for _, r := range o.Routes {
			routes = append(routes, r.String())
		}
		for _, v := range voters {
			if v != me {
				want = append(want, "nats-route://"+v+":6222")
			}
		}
		check("routes", routes, want)
		// Decentralized auth from the store, no passwords, TLS everywhere.
		check("users with passwords", len(o.Users)+len(o.Nkeys), 0)
		check("trusted operators", len(o.TrustedOperators), 1)
		check("system account", o.SystemAccount != "" && o.AccountResolver != nil, true)
		check("client TLS", o.TLSConfig != nil, true)
		check("route mTLS", o.Cluster.TLSConfig != nil && o.Cluster.TLSConfig.ClientAuth == tls.RequireAndVerifyClientCert, true)
		if acc, _ := iss.AccountJWT(); acc == "" {
			t.Fatal("no account JWT")
		}
	}
}

// TestStandaloneNATSAuthenticates starts nats-server from voter1.conf (ports
// and store moved into the test's directory) and checks what the config
// promises: a client without credentials is refused, a node's creds over
// TLS with the CA pinned are accepted, and a plain-text client is refused.
func TestStandaloneNATSAuthenticates(t *testing.T) {
	path, iss := standaloneNATS(t, 0)
	o, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatal(err)
	}
	o.Host, o.Port, o.HTTPPort = "127.0.0.1", -1, 0
	o.Cluster.Host, o.Cluster.Port, o.Routes = "127.0.0.1", -1, nil
	o.StoreDir = filepath.Join(filepath.Dir(path), "store")
	o.JetStream = false // clustered JetStream needs its peers; auth and TLS do not
	o.NoSigs, o.NoLog = true, true
	s, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(20 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	url := s.ClientURL()
	creds := filepath.Join(t.TempDir(), "vast-1.creds")
	if err := iss.EnsureCreds(auth.RoleNode, "vast-1", creds); err != nil {
		t.Fatal(err)
	}
	if nc, err := nats.Connect(url, nats.RootCAs(iss.CAFile()), nats.Timeout(5*time.Second)); err == nil {
		nc.Close()
		t.Fatal("a client without credentials connected")
	}
	nc, err := nats.Connect(url, nats.UserCredentials(creds), nats.RootCAs(iss.CAFile()), nats.Timeout(10*time.Second))
	if err != nil {
		t.Fatalf("node creds over TLS: %v", err)
	}
	nc.Close()
	if nc, err := nats.Connect(url, nats.UserCredentials(creds), nats.Timeout(5*time.Second)); err == nil {
		nc.Close()
		t.Fatal("a client that does not trust ringmesh's CA connected")
	}
}

func TestExampleInventory(t *testing.T) {
	inv, err := config.LoadFile(filepath.Join("examples", "distributed_hosts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range inv.Warnings {
		t.Errorf("warning: %s", w)
	}
	if !slices.Equal(inv.Voters, voters) {
		t.Errorf("voters %v, want %v", inv.Voters, voters)
	}
	for _, v := range voters {
		if h := inv.Hosts[v]; h == nil || h.Provider != "hetzner" || h.HetznerID == "" {
			t.Errorf("voter %s: %+v", v, h)
		}
	}
}

// execStart returns the arguments of every ExecStart= line with a command in
// a unit or drop-in, continuation lines joined.
func execStart(t *testing.T, path string) [][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(b), "\\\n", " ")
	var out [][]string
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if cmd, ok := strings.CutPrefix(line, "ExecStart="); ok && cmd != "" {
			out = append(out, strings.Fields(cmd))
		}
	}
	if len(out) != 1 {
		t.Fatalf("%s: %d ExecStart commands, want 1", path, len(out))
	}
	return out
}

// flagValues maps "--flag" to its value ("" for a flag followed by another flag).
func flagValues(args []string) map[string]string {
	out := map[string]string{}
	for i, a := range args {
		if !strings.HasPrefix(a, "--") {
			continue
		}
		v := ""
		if i+1 < len(args) && !strings.HasPrefix(args[i+1], "--") {
			v = args[i+1]
		}
		out[strings.TrimPrefix(a, "--")] = v
	}
	return out
}

var (
	coordinatorFiles = []string{"systemd/ringmesh-coordinator.service", "examples/external-nats.conf"}
	agentFiles       = []string{"systemd/ringmesh-agent.service"}
)

func TestUnitsAgreeWithVoters(t *testing.T) {
	var routes, urls []string
	for _, v := range voters {
		routes = append(routes, "nats-route://"+v+":6222")
		urls = append(urls, "nats://"+v+":4222")
	}
	c := flagValues(execStart(t, "systemd/ringmesh-coordinator.service")[0])
	want := map[string]string{
		"name": "%H", "inventory": "/etc/ringmesh/distributed_hosts.yaml", "data-dir": "/var/lib/ringmesh",
		"nats-listen": "0.0.0.0:4222", "nats-cluster-listen": "0.0.0.0:6222", "nats-routes": strings.Join(routes, ","),
		"replicas": "3", "http": "0.0.0.0:8077",
	}
	for k, v := range want {
		if c[k] != v {
			t.Errorf("coordinator --%s %q, want %q", k, c[k], v)
		}
	}
	a := flagValues(execStart(t, "systemd/ringmesh-agent.service")[0])
	want = map[string]string{
		"node": "%H", "inventory": "/etc/ringmesh/distributed_hosts.yaml", "nats-url": strings.Join(urls, ","),
		"state-dir": "/var/lib/ringmesh-agent", "heartbeat": "5s",
		"creds": "/etc/ringmesh/node.creds", "ca": "/etc/ringmesh/ca.pem", // authenticated, CA pinned
	}
	for k, v := range want {
		if a[k] != v {
			t.Errorf("agent --%s %q, want %q", k, a[k], v)
		}
	}
	// The drop-ins leave the NATS URLs to the environment (credentials are files, never in URLs).
	if ext := flagValues(execStart(t, "examples/external-nats.conf")[0]); ext["nats-listen"] != "" || ext["nats-url"] != "" || ext["replicas"] != "3" {
		t.Errorf("external-nats.conf flags %v", ext)
	}
	if _, has := a["nats-url"]; !has {
		t.Error("agent unit has no --nats-url")
	}
}

// TestUnitFlagsExist builds the binaries and checks that every flag the
// units, drop-ins and local-cluster.sh pass is one the binary accepts.
func TestUnitFlagsExist(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped with -short: builds the binaries")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("exec.LookPath: no go toolchain on PATH")
	}
	dir := t.TempDir()
	build := exec.Command(goBin, "build", "-o", dir+string(filepath.Separator), "../cmd/coordinator", "../cmd/agent")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	script, err := os.ReadFile("examples/local-cluster.sh")
	if err != nil {
		t.Fatal(err)
	}
	scriptFlags := func(binary string) []string {
		// Flags of the "$bin/<binary>" command in the script, continuation lines joined.
		text := strings.ReplaceAll(string(script), "\\\n", " ")
		for _, line := range strings.Split(text, "\n") {
			if strings.Contains(line, `"$bin/`+binary+`"`) {
				return strings.Fields(line)
			}
		}
		t.Fatalf("local-cluster.sh does not start %s", binary)
		return nil
	}
	flagRe := regexp.MustCompile(`(?m)^\s+-([A-Za-z0-9][A-Za-z0-9-]*)`)
	for binary, files := range map[string][]string{"coordinator": coordinatorFiles, "agent": agentFiles} {
		out, _ := exec.Command(filepath.Join(dir, binary), "-h").CombinedOutput() // exits non-zero after usage
		known := map[string]bool{}
		for _, m := range flagRe.FindAllStringSubmatch(string(out), -1) {
			known[m[1]] = true
		}
		if len(known) == 0 {
			t.Fatalf("%s -h printed no flags:\n%s", binary, out)
		}
		used := map[string][]string{} // flag -> files
		for _, f := range files {
			for k := range flagValues(execStart(t, f)[0]) {
				used[k] = append(used[k], f)
			}
		}
		for k := range flagValues(scriptFlags(binary)) {
			used[k] = append(used[k], "examples/local-cluster.sh")
		}
		var missing []string
		for k, where := range used {
			if !known[k] {
				missing = append(missing, fmt.Sprintf("--%s (%s)", k, strings.Join(where, ", ")))
			}
		}
		sort.Strings(missing)
		for _, m := range missing {
			t.Errorf("%s has no flag %s", binary, m)
		}
	}
}

func TestLocalClusterScript(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("exec.LookPath: no bash on PATH")
	}
	if out, err := exec.Command(bash, "-n", "examples/local-cluster.sh").CombinedOutput(); err != nil {
		t.Fatalf("bash -n: %v\n%s", err, out)
	}
	if fi, err := os.Stat("examples/local-cluster.sh"); err != nil || fi.Mode().Perm()&0o111 == 0 {
		t.Errorf("local-cluster.sh is not executable: %v", err)
	}
	sc, err := exec.LookPath("shellcheck")
	if err != nil {
		t.Log("shellcheck not installed; skipped")
		return
	}
	if out, err := exec.Command(sc, "examples/local-cluster.sh").CombinedOutput(); err != nil {
		t.Errorf("shellcheck: %v\n%s", err, out)
	}
}
