package repocheck

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

const versionPkg = "github.com/ringmesh/ringmesh/pkg/version"

// versionVars returns the package-level string variables of pkg/version.
func versionVars(t *testing.T, r string) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(r, "pkg", "version", "version.go"), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var vars []string
	for _, d := range f.Decls {
		if g, ok := d.(*ast.GenDecl); ok && g.Tok == token.VAR {
			for _, s := range g.Specs {
				for _, n := range s.(*ast.ValueSpec).Names {
					vars = append(vars, n.Name)
				}
			}
		}
	}
	return vars
}

var xflag = regexp.MustCompile(`-X (\S+)\.(\w+)=`)

// stamped returns the variables of pkg/version that ldflags text sets with -X,
// with "$pkg" expanded.
func stamped(t *testing.T, where, text string) []string {
	t.Helper()
	var out []string
	for _, m := range xflag.FindAllStringSubmatch(text, -1) {
		if p := m[1]; p != versionPkg && p != "$pkg" {
			t.Errorf("%s: -X %s.%s: not in %s", where, p, m[2], versionPkg)
			continue
		}
		out = append(out, m[2])
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// TestReleaseDefinitionsAgree checks that .goreleaser.yaml, the release
// script and the Dockerfile build static binaries and stamp exactly the
// variables pkg/version has (a renamed variable would silently leave
// releases unstamped), and that goreleaser and the script build the same
// binaries from the same mains for linux amd64 and arm64.
func TestReleaseDefinitionsAgree(t *testing.T) {
	r := root(t)
	vars := versionVars(t, r)
	sort.Strings(vars)
	if len(vars) < 3 {
		t.Fatalf("pkg/version vars %v: want Version, Commit, Date", vars)
	}

	var gr struct {
		Version int `yaml:"version"`
		Builds  []struct {
			ID      string   `yaml:"id"`
			Main    string   `yaml:"main"`
			Binary  string   `yaml:"binary"`
			Env     []string `yaml:"env"`
			Goos    []string `yaml:"goos"`
			Goarch  []string `yaml:"goarch"`
			Ldflags []string `yaml:"ldflags"`
		} `yaml:"builds"`
	}
	b, err := os.ReadFile(filepath.Join(r, ".goreleaser.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &gr); err != nil {
		t.Fatalf(".goreleaser.yaml: %v", err)
	}
	if gr.Version != 2 {
		t.Errorf(".goreleaser.yaml: version %d, want 2", gr.Version)
	}
	wantMains := map[string]string{"ringmesh-agent": "./cmd/agent", "ringmesh-coordinator": "./cmd/coordinator", "meshctl": "./cmd/meshctl"}
	gotMains := map[string]string{}
	for _, bd := range gr.Builds {
		gotMains[bd.Binary] = bd.Main
		where := ".goreleaser.yaml build " + bd.ID
		if !slices.Contains(bd.Env, "CGO_ENABLED=0") {
			t.Errorf("%s: env %v lacks CGO_ENABLED=0", where, bd.Env)
		}
		if !slices.Equal(bd.Goos, []string{"linux"}) || !slices.Equal(bd.Goarch, []string{"amd64", "arm64"}) {
			t.Errorf("%s: goos %v goarch %v, want [linux] [amd64 arm64]", where, bd.Goos, bd.Goarch)
		}
		if got := stamped(t, where, strings.Join(bd.Ldflags, " ")); !slices.Equal(got, vars) {
			t.Errorf("%s stamps %v, pkg/version has %v", where, got, vars)
		}
	}
	if len(gotMains) != len(wantMains) {
		t.Errorf(".goreleaser.yaml builds %v, want %v", gotMains, wantMains)
	}
	for bin, main := range wantMains {
		if gotMains[bin] != main {
			t.Errorf(".goreleaser.yaml: binary %s from %q, want %q", bin, gotMains[bin], main)
		}
	}

	sh, err := os.ReadFile(filepath.Join(r, "scripts", "build-release.sh"))
	if err != nil {
		t.Fatal(err)
	}
	script := string(sh)
	if got := stamped(t, "scripts/build-release.sh", script); !slices.Equal(got, vars) {
		t.Errorf("scripts/build-release.sh stamps %v, pkg/version has %v", got, vars)
	}
	for bin, main := range wantMains {
		if !strings.Contains(script, "["+bin+"]="+main) {
			t.Errorf("scripts/build-release.sh does not build %s from %s", bin, main)
		}
	}
	for _, want := range []string{"CGO_ENABLED=0", "GOOS=linux", "amd64 arm64", "statically linked", "pkg=" + versionPkg} {
		if !strings.Contains(script, want) {
			t.Errorf("scripts/build-release.sh lacks %q", want)
		}
	}

	df, err := os.ReadFile(filepath.Join(r, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	docker := string(df)
	if got := stamped(t, "Dockerfile", docker); !slices.Equal(got, vars) {
		t.Errorf("Dockerfile stamps %v, pkg/version has %v", got, vars)
	}
	for _, want := range []string{"CGO_ENABLED=0", "./cmd/coordinator", "USER 65532", "VOLUME", "pkg=" + versionPkg} {
		if !strings.Contains(docker, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
}
