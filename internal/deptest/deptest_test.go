package deptest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"testing"
)

const mod = "github.com/ringmesh/ringmesh"

// Forbidden import-path prefixes, named once so the rules read as a list.
var (
	natsServer = "github.com/nats-io/nats-server/"
	memberlist = "github.com/hashicorp/memberlist"
	sqliteDeps = []string{"modernc.org/sqlite", "github.com/mattn/go-sqlite3"}
	bbolt      = "go.etcd.io/bbolt"
	cloudSDKs  = []string{"github.com/hetznercloud/hcloud-go/", "github.com/vultr/govultr/"}
	// cloudAdapters are ringmesh's provider adapters: only the coordinator
	// (and the demo) talks to clouds.
	cloudAdapters = []string{
		mod + "/pkg/providers/hetzner", mod + "/pkg/providers/vultr", mod + "/pkg/providers/lambda",
		mod + "/pkg/providers/runpod", mod + "/pkg/providers/vast", mod + "/pkg/providers/nebius",
	}
	serverSide = []string{mod + "/pkg/coordinator", mod + "/pkg/bus/busserver", mod + "/pkg/leader"}
)

// rule is what one binary must not link.
type rule struct {
	// Main is the binary's package, relative to the module root.
	Main string
	// Bad are forbidden import-path prefixes.
	Bad []string
	// Why is printed with a violation.
	Why string
}

func rules() []rule {
	meshctl := slices.Concat([]string{natsServer, memberlist, bbolt, mod + "/pkg/agent"}, sqliteDeps, cloudSDKs, cloudAdapters, serverSide)
	// The agent links memberlist (it is a gossip member), bbolt (its
	// outbox) and modernc.org/sqlite: meshsync snapshots the node's SQLite
	// databases with VACUUM INTO inside one read transaction
	// (pkg/sync/snapshot.go), the only consistent copy of a database a
	// trainer is writing. It must not link a cloud SDK or any provider
	// code (pkg/providers and below, fleet, cost), the embedded
	// nats-server or any coordinator code.
	agent := slices.Concat([]string{natsServer, mod + "/pkg/providers", mod + "/pkg/fleet", mod + "/pkg/cost"}, cloudSDKs, serverSide)
	return []rule{
		{Main: "cmd/meshctl", Bad: meshctl, Why: "meshctl is a client: the API (pkg/api), the bus client, creds; nothing server-side"},
		// The API client and its request/reply types are what meshctl (and
		// any other client) links: the same rule as meshctl.
		{Main: "pkg/api", Bad: meshctl, Why: "pkg/api is the client side of the API"},
		{Main: "cmd/agent", Bad: agent, Why: "the agent runs on every node: no cloud SDK, no embedded server, no coordinator code"},
	}
}

// knownViolations are binary → forbidden-prefix edges that are still to
// be removed (issue 10). It is empty: meshctl and the agent meet their rules.
// The test fails when a listed edge disappears, so the list only shrinks; a
// new edge is removed, never added here.
var knownViolations = map[string][]string{}

// pkgInfo is the part of `go list -json` output the rules read.
type pkgInfo struct {
	ImportPath string
	Standard   bool
	Imports    []string
	Deps       []string
}

// goTool finds the go command; `go test` puts its own GOROOT/bin first on
// PATH, so this is the toolchain running the test.
func goTool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go tool to list dependencies: %v", err)
	}
	return p
}

// goList runs `go list -json <args>` for linux/amd64 (where the binaries
// run) from the module root and decodes the package stream.
func goList(t *testing.T, args ...string) []pkgInfo {
	t.Helper()
	cmd := exec.Command(goTool(t), append([]string{"list", "-json=ImportPath,Standard,Imports,Deps"}, args...)...)
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=amd64")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %v: %v\n%s", args, err, stderr.String())
	}
	var pkgs []pkgInfo
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkgInfo
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list %v: decode: %v", args, err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// violations returns, for each forbidden prefix that deps hit, the first
// dependency that hits it.
func violations(deps, bad []string) map[string]string {
	out := map[string]string{}
	for _, d := range deps {
		for _, b := range bad {
			if _, seen := out[b]; !seen && hasPrefix(d, b) {
				out[b] = d
			}
		}
	}
	return out
}

