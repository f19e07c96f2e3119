package cli

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The agent's --config file fills only what neither the command line nor
// the environment gave; a typo is an error naming file:line.
func TestApplyFileAfterEnv(t *testing.T) {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	node := fs.String("node", "", "")
	url := fs.String("nats-url", "", "")
	dir := fs.String("state-dir", "", "")
	metrics := fs.String("metrics-listen", "127.0.0.1:9108", "")
	fs.String("config", "", "")
	file := filepath.Join(t.TempDir(), "agent.conf")
	if err := os.WriteFile(file, []byte("# comment\nnode=from-file\nnats-url = tls://file:4222\n\nstate-dir=/opt/ringmesh/var\nmetrics-listen=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := fs.Parse([]string{"--node", "from-flag"}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TEST_AGENT_NATS_URL", "tls://env:4222")
	if err := ApplyEnv(fs, "TEST_AGENT"); err != nil {
		t.Fatal(err)
	}
	if err := ApplyFile(fs, file); err != nil {
		t.Fatal(err)
	}
	if *node != "from-flag" || *url != "tls://env:4222" || *dir != "/opt/ringmesh/var" || *metrics != "" {
		t.Fatalf("node %q url %q dir %q metrics %q", *node, *url, *dir, *metrics)
	}
	if err := os.WriteFile(file, []byte("node=x\nnode-id=y\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := ApplyFile(flag.NewFlagSet("x", flag.ContinueOnError), file); err == nil || !strings.Contains(err.Error(), "agent.conf:1") {
		t.Fatalf("unknown flag: %v", err)
	}
}
