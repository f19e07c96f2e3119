// Package busserver runs the embedded nats-server with JetStream (one
// server or a loopback test cluster) for the coordinator, tests and chaos
// runs. It is the only ringmesh package that imports nats-server: clients
// (the agent, meshctl) use pkg/bus alone and so do not link the server
// (internal/deptest checks this).
package busserver

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/rs/zerolog"
)

// ServerConfig configures an embedded nats-server with JetStream.
type ServerConfig struct {
	// Name is the server name; it must be stable across restarts because
	// JetStream identifies peers by it (nats-server issue #3024).
	Name string
	// Host and Port of the client listener; Port -1 picks a free port.
	Host string
	Port int
	// StoreDir is the JetStream store directory (required: never the
	// silent $TMPDIR default).
	StoreDir string
	// MaxMemory and MaxStore bound JetStream memory and file storage, bytes.
	// Defaults: 256 MiB memory, 10 GiB store.
	MaxMemory int64
	MaxStore  int64
	// SyncAlways fsyncs every write (default: nats-server's 2 min interval).
	SyncAlways bool
	// Cluster settings; empty ClusterName = standalone.
	ClusterName string
	ClusterHost string
	ClusterPort int
	// Routes are nats-route://host:port URLs of the other cluster members.
	Routes []string
	// MonitorPort enables the HTTP monitoring endpoint when > 0.
	MonitorPort int
	// Debug enables nats-server debug logs.
	Debug bool
	// ReadyTimeout bounds the wait for listeners; default 10 s.
	ReadyTimeout time.Duration
	// Security turns on JWT authentication and TLS (nil = open server:
	// only for tests that say why).
	Security *bus.Security
}

// Server is a running embedded nats-server.
type Server struct {
	*server.Server
	opts *server.Options
	cfg  ServerConfig
	log  zerolog.Logger
}

// DefaultMaxMemory and DefaultMaxStore are the JetStream limits used when
// ServerConfig leaves them zero (explicit, instead of 75 % of the host's RAM).
const (
	DefaultMaxMemory int64 = 256 << 20
	DefaultMaxStore  int64 = 10 << 30
)

func (c ServerConfig) options() (*server.Options, error) {
	if c.Name == "" {
		return nil, errors.New("bus: server name is required (it must be stable across restarts)")
	}
	if c.StoreDir == "" {
		return nil, errors.New("bus: JetStream store directory is required")
	}
	if err := os.MkdirAll(c.StoreDir, 0o700); err != nil {
		return nil, fmt.Errorf("bus: store directory: %w", err)
	}
	o := &server.Options{
		ServerName:         c.Name,
		Host:               c.Host,
		Port:               c.Port,
		JetStream:          true,
		StoreDir:           c.StoreDir,
		JetStreamMaxMemory: c.MaxMemory,
		JetStreamMaxStore:  c.MaxStore,
		SyncAlways:         c.SyncAlways,
		NoSigs:             true,
		MaxPayload:         1 << 20,
		HTTPPort:           c.MonitorPort,
	}
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.JetStreamMaxMemory == 0 {
		o.JetStreamMaxMemory = DefaultMaxMemory
	}
	if o.JetStreamMaxStore == 0 {
		o.JetStreamMaxStore = DefaultMaxStore
	}
	if c.ClusterName != "" {
		o.Cluster.Name = c.ClusterName
		o.Cluster.Host = c.ClusterHost
		if o.Cluster.Host == "" {
			o.Cluster.Host = o.Host
		}
		o.Cluster.Port = c.ClusterPort
		for _, r := range c.Routes {
			u, err := url.Parse(r)
			if err != nil {
				return nil, fmt.Errorf("bus: route %q: %w", r, err)
			}
			o.Routes = append(o.Routes, u)
		}
	}
	if c.Security != nil {
		if err := applySecurity(c.Security, o, c.StoreDir); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// StartServer starts an embedded nats-server and waits until it accepts
// connections. Its logs go to log (component=nats).
func StartServer(cfg ServerConfig, log zerolog.Logger) (*Server, error) {
	opts, err := cfg.options()
	if err != nil {
		return nil, err
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("bus: new server: %w", err)
	}
	l := log.With().Str("component", "nats").Str("server", cfg.Name).Logger()
	s.SetLoggerV2(&natsLogger{l}, cfg.Debug, false, false)
	go s.Start()
	wait := cfg.ReadyTimeout
	if wait == 0 {
		wait = 10 * time.Second
	}
	if !s.ReadyForConnections(wait) {
		s.Shutdown()
		s.WaitForShutdown() // no server goroutine outlives a failed start
		return nil, fmt.Errorf("bus: server %s not ready within %s", cfg.Name, wait)
	}
	return &Server{Server: s, opts: opts, cfg: cfg, log: l}, nil
}

// ClientURL returns nats://host:port of the client listener, or
// tls://host:port when it requires TLS.
func (s *Server) ClientURL() string {
	addr := s.Addr().(*net.TCPAddr)
	scheme := "nats://"
	if s.opts.TLSConfig != nil {
		scheme = "tls://"
	}
	host := s.opts.Host
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		// Listening on every address: connect over loopback, which the
		// server certificate always covers.
		host = "127.0.0.1"
		if ip.To4() == nil {
			host = "::1"
		}
	}
	return scheme + net.JoinHostPort(host, strconv.Itoa(addr.Port))
}

// Port returns the bound client port.
func (s *Server) Port() int { return s.Addr().(*net.TCPAddr).Port }

// Config returns the configuration with the bound ports filled in, so a
// restart comes back on the same ports and store.
func (s *Server) Config() ServerConfig {
	c := s.cfg
	c.Port = s.Port()
	if s.opts.Cluster.Port > 0 {
		c.ClusterPort = s.opts.Cluster.Port
	}
	return c
}

// Stop shuts the server down and waits for it.
func (s *Server) Stop() {
	s.Shutdown()
	s.WaitForShutdown()
}

type natsLogger struct{ l zerolog.Logger }

func (n *natsLogger) Noticef(f string, v ...any) { n.l.Info().Msgf(f, v...) }
func (n *natsLogger) Warnf(f string, v ...any)   { n.l.Warn().Msgf(f, v...) }
func (n *natsLogger) Fatalf(f string, v ...any)  { n.l.Error().Str("nats_level", "fatal").Msgf(f, v...) }
func (n *natsLogger) Errorf(f string, v ...any)  { n.l.Error().Msgf(f, v...) }
func (n *natsLogger) Debugf(f string, v ...any)  { n.l.Debug().Msgf(f, v...) }
func (n *natsLogger) Tracef(f string, v ...any)  { n.l.Trace().Msgf(f, v...) }
