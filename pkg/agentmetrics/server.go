package agentmetrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
)

// DefaultListen is the agent's default --metrics-listen: loopback only, so
// that a node's metrics are not served to the internet unless the operator
// says so (ephemeral cloud nodes often have public addresses and no
// firewall). Port 9108 sits next to node_exporter's 9100 and
// dcgm-exporter's 9400 ranges without colliding with either.
const DefaultListen = "127.0.0.1:9108"

// Server serves GET /metrics for one registry.
type Server struct {
	ln  net.Listener
	srv *http.Server
	log zerolog.Logger
}

// NewRegistry returns a registry holding c plus the Go runtime and process
// collectors, as a scrape of the agent should show.
func NewRegistry(c prometheus.Collector) (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	for _, x := range []prometheus.Collector{c, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := reg.Register(x); err != nil {
			return nil, fmt.Errorf("agent metrics: %w", err)
		}
	}
	return reg, nil
}

// Listen binds addr (host:port) now, so that a taken port is an error at
// start rather than a log line later; Run serves on it.
func Listen(addr string, g prometheus.Gatherer, log zerolog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	return &Server{ln: ln, log: log, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: time.Minute}}, nil
}

// Addr is the bound address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Run serves until ctx ends, then shuts the server down (2 s grace).
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	s.log.Info().Str("addr", s.Addr()).Msg("agent metrics: GET /metrics")
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(sctx)
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
