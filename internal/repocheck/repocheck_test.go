package repocheck

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// root is the module root: the nearest directory above this package with a go.mod.
func root(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test directory")
		}
		dir = parent
	}
}

// skipDir reports whether the go command ignores dir (testdata, _x, .x) or it
// is build or run output that is not part of the repository.
func skipDir(rel, name string) bool {
	if rel == "." {
		return false
	}
	switch name {
	case "testdata", "dist", "bin", "ringmesh-data", "ringmesh-demo", "ringmesh-agent", "node_modules":
		return true
	}
	return strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")
}

// TestPackagesDocumented fails for every Go package without a package doc
// comment that starts with "Package <name>" (or "Command " for a main
// package). Test-only directories need it on one of their test files.
func TestPackagesDocumented(t *testing.T) {
	r := root(t)
	byDir := map[string][]string{}
	err := filepath.WalkDir(r, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(r, p)
		if d.IsDir() {
			if skipDir(rel, d.Name()) {
				return filepath.SkipDir
			}
			if rel != "." {
				if _, err := os.Stat(filepath.Join(p, "go.mod")); err == nil {
					return filepath.SkipDir // another module
				}
			}
			return nil
		}
		if strings.HasSuffix(d.Name(), ".go") {
			byDir[filepath.Dir(rel)] = append(byDir[filepath.Dir(rel)], d.Name())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(byDir) < 10 {
		t.Fatalf("found only %d package directories under %s: the walk is broken", len(byDir), r)
	}
	dirs := make([]string, 0, len(byDir))
	for d := range byDir {
		dirs = append(dirs, d)
	}
	sort.Strings(dirs)
	fset := token.NewFileSet()
	for _, dir := range dirs {
		var src, tests []*ast.File
		for _, name := range byDir[dir] {
			f, err := parser.ParseFile(fset, filepath.Join(r, dir, name), nil, parser.PackageClauseOnly|parser.ParseComments)
			if err != nil {
				t.Errorf("%s: %v", filepath.Join(dir, name), err)
				continue
			}
			if strings.HasSuffix(name, "_test.go") {
				tests = append(tests, f)
			} else {
				src = append(src, f)
			}
		}
		files := src
		if len(files) == 0 {
			files = tests
		}
		if len(files) == 0 {
			continue
		}
		pkg := files[0].Name.Name
		want := "Package " + pkg
		if pkg == "main" {
			want = "Command "
		}
		ok := false
		for _, f := range files {
			if f.Doc != nil && strings.HasPrefix(f.Doc.Text(), want) {
				ok = true
			}
		}
		if !ok {
			t.Errorf("%s (package %s) has no package doc comment starting %q: add one above the package clause of one file (or a doc.go)", dir, pkg, want)
		}
	}
}

// files lists the repository's files: git's tracked and untracked-but-not-
// ignored files when git can say, else every file outside the skipped
// directories.
func files(t *testing.T, r string) []string {
	t.Helper()
	if out, err := exec.Command("git", "-C", r, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output(); err == nil && len(out) > 0 {
		var list []string
		for _, f := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
			if _, err := os.Stat(filepath.Join(r, f)); err == nil { // deleted in the work tree
				list = append(list, filepath.FromSlash(f))
			}
		}
		return list
	}
	var list []string
	_ = filepath.WalkDir(r, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(r, p)
		if d.IsDir() {
			if skipDir(rel, d.Name()) {
				return filepath.SkipDir
			}
			return nil
		}
		list = append(list, rel)
		return nil
	})
	return list
}

// outside are the names of things that exist next to a working copy but not
// in a clone: a clone of the repository must be complete without them. Built
// by concatenation so that this file does not match itself.
var outside = []string{
	".." + "/shared", "/work" + "/", "shared" + "/reference", "shared" + "/fixtures",
	"DESIGN" + ".md", "DESIGN" + " §", "original" + "-system.md", "engineering" + "-notes.md",
	"landscape" + ".md", "seed-providers" + "-readme", "reference" + "/provider-apis",
}

// TestNoReferencesOutsideRepo fails for every file that names a document or
// path outside the repository; the design lives in docs/.
func TestNoReferencesOutsideRepo(t *testing.T) {
	r := root(t)
	list := files(t, r)
	if len(list) < 50 {
		t.Fatalf("found only %d files: the listing is broken", len(list))
	}
	for _, f := range list {
		b, err := os.ReadFile(filepath.Join(r, f))
		if err != nil || bytes.IndexByte(b, 0) >= 0 {
			continue // unreadable or binary
		}
		for i, line := range strings.Split(string(b), "\n") {
			for _, o := range outside {
				if strings.Contains(line, o) {
					t.Errorf("%s:%d refers to %q, which a clone does not have: point to docs/ instead", f, i+1, o)
				}
			}
		}
	}
}

var mdLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// TestMarkdownLinksResolve fails for a relative link in a Markdown file that
// points at no file or directory of the repository.
func TestMarkdownLinksResolve(t *testing.T) {
	r := root(t)
	n := 0
	for _, f := range files(t, r) {
		if !strings.HasSuffix(f, ".md") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(r, f))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range mdLink.FindAllStringSubmatch(string(b), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "#") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			target, _, _ = strings.Cut(target, "#")
			n++
			if _, err := os.Stat(filepath.Join(r, filepath.Dir(f), filepath.FromSlash(target))); err != nil {
				t.Errorf("%s: link %q does not resolve", f, m[1])
			}
		}
	}
	if n == 0 {
		t.Fatal("no relative Markdown links found: the scan is broken")
	}
}
