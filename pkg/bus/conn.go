package bus

import (
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
)

// ConnConfig configures a client connection.
type ConnConfig struct {
	// URLs of the servers (all voters in a cluster), comma-joined or a list.
	URLs []string
	// Name identifies the client to the server (node ID or "coordinator-<voter>").
	Name string
	// PingInterval detects dead links; default 10 s.
	PingInterval time.Duration
	// ReconnectWait between attempts; default 1 s (plus jitter).
	ReconnectWait time.Duration
	// OnStatus, when set, is called with true on (re)connect and false on disconnect.
	OnStatus func(connected bool)
}

// Connect opens a connection that retries the first connect and reconnects
// forever, logging disconnects and reconnects. It fails only on bad input.
func Connect(cfg ConnConfig, log zerolog.Logger) (*nats.Conn, error) {
	if len(cfg.URLs) == 0 {
		return nil, fmt.Errorf("bus: no NATS server URL given")
	}
	ping := cfg.PingInterval
	if ping == 0 {
		ping = 10 * time.Second
	}
	wait := cfg.ReconnectWait
	if wait == 0 {
		wait = time.Second
	}
	l := log.With().Str("component", "bus").Logger()
	status := func(up bool) {
		if cfg.OnStatus != nil {
			cfg.OnStatus(up)
		}
	}
	return nats.Connect(strings.Join(cfg.URLs, ","),
		nats.Name(cfg.Name),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectWait(wait),
		nats.ReconnectJitter(200*time.Millisecond, time.Second),
		nats.PingInterval(ping),
		nats.MaxPingsOutstanding(2),
		nats.ReconnectBufSize(-1), // the outbox buffers, not the client
		nats.ConnectHandler(func(c *nats.Conn) {
			l.Info().Str("server", c.ConnectedUrlRedacted()).Msg("bus connected")
			status(true)
		}),
		nats.DisconnectErrHandler(func(c *nats.Conn, err error) {
			status(false)
			if err == nil || c.IsClosed() {
				l.Debug().Msg("bus disconnected (closing)")
				return
			}
			l.Warn().Err(err).Msg("bus disconnected")
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			l.Info().Str("server", c.ConnectedUrlRedacted()).Msg("bus reconnected")
			status(true)
		}),
		nats.ClosedHandler(func(c *nats.Conn) { l.Info().Msg("bus connection closed") }),
		nats.ErrorHandler(func(c *nats.Conn, s *nats.Subscription, err error) {
			ev := l.Error().Err(err)
			if s != nil {
				ev = ev.Str("subject", s.Subject)
			}
			ev.Msg("bus async error")
		}),
	)
}
