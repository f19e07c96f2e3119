package coordinator

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ringmesh/ringmesh/pkg/view"
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
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := sha256.Sum256([]byte(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")))
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="ringmesh"`)
			http.Error(w, "token required", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// httpHandler serves the endpoints; token (may be empty) guards the status
// page and /api/*. /healthz, /readyz, /metrics and the signed webhook stay open.
func (c *Coordinator) httpHandler() http.Handler { return c.httpHandlerWith("") }

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
	mux.Handle("GET /{$}", requireToken(token, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := c.Status()
		st.Voters = c.voters(r.Context())
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := page.Execute(w, map[string]any{"Status": st, "Rows": view.StatusRows(st.Nodes, st.GeneratedAt)}); err != nil {
			c.log.Warn().Err(err).Msg("render status page")
		}
	})))
	return mux
}

var page = template.Must(template.New("status").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="5">
<title>ringmesh</title>
<style>body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse}
td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left}
.healthy{color:#080}.degraded{color:#a60}.suspect{color:#c60}.dead,.preempted{color:#c00}.bus-partitioned{color:#a0a}</style>
</head><body>
<h1>ringmesh</h1>
<p>coordinator <b>{{.Status.Coordinator}}</b> · leader <b>{{.Status.Leader}}</b> · {{.Status.GeneratedAt.Format "2006-01-02 15:04:05 UTC"}} ·
suspect after {{.Status.Thresholds.SuspectAfterSeconds}}s, dead after {{.Status.Thresholds.DeadAfterSeconds}}s</p>
{{if .Status.Voters}}<h2>voters</h2><table><tr><th>voter</th><th>leader</th><th>state</th><th>NATS server</th><th>pending</th></tr>
{{range .Status.Voters}}<tr><td>{{.Name}}</td><td>{{if .Leader}}★{{end}}</td><td>{{.State}}</td><td>{{.Server}}</td><td>{{.Pending}}</td></tr>
{{end}}</table>{{end}}
<h2>nodes</h2>
<table><tr><th>node</th><th>provider</th><th>role</th><th>state</th><th>gossip</th><th>GPUs</th><th>GPU util</th><th>disk free</th><th>RPO</th><th>last seen</th><th>agent</th><th>cause</th></tr>
{{range .Rows}}<tr><td>{{.Node}}{{if ne .Trust "-"}} <b>[{{.Trust}}]</b>{{end}}</td><td>{{.Provider}}</td><td>{{.Role}}</td><td class="{{.State}}">{{.State}}</td><td>{{.Gossip}}</td><td>{{.GPUs}}</td><td>{{.GPUUtil}}</td><td>{{.DiskFree}}</td><td>{{.RPO}}</td><td>{{.LastSeen}}</td><td>{{.Version}}</td><td>{{.Cause}}</td></tr>
{{end}}</table></body></html>`))
