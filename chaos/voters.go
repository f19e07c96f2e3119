package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/auth"
	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/bus/busserver"
	"github.com/ringmesh/ringmesh/pkg/providers/demo"
)

// voters is three coordinator processes (hetzner-cpu1..3) on one embedded
// NATS cluster with R3 streams, as a real cluster's voters run, each with
// its own HTTP status endpoint, all over the same cloud fakes.
type voters struct {
	procs  []*proc
	byName map[string]*proc
	urls   []string // client URLs of the three NATS servers
	sec    *secure
}

// voterOptions are what a scenario adds to every voter's command line.
type voterOptions struct {
	// Extra returns more arguments for voter i, given its client port.
	Extra func(i int, clientPort int) []string
	// Reconcile is --reconcile-interval (default 5 s).
	Reconcile time.Duration
}

// startVoters starts the three voters together (they race to create the
// R3 streams, as on a cold start; one that exits meanwhile is restarted)
// and waits until each is ready and all agree on a leader. It returns the
// set (stop it with stop) and the restarts it took. bin is the built
// cmd/coordinator, invPath the inventory all three read.
func startVoters(ctx context.Context, env Env, bin, invPath string, fakes *demo.Fakes, opt voterOptions) (*voters, int, error) {
	names := []string{"hetzner-cpu1", "hetzner-cpu2", "hetzner-cpu3"}
	ports, err := busserver.FreePorts(3 * len(names))
	if err != nil {
		return nil, 0, err
	}
	sec, err := newSecure(env)
	if err != nil {
		return nil, 0, err
	}
	if opt.Reconcile <= 0 {
		opt.Reconcile = 5 * time.Second
	}
	vs := &voters{byName: map[string]*proc{}, sec: sec}
	procEnv := coordinatorEnv(fakes)
	for i, name := range names {
		var routes []string
		for j := range names {
			if j != i {
				routes = append(routes, "nats-route://127.0.0.1:"+strconv.Itoa(ports[3+j]))
			}
		}
		vs.urls = append(vs.urls, "nats://127.0.0.1:"+strconv.Itoa(ports[i]))
		httpAddr := "127.0.0.1:" + strconv.Itoa(ports[6+i])
		args := []string{"--name", name, "--data-dir", filepath.Join(env.Dir, name), "--inventory", invPath,
			"--nats-listen", "127.0.0.1:" + strconv.Itoa(ports[i]),
			"--nats-cluster-listen", "127.0.0.1:" + strconv.Itoa(ports[3+i]), "--nats-cluster-name", "chaos",
			"--nats-routes", strings.Join(routes, ","), "--replicas", "3", "--http", httpAddr,
			"--reconcile-interval", opt.Reconcile.String(), "--log-format", "json", "--log-level", "warn", "--auth-dir", sec.dir}
		if opt.Extra != nil {
			args = append(args, opt.Extra(i, ports[i])...)
		}
		p := &proc{name: name, bin: bin, env: procEnv, httpAddr: httpAddr, logPath: filepath.Join(env.Dir, name+".log"), args: args}
		vs.procs = append(vs.procs, p)
		vs.byName[name] = p
	}
	for _, p := range vs.procs {
		if err := p.start(); err != nil {
			vs.stop()
			return nil, 0, err
		}
	}
	restarts, err := superviseReady(ctx, vs.procs, 2*time.Minute, env.Logf)
	if err != nil {
		vs.stop()
		return nil, restarts, fmt.Errorf("coordinators not ready: %w", err)
	}
	if err := poll(ctx, time.Minute, 250*time.Millisecond, func() error { _, err := vs.leader(ctx); return err }); err != nil {
		vs.stop()
		return nil, restarts, fmt.Errorf("no leader: %w", err)
	}
	return vs, restarts, nil
}

// leader is the voter every running voter names as leader.
func (vs *voters) leader(ctx context.Context) (string, error) { return agreedLeader(ctx, vs.procs) }

// stop stops every voter (SIGTERM, then SIGKILL after 10 s).
func (vs *voters) stop() {
	for _, p := range vs.procs {
		p.stop(10 * time.Second)
	}
}

// logTails prints the last lines of every voter's log (after a failure).
func (vs *voters) logTails(env Env, scenario string) {
	for _, p := range vs.procs {
		env.Logf("%s: last lines of %s:\n%s", scenario, p.name, p.logTail(5))
	}
}

// admin connects as an operator (role admin) and returns a signing API
// client; close the connection when done.
func (vs *voters) admin(env Env, name string) (*nats.Conn, api.Client, error) {
	mcfg, err := vs.sec.conn(bus.ConnConfig{URLs: vs.urls, Name: name, ReconnectWait: 250 * time.Millisecond}, auth.RoleAdmin, name)
	if err != nil {
		return nil, api.Client{}, err
	}
	nc, err := bus.Connect(mcfg, env.Log)
	if err != nil {
		return nil, api.Client{}, err
	}
	signer, err := vs.sec.signer()
	if err != nil {
		nc.Close()
		return nil, api.Client{}, err
	}
	return nc, api.Client{NC: nc, Sign: signer.Sign}, nil
}

// processRig builds cmd/coordinator (the build time goes into res) and
// starts the cloud fakes with the inventory write makes for them at
// <env.Dir>/distributed_hosts.yaml. The caller closes the fakes.
func processRig(ctx context.Context, env Env, res *Result, write func(path string, f *demo.Fakes) error) (bin, invPath string, fakes *demo.Fakes, err error) {
	t0 := time.Now()
	if bin, err = buildCoordinator(ctx, env.Dir); err != nil {
		return "", "", nil, err
	}
	res.Add("build", time.Since(t0))
	if fakes, err = demo.StartFakes(ctx, demo.Options{Delay: -1}); err != nil {
		return "", "", nil, err
	}
	invPath = filepath.Join(env.Dir, "distributed_hosts.yaml")
	if err := write(invPath, fakes); err != nil {
		fakes.Close()
		return "", "", nil, err
	}
	return bin, invPath, fakes, nil
}

// checker connects as a coordinator (operators have no stream or KV
// access) to read what the voters stored; close the connection when done.
func (vs *voters) checker(env Env) (*nats.Conn, jetstream.JetStream, error) {
	cfg, err := vs.sec.conn(bus.ConnConfig{URLs: vs.urls, Name: "chaos-checker", ReconnectWait: 250 * time.Millisecond}, auth.RoleCoordinator, "coordinator-checker")
	if err != nil {
		return nil, nil, err
	}
	nc, err := bus.Connect(cfg, env.Log)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}
