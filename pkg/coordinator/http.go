package coordinator

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ringmesh/ringmesh/internal/dashboard"
	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/auth"
)

// HTTPTokenEnv names the environment variable that may hold the HTTP
// token when Config.HTTPTokenFile is empty.
const HTTPTokenEnv = "RINGMESH_HTTP_TOKEN"

// httpToken loads the token that guards the status page and /api/* (file
// first, then HTTPTokenEnv; never a flag value, so it is not in argv).
func (c *Coordinator) httpToken() (string, error) {
	if f := c.cfg.HTTPTokenFile; f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", fmt.Errorf("http token file: %w", err)
		}
		tok := strings.TrimSpace(string(b))
		if len(tok) < 16 {
			return "", fmt.Errorf("http token file %s: token shorter than 16 characters", f)
		}
		return tok, nil
	}
	return strings.TrimSpace(os.Getenv(HTTPTokenEnv)), nil
}

// loopback reports whether addr ("host:port") binds loopback only.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// requireToken wraps h: when a token is set, the request must carry
// "Authorization: Bearer <token>" (compared in constant time).
func requireToken(token string, h http.Handler) http.Handler {
	if token == "" {
		return h
	}
	ok := tokenOK(token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !ok(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="ringmesh"`)
			http.Error(w, "token required", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// tokenOK returns the check of requireToken: r carries "Authorization:
// Bearer <token>" (compared in constant time); always true when token is empty.
func tokenOK(token string) func(*http.Request) bool {
	if token == "" {
		return func(*http.Request) bool { return true }
	}
	want := sha256.Sum256([]byte(token))
	return func(r *http.Request) bool {
		got := sha256.Sum256([]byte(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")))
		return subtle.ConstantTimeCompare(got[:], want[:]) == 1
	}
}

// httpHandlerWith serves the endpoints; token (may be empty) guards the
// status page, the dashboard's data and /api/*. /healthz, /readyz, /metrics
// and the signed webhook stay open.
func (c *Coordinator) httpHandlerWith(token string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if why := c.readiness(r.Context()); why != "" {
			http.Error(w, "not ready: "+why, http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	mux.HandleFunc("POST /webhooks/vast", c.vastWebhook)
	mux.Handle("GET /metrics", promhttp.HandlerFor(c.cfg.Registry, promhttp.HandlerOpts{}))
	mux.Handle("GET /api/status", requireToken(token, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(c.Status())
	})))
	// The dashboard (internal/dashboard): the page, its assets and its data.
	quorum := 0
	if c.cfg.Elect && c.cfg.Inventory != nil {
		quorum = len(c.cfg.Inventory.Voters)
	}
	src := dashboard.Source{Status: c.Status, Voters: c.voters, QuorumSize: quorum, Authorized: tokenOK(token), History: c.hist.Get,
		Audit: c.nodeAudit, Events: c.readEvents, Cost: c.cfg.Cost}
	if token != "" { // actions only for an admin the token authenticates, through the API meshctl calls
		sign, err := c.dashboardSigner()
		if err != nil {
			c.log.Warn().Err(err).Msg("dashboard actions off: no signing identity")
		} else {
			src.Call = func(ctx context.Context, op string, req, out any) error {
				return api.Client{NC: c.nc, Sign: sign}.Call(ctx, op, req, out)
			}
		}
	}
	dash := dashboard.New(src)
	for _, p := range []string{"GET /{$}", "GET /ui/", "GET /api/dashboard", "GET /api/dashboard/node", "GET /api/dashboard/audit", "GET /api/dashboard/sync", "GET /api/dashboard/cost", "POST /api/dashboard/act"} {
		mux.Handle(p, dash)
	}
	return mux
}

// dashboardSigner signs the dashboard's action requests. With bus
// authentication they are signed as the admin user "dashboard-<name>" that
// this coordinator issues itself (the token holder is the admin; the audit
// names that identity), so they pass the same signature and role checks as
// meshctl's. Without authentication it is nil (nothing is checked).
func (c *Coordinator) dashboardSigner() (func(subject string, body []byte) (nats.Header, error), error) {
	if c.cfg.Auth == nil {
		return nil, nil
	}
	name := "dashboard-" + c.cfg.Name
	creds := filepath.Join(c.cfg.Auth.Dir(), "creds", name+".creds")
	if err := c.cfg.Auth.EnsureCreds(auth.RoleAdmin, name, creds); err != nil {
		return nil, err
	}
	signer, err := auth.LoadSigner(creds)
	if err != nil {
		return nil, err
	}
	return signer.Sign, nil
}
