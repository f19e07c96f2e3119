package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/auth"
	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/bus/busserver"
	"github.com/ringmesh/ringmesh/pkg/config"
	"github.com/ringmesh/ringmesh/pkg/coordinator"
	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/registry"
)

// Options configure one run.
type Options struct {
	// Nodes is the number of simulated nodes.
	Nodes int
	// Heartbeat is every node's heartbeat interval.
	Heartbeat time.Duration
	// For is the steady-state window measured.
	For time.Duration
	// SuspectAfter and DeadAfter are the coordinator's liveness thresholds.
	SuspectAfter, DeadAfter time.Duration
	// GPUs per GPU node (1..8).
	GPUs int
	// NoFailure skips the mass failure (and its figures).
	NoFailure bool
	// MemProfile, when set, is the file a heap profile (go tool pprof) of
	// the coordinator's process is written to at the end of the window,
	// after a GC.
	MemProfile string
	// Log receives the coordinator's log.
	Log zerolog.Logger
}

// Result holds the figures of one run. Rates are per second, CPU is the
// share of one core, sizes are bytes.
type Result struct {
	Nodes, GPUNodes, EphemeralNodes int
	// Ramp is from starting the simulator until every node was healthy or degraded.
	Ramp time.Duration
	// HeartbeatBytes and HelloBytes are stored message sizes of one GPU node.
	HeartbeatBytes, HelloBytes int
	// Window is the measured steady window.
	Window time.Duration
	// CPU is the coordinator process's CPU over the window (1 = one core).
	CPU float64
	// RSSMiB is the coordinator process's resident memory at the end of the window, MiB; RSSMaxMiB the highest sample.
	RSSMiB, RSSMaxMiB float64
	// Applied and Expected are events applied to the registry and the rate the nodes' heartbeats need.
	Applied, Expected float64
	// LagMax and LagMean are the coordinator consumer's pending + unacknowledged messages, sampled every second.
	LagMax  uint64
	LagMean float64
	// KVWrites is the write rate of bucket mesh_nodes.
	KVWrites float64
	// StatusLatency is the median and StatusLatencyMax the slowest of the status API's first page;
	// StatusBytes its reply size, StatusRows its rows.
	StatusLatency, StatusLatencyMax time.Duration
	StatusBytes, StatusRows         int
	// AllSuspect and AllDead are from killing the simulator until no node
	// was healthy/degraded/joining any more, and until every node was dead.
	AllSuspect, AllDead time.Duration
	// Raw is the rate of raw JetStream async publishes of one stored heartbeat (RawCount of them).
	Raw      float64
	RawCount int
}

// providers of the simulated fleet, in rotation; hetzner nodes are CPU nodes.
var providers = []string{"vast", "runpod", "lambda", "nebius", "vultr", "vast", "runpod", "hetzner"}

const coordName = "bench-coord"

// inventoryYAML is the fleet: n hosts, GPU nodes with gpus × H100 (what
// nvidia-smi calls "NVIDIA H100 80GB HBM3"), every eighth a CPU node.
func inventoryYAML(n, gpus int) (string, []string) {
	var b strings.Builder
	b.WriteString("cluster_name: ringmesh-bench\nhosts:\n")
	ids := make([]string, 0, n)
	for i := range n {
		p := providers[i%len(providers)]
		id := fmt.Sprintf("%s-bench-%05d", p, i)
		ids = append(ids, id)
		fmt.Fprintf(&b, "  %s:\n    provider: %s\n    ssh_host: 10.%d.%d.%d\n    ssh_user: root\n    status: ready\n", id, p, 1+i/65536, (i/256)%256, i%256)
		if p == "hetzner" {
			b.WriteString("    gpu: none\n    cpus: 16\n    memory_gb: 64\n    role: cpu\n")
		} else {
			fmt.Fprintf(&b, "    gpu: %dx H100 80GB HBM3\n    cpus: 96\n    memory_gb: 1024\n    role: selfplay\n", gpus)
		}
	}
	return b.String(), ids
}

