package main

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/ringmesh/ringmesh/internal/testutil"
)

// versionLine is the shape every binary's --version prints.
var versionLine = regexp.MustCompile(`^ringmesh-agent \S+ \(commit \S+, built \S+, go\S+ \S+/\S+\)\n$`)

// TestVersionStartsNothing runs the agent's real entry point with --version
// and every flag that would make it dial NATS, bind gossip and write its
// outbox: it must print one version line and do none of that, even with an
// environment variable that would fail flag parsing.
func TestVersionStartsNothing(t *testing.T) {
	nats := testutil.NewTripwire(t)
	gossip := testutil.FreeAddr(t)
	state := filepath.Join(t.TempDir(), "state")
	t.Setenv("RINGMESH_AGENT_HEARTBEAT", "not-a-duration")
	var err error
	out := testutil.CaptureStdout(t, func() {
		err = run([]string{"--version", "--dev", "--nats-url", nats.URL(), "--gossip-listen", gossip, "--state-dir", state})
	})
	if err != nil {
		t.Fatalf("--version: %v", err)
	}
	if !versionLine.MatchString(out) {
		t.Fatalf("--version printed %q, want %s", out, versionLine)
	}
	if n := nats.Conns(); n != 0 {
		t.Errorf("--version made %d connection(s) to NATS", n)
	}
	testutil.NotListening(t, gossip)
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Errorf("--version created the state directory (%v)", err)
	}
}
