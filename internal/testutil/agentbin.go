package testutil

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

var (
	agentBinOnce sync.Once
	agentBinPath string
	agentBinErr  error
)

// AgentBinary builds ./cmd/agent once per test process (CGO_ENABLED=0, the
// static binary `meshctl target setup` installs on sync targets) and
// returns its path; the test fails when the build does. The file is left in
// the OS temporary directory for the other tests of the process.
func AgentBinary(t testing.TB) string {
	t.Helper()
	agentBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ringmesh-test-agent-")
		if err != nil {
			agentBinErr = err
			return
		}
		agentBinPath = filepath.Join(dir, "ringmesh-agent")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", agentBinPath, "github.com/ringmesh/ringmesh/cmd/agent")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			agentBinErr = fmt.Errorf("go build ./cmd/agent: %v\n%s", err, out)
		}
	})
	if agentBinErr != nil {
		t.Fatalf("agent binary: %v", agentBinErr)
	}
	return agentBinPath
}

// AgentBinaryFor is AgentBinary in the shape of synctarget.Options.Binary:
// the one binary, for the architecture of this machine.
func AgentBinaryFor(t testing.TB) func(context.Context, string) (string, error) {
	p := AgentBinary(t)
	return func(context.Context, string) (string, error) { return p, nil }
}