// Run runs the benchmark and writes its report to w.
func Run(ctx context.Context, o Options, w io.Writer) (Result, error) {
	if err := o.check(); err != nil {
		return Result{}, err
	}
	res := Result{Nodes: o.Nodes}
	dir, err := os.MkdirTemp("", "ringmesh-scale-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)

	// The fleet, as an inventory the coordinator seeds its registry from.
	invText, ids := inventoryYAML(o.Nodes, o.GPUs)
	invPath := filepath.Join(dir, "distributed_hosts.yaml")
	if err := os.WriteFile(invPath, []byte(invText), 0o600); err != nil {
		return res, err
	}
	inv, err := config.LoadFile(invPath)
	if err != nil {
		return res, err
	}
	for _, id := range ids {
		h := inv.Hosts[id]
		if h.GPU != "none" {
			res.GPUNodes++
		}
		if h.Ephemeral() { // is_ephemeral, else mesh.Facts(provider).Ephemeral
			res.EphemeralNodes++
		}
	}

	// The coordinator with its embedded, authenticated server.
	iss, err := auth.Open(filepath.Join(dir, "auth"))
	if err != nil {
		return res, err
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	coord, err := coordinator.New(coordinator.Config{
		Name:       coordName,
		Embedded:   busserver.ServerConfig{Name: "ringmesh-" + coordName, Host: "127.0.0.1", Port: -1, StoreDir: filepath.Join(dir, "nats")},
		Topology:   bus.Topology{Nodes: o.Nodes},
		Inventory:  inv,
		Thresholds: registry.Thresholds{SuspectAfter: o.SuspectAfter, DeadAfter: o.DeadAfter},
		Registry:   prometheus.NewRegistry(),
		Auth:       iss,
	}, o.Log)
	if err != nil {
		return res, err
	}
	coordErr := make(chan error, 1)
	go func() { coordErr <- coord.Run(cctx) }()
	defer func() { cancel(); <-coordErr }()
	select {
	case <-coord.Started():
	case err := <-coordErr:
		return res, fmt.Errorf("coordinator: %w", err)
	case <-time.After(60 * time.Second):
		return res, fmt.Errorf("coordinator did not start within 60 s")
	}
	url := coord.ClientURL()

	// Credentials: one per node, an admin for the status API, and an
	// observer (role coordinator) for consumer and stream figures.
	credsDir := filepath.Join(dir, "creds")
	for _, id := range ids {
		if err := iss.EnsureCreds(auth.RoleNode, id, filepath.Join(credsDir, id+".creds")); err != nil {
			return res, err
		}
	}
	adminCreds := filepath.Join(credsDir, "bench-admin.creds")
	obsCreds := filepath.Join(credsDir, "bench-observer.creds")
	if err := iss.EnsureCreds(auth.RoleAdmin, "bench-admin", adminCreds); err != nil {
		return res, err
	}
	if err := iss.EnsureCreds(auth.RoleCoordinator, "bench-observer", obsCreds); err != nil {
		return res, err
	}
	quiet := zerolog.Nop()
	adminNC, err := bus.Connect(bus.ConnConfig{URLs: []string{url}, Name: "bench-admin", CredsFile: adminCreds, CAFile: iss.CAFile()}, quiet)
	if err != nil {
		return res, err
	}
	defer adminNC.Close()
	signer, err := auth.LoadSigner(adminCreds)
	if err != nil {
		return res, err
	}
	obsNC, err := bus.Connect(bus.ConnConfig{URLs: []string{url}, Name: "bench-observer", CredsFile: obsCreds, CAFile: iss.CAFile()}, quiet)
	if err != nil {
		return res, err
	}
	defer obsNC.Close()
	js, err := jetstream.New(obsNC)
	if err != nil {
		return res, err
	}

	printf(w, "scale: %d nodes (%d with %d GPUs, %d ephemeral per inventory and mesh.Facts), heartbeat %s, window %s; coordinator %s with embedded NATS (JWT auth, TLS) at %s; thresholds suspect %s, dead %s",
		o.Nodes, res.GPUNodes, o.GPUs, res.EphemeralNodes, o.Heartbeat, o.For, coordName, bus.Redact(url), o.SuspectAfter, o.DeadAfter)

	// The simulator, in its own process.
	self, err := os.Executable()
	if err != nil {
		return res, err
	}
	sim := exec.Command(self, "-url", url, "-ca", iss.CAFile(), "-creds-dir", credsDir, "-inventory", invPath, "-heartbeat", o.Heartbeat.String())
	sim.Env = append(os.Environ(), simEnv+"=1")
	sim.Stdout, sim.Stderr = os.Stderr, os.Stderr
	started := time.Now()
	if err := sim.Start(); err != nil {
		return res, fmt.Errorf("start the simulator: %w", err)
	}
	simDone := make(chan error, 1)
	go func() { simDone <- sim.Wait() }()
	killed := false
	defer func() {
		if !killed {
			_ = sim.Process.Signal(syscall.SIGTERM)
			select {
			case <-simDone:
			case <-time.After(20 * time.Second):
				_ = sim.Process.Kill()
				<-simDone
			}
		}
	}()

	live := func() (up, dead int) {
		c := coord.Registry().Counts()
		return c[mesh.StateHealthy] + c[mesh.StateDegraded], c[mesh.StateDead]
	}
	rampLimit := 2*time.Minute + time.Duration(o.Nodes)*50*time.Millisecond
	if err := poll(ctx, rampLimit, 100*time.Millisecond, simDone, func() bool { up, _ := live(); return up == o.Nodes }); err != nil {
		up, _ := live()
		return res, fmt.Errorf("ramp: %d of %d nodes healthy after %s: %w", up, o.Nodes, time.Since(started).Round(time.Millisecond), err)
	}
	res.Ramp = time.Since(started)
	printf(w, "ramp: every node healthy after %s", res.Ramp.Round(time.Millisecond))
	select { // one more heartbeat round before measuring
	case <-ctx.Done():
		return res, ctx.Err()
	case <-time.After(o.Heartbeat):
	}

	// Message sizes, as stored.
	evt, err := js.Stream(ctx, bus.StreamEvents)
	if err != nil {
		return res, err
	}
	if m, err := evt.GetLastMsgForSubject(ctx, "mesh.v1.evt."+ids[0]+".heartbeat"); err == nil {
		res.HeartbeatBytes = len(m.Data)
	}
	if m, err := evt.GetLastMsgForSubject(ctx, "mesh.v1.evt."+ids[0]+".hello"); err == nil {
		res.HelloBytes = len(m.Data)
	}
	kvSeq := func() uint64 {
		st, err := js.Stream(ctx, "KV_"+bus.BucketNodes)
		if err != nil {
			return 0
		}
		return st.CachedInfo().State.LastSeq
	}
	lag := func() (uint64, bool) {
		c, err := js.Consumer(ctx, bus.StreamEvents, "coord-"+coordName)
		if err != nil {
			return 0, false
		}
		ci := c.CachedInfo()
		return ci.NumPending + uint64(ci.NumAckPending), true
	}

	// The steady window.
	cpu0, t0, applied0, kv0 := cpuTime(), time.Now(), coord.Applied(), kvSeq()
	var lags []uint64
	var lats []time.Duration
	statusEvery := max(o.For/5, time.Second)
	nextStatus := t0
	tick := time.NewTicker(time.Second)
	for time.Since(t0) < o.For {
		if time.Now().After(nextStatus) || time.Now().Equal(nextStatus) {
			d, size, rows, err := statusFirstPage(ctx, adminNC, signer)
			if err != nil {
				tick.Stop()
				return res, err
			}
			lats = append(lats, d)
			res.StatusBytes, res.StatusRows = size, rows
			nextStatus = nextStatus.Add(statusEvery)
		}
		select {
		case <-ctx.Done():
			tick.Stop()
			return res, ctx.Err()
		case err := <-simDone:
			tick.Stop()
			return res, fmt.Errorf("the simulator ended during the window: %v", err)
		case <-tick.C:
		}
		if l, ok := lag(); ok {
			lags = append(lags, l)
		}
		res.RSSMaxMiB = max(res.RSSMaxMiB, rssMiB())
	}
	tick.Stop()
	el := time.Since(t0)
	res.Window = el
	res.CPU = (cpuTime() - cpu0).Seconds() / el.Seconds()
	res.RSSMiB = rssMiB()
	res.RSSMaxMiB = max(res.RSSMaxMiB, res.RSSMiB)
	if o.MemProfile != "" {
		if err := writeHeapProfile(o.MemProfile); err != nil {
			return res, err
		}
	}
	res.Applied = float64(coord.Applied()-applied0) / el.Seconds()
	res.Expected = float64(o.Nodes) / o.Heartbeat.Seconds()
	res.KVWrites = float64(kvSeq()-kv0) / el.Seconds()
	var sum uint64
	for _, l := range lags {
		sum += l
		res.LagMax = max(res.LagMax, l)
	}
	if len(lags) > 0 {
		res.LagMean = float64(sum) / float64(len(lags))
	}
	slices.Sort(lats)
	res.StatusLatency, res.StatusLatencyMax = lats[len(lats)/2], lats[len(lats)-1]

	printf(w, "messages: heartbeat %d B, hello %d B (as stored, envelope included)", res.HeartbeatBytes, res.HelloBytes)
	printf(w, "coordinator: CPU %.1f %% of one core, RSS %.0f MiB (max %.0f MiB), over %s", res.CPU*100, res.RSSMiB, res.RSSMaxMiB, el.Round(time.Millisecond))
	printf(w, "events: %.0f/s applied (heartbeats need %.0f/s); consumer lag max %d, mean %.1f messages", res.Applied, res.Expected, res.LagMax, res.LagMean)
	printf(w, "kv mesh_nodes: %.0f writes/s", res.KVWrites)
	printf(w, "status API first page: median %s, max %s (%d samples), %d bytes, %d rows",
		res.StatusLatency.Round(time.Microsecond), res.StatusLatencyMax.Round(time.Microsecond), len(lats), res.StatusBytes, res.StatusRows)

	if !o.NoFailure {
		// Mass failure: the simulator dies, no node says bye.
		tk := time.Now()
		if err := sim.Process.Kill(); err != nil {
			return res, err
		}
		killed = true
		<-simDone
		limit := o.DeadAfter + time.Minute
		err := poll(ctx, limit, 50*time.Millisecond, nil, func() bool {
			c := coord.Registry().Counts()
			if res.AllSuspect == 0 && c[mesh.StateHealthy]+c[mesh.StateDegraded]+c[mesh.StateJoining] == 0 {
				res.AllSuspect = time.Since(tk)
			}
			return c[mesh.StateDead] == o.Nodes
		})
		if err != nil {
			_, dead := live()
			return res, fmt.Errorf("mass failure: %d of %d dead after %s: %w", dead, o.Nodes, limit, err)
		}
		res.AllDead = time.Since(tk)
		printf(w, "mass failure (simulator killed): all suspect after %s, all dead after %s", res.AllSuspect.Round(time.Millisecond), res.AllDead.Round(time.Millisecond))
	}

	// The anchor: raw JetStream async publishes of the stored heartbeat.
	payload := bytes.Repeat([]byte("x"), max(res.HeartbeatBytes, 1))
	if m, err := evt.GetLastMsgForSubject(ctx, "mesh.v1.evt."+ids[0]+".heartbeat"); err == nil {
		payload = m.Data
	}
	res.RawCount = max(20000, 4*o.Nodes)
	if res.Raw, err = rawPublish(ctx, obsNC, payload, res.RawCount); err != nil {
		return res, err
	}
	printf(w, "anchor: raw JetStream async publish of that heartbeat into a plain file stream: %.0f msgs/s (%d messages); applied/raw %.3f, heartbeat load/raw %.3f",
		res.Raw, res.RawCount, res.Applied/res.Raw, res.Expected/res.Raw)
	// Let the coordinator store and audit what the failure caused before it
	// is stopped: until mesh_nodes has not changed for 2 s (at most 30 s).
	last, still := kvSeq(), time.Now()
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end) && time.Since(still) < 2*time.Second; {
		time.Sleep(250 * time.Millisecond)
		if s := kvSeq(); s != last {
			last, still = s, time.Now()
		}
	}
	return res, nil
}

// poll calls done every interval until it is true, limit passes, ctx ends or
// stop delivers.
func poll(ctx context.Context, limit, every time.Duration, stop <-chan error, done func() bool) error {
	deadline := time.Now().Add(limit)
	for !done() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s", limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-stop:
			return fmt.Errorf("the simulator ended: %v", err)
		case <-time.After(every):
		}
	}
	return nil
}

