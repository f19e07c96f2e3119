// Package supervise keeps one child process (the agent) running: it
// restarts it with exponential backoff when it dies, forwards SIGTERM and
// SIGINT to it (so a container stop reaches the agent and its preemption
// flush starts), writes pid files and sends the child's output to a log
// file. It is `ringmesh-agent supervise -- <agent flags>`, what enrollment
// starts on nodes where systemd is not PID 1 (Vast, RunPod containers);
// docs/enrollment.md explains why.
package supervise

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

// Config says what to supervise and where its files are.
type Config struct {
	// Path and Args are the child's executable and arguments (Args
	// without argv[0]).
	Path string
	Args []string
	// PidFile receives the supervisor's own pid (removed at exit); a pid
	// file naming a live process makes Run refuse to start a second one.
	PidFile string
	// ChildPidFile receives the current child's pid ("" = none).
	ChildPidFile string
	// LogFile receives the child's stdout and stderr, appended (mode 0600);
	// rotated to LogFile+".1" at a start when it exceeds MaxLogBytes.
	// Empty = the supervisor's own stderr.
	LogFile string
	// MaxLogBytes is the rotation size (default 64 MiB).
	MaxLogBytes int64
	// MinBackoff and MaxBackoff bound the pause before a restart
	// (defaults 1 s and 60 s); it doubles after each quick death and goes
	// back to MinBackoff after a child ran StableAfter (default 60 s).
	MinBackoff, MaxBackoff, StableAfter time.Duration
	// StopGrace bounds how long a forwarded signal may take before the
	// child is killed (default 10 minutes: the agent's own flush deadline
	// ends it sooner).
	StopGrace time.Duration
}

func (c *Config) defaults() {
	if c.MinBackoff <= 0 {
		c.MinBackoff = time.Second
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = time.Minute
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = c.MinBackoff
	}
	if c.StableAfter <= 0 {
		c.StableAfter = time.Minute
	}
	if c.StopGrace <= 0 {
		c.StopGrace = 10 * time.Minute
	}
	if c.MaxLogBytes <= 0 {
		c.MaxLogBytes = 64 << 20
	}
}

// ErrRunning is returned when PidFile names a live supervisor.
var ErrRunning = errors.New("a supervisor is already running")

// Run supervises until a signal arrives on sigs (forwarded to the child;
// Run returns once the child has exited) or ctx ends (the child gets
// SIGTERM, then SIGKILL after StopGrace). The returned error is nil after
// a forwarded signal, ctx's cause otherwise.
func Run(ctx context.Context, cfg Config, sigs <-chan os.Signal, log zerolog.Logger) error {
	cfg.defaults()
	if cfg.Path == "" {
		return errors.New("supervise: no program to run")
	}
	if cfg.PidFile != "" {
		if pid, ok := LivePid(cfg.PidFile); ok && pid != os.Getpid() {
			return fmt.Errorf("%w (pid %d in %s)", ErrRunning, pid, cfg.PidFile)
		}
		if err := writePid(cfg.PidFile, os.Getpid()); err != nil {
			return err
		}
		defer os.Remove(cfg.PidFile)
	}
	if cfg.ChildPidFile != "" {
		defer os.Remove(cfg.ChildPidFile)
	}
	backoff := cfg.MinBackoff
	for restarts := 0; ; restarts++ {
		out, err := openLog(cfg.LogFile, cfg.MaxLogBytes)
		if err != nil {
			return err
		}
		cmd := exec.Command(cfg.Path, cfg.Args...)
		cmd.Stdout, cmd.Stderr = out, out
		// Its own process group: a terminal's ^C reaches the supervisor,
		// which forwards it once, instead of reaching both.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		started := time.Now()
		if err := cmd.Start(); err != nil {
			closeLog(out)
			log.Error().Err(err).Str("path", cfg.Path).Msg("start failed")
			return fmt.Errorf("supervise: start %s: %w", cfg.Path, err)
		}
		if cfg.ChildPidFile != "" {
			if err := writePid(cfg.ChildPidFile, cmd.Process.Pid); err != nil {
				log.Warn().Err(err).Msg("child pid file")
			}
		}
		log.Info().Int("pid", cmd.Process.Pid).Int("restarts", restarts).Msg("agent started")
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()

		var forwarded os.Signal
		select {
		case err := <-done:
			closeLog(out)
			ran := time.Since(started)
			if ran >= cfg.StableAfter {
				backoff = cfg.MinBackoff
			}
			log.Warn().Err(err).Dur("ran", ran).Dur("restart_in", backoff).Msg("agent exited; restarting")
			select {
			case <-time.After(backoff):
			case s := <-sigs:
				log.Info().Str("signal", s.String()).Msg("signal while the agent was down; not restarting")
				return nil
			case <-ctx.Done():
				return context.Cause(ctx)
			}
			backoff = min(2*backoff, cfg.MaxBackoff)
			continue
		case forwarded = <-sigs:
			log.Info().Str("signal", forwarded.String()).Int("pid", cmd.Process.Pid).Msg("forwarding the signal to the agent; not restarting it")
			_ = cmd.Process.Signal(forwarded)
		case <-ctx.Done():
			forwarded = syscall.SIGTERM
			_ = cmd.Process.Signal(forwarded)
		}
		// Wait for the child to end (its flush), a second signal is
		// forwarded too; after StopGrace it is killed.
		grace := time.NewTimer(cfg.StopGrace)
		for {
			select {
			case err := <-done:
				grace.Stop()
				closeLog(out)
				log.Info().Err(err).Msg("agent stopped")
				if ctx.Err() != nil {
					return context.Cause(ctx)
				}
				return nil
			case s := <-sigs:
				_ = cmd.Process.Signal(s)
			case <-grace.C:
				log.Error().Dur("grace", cfg.StopGrace).Msg("agent did not stop; killing it")
				_ = cmd.Process.Kill()
			}
		}
	}
}

// LivePid returns the pid in file and whether that process exists.
func LivePid(file string) (int, bool) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return pid, false
	}
	return pid, true
}

// writePid writes pid to file atomically (mode 0600).
func writePid(file string, pid int) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return err
	}
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(pid)+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, file)
}

func openLog(file string, max int64) (*os.File, error) {
	if file == "" {
		return os.Stderr, nil
	}
	if fi, err := os.Stat(file); err == nil && fi.Size() > max {
		_ = os.Rename(file, file+".1")
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("supervise: log file: %w", err)
	}
	return f, nil
}

func closeLog(f *os.File) {
	if f != os.Stderr {
		f.Close()
	}
}
