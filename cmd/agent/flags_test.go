package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ringmesh/ringmesh/internal/testutil"
)

// The data-protection flags meshctl enroll writes into agent.conf are
// checked before anything starts: a bad data class or an out-of-range
// count is refused naming the file line or the flag, and nothing dials.
func TestSyncFlagsRefusedBeforeStart(t *testing.T) {
	nats := testutil.NewTripwire(t)
	for line, want := range map[string]string{
		"data-class=Checkpoints=*.pt": "want NAME=GLOB",
		"data-class=games=a b":        "glob",
		"replication-target=-1":       "--replication-target -1",
		"max-concurrent-syncs=1000":   "--max-concurrent-syncs 1000",
		"data-class=games=$(id)":      "glob",
		"replication-target=two":      "replication-target",
	} {
		conf := filepath.Join(t.TempDir(), "agent.conf")
		if err := os.WriteFile(conf, []byte("sync=on\n"+line+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		err := run([]string{"--config", conf, "--nats-url", nats.URL(), "--state-dir", filepath.Join(t.TempDir(), "s"), "--node", "vast-1"})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error mentioning %q", line, err, want)
		}
	}
	if n := nats.Conns(); n != 0 {
		t.Errorf("%d connection(s) to NATS with refused flags", n)
	}
}
