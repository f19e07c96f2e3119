package repocheck

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go/format"
)

// Every Go file is as gofmt writes it (imports sorted, final newline): a
// review diff then shows only what changed.
func TestGoFilesAreGofmted(t *testing.T) {
	r := root(t)
	var bad []string
	err := filepath.WalkDir(r, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); p != r && (strings.HasPrefix(name, ".") || name == "testdata" || name == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") {
			return nil
		}
		src, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out, err := format.Source(src)
		if err != nil || string(out) != string(src) {
			rel, _ := filepath.Rel(r, p)
			bad = append(bad, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) > 0 {
		t.Errorf("not gofmt-formatted (run gofmt -w): %s", strings.Join(bad, ", "))
	}
}
