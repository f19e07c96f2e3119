package main

import (
	"context"
	"os"
	"regexp"
	"testing"

	"github.com/ringmesh/ringmesh/internal/testutil"
)

var versionLine = regexp.MustCompile(`^ringmesh-coordinator \S+ \(commit \S+, built \S+, go\S+ \S+/\S+\)\n$`)

// TestVersionStartsNothing runs the coordinator's real entry point with
// --version, once with flags that would embed NATS, serve HTTP and gossip
// and create the --dev data directory, once with flags that would dial an
// external NATS: it must print one version line, leave nothing listening,
// dial nothing and write nothing.
func TestVersionStartsNothing(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	t.Setenv("RINGMESH_SUSPECT_AFTER", "not-a-duration")
	natsAddr, httpAddr, gossipAddr, routeAddr := testutil.FreeAddr(t), testutil.FreeAddr(t), testutil.FreeAddr(t), testutil.FreeAddr(t)
	ext := testutil.NewTripwire(t)
	for name, args := range map[string][]string{
		"embedded": {"--version", "--dev", "--nats-listen", natsAddr, "--http", httpAddr, "--gossip-listen", gossipAddr, "--nats-cluster-listen", routeAddr},
		"external": {"--nats-url", ext.URL(), "--http", httpAddr, "--data-dir", dir + "/data", "--version"},
	} {
		t.Run(name, func(t *testing.T) {
			var err error
			out := testutil.CaptureStdout(t, func() { err = run(context.Background(), args) })
			if err != nil {
				t.Fatalf("--version: %v", err)
			}
			if !versionLine.MatchString(out) {
				t.Fatalf("--version printed %q, want %s", out, versionLine)
			}
			testutil.NotListening(t, natsAddr, httpAddr, gossipAddr, routeAddr)
			if n := ext.Conns(); n != 0 {
				t.Errorf("--version made %d connection(s) to NATS", n)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Errorf("--version wrote %v into the working directory", ents)
			}
		})
	}
}
