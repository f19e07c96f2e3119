package meshsync

import (
	"fmt"
	"path"
	"strings"
)

// matchGlob matches a slash-separated relative path against a pattern in
// path.Match syntax where a "**" segment matches zero or more directories.
// A pattern without a slash matches the base name at any depth
// ("*.db" matches "a/b/c.db"), like .gitignore.
func matchGlob(pattern, rel string) bool {
	if !strings.Contains(pattern, "/") {
		ok, _ := path.Match(pattern, path.Base(rel))
		return ok
	}
	return matchSegs(strings.Split(pattern, "/"), strings.Split(rel, "/"))
}

func matchSegs(pat, segs []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			rest := pat[1:]
			for i := 0; i <= len(segs); i++ {
				if matchSegs(rest, segs[i:]) {
					return true
				}
			}
			return false
		}
		if len(segs) == 0 {
			return false
		}
		if ok, _ := path.Match(pat[0], segs[0]); !ok {
			return false
		}
		pat, segs = pat[1:], segs[1:]
	}
	return len(segs) == 0
}

// validateGlob rejects patterns path.Match cannot parse.
func validateGlob(pattern string) error {
	if pattern == "" || strings.HasPrefix(pattern, "/") || strings.Contains(pattern, "\\") {
		return fmt.Errorf("glob %q: must be a non-empty slash-separated path relative to the source root", pattern)
	}
	for _, seg := range strings.Split(pattern, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("glob %q: empty, '.' or '..' segment (globs are relative to the source root)", pattern)
		}
		if seg == "**" {
			continue
		}
		if _, err := path.Match(seg, ""); err != nil {
			return fmt.Errorf("glob %q: %w", pattern, err)
		}
	}
	return nil
}

// ValidateGlob checks a source glob ("*.db", "**/*.npz", "models/**") and
// says what is wrong with it.
func ValidateGlob(pattern string) error { return validateGlob(pattern) }
