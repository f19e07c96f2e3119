package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/internal/demosim"
	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/config"
	"github.com/ringmesh/ringmesh/pkg/mesh"
)

// simEnv set to 1 makes this binary the simulator child (the benchmark
// starts itself again with it).
const simEnv = "RINGMESH_SCALE_SIM"

// simMain runs the simulated nodes of the inventory until SIGTERM (they say
// bye) or SIGKILL (the mass failure). Each node connects with its own
// credentials <creds-dir>/<node>.creds. It returns the exit status.
func simMain(args []string) int {
	fs := flag.NewFlagSet("scale-sim", flag.ContinueOnError)
	url := fs.String("url", "", "NATS URL")
	ca := fs.String("ca", "", "CA file to pin")
	credsDir := fs.String("creds-dir", "", "directory of <node>.creds")
	invPath := fs.String("inventory", "", "inventory file")
	hb := fs.Duration("heartbeat", 5*time.Second, "heartbeat interval")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log := zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: time.TimeOnly}).Level(zerolog.WarnLevel).With().Timestamp().Str("sim", "scale").Logger()
	inv, err := config.LoadFile(*invPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "scale sim:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts := demosim.Options{URLs: []string{*url}, Inventory: inv, Heartbeat: *hb, PreemptEvery: -1, Version: "bench",
		Connect: func(node string) (*nats.Conn, error) {
			if err := mesh.ValidateNodeID(node); err != nil {
				return nil, err
			}
			return bus.Connect(bus.ConnConfig{URLs: []string{*url}, Name: node, CredsFile: filepath.Join(*credsDir, node+".creds"), CAFile: *ca}, zerolog.Nop())
		}}
	if err := demosim.Run(ctx, opts, log); err != nil {
		fmt.Fprintln(os.Stderr, "scale sim:", err)
		return 1
	}
	return 0
}
