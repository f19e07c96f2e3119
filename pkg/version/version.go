// Package version holds the build identity of the ringmesh binaries. A
// release stamps it with the linker:
//
//	go build -ldflags "-X github.com/ringmesh/ringmesh/pkg/version.Version=v1.2.3 \
//	  -X github.com/ringmesh/ringmesh/pkg/version.Commit=<40-hex commit> \
//	  -X github.com/ringmesh/ringmesh/pkg/version.Date=2026-12-01T21:30:00Z"
//
// (scripts/build-release.sh and .goreleaser.yaml do this). A plain go build
// leaves Version "dev"; Commit and Date then come from the VCS stamp the go
// command records (debug.ReadBuildInfo), or stay "unknown": nothing is guessed.
package version

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// Set with -ldflags -X at release time; see the package doc.
var (
	// Version is the release version (e.g. "v1.2.3"); "dev" for local builds.
	Version = "dev"
	// Commit is the full git commit the binary was built from; empty when not stamped.
	Commit = ""
	// Date is the build time, RFC 3339 in UTC; empty when not stamped.
	Date = ""
)

// Unknown stands for a field that neither the linker nor the build info gave.
const Unknown = "unknown"

// Info is the build identity as printed by --version and `meshctl version`.
type Info struct {
	Version   string `json:"version"`    // Version
	Commit    string `json:"commit"`     // full commit, "+dirty" appended for a modified tree; Unknown if not recorded
	Date      string `json:"build_date"` // RFC 3339; Unknown if not recorded
	GoVersion string `json:"go_version"` // runtime.Version() of the toolchain that built it
	Platform  string `json:"platform"`   // GOOS/GOARCH
}

// Get returns the build identity: the stamped values first, then the
// go command's VCS settings (vcs.revision, vcs.time, vcs.modified).
func Get() Info {
	return get(Version, Commit, Date, readSettings())
}

func readSettings() map[string]string {
	m := map[string]string{}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			m[s.Key] = s.Value
		}
	}
	return m
}

func get(ver, commit, date string, vcs map[string]string) Info {
	in := Info{Version: ver, Commit: commit, Date: date, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if in.Version == "" {
		in.Version = "dev"
	}
	if unstamped(in.Commit) {
		if rev := vcs["vcs.revision"]; rev != "" {
			in.Commit = rev
			if vcs["vcs.modified"] == "true" {
				in.Commit += "+dirty"
			}
		} else {
			in.Commit = Unknown
		}
	}
	if unstamped(in.Date) {
		in.Date = vcs["vcs.time"] // commit time: the closest measured fact for an unstamped build
		if in.Date == "" {
			in.Date = Unknown
		}
	}
	return in
}

// unstamped reports whether a stamped value carries no information: empty,
// or the placeholders goreleaser writes when it cannot read the git state
// ("none" for the commit, the zero time for the date).
func unstamped(v string) bool {
	switch v {
	case "", "none", Unknown, "0001-01-01T00:00:00Z":
		return true
	}
	return false
}

// String returns Version, or for a "dev" build "dev-<first 7 of the VCS
// revision>" when the build recorded one. It is what agents report as their
// version in hello, gossip meta and the registry.
func String() string {
	if Version != "dev" {
		return Version
	}
	if rev := readSettings()["vcs.revision"]; len(rev) >= 7 {
		return "dev-" + rev[:7]
	}
	return Version
}

// Line formats in as one line for program name, e.g.
//
//	ringmesh-agent v1.2.3 (commit 0123…, built 2026-12-01T21:30:00Z, go1.26.8 linux/amd64)
func (in Info) Line(program string) string {
	return fmt.Sprintf("%s %s (commit %s, built %s, %s %s)", program, in.Version, in.Commit, in.Date, in.GoVersion, in.Platform)
}

// Fprint writes Get().Line(program) and a newline to w. The binaries call it
// for --version before anything else is set up: it never opens a listener or
// a connection.
func Fprint(w io.Writer, program string) error {
	_, err := fmt.Fprintln(w, Get().Line(program))
	return err
}

// FprintJSON writes Get() as one JSON object to w.
func FprintJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(Get())
}
