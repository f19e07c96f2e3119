package mesh

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestProviderFactsTable(t *testing.T) {
	for _, p := range Providers {
		if _, ok := providerFacts[p]; !ok {
			t.Errorf("provider %s has no row in providerFacts", p)
		}
	}
	want := map[string]struct {
		eph    bool
		notice time.Duration
	}{
		ProviderVast: {true, 15 * time.Second}, ProviderRunPod: {false, 5 * time.Second}, ProviderNebius: {false, 60 * time.Second},
		ProviderLambda: {false, FallbackNotice}, ProviderVultr: {false, FallbackNotice}, ProviderHetzner: {false, FallbackNotice},
		ProviderLocal: {false, FallbackNotice}, ProviderUnknown: {false, FallbackNotice},
	}
	for p, w := range want {
		if EphemeralByDefault(p) != w.eph || PreemptNotice(p) != w.notice {
			t.Errorf("%s: ephemeral %v notice %v, want %v %v", p, EphemeralByDefault(p), PreemptNotice(p), w.eph, w.notice)
		}
	}
	if got := NoticeSummary(); got != "vast 15s, runpod 5s, nebius 60s, else 15s" {
		t.Errorf("NoticeSummary = %q", got)
	}
}

// TestProviderFactsHaveOneDefinition: which providers are ephemeral and how
// much notice each gives is defined in providerFacts only. It parses every
// non-test Go file of the module outside pkg/mesh and fails on a second
// definition (see factFindings for the forms it recognises).
func TestProviderFactsHaveOneDefinition(t *testing.T) {
	root := moduleRoot(t)
	var found []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			// Fakes of cloud APIs describe instances, not providers: skipped.
			if rel == filepath.Join("pkg", "mesh") || d.Name() == "testdata" || strings.Contains(d.Name(), "fake") ||
				(strings.HasPrefix(d.Name(), ".") && rel != ".") || d.Name() == "node_modules" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		fs, err := factFindings(rel, src)
		if err != nil {
			return err
		}
		found = append(found, fs...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range found {
		t.Errorf("%s: restates a provider fact; use mesh.Facts / mesh.EphemeralByDefault / mesh.PreemptNotice / mesh.NoticeSummary", f)
	}
}

// The checker recognises the forms the facts were restated in before they
// had one table (a capability literal, a per-provider switch, a comparison
// with a provider name, a help text with figures), and passes their
// replacements.
func TestFactFindingsRecognisesRestatements(t *testing.T) {
	bad := map[string]string{
		"capability literal": `package p
func f() Caps { return Caps{CanStop: true, Ephemeral: true, NoticeSeconds: 5} }`,
		"notice switch": `package p
import ("time"; "m/mesh")
func DefaultNotice(provider string) time.Duration {
	switch provider {
	case mesh.ProviderRunPod:
		return 5 * time.Second
	}
	return 15 * time.Second
}`,
		"ephemeral by name": `package p
func f(provider *string, h *H) { ephemeral := (h != nil && h.Ephemeral()) || (h == nil && *provider == "vast"); _ = ephemeral }`,
		"figures in text": `package p
var usage = "time from SIGTERM to the end (default by provider: vast 15s, runpod 5s, nebius 60s)"`,
		"struct field default": `package p
var x = Config{Notice: 30 * time.Second}`,
	}
	for name, src := range bad {
		got, err := factFindings(name+".go", []byte(src))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(got) == 0 {
			t.Errorf("%s: not recognised", name)
		}
	}
	good := `package p
import ("time"; "m/mesh")
func f(provider string, h *H, n time.Duration) {
	_ = Caps{CanStop: true, Ephemeral: mesh.Facts(mesh.ProviderRunPod).Ephemeral, NoticeSeconds: int(mesh.Facts(mesh.ProviderRunPod).Notice / time.Second)}
	ephemeral := (h != nil && h.Ephemeral()) || (h == nil && mesh.EphemeralByDefault(provider))
	notice := n
	if notice <= 0 { notice = mesh.PreemptNotice(provider) }
	_ = Cfg{Notice: notice, Ephemeral: ephemeral}
	_ = "default by provider: " + mesh.NoticeSummary()
	_ = Hello{Ephemeral: h.Ephemeral()}
}`
	if got, err := factFindings("good.go", []byte(good)); err != nil || len(got) != 0 {
		t.Errorf("replacements flagged: %v %v", got, err)
	}
}

var (
	factName     = regexp.MustCompile(`(?i)^(is_?)?(ephemeral|preemptible|\w*notice\w*)(by\w*)?$`)
	providerName = regexp.MustCompile(`^(vast|runpod|lambda|vultr|hetzner|nebius)$`)
	providerRef  = regexp.MustCompile(`^Provider(Vast|RunPod|Lambda|Vultr|Hetzner|Nebius)$`)
	figuresText  = regexp.MustCompile(`(?i)\b(vast|runpod|lambda|vultr|hetzner|nebius)\b\W{0,3}(\w+\W{1,3}){0,3}\d+\s*(s|sec|seconds?)\b`)
)

// factFindings lists, as "file:line: what", each place in one Go source
// file that defines a provider fact itself:
//   - a field or variable named like ephemeral/notice/preemptible set to a
//     constant (true, 5, 30 * time.Second) in a composite literal;
//   - such a variable assigned an expression that compares with a provider
//     name ("vast", mesh.ProviderVast);
//   - a function named like ephemeral/notice that branches on provider
//     names and returns constants;
//   - a string literal giving a provider a notice figure ("runpod 5s").
func factFindings(file string, src []byte) ([]string, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, file, src, 0)
	if err != nil {
		return nil, err
	}
	var out []string
	add := func(n ast.Node, format string, args ...any) {
		out = append(out, fmt.Sprintf("%s: %s", fset.Position(n.Pos()), fmt.Sprintf(format, args...)))
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch x := n.(type) {
		case *ast.KeyValueExpr:
			if id, ok := x.Key.(*ast.Ident); ok && factName.MatchString(id.Name) && isConstant(x.Value) {
				add(x, "%s set to a constant", id.Name)
			}
		case *ast.AssignStmt:
			for i, l := range x.Lhs {
				if id, ok := l.(*ast.Ident); ok && factName.MatchString(id.Name) && i < len(x.Rhs) && comparesProvider(x.Rhs[i]) {
					add(x, "%s decided by comparing with a provider name", id.Name)
				}
			}
		case *ast.ValueSpec:
			for i, id := range x.Names {
				if factName.MatchString(id.Name) && i < len(x.Values) && comparesProvider(x.Values[i]) {
					add(x, "%s decided by comparing with a provider name", id.Name)
				}
			}
		case *ast.FuncDecl:
			if x.Body != nil && factName.MatchString(x.Name.Name) && mentionsProvider(x.Body) && returnsConstant(x.Body) {
				add(x, "func %s branches on provider names", x.Name.Name)
			}
		case *ast.BasicLit:
			if x.Kind == token.STRING {
				if s, err := strconv.Unquote(x.Value); err == nil && figuresText.MatchString(s) {
					add(x, "text gives a provider a notice figure: %q", figuresText.FindString(s))
				}
			}
		}
		return true
	})
	return out, nil
}

