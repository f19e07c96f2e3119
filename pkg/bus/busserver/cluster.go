package busserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/rs/zerolog"
)

// Cluster is N embedded nats-servers routed to each other on loopback, each
// with its own store, for tests, chaos runs and trying a 3-voter setup on
// one machine. Servers can be stopped and restarted on the same ports and
// stores.
type Cluster struct {
	mu      sync.Mutex
	cfgs    []ServerConfig
	servers []*Server
	log     zerolog.Logger
	opts    ClusterOptions
}

// ClusterOptions secure a test cluster.
type ClusterOptions struct {
	// Security is every server's (one operator, mTLS routes); nil = open.
	Security *bus.Security
	// Client are the nats.go options (credentials, CA) of the readiness probe.
	Client []nats.Option
}

// FreePorts returns n distinct free TCP ports on 127.0.0.1.
func FreePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	out := make([]int, 0, n)
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

// StartCluster starts n open servers named <name>-1..n under baseDir.
func StartCluster(n int, name, baseDir string, syncAlways bool, log zerolog.Logger) (*Cluster, error) {
	return StartClusterWith(n, name, baseDir, syncAlways, ClusterOptions{}, log)
}

// StartClusterWith is StartCluster with authentication and TLS.
func StartClusterWith(n int, name, baseDir string, syncAlways bool, o ClusterOptions, log zerolog.Logger) (*Cluster, error) {
	ports, err := FreePorts(2 * n)
	if err != nil {
		return nil, err
	}
	c := &Cluster{log: log, opts: o}
	for i := 0; i < n; i++ {
		var routes []string
		for j := 0; j < n; j++ {
			if j != i {
				routes = append(routes, "nats-route://127.0.0.1:"+strconv.Itoa(ports[n+j]))
			}
		}
		c.cfgs = append(c.cfgs, ServerConfig{
			Name: fmt.Sprintf("%s-%d", name, i+1), Host: "127.0.0.1", Port: ports[i],
			StoreDir:    filepath.Join(baseDir, fmt.Sprintf("s%d", i+1)),
			ClusterName: name, ClusterHost: "127.0.0.1", ClusterPort: ports[n+i], Routes: routes,
			SyncAlways: syncAlways, MaxMemory: 64 << 20, MaxStore: 8 << 30, // reservations, not disk use
			Security: o.Security,
		})
	}
	c.servers = make([]*Server, n)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range c.cfgs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c.servers[i], errs[i] = StartServer(c.cfgs[i], log)
		}(i)
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		c.Shutdown()
		return nil, err
	}
	return c, nil
}

// URLs returns every server's client URL.
func (c *Cluster) URLs() []string {
	out := make([]string, len(c.cfgs))
	scheme := "nats://"
	if c.opts.Security != nil && c.opts.Security.TLS != nil {
		scheme = "tls://"
	}
	for i, cfg := range c.cfgs {
		out[i] = scheme + "127.0.0.1:" + strconv.Itoa(cfg.Port)
	}
	return out
}

// Size is the number of servers.
func (c *Cluster) Size() int { return len(c.cfgs) }

// Running reports whether server i runs.
func (c *Cluster) Running(i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.servers[i] != nil
}

// Stop shuts server i down (its store stays).
func (c *Cluster) Stop(i int) {
	c.mu.Lock()
	s := c.servers[i]
	c.servers[i] = nil
	c.mu.Unlock()
	if s != nil {
		s.Stop()
	}
}

// Restart starts server i again on the same ports and store.
func (c *Cluster) Restart(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.servers[i] != nil {
		return nil
	}
	s, err := StartServer(c.cfgs[i], c.log)
	if err != nil {
		return err
	}
	c.servers[i] = s
	return nil
}

// Shutdown stops every server.
func (c *Cluster) Shutdown() {
	for i := range c.cfgs {
		c.Stop(i)
	}
}

// WaitReady waits until JetStream answers through every running server and
// a probe R-replicas stream can be created and written.
func (c *Cluster) WaitReady(ctx context.Context, replicas int) error {
	var last error
	for {
		last = c.probe(ctx, replicas)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster not ready: %w (last: %v)", ctx.Err(), last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (c *Cluster) probe(ctx context.Context, replicas int) error {
	nc, err := nats.Connect(c.URLs()[0]+","+c.URLs()[len(c.cfgs)-1], append([]nats.Option{nats.Timeout(time.Second)}, c.opts.Client...)...)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if _, err := js.CreateOrUpdateStream(pctx, jetstream.StreamConfig{Name: "READY_PROBE", Subjects: []string{"ready.probe"}, Replicas: replicas, Storage: jetstream.MemoryStorage, MaxMsgs: 1}); err != nil {
		return err
	}
	_, err = js.Publish(pctx, "ready.probe", []byte("ok"))
	return err
}

// ClusterPort returns server i's route port.
func (c *Cluster) ClusterPort(i int) int { return c.cfgs[i].ClusterPort }
