package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/internal/testutil"
	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/auth"
	"github.com/ringmesh/ringmesh/pkg/bus/busserver"
	"github.com/ringmesh/ringmesh/pkg/coordinator"
	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/registry"
)

// The real agent binary, given only a token file, the shared bootstrap
// credential and the CA, in a "Vast container" (CONTAINER_ID and
// VAST_CONTAINERLABEL set; no --node, no --instance-id): it enrolls, writes
// its own creds (0600), deletes the token file and shows up healthy under
// its own identity. Started again without the token, it runs on its creds.
func TestAgentEnrollsWithTokenFile(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds the agent binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "agent")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}

	sb := testutil.NewSecureBus(t)
	coord, err := coordinator.New(coordinator.Config{Name: "hetzner-cpu1", Auth: sb.Issuer, Embedded: busserver.ServerConfig{Port: -1, StoreDir: filepath.Join(dir, "nats")},
		Thresholds: registry.Thresholds{SuspectAfter: 5 * time.Second, DeadAfter: 10 * time.Second}, TickInterval: 100 * time.Millisecond}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- coord.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("coordinator: %v", err)
		}
	})
	select {
	case <-coord.Started():
	case err := <-done:
		t.Fatal(err)
	case <-time.After(60 * time.Second):
		t.Fatal("coordinator did not start")
	}
	url := coord.ClientURL()
	nc, err := sb.Connect(t, []string{url}, auth.RoleAdmin, "test-admin")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	cctx, ccancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer ccancel()
	var tok api.TokenCreated
	if err := sb.Client(t, nc).Call(cctx, api.OpTokenCreate, api.TokenCreateRequest{Node: "vast-31337", InstanceID: "31337", Provider: "vast"}, &tok); err != nil {
		t.Fatal(err)
	}

	state := filepath.Join(dir, "agent-state")
	tokenFile := filepath.Join(dir, "enroll.token")
	if err := os.WriteFile(tokenFile, []byte(tok.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"--enroll-token-file", tokenFile, "--bootstrap-creds", sb.Creds(t, auth.RoleBootstrap, auth.BootstrapName),
		"--ca", sb.CAFile(), "--nats-url", url, "--state-dir", state, "--heartbeat", "200ms", "--metrics-listen", "", "--sync", "off", "--log-format", "json"}
	env := append(os.Environ(), "CONTAINER_ID=31337", "VAST_CONTAINERLABEL=C.31337")
	start := func() (*exec.Cmd, *syncBuffer) {
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		logs := &syncBuffer{}
		cmd.Stdout, cmd.Stderr = logs, logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, logs
	}
	stop := func(cmd *exec.Cmd) {
		_ = cmd.Process.Signal(syscall.SIGINT)
		_ = cmd.Wait()
	}
	healthy := func(boot string) func() error {
		return func() error {
			rec, ok := coord.Registry().Get("vast-31337")
			switch {
			case !ok:
				return errors.New("vast-31337 not in the registry")
			case rec.Quarantined:
				return errors.New("vast-31337 is quarantined")
			case rec.State != mesh.StateHealthy:
				return fmt.Errorf("vast-31337 is %s", rec.State)
			case rec.Provider != "vast" || rec.InstanceID != "31337":
				return fmt.Errorf("vast-31337 reports %s/%s", rec.Provider, rec.InstanceID)
			case boot != "" && rec.Boot == boot:
				return errors.New("still the first boot")
			}
			return nil
		}
	}

	cmd, logs := start()
	testutil.Eventually(t, 60*time.Second, func() error {
		if err := healthy("")(); err != nil {
			return fmt.Errorf("%w; agent log:\n%s", err, logs.String())
		}
		return nil
	})
	stop(cmd)
	if strings.Contains(logs.String(), tok.Token) {
		t.Fatal("the agent logged the token")
	}
	if _, err := os.Stat(tokenFile); !os.IsNotExist(err) {
		t.Fatalf("the token file was not deleted: %v", err)
	}
	creds := filepath.Join(state, "node.creds")
	st, err := os.Stat(creds)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("node creds: %v %v", err, st)
	}
	b, _ := os.ReadFile(creds)
	j, _ := jwt.ParseDecoratedJWT(b)
	uc, err := jwt.DecodeUserClaims(j)
	if err != nil || uc.Name != "vast-31337" {
		t.Fatalf("creds: %+v %v", uc, err)
	}
	users, _ := sb.Issuer.Users()
	found := false
	for _, u := range users {
		found = found || (u.Name == "vast-31337" && u.Role == auth.RoleNode && u.PublicKey == uc.Subject)
	}
	if !found {
		t.Fatalf("the issuer has no node user vast-31337 with the agent's key: %+v", users)
	}

	// Again, without a token: the agent runs on its own credentials.
	first, _ := coord.Registry().Get("vast-31337")
	cmd, logs = start()
	testutil.Eventually(t, 60*time.Second, func() error {
		if err := healthy(first.Boot)(); err != nil {
			return fmt.Errorf("%w; agent log:\n%s", err, logs.String())
		}
		return nil
	})
	stop(cmd)
}

// syncBuffer collects a process's output while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