// statusFirstPage asks for the first page of OpStatus as meshctl does
// (signed by the admin) and returns the latency, reply size and rows.
func statusFirstPage(ctx context.Context, nc *nats.Conn, s *auth.Signer) (time.Duration, int, int, error) {
	body, _ := json.Marshal(api.StatusRequest{})
	m := &nats.Msg{Subject: bus.APISubject(api.OpStatus), Data: body}
	h, err := s.Sign(m.Subject, body)
	if err != nil {
		return 0, 0, 0, err
	}
	m.Header = h
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	t := time.Now()
	rep, err := nc.RequestMsgWithContext(rctx, m)
	d := time.Since(t)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("status: %w", err)
	}
	var r api.Reply
	if err := json.Unmarshal(rep.Data, &r); err != nil {
		return 0, 0, 0, fmt.Errorf("status: bad reply: %w", err)
	}
	if r.Error != "" {
		return 0, 0, 0, fmt.Errorf("status: %s", r.Error)
	}
	var st api.Status
	if err := json.Unmarshal(r.Data, &st); err != nil {
		return 0, 0, 0, fmt.Errorf("status: bad data: %w", err)
	}
	return d, len(rep.Data), len(st.Nodes), nil
}

// rawPublish publishes n copies of payload with JetStream async publishes
// (Nats-Msg-Id set, as the agents do) into a plain file stream and returns
// the rate; the stream is deleted again.
func rawPublish(ctx context.Context, nc *nats.Conn, payload []byte, n int) (float64, error) {
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return 0, err
	}
	const name = "BENCH_RAW"
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{"bench.raw.>"}, Storage: jetstream.FileStorage}); err != nil {
		return 0, fmt.Errorf("anchor stream: %w", err)
	}
	defer func() { _ = js.DeleteStream(context.WithoutCancel(ctx), name) }()
	futs := make([]jetstream.PubAckFuture, 0, n)
	t := time.Now()
	for i := range n {
		// A starved machine acknowledges slowly: wait for room in the
		// window (the default stall wait is 200 ms) instead of failing.
		f, err := js.PublishAsync("bench.raw.n"+strconv.Itoa(i%1000), payload, jetstream.WithMsgID("raw-"+strconv.Itoa(i)), jetstream.WithStallWait(time.Minute))
		if err != nil {
			return 0, fmt.Errorf("anchor publish: %w", err)
		}
		futs = append(futs, f)
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(2 * time.Minute):
		return 0, fmt.Errorf("anchor: %d publishes not acknowledged within 2 min", js.PublishAsyncPending())
	}
	rate := float64(n) / time.Since(t).Seconds()
	for _, f := range futs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return 0, fmt.Errorf("anchor publish not stored: %w", err)
		}
	}
	return rate, nil
}

// cpuTime is this process's user + system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rssMiB is this process's resident memory (VmRSS), MiB; 0 when unknown.
func rssMiB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// writeHeapProfile writes this process's heap profile to path, after a GC
// (so it shows live memory).
func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("-memprofile: %w", err)
	}
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return fmt.Errorf("-memprofile %s: %w", path, err)
	}
	return f.Close()
}
