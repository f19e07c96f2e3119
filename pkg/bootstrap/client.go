package bootstrap

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/pkg/bus"
)

// ErrRefused means the coordinator refused the token for good (unknown,
// expired, used, revoked, bound to another instance): asking again cannot
// help; create a new token.
var ErrRefused = errors.New("enrollment refused")

// Config is what a booting node needs to enroll.
type Config struct {
	// URLs of the voters' NATS servers.
	URLs []string
	// BootstrapCreds is the shared bootstrap credential (role bootstrap).
	BootstrapCreds string
	// CAFile pins the ringmesh CA.
	CAFile string
	// Token is the one-time enrollment token (never from argv: a file or
	// the environment).
	Token string
	// InstanceID and Provider are what the node detected or was told.
	InstanceID string
	Provider   string
	// Node, when set, is the node ID the node expects; the token's must match.
	Node string
	// CredsOut is where the node's own creds file is written (mode 0600).
	// Until enrollment succeeds the node's key seed waits in
	// CredsOut+".seed" (0600), so a restart mid-way presents the same key
	// (the coordinator answers a repeated request of the same key again).
	CredsOut string
	// RetryWait is the pause between attempts while no coordinator answers
	// (default 2 s).
	RetryWait time.Duration
}

// Enroll presents the token until a coordinator answers, writes the node's
// creds file and returns the node ID it was enrolled as. It retries while
// no leader answers or the bus is unreachable, until ctx ends; a refusal
// returns ErrRefused at once.
func Enroll(ctx context.Context, cfg Config, log zerolog.Logger) (string, error) {
	if cfg.CredsOut == "" {
		return "", errors.New("bootstrap: no creds file to write (--creds)")
	}
	kp, err := pendingKey(cfg.CredsOut + ".seed")
	if err != nil {
		return "", err
	}
	pub, _ := kp.PublicKey()
	req := Request{Token: strings.TrimSpace(cfg.Token), InstanceID: cfg.InstanceID, Provider: cfg.Provider, Node: cfg.Node, PublicKey: pub}
	if err := req.Validate(); err != nil {
		return "", fmt.Errorf("bootstrap: %w", err)
	}
	body, _ := json.Marshal(req)
	wait := cfg.RetryWait
	if wait <= 0 {
		wait = 2 * time.Second
	}
	l := log.With().Str("component", "enroll").Str("instance_id", cfg.InstanceID).Logger()
	for attempt := 1; ; attempt++ {
		rep, err := ask(ctx, cfg, body)
		switch {
		case err == nil && rep.Error == "":
			if err := save(cfg.CredsOut, kp, pub, rep); err != nil {
				return "", err
			}
			_ = os.Remove(cfg.CredsOut + ".seed")
			l.Info().Str("node", rep.Node).Str("creds", cfg.CredsOut).Msg("enrolled: node credentials written")
			return rep.Node, nil
		case err == nil && !rep.Retry:
			return "", fmt.Errorf("%w: %s", ErrRefused, rep.Error)
		case err == nil:
			l.Warn().Str("reason", rep.Error).Int("attempt", attempt).Msg("enrollment deferred; asking again")
		case errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthRevoked) || errors.Is(err, nats.ErrAuthExpired):
			return "", fmt.Errorf("bootstrap: the bus refuses the bootstrap credential %s (revoked, expired, or not issued by this cluster): %w", cfg.BootstrapCreds, err)
		default:
			l.Warn().Err(err).Int("attempt", attempt).Msg("no coordinator answered the enrollment request; asking again")
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("bootstrap: gave up enrolling: %w", context.Cause(ctx))
		case <-time.After(wait):
		}
	}
}

// ask connects as the bootstrap user, sends one request and decodes the reply.
func ask(ctx context.Context, cfg Config, body []byte) (Reply, error) {
	opts, err := bus.ConnConfig{CredsFile: cfg.BootstrapCreds, CAFile: cfg.CAFile, Timeout: 5 * time.Second}.Options()
	if err != nil {
		return Reply{}, err
	}
	nc, err := nats.Connect(strings.Join(cfg.URLs, ","), append(opts, nats.Name("ringmesh-enroll"), nats.MaxReconnects(0),
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))...)
	if err != nil {
		return Reply{}, fmt.Errorf("connect as the bootstrap user: %w", err)
	}
	defer nc.Close()
	rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	m, err := nc.RequestWithContext(rctx, bus.EnrollSubject, body)
	if err != nil {
		if le := nc.LastError(); le != nil {
			return Reply{}, fmt.Errorf("%w (bus: %v)", err, le)
		}
		return Reply{}, err
	}
	var rep Reply
	if err := json.Unmarshal(m.Data, &rep); err != nil {
		return Reply{}, fmt.Errorf("unreadable enrollment reply: %w", err)
	}
	return rep, nil
}

// pendingKey loads the node's key seed from path, or makes one there (0600).
func pendingKey(path string) (nkeys.KeyPair, error) {
	if b, err := os.ReadFile(path); err == nil {
		kp, err := nkeys.FromSeed(b)
		if err != nil {
			return nil, fmt.Errorf("bootstrap: %s is not an nkey seed; remove it", path)
		}
		return kp, nil
	}
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, err
	}
	seed, _ := kp.Seed()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	if err := writeFile(path, seed); err != nil {
		return nil, err
	}
	return kp, nil
}

// save checks the reply's JWT is for our key and writes the creds file.
func save(path string, kp nkeys.KeyPair, pub string, rep Reply) error {
	uc, err := jwt.DecodeUserClaims(rep.JWT)
	if err != nil {
		return fmt.Errorf("bootstrap: enrollment reply: %w", err)
	}
	if uc.Subject != pub || uc.Name != rep.Node || !uc.Tags.Contains("role:node") {
		return errors.New("bootstrap: enrollment reply is not a node credential for this node's key")
	}
	seed, _ := kp.Seed()
	creds, err := jwt.FormatUserConfig(rep.JWT, seed)
	if err != nil {
		return err
	}
	return writeFile(path, creds)
}

func writeFile(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	return nil
}