// hasPrefix matches an import path against a prefix: either a prefix ending
// in "/" (any package below it) or a whole package path (it and below).
func hasPrefix(path, prefix string) bool {
	if strings.HasSuffix(prefix, "/") {
		return strings.HasPrefix(path, prefix)
	}
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

// importChain is one import path from main to target, for the error message.
func importChain(pkgs []pkgInfo, main, target string) []string {
	imports := map[string][]string{}
	for _, p := range pkgs {
		imports[p.ImportPath] = p.Imports
	}
	prev := map[string]string{main: ""}
	queue := []string{main}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		if cur == target {
			var chain []string
			for n := cur; n != ""; n = prev[n] {
				chain = append(chain, strings.TrimPrefix(n, mod+"/"))
			}
			slices.Reverse(chain)
			return chain
		}
		for _, n := range imports[cur] {
			if _, ok := prev[n]; !ok {
				prev[n] = cur
				queue = append(queue, n)
			}
		}
	}
	return nil
}

func TestBinariesLinkOnlyWhatTheyNeed(t *testing.T) {
	for _, r := range rules() {
		t.Run(strings.ReplaceAll(r.Main, "/", "_"), func(t *testing.T) {
			pkgs := goList(t, "-deps", "./"+r.Main)
			main := mod + "/" + r.Main
			var deps []string
			for _, p := range pkgs {
				if !p.Standard {
					deps = append(deps, p.ImportPath)
				}
			}
			got := violations(deps, r.Bad)
			known := knownViolations[r.Main]
			for _, b := range sortedKeys(got) {
				if slices.Contains(known, b) {
					continue
				}
				t.Errorf("%s links %s (%s is forbidden: %s)\n\timport chain: %s",
					r.Main, got[b], b, r.Why, strings.Join(importChain(pkgs, main, got[b]), " → "))
			}
			for _, k := range known {
				if _, still := got[k]; !still {
					t.Errorf("%s no longer links %s: remove it from knownViolations so it cannot come back", r.Main, k)
				}
			}
		})
	}
}

// TestCoordinatorSideDoesNotImportAgent: the coordinator and the packages it
// is built from do not import the agent, and no package imports a command.
// Only cmd/agent (and the chaos harness, which runs agents) may build an
// agent; the coordinator speaks to agents over the bus only.
func TestCoordinatorSideDoesNotImportAgent(t *testing.T) {
	agentPkg := mod + "/pkg/agent"
	allowed := map[string]string{
		mod + "/cmd/agent": "the agent binary",
		mod + "/chaos":     "the chaos harness runs real agents next to a coordinator",
	}
	// Known edges issue 10 still has to remove (the list only shrinks).
	known := map[string]string{
		mod + "/cmd/coordinator": "--dev starts in-process agents (devAgent)",
	}
	seen := map[string]bool{}
	for _, p := range goList(t, "./...") {
		for _, imp := range p.Imports {
			if strings.HasPrefix(imp, mod+"/cmd/") {
				t.Errorf("%s imports the command %s: commands are roots, never dependencies", p.ImportPath, imp)
			}
			if imp != agentPkg || strings.HasPrefix(p.ImportPath, agentPkg+"/") || p.ImportPath == agentPkg {
				continue
			}
			if _, ok := allowed[p.ImportPath]; ok {
				continue
			}
			if _, ok := known[p.ImportPath]; ok {
				seen[p.ImportPath] = true
				continue
			}
			t.Errorf("%s imports %s: the coordinator side must talk to agents over the bus, not link the agent", p.ImportPath, agentPkg)
		}
	}
	for _, k := range sortedKeys(known) {
		if !seen[k] {
			t.Errorf("%s no longer imports pkg/agent: remove it from the known list so it cannot come back", k)
		}
	}
}

