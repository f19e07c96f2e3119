// Command chaos is ringmesh's fault-injection suite (docs/ARCHITECTURE.md §8): it kills
// and restarts NATS servers, SIGKILLs the leader coordinator, cuts agents
// off the bus and makes the cloud APIs fail, then checks that no event was
// lost or duplicated and that no provider call was made twice.
//
//	go run ./chaos -duration 10m -seed 7                  # long version of every scenario
//	go run ./chaos -scenario nats-bounce,bus-cut -seed 7  # short version of two
//	go test ./chaos                                       # short version of every scenario
//
// Everything random is drawn from -seed; every address is loopback. Each
// scenario prints one summary line with its figures and fails (exit 1) on
// any lost event or broken invariant.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	var (
		duration = fs.Duration("duration", 0, "length of each scenario's chaos phase (long version); 0 runs the short version")
		seed     = fs.Uint64("seed", uint64(time.Now().UnixNano()%1e6), "seed of every random choice (printed; rerun with it to repeat a run)")
		only     = fs.String("scenario", "", "comma-separated scenarios to run (default: all)")
		list     = fs.Bool("list", false, "list the scenarios and exit")
		verbose  = fs.Bool("v", false, "print each scenario's progress, and the components' logs on stderr (at -log-level)")
		level    = fs.String("log-level", "warn", "with -v: level of the component logs (debug, info, warn, error)")
		dir      = fs.String("dir", "", "parent of the scratch directories (default: the system temp dir)")
	)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *list {
		for _, s := range Scenarios() {
			fmt.Printf("%-16s %s\n", s.Name, s.Doc)
		}
		return 0
	}
	scs, err := Select(*only)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 2
	}
	log := zerolog.Nop()
	if *verbose {
		lvl, err := zerolog.ParseLevel(*level)
		if err != nil {
			fmt.Fprintln(os.Stderr, "chaos: -log-level:", err)
			return 2
		}
		log = zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: "15:04:05.000", NoColor: true}).Level(lvl).With().Timestamp().Logger()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	mode := "short"
	if *duration > 0 {
		mode = "long, " + duration.String() + " each"
	}
	fmt.Printf("chaos: seed %d, %s, scenarios %d\n", *seed, mode, len(scs))
	failed := 0
	for _, s := range scs {
		env := Env{Seed: *seed, Duration: *duration, Log: log, Logf: func(string, ...any) {}}
		if *verbose {
			env.Logf = func(f string, a ...any) { fmt.Printf("  "+f+"\n", a...) }
		}
		res, err := RunScenario(ctx, s, env, *dir)
		if err != nil {
			failed++
			fmt.Printf("FAIL %s\n  %v\n", res, indent(err.Error()))
		} else {
			fmt.Printf("ok   %s\n", res)
		}
		if ctx.Err() != nil {
			break
		}
	}
	if failed > 0 {
		fmt.Printf("chaos: %d of %d scenarios failed (seed %d)\n", failed, len(scs), *seed)
		return 1
	}
	fmt.Printf("chaos: all %d scenarios passed (seed %d)\n", len(scs), *seed)
	return 0
}

func indent(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		out = append(out, s[i])
		if s[i] == '\n' {
			out = append(out, ' ', ' ')
		}
	}
	return string(out)
}
