package supervise_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/internal/testutil"
	"github.com/ringmesh/ringmesh/pkg/supervise"
)

// The test binary is its own child: with SUPERVISE_HELPER_FILE set it
// appends "start" to that file, exits 1 on its first two starts, and on
// the third waits for a signal and writes which one it got.
func TestMain(m *testing.M) {
	if f := os.Getenv("SUPERVISE_HELPER_FILE"); f != "" {
		helper(f)
		return
	}
	os.Exit(m.Run())
}

func helper(file string) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	appendLine(file, "start")
	b, _ := os.ReadFile(file)
	if strings.Count(string(b), "start") < 3 {
		os.Exit(1)
	}
	appendLine(file, "ready")
	s := <-sigs
	appendLine(file, "signal "+s.String())
	os.Exit(0)
}

func appendLine(file, line string) {
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		os.Exit(2)
	}
	fmt.Fprintln(f, line)
	f.Close()
}

// A child that dies is started again (with backoff) until it stays; a
// SIGTERM to the supervisor reaches the child, which is not restarted
// after it exits; the pid files name the supervisor and the child while
// they run and are removed at the end.
func TestRestartsAndForwardsSIGTERM(t *testing.T) {
	dir := t.TempDir()
	record := filepath.Join(dir, "record")
	t.Setenv("SUPERVISE_HELPER_FILE", record)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cfg := supervise.Config{Path: exe, Args: []string{"-test.run=^$"}, PidFile: filepath.Join(dir, "supervise.pid"),
		ChildPidFile: filepath.Join(dir, "agent.pid"), LogFile: filepath.Join(dir, "agent.log"),
		MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}
	sigs := make(chan os.Signal, 1)
	done := make(chan error, 1)
	go func() { done <- supervise.Run(context.Background(), cfg, sigs, zerolog.Nop()) }()

	testutil.Eventually(t, 60*time.Second, func() error {
		b, _ := os.ReadFile(record)
		if !strings.Contains(string(b), "ready") {
			return fmt.Errorf("child not settled yet: %q", b)
		}
		return nil
	})
	b, _ := os.ReadFile(record)
	if n := strings.Count(string(b), "start"); n != 3 {
		t.Fatalf("child started %d times before it stayed, want 3 (two deaths restarted)", n)
	}
	if pid, ok := supervise.LivePid(cfg.PidFile); !ok || pid != os.Getpid() {
		t.Fatalf("supervisor pid file: %d %v, want %d", pid, ok, os.Getpid())
	}
	child, ok := supervise.LivePid(cfg.ChildPidFile)
	if !ok || child == os.Getpid() {
		t.Fatalf("child pid file: %d %v", child, ok)
	}
	sigs <- syscall.SIGTERM
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after SIGTERM: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Run did not return after the child exited")
	}
	b, _ = os.ReadFile(record)
	if !strings.Contains(string(b), "signal terminated") {
		t.Fatalf("the child did not get SIGTERM: %q", b)
	}
	if strings.Count(string(b), "start") != 3 {
		t.Fatalf("the child was restarted after a forwarded signal: %q", b)
	}
	for _, f := range []string{cfg.PidFile, cfg.ChildPidFile} {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind: %v", f, err)
		}
	}
	if fi, err := os.Stat(cfg.LogFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("log file: %v %v", fi, err)
	}
}

// A pid file naming a live process (another supervisor) is refused.
func TestRefusesASecondSupervisor(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "supervise.pid")
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getppid())+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := supervise.Run(context.Background(), supervise.Config{Path: "/bin/true", PidFile: pidFile}, nil, zerolog.Nop())
	if !errors.Is(err, supervise.ErrRunning) {
		t.Fatalf("Run with a live pid file: %v, want ErrRunning", err)
	}
	if b, _ := os.ReadFile(pidFile); strings.TrimSpace(string(b)) != strconv.Itoa(os.Getppid()) {
		t.Fatalf("the other supervisor's pid file was overwritten: %q", b)
	}
}
