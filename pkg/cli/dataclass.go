package cli

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// dataClassNameRe bounds a data source name (the agent's sources: models,
// checkpoints, training, games, ...).
var dataClassNameRe = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)

// dataClassGlobRe bounds one glob: no spaces, quotes, commas or control
// characters (the agent checks its shape further when it builds its sources).
var dataClassGlobRe = regexp.MustCompile(`^[A-Za-z0-9._*?\[\]/+@=-]{1,256}$`)

// DataClasses is a repeatable flag (flag.Value) NAME=GLOB[,GLOB...]: the
// files of data source NAME the agent protects, replacing that source's
// default globs, as the inventory's auto_sync.data_classes does. Name → globs.
type DataClasses map[string][]string

// String formats the flag's value (sorted by name, ";"-separated).
func (d DataClasses) String() string {
	names := make([]string, 0, len(d))
	for n := range d {
		names = append(names, n)
	}
	sort.Strings(names)
	var parts []string
	for _, n := range names {
		parts = append(parts, FormatDataClass(n, d[n]))
	}
	return strings.Join(parts, ";")
}

// Set parses one NAME=GLOB[,GLOB...]; errors name the part that is wrong.
func (d *DataClasses) Set(s string) error {
	name, list, ok := strings.Cut(s, "=")
	if !ok || !dataClassNameRe.MatchString(name) {
		return fmt.Errorf("%q: want NAME=GLOB[,GLOB...] with NAME a data source (lower case, e.g. checkpoints)", clipArg(s))
	}
	var globs []string
	for _, g := range strings.Split(list, ",") {
		if !dataClassGlobRe.MatchString(g) {
			return fmt.Errorf("%s: glob %q: want letters, digits and . _ * ? [ ] / + @ = - (no spaces, at most 256)", name, clipArg(g))
		}
		globs = append(globs, g)
	}
	if *d == nil {
		*d = DataClasses{}
	}
	(*d)[name] = slices.Compact(globs)
	return nil
}

// FormatDataClass is the flag value for one source: NAME=GLOB,GLOB.
func FormatDataClass(name string, globs []string) string {
	return name + "=" + strings.Join(globs, ",")
}

func clipArg(s string) string {
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}
