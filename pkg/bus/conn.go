package bus

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
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
	// CredsFile is the user's NATS credentials (user JWT + nkey seed, mode
	// 0600). The private inbox prefix the user's permissions allow
	// (InboxPrefix of the JWT's name) is used unless the user may subscribe
	// to everything. Empty = no credentials (servers without auth only).
	CredsFile string
	// CAFile pins the CA that signed the servers' certificates (PEM); with
	// it the connection requires TLS. Empty = system roots when the server
	// asks for TLS.
	CAFile string
	// Timeout bounds each connect attempt (default 2 s, nats.go's).
	Timeout time.Duration
}

// Options returns the nats.go options for the credentials and CA of cfg
// (also used by one-shot clients such as meshctl).
func (cfg ConnConfig) Options() ([]nats.Option, error) {
	var opts []nats.Option
	if cfg.CredsFile != "" {
		b, err := os.ReadFile(cfg.CredsFile)
		if err != nil {
			return nil, fmt.Errorf("bus: credentials: %w", err)
		}
		tok, err := jwt.ParseDecoratedJWT(b)
		if err != nil {
			return nil, fmt.Errorf("bus: credentials %s: %w", cfg.CredsFile, err)
		}
		uc, err := jwt.DecodeUserClaims(tok)
		if err != nil {
			return nil, fmt.Errorf("bus: credentials %s: %w", cfg.CredsFile, err)
		}
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
		if !uc.Sub.Allow.Contains(">") {
			opts = append(opts, nats.CustomInboxPrefix(InboxPrefix(uc.Name)))
		}
	}
	if cfg.CAFile != "" {
		opts = append(opts, nats.RootCAs(cfg.CAFile))
	}
	if cfg.Timeout > 0 {
		opts = append(opts, nats.Timeout(cfg.Timeout))
	}
	return opts, nil
}

// InboxPrefix is the private reply-subject prefix of the user named name:
// its permissions allow subscribing to InboxPrefix(name)+".>" only, so no
// user can read replies meant for another.
func InboxPrefix(name string) string { return "_INBOX_" + name }

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
	sec, err := cfg.Options()
	if err != nil {
		return nil, err
	}
	return nats.Connect(strings.Join(cfg.URLs, ","), append(sec,
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
		nats.ClosedHandler(func(c *nats.Conn) {
			if err := c.LastError(); err != nil && (errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthRevoked) || errors.Is(err, nats.ErrAuthExpired)) {
				// nats.go gives up after the server refused the same credentials twice.
				l.Error().Err(err).Str("creds", cfg.CredsFile).Msg("bus connection closed for good: the servers refuse these credentials (revoked, expired, or not issued by this cluster); issue new ones")
				return
			}
			l.Info().Msg("bus connection closed")
		}),
		nats.ErrorHandler(func(c *nats.Conn, s *nats.Subscription, err error) {
			ev := l.Error().Err(err)
			if s != nil {
				ev = ev.Str("subject", s.Subject)
			}
			ev.Msg("bus async error")
		}),
	)...)
}