// isConstant: a literal, true/false, time.Second-style units and
// arithmetic of those.
func isConstant(e ast.Expr) bool {
	switch x := e.(type) {
	case *ast.BasicLit:
		return true
	case *ast.Ident:
		return x.Name == "true" || x.Name == "false"
	case *ast.ParenExpr:
		return isConstant(x.X)
	case *ast.BinaryExpr:
		return isConstant(x.X) && isConstant(x.Y)
	case *ast.SelectorExpr:
		pkg, ok := x.X.(*ast.Ident)
		return ok && pkg.Name == "time"
	}
	return false
}

func isProviderName(e ast.Expr) bool {
	switch x := e.(type) {
	case *ast.BasicLit:
		s, err := strconv.Unquote(x.Value)
		return err == nil && providerName.MatchString(s)
	case *ast.SelectorExpr:
		return providerRef.MatchString(x.Sel.Name)
	case *ast.Ident:
		return providerRef.MatchString(x.Name)
	}
	return false
}

func comparesProvider(e ast.Expr) bool {
	found := false
	ast.Inspect(e, func(n ast.Node) bool {
		if b, ok := n.(*ast.BinaryExpr); ok && (b.Op == token.EQL || b.Op == token.NEQ) && (isProviderName(b.X) || isProviderName(b.Y)) {
			found = true
		}
		return !found
	})
	return found
}

func mentionsProvider(body *ast.BlockStmt) bool {
	found := false
	ast.Inspect(body, func(n ast.Node) bool {
		if e, ok := n.(ast.Expr); ok && isProviderName(e) {
			found = true
		}
		return !found
	})
	return found
}

func returnsConstant(body *ast.BlockStmt) bool {
	found := false
	ast.Inspect(body, func(n ast.Node) bool {
		if r, ok := n.(*ast.ReturnStmt); ok {
			for _, e := range r.Results {
				if isConstant(e) {
					found = true
				}
			}
		}
		return !found
	})
	return found
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test")
		}
		dir = parent
	}
}
