package version

import (
	"bytes"
	"encoding/json"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

func TestGetPrefersStampedValues(t *testing.T) {
	vcs := map[string]string{"vcs.revision": "ffffffffffffffffffffffffffffffffffffffff", "vcs.time": "2020-01-01T00:00:00Z", "vcs.modified": "true"}
	in := get("v1.2.3", "0123456789abcdef0123456789abcdef01234567", "2026-12-01T21:30:00Z", vcs)
	want := Info{Version: "v1.2.3", Commit: "0123456789abcdef0123456789abcdef01234567", Date: "2026-12-01T21:30:00Z",
		GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if in != want {
		t.Fatalf("get = %+v, want %+v", in, want)
	}
}

func TestGetFallsBackToVCSThenUnknown(t *testing.T) {
	in := get("dev", "", "", map[string]string{"vcs.revision": "abcdef0123456789", "vcs.time": "2026-11-30T10:00:00Z", "vcs.modified": "true"})
	if in.Commit != "abcdef0123456789+dirty" || in.Date != "2026-11-30T10:00:00Z" || in.Version != "dev" {
		t.Fatalf("from VCS: %+v", in)
	}
	in = get("v0.0.1-next", "none", "0001-01-01T00:00:00Z", map[string]string{"vcs.revision": "abcdef0123456789", "vcs.time": "2026-11-30T10:00:00Z"})
	if in.Commit != "abcdef0123456789" || in.Date != "2026-11-30T10:00:00Z" {
		t.Fatalf("goreleaser placeholders must fall back to VCS: %+v", in)
	}
	in = get("", "", "", map[string]string{})
	if in.Version != "dev" || in.Commit != Unknown || in.Date != Unknown {
		t.Fatalf("nothing recorded: %+v (want dev, unknown, unknown)", in)
	}
}

// lineRe is the documented --version shape.
var lineRe = regexp.MustCompile(`^ringmesh-agent (\S+) \(commit (\S+), built (\S+), (go\S+) (\S+/\S+)\)\n$`)

func TestFprintShape(t *testing.T) {
	var b bytes.Buffer
	if err := Fprint(&b, "ringmesh-agent"); err != nil {
		t.Fatal(err)
	}
	m := lineRe.FindStringSubmatch(b.String())
	if m == nil {
		t.Fatalf("Fprint = %q, does not match %s", b.String(), lineRe)
	}
	if m[1] != Version || m[4] != runtime.Version() || m[5] != runtime.GOOS+"/"+runtime.GOARCH {
		t.Fatalf("fields %q", m[1:])
	}
}

func TestFprintJSON(t *testing.T) {
	var b bytes.Buffer
	if err := FprintJSON(&b); err != nil {
		t.Fatal(err)
	}
	var m map[string]string
	if err := json.Unmarshal(b.Bytes(), &m); err != nil {
		t.Fatalf("%v: %s", err, b.String())
	}
	for _, k := range []string{"version", "commit", "build_date", "go_version", "platform"} {
		if strings.TrimSpace(m[k]) == "" {
			t.Errorf("JSON field %q empty in %s", k, b.String())
		}
	}
}

func TestStringDev(t *testing.T) {
	old := Version
	defer func() { Version = old }()
	Version = "v9.9.9"
	if s := String(); s != "v9.9.9" {
		t.Fatalf("String() = %q", s)
	}
	Version = "dev"
	if s := String(); s != "dev" && !strings.HasPrefix(s, "dev-") {
		t.Fatalf("String() = %q, want dev or dev-<rev>", s)
	}
}
