// Command scale measures one coordinator under a simulated fleet (issue 13,
// item 1):
//
//	go run ./bench/scale -nodes 1000 -heartbeat 5s -for 60s
//
// It starts the real coordinator (pkg/coordinator) with its embedded,
// authenticated NATS JetStream server (JWT users, TLS), as `coordinator`
// does, and a child process that simulates the nodes with
// internal/demosim: each node connects as itself with its own node
// credentials, says hello and heartbeats with the real agent's envelopes,
// subjects and bodies (8 GPUs per GPU node, nvidia-smi's names, UUIDs and
// fields). The coordinator and the simulator are separate processes so that
// the coordinator's CPU and memory are its own (embedded NATS included).
//
// It prints, over the steady window (-for): the coordinator's CPU (share of
// one core) and resident memory, the event rate applied to the registry,
// the consumer lag of the coordinator's durable consumer (pending plus
// unacknowledged), the KV write rate of mesh_nodes, and the latency and
// size of the first page of the status API (signed as an admin, as meshctl
// does). Then it kills the simulator (every heartbeat stops at once, no
// bye) and prints the time until every node is suspect and then dead.
// Last, as an anchor of the same run and machine, the rate of raw
// JetStream async publishes of a stored heartbeat into a plain file stream.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

func main() {
	if os.Getenv(simEnv) == "1" {
		os.Exit(simMain(os.Args[1:]))
	}
	fs := flag.NewFlagSet("scale", flag.ContinueOnError)
	var o Options
	fs.IntVar(&o.Nodes, "nodes", 1000, "simulated nodes")
	fs.DurationVar(&o.Heartbeat, "heartbeat", 5*time.Second, "heartbeat interval of every simulated node")
	fs.DurationVar(&o.For, "for", 60*time.Second, "steady-state measurement window, after every node is healthy")
	fs.DurationVar(&o.SuspectAfter, "suspect-after", 15*time.Second, "the coordinator's --suspect-after")
	fs.DurationVar(&o.DeadAfter, "dead-after", 45*time.Second, "the coordinator's --dead-after")
	fs.IntVar(&o.GPUs, "gpus", 8, "GPUs per GPU node")
	fs.BoolVar(&o.NoFailure, "no-failure", false, "skip the mass failure")
	fs.StringVar(&o.MemProfile, "memprofile", "", "write a heap profile of the coordinator's process here at the end of the window (go tool pprof)")
	verbose := fs.Bool("v", false, "log the coordinator at info level (default: warnings)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	lvl := zerolog.WarnLevel
	if *verbose {
		lvl = zerolog.InfoLevel
	}
	o.Log = zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: time.TimeOnly}).Level(lvl).With().Timestamp().Logger()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if _, err := Run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
}

// errUsage is a bad option.
var errUsage = errors.New("scale: bad options")

// check validates o.
func (o Options) check() error {
	switch {
	case o.Nodes < 1 || o.Nodes > 20000:
		return fmt.Errorf("%w: -nodes %d (want 1..20000)", errUsage, o.Nodes)
	case o.Heartbeat < 100*time.Millisecond:
		return fmt.Errorf("%w: -heartbeat %s (want ≥ 100ms)", errUsage, o.Heartbeat)
	case o.For <= 0:
		return fmt.Errorf("%w: -for %s", errUsage, o.For)
	case o.SuspectAfter <= 0 || o.DeadAfter <= o.SuspectAfter:
		return fmt.Errorf("%w: -suspect-after %s, -dead-after %s (want 0 < suspect < dead)", errUsage, o.SuspectAfter, o.DeadAfter)
	case o.GPUs < 1 || o.GPUs > 8:
		return fmt.Errorf("%w: -gpus %d (want 1..8, what the agent reports)", errUsage, o.GPUs)
	}
	return nil
}

// printf writes one line of the report.
func printf(w io.Writer, format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
