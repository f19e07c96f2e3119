package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/ringmesh/ringmesh/pkg/logging"
	"github.com/ringmesh/ringmesh/pkg/supervise"
)

// runSupervise is `ringmesh-agent supervise [flags] -- <agent flags>`: it
// runs this binary's agent as a child, restarts it when it dies and
// forwards SIGTERM/SIGINT to it (pkg/supervise). With --detach it starts
// itself in a new session (no controlling terminal, no SIGHUP when the SSH
// session that started it ends) and returns once the supervisor has
// written its pid file.
func runSupervise(args []string) error {
	fs := flag.NewFlagSet("agent supervise", flag.ContinueOnError)
	var (
		pidFile   = fs.String("pid-file", "", "write the supervisor's pid here (required with --detach)")
		agentPid  = fs.String("agent-pid-file", "", "write the running agent's pid here")
		logFile   = fs.String("log-file", "", "append the agent's output (and with --detach the supervisor's) here, mode 0600")
		detach    = fs.Bool("detach", false, "start the supervisor in its own session, detached from the terminal/SSH session, and return")
		minBack   = fs.Duration("min-backoff", time.Second, "pause before the first restart; doubles after each quick death")
		maxBack   = fs.Duration("max-backoff", time.Minute, "longest pause between restarts")
		logLevel  = fs.String("log-level", "info", "supervisor log level")
		logFormat = fs.String("log-format", "json", "supervisor log format: console or json")
	)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: ringmesh-agent supervise [flags] -- <agent flags>")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("supervise: own executable: %w", err)
	}
	if *detach {
		if *pidFile == "" {
			return errors.New("supervise --detach needs --pid-file")
		}
		var child []string
		for i, a := range args {
			if a == "--" {
				child = append(child, args[i:]...)
				break
			}
			if a != "--detach" && a != "-detach" {
				child = append(child, a)
			}
		}
		return detachSupervisor(exe, child, *pidFile, *logFile)
	}
	log, err := logging.Stderr(*logFormat, *logLevel)
	if err != nil {
		return err
	}
	log = log.With().Str("component", "supervise").Logger()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	signal.Ignore(syscall.SIGHUP)
	cfg := supervise.Config{Path: exe, Args: fs.Args(), PidFile: *pidFile, ChildPidFile: *agentPid, LogFile: *logFile,
		MinBackoff: *minBack, MaxBackoff: *maxBack}
	return supervise.Run(context.Background(), cfg, sigs, log)
}

// detachSupervisor starts `exe supervise <args>` in a new session with
// stdin from /dev/null and output to logFile, and waits (up to 15 s) for
// it to write its pid file.
func detachSupervisor(exe string, args []string, pidFile, logFile string) error {
	if pid, ok := supervise.LivePid(pidFile); ok {
		return fmt.Errorf("%w (pid %d in %s)", supervise.ErrRunning, pid, pidFile)
	}
	out := os.Stderr
	if logFile != "" {
		f, err := os.OpenFile(logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("supervise: log file: %w", err)
		}
		defer f.Close()
		out = f
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return err
	}
	defer devnull.Close()
	cmd := exec.Command(exe, append([]string{"supervise"}, args...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("supervise: start detached: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(15 * time.Second)
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("supervisor exited at once (%v); see %s", err, logFile)
		case <-deadline:
			return fmt.Errorf("supervisor (pid %d) wrote no pid file %s within 15s; see %s", cmd.Process.Pid, pidFile, logFile)
		case <-tick.C:
			if pid, ok := supervise.LivePid(pidFile); ok && pid == cmd.Process.Pid {
				fmt.Printf("supervisor started (pid %d)\n", pid)
				return nil
			}
		}
	}
}