// TestAPIImportsNoServerPackage: pkg/api (client and wire types) imports
// none of the server-side packages whose types it used to borrow; it gets
// its types from the contract packages (pkg/events, pkg/mesh, pkg/wire,
// pkg/gossip/gossipview, pkg/sync/route).
func TestAPIImportsNoServerPackage(t *testing.T) {
	bad := []string{
		mod + "/pkg/registry", mod + "/pkg/fleet", mod + "/pkg/cost", mod + "/pkg/gossip",
		mod + "/pkg/sync", mod + "/pkg/coordinator", mod + "/pkg/agent", mod + "/pkg/bus/busserver",
	}
	// Still imported (issue 10 item 1: a node view instead of
	// registry.Record, fleet.SSHEntry and the cost totals in the contract);
	// the list only shrinks.
	known := map[string]string{
		mod + "/pkg/registry": "api.go: NodesReply carries registry.Record",
		mod + "/pkg/fleet":    "api.go: SSH entries are fleet.SSHEntry",
		mod + "/pkg/cost":     "api.go: cost replies carry cost.Totals and cost.InstanceCost",
	}
	pkgs := goList(t, "./pkg/api")
	if len(pkgs) != 1 {
		t.Fatalf("go list ./pkg/api: %d packages", len(pkgs))
	}
	seen := map[string]bool{}
	for _, imp := range pkgs[0].Imports {
		for _, b := range bad {
			// Exact package: pkg/gossip/gossipview and pkg/sync/route are
			// the stdlib-only halves that pkg/api may use.
			if imp != b {
				continue
			}
			if _, ok := known[imp]; ok {
				seen[imp] = true
				continue
			}
			t.Errorf("pkg/api imports %s: move the type it needs into a contract package", imp)
		}
	}
	for _, k := range sortedKeys(known) {
		if !seen[k] {
			t.Errorf("pkg/api no longer imports %s: remove it from the known list so it cannot come back", k)
		}
	}
}

// TestRulesCatchAViolation checks the checker itself on a synthetic graph:
// a forbidden package two hops away is found and its chain named.
func TestRulesCatchAViolation(t *testing.T) {
	pkgs := []pkgInfo{
		{ImportPath: mod + "/cmd/meshctl", Imports: []string{mod + "/pkg/api"}},
		{ImportPath: mod + "/pkg/api", Imports: []string{mod + "/pkg/fleet"}},
		{ImportPath: mod + "/pkg/fleet", Imports: []string{"github.com/vultr/govultr/v3"}},
		{ImportPath: "github.com/vultr/govultr/v3"},
	}
	var deps []string
	for _, p := range pkgs {
		deps = append(deps, p.ImportPath)
	}
	got := violations(deps, cloudSDKs)
	if got["github.com/vultr/govultr/"] != "github.com/vultr/govultr/v3" || len(got) != 1 {
		t.Fatalf("violations = %v, want govultr only", got)
	}
	chain := strings.Join(importChain(pkgs, mod+"/cmd/meshctl", "github.com/vultr/govultr/v3"), " → ")
	if want := "cmd/meshctl → pkg/api → pkg/fleet → github.com/vultr/govultr/v3"; chain != want {
		t.Fatalf("chain = %q, want %q", chain, want)
	}
	if hasPrefix(mod+"/pkg/agentmetrics", mod+"/pkg/agent") {
		t.Error("pkg/agentmetrics matched the prefix pkg/agent")
	}
	if !hasPrefix(mod+"/pkg/agent/x", mod+"/pkg/agent") {
		t.Error("a package below pkg/agent did not match")
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// TestTrustBoundaryDependsOnStdlibAndValidatorOnly: pkg/wire, where every
// inbound bus message is decoded, validated and bounded once, links only
// the standard library, the schema validator (santhosh-tekuri/jsonschema
// and its golang.org/x/text) and ringmesh's own contract packages (the
// message types, their patterns and the generated schemas): nothing a
// review of the boundary would also have to read.
func TestTrustBoundaryDependsOnStdlibAndValidatorOnly(t *testing.T) {
	allowed := []string{mod + "/pkg/events", mod + "/pkg/paths", mod + "/schemas", "github.com/santhosh-tekuri/jsonschema/", "golang.org/x/text/"}
	pkgs := goList(t, "-deps", "./pkg/wire")
	if len(pkgs) == 0 {
		t.Fatal("go list -deps ./pkg/wire: nothing listed")
	}
	for _, p := range pkgs {
		if p.Standard || p.ImportPath == mod+"/pkg/wire" {
			continue
		}
		ok := false
		for _, a := range allowed {
			ok = ok || hasPrefix(p.ImportPath, a)
		}
		if !ok {
			t.Errorf("pkg/wire links %s: the trust boundary may depend only on the standard library, the schema validator and %v", p.ImportPath, allowed[:3])
		}
	}
}
