package meshctl

import (
	"bytes"
	"encoding/json"
	"regexp"
	"testing"

	"github.com/ringmesh/ringmesh/internal/testutil"
	"github.com/ringmesh/ringmesh/pkg/version"
)

var versionLine = regexp.MustCompile(`^meshctl \S+ \(commit \S+, built \S+, go\S+ \S+/\S+\)\n$`)

// TestVersionContactsNothing: `meshctl version`, `meshctl --version` and
// `meshctl version --json` print the build identity without dialling the
// NATS URL they are given.
func TestVersionContactsNothing(t *testing.T) {
	nats := testutil.NewTripwire(t)
	for _, args := range [][]string{{"version"}, {"--version"}, {"version", "--json"}} {
		var out, errOut bytes.Buffer
		root := NewRoot(&out, &errOut)
		root.SetArgs(append([]string{"--nats-url", nats.URL()}, args...))
		if err := root.Execute(); err != nil {
			t.Fatalf("%v: %v (stderr %q)", args, err, errOut.String())
		}
		if len(args) == 2 {
			var in version.Info
			if err := json.Unmarshal(out.Bytes(), &in); err != nil || in != version.Get() {
				t.Fatalf("%v: %q decodes to %+v (%v), want %+v", args, out.String(), in, err, version.Get())
			}
		} else if !versionLine.MatchString(out.String()) {
			t.Fatalf("%v printed %q, want %s", args, out.String(), versionLine)
		}
	}
	if n := nats.Conns(); n != 0 {
		t.Errorf("version made %d connection(s) to NATS", n)
	}
}
