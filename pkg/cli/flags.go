// Package cli holds what the binaries share for their flags: environment
// fallbacks (flags > environment > file > defaults) and a node-ID default.
package cli

import (
	"flag"
	"fmt"
	"os"
	"regexp"
	"strings"
)

// ApplyEnv sets every flag of fs that was not given on the command line
// from the environment variable PREFIX_NAME (upper case, '-' → '_'), e.g.
// --nats-url ← RINGMESH_NATS_URL. A bad value is an error naming the variable.
func ApplyEnv(fs *flag.FlagSet, prefix string) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		name := EnvName(prefix, f.Name)
		if v, ok := os.LookupEnv(name); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("environment %s=%q: %w", name, v, e)
			}
		}
	})
	return err
}

// EnvName returns the environment variable of flag name.
func EnvName(prefix, name string) string {
	return prefix + "_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

var unsafe = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// DefaultNodeID derives a node ID from the host name (invalid characters
// become '-', at most 64 characters).
func DefaultNodeID() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "local"
	}
	h = strings.Trim(unsafe.ReplaceAllString(strings.Split(h, ".")[0], "-"), "-")
	if len(h) > 64 {
		h = h[:64]
	}
	if h == "" {
		return "local"
	}
	return h
}

// SplitList splits a comma-separated flag value, dropping empty items.
func SplitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// ApplyFile sets every flag of fs that was not given on the command line
// from a configuration file of "name=value" lines (blank lines and lines
// starting with # are skipped; the value is taken verbatim, no quoting, no
// shell). An unknown flag, a line without '=' or a bad value is an error
// naming file:line. meshctl enroll writes such a file for the agent
// (--config). Call it after ApplyEnv: flags > environment > file.
func ApplyFile(fs *flag.FlagSet, file string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("--config: %w", err)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			return fmt.Errorf("%s:%d: want name=value", file, i+1)
		}
		if fs.Lookup(name) == nil || name == "config" {
			return fmt.Errorf("%s:%d: unknown flag %q", file, i+1, name)
		}
		if set[name] {
			continue
		}
		if err := fs.Set(name, strings.TrimSpace(value)); err != nil {
			return fmt.Errorf("%s:%d: %s: %w", file, i+1, name, err)
		}
	}
	return nil
}
