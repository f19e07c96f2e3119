// Package dashboard is the coordinator's web dashboard: a single page
// (plain HTML, vanilla JS and CSS embedded with go:embed, nothing from a
// CDN) that polls two JSON endpoints and renders every value with
// textContent, since node-reported strings are untrusted.
//
// Endpoints (mounted by pkg/coordinator on its --http listener):
//
//	GET /                      the page (static, not secret)
//	GET /ui/app.js, /ui/app.css its assets
//	GET /api/dashboard         summary + one page of compact node rows
//	                           (?offset=N&limit=M, M ≤ MaxPage, in node ID order)
//	GET /api/dashboard/node    one node's full registry record, recent
//	                           health history and cost so far (?node=ID)
//	GET /api/dashboard/audit   the node's newest MaxAudit audit entries,
//	                           newest first (?node=ID)
//	GET /api/dashboard/sync    the node's newest MaxSync sync and flush
//	                           results, newest first (?node=ID)
//	GET /api/dashboard/cost    the cluster's cost and billed instances per
//	                           UTC day, the last CostDays days
//	POST /api/dashboard/act    sync now, stop or terminate (Source.Call set)
//
// Source.Authorized guards the data (the same bearer-token check as
// /api/status). GET / without it answers 401 with the bare page, which a
// browser still runs: the page reads the token from the URL fragment
// (#token=…, which never reaches a server or its logs) and keeps it in
// sessionStorage. With it, GET / also carries the first rows rendered on
// the server (html/template escapes them), so it is useful without JS.
package dashboard

import (
	"compress/gzip"
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"encoding/json"
	"html/template"
	"io/fs"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ringmesh/ringmesh/internal/history"
	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/cost"
	"github.com/ringmesh/ringmesh/pkg/fleet"
	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/registry"
	"github.com/ringmesh/ringmesh/pkg/view"
)

//go:embed assets
var assets embed.FS

// MaxPage is the most rows one /api/dashboard reply carries; the page
// fetches as many pages as Total needs.
const MaxPage = 2000

// Source is what the dashboard reads from the coordinator.
type Source struct {
	// Status is the coordinator's whole cluster picture (api.Status with
	// every node; Voters may be empty).
	Status func() api.Status
	// Voters lists the voters and the leader as this coordinator sees them
	// (bounded by ctx).
	Voters func(ctx context.Context) []api.VoterStatus
	// QuorumSize is the number of voters that elect a leader (0 = no
	// election, a single coordinator); the page says "no quorum" when fewer
	// than a majority of them are healthy.
	QuorumSize int
	// Authorized reports whether r may read cluster data (nil = anyone).
	Authorized func(r *http.Request) bool
	// Call, when set, enables the actions (sync now, stop, terminate) for a
	// request that passes Authorized: it calls the coordinator API op
	// (api.Client.Call on the bus), so an action takes the same path, the
	// same leader and the same gates as meshctl's. The caller sets it only
	// where a token authenticates the admin.
	Call func(ctx context.Context, op string, req, out any) error
	// History, when set, gives a node's recent health points for the
	// node page's charts (oldest first).
	History func(node string) []history.Point
	// Audit, when set, reads the newest (at most limit) audit entries about
	// node, newest first; partial reports that MESH_AUDIT holds older
	// records than those searched.
	Audit func(ctx context.Context, node string, limit int) (items []api.AuditEntry, partial bool, err error)
	// Events, when set, reads one page of the agents' stored events (what
	// api.OpEvents answers `meshctl events`): the node page lists the
	// node's sync and flush results from it.
	Events func(ctx context.Context, req api.EventsRequest) (api.Events, error)
	// Cost, when set, is the coordinator's cost tracker: the node page
	// shows the node's cost so far and its price per hour.
	Cost *cost.Tracker
}

// ActRequest is the body of POST /api/dashboard/act.
type ActRequest struct {
	Node string `json:"node"`
	// Op is "sync", "stop" or "terminate".
	Op string `json:"op"`
	// DryRun runs the gates and audits the decision without calling the provider (stop, terminate).
	DryRun bool   `json:"dry_run"`
	Reason string `json:"reason"`
}

// ActReply answers POST /api/dashboard/act.
type ActReply struct {
	Message string `json:"message"`
	Applied bool   `json:"applied"`
}

// FirstRows is how many rows GET / renders on the server.
const FirstRows = 100

// New returns the handler of GET /, GET /ui/*, GET /api/dashboard, GET
// /api/dashboard/node, GET /api/dashboard/audit, GET /api/dashboard/sync,
// GET /api/dashboard/cost and POST /api/dashboard/act (mount it on those
// patterns).
func New(src Source) http.Handler {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err)
	}
	files := http.FileServerFS(sub)
	summary, node, audit, syncs, costs := SummaryHandler(src), NodeHandler(src), AuditHandler(src), SyncHandler(src), CostHandler(src)
	ok := func(r *http.Request) bool { return src.Authorized == nil || src.Authorized(r) }
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		switch p := r.URL.Path; {
		case p == "/":
			w.Header().Set("Content-Security-Policy", csp)
			w.Header().Set("Cache-Control", "no-store")
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			data := map[string]any{}
			if ok(r) {
				st := src.Status()
				data["Rows"] = view.StatusRows(st.Nodes[:min(len(st.Nodes), FirstRows)], st.GeneratedAt)
				data["Total"] = len(st.Nodes)
			} else {
				w.Header().Set("WWW-Authenticate", `Bearer realm="ringmesh"`)
				w.WriteHeader(http.StatusUnauthorized)
			}
			_ = indexPage.Execute(w, data)
		case len(p) > 4 && p[:4] == "/ui/":
			w.Header().Set("Cache-Control", "no-cache")
			r2 := r.Clone(r.Context())
			r2.URL.Path = p[3:]
			files.ServeHTTP(w, r2)
		case !ok(r):
			w.Header().Set("WWW-Authenticate", `Bearer realm="ringmesh"`)
			http.Error(w, "token required", http.StatusUnauthorized)
		case p == "/api/dashboard":
			summary.ServeHTTP(w, r)
		case p == "/api/dashboard/node":
			node.ServeHTTP(w, r)
		case p == "/api/dashboard/audit":
			audit.ServeHTTP(w, r)
		case p == "/api/dashboard/sync":
			syncs.ServeHTTP(w, r)
		case p == "/api/dashboard/cost":
			costs.ServeHTTP(w, r)
		case p == "/api/dashboard/act":
			act(src, w, r)
		default:
			http.NotFound(w, r)
		}
	})
}

// csp allows only the embedded assets: no inline script, no plugin object,
// no <base> that would re-point relative URLs, no form posting elsewhere,
// no framing.
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

var indexPage = template.Must(template.ParseFS(assets, "assets/index.html"))

// Row is one node in the table: display strings from pkg/view (control
// characters stripped) plus numeric sort keys (nil = unknown).
type Row struct {
	view.Row
	Ephemeral bool `json:"ephemeral"`
	// UtilMean is the mean GPU utilisation, percent.
	UtilMean *float64 `json:"util_mean"`
	// DiskUsedPct is the first data path's used share, percent.
	DiskUsedPct *float64 `json:"disk_used_pct"`
	// RPOBytes is the unsynced data, bytes.
	RPOBytes *int64 `json:"rpo_bytes"`
	// AgeSeconds is the time since the last event, seconds (nil = never).
	AgeSeconds *float64 `json:"age_seconds"`
}

// Summary is the reply of GET /api/dashboard.
type Summary struct {
	Coordinator string                 `json:"coordinator"`
	Leader      string                 `json:"leader"`
	Voters      []api.VoterStatus      `json:"voters"`
	QuorumSize  int                    `json:"quorum_size"`
	GeneratedAt time.Time              `json:"generated_at"`
	Thresholds  api.ThresholdsView     `json:"thresholds"`
	Counts      map[mesh.NodeState]int `json:"counts"`
	Quarantined int                    `json:"quarantined"`
	Total       int                    `json:"total"`
	Offset      int                    `json:"offset"`
	NextOffset  int                    `json:"next_offset"` // 0 = last page
	// Actions is true when this coordinator offers sync/stop/terminate here.
	Actions bool  `json:"actions"`
	Rows    []Row `json:"rows"`
}

// SummaryHandler serves GET /api/dashboard.
func SummaryHandler(src Source) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		offset, err1 := intParam(r, "offset", 0)
		limit, err2 := intParam(r, "limit", MaxPage)
		if err1 != nil || err2 != nil || offset < 0 || limit <= 0 {
			http.Error(w, "bad request: offset and limit must be integers, offset ≥ 0, limit > 0", http.StatusBadRequest)
			return
		}
		limit = min(limit, MaxPage)
		st := src.Status()
		out := Summary{Coordinator: st.Coordinator, Leader: st.Leader, QuorumSize: src.QuorumSize, GeneratedAt: st.GeneratedAt,
			Thresholds: st.Thresholds, Counts: st.Counts, Quarantined: st.Quarantined, Total: len(st.Nodes), Offset: offset, Actions: src.Call != nil}
		if src.Voters != nil {
			out.Voters = src.Voters(r.Context())
		}
		for i := range out.Voters {
			out.Voters[i].Name, out.Voters[i].State, out.Voters[i].Server = view.Clean(out.Voters[i].Name), view.Clean(out.Voters[i].State), view.Clean(out.Voters[i].Server)
		}
		out.Leader = view.Clean(out.Leader)
		nodes := st.Nodes
		if offset > len(nodes) {
			offset = len(nodes)
		}
		end := min(offset+limit, len(nodes))
		if end < len(nodes) {
			out.NextOffset = end
		}
		out.Rows = Rows(nodes[offset:end], st.GeneratedAt)
		writeJSON(w, r, out)
	})
}

// NodeHandler serves GET /api/dashboard/node?node=ID: the full record,
// its health history and its cost so far (NodeCost).
func NodeHandler(src Source) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Query().Get("node")
		if err := mesh.ValidateNodeID(id); err != nil {
			http.Error(w, "bad request: node: "+err.Error(), http.StatusBadRequest)
			return
		}
		st := src.Status()
		for _, rec := range st.Nodes {
			if rec.Node == id {
				hist := []history.Point{}
				if src.History != nil {
					hist = append(hist, src.History(id)...)
				}
				writeJSON(w, r, struct {
					GeneratedAt time.Time       `json:"generated_at"`
					Record      registry.Record `json:"record"`
					Row         Row             `json:"row"`
					History     []history.Point `json:"history"`
					Cost        NodeCost        `json:"cost"`
				}{st.GeneratedAt, rec, Rows([]registry.Record{rec}, st.GeneratedAt)[0], hist, NodeCostOf(src.Cost, id)})
				return
			}
		}
		http.Error(w, "no such node: "+id, http.StatusNotFound)
	})
}

// act runs one action for an authenticated admin (New checked Authorized).
// No force: the safe-to-terminate gate and voter protection always apply.
func act(src Source, w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	if src.Call == nil {
		http.Error(w, "actions are off: they need an authenticated admin (start the coordinator with an HTTP token)", http.StatusForbidden)
		return
	}
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		http.Error(w, "bad request: want Content-Type application/json", http.StatusUnsupportedMediaType)
		return
	}
	var req ActRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil {
		http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
		return
	}
	if err := mesh.ValidateNodeID(req.Node); err != nil {
		http.Error(w, "bad request: node: "+err.Error(), http.StatusBadRequest)
		return
	}
	if req.Reason = view.Clean(strings.TrimSpace(req.Reason)); req.Reason == "" || len(req.Reason) > 256 {
		req.Reason = "dashboard request"
	}
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	actor := "dashboard:" + host
	ctx, cancel := context.WithTimeout(r.Context(), 60*time.Second)
	defer cancel()
	var rep ActReply
	switch req.Op {
	case "sync":
		var acc api.SyncAccepted
		if err := src.Call(ctx, api.OpSync, api.SyncRequest{Node: req.Node, RequestID: requestID()}, &acc); err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		rep = ActReply{Message: "sync of " + acc.Node + " requested (" + acc.Trigger + "); progress shows on the node page", Applied: true}
	case fleet.OpStop, fleet.OpTerminate:
		ar := fleet.ActionRequest{Node: req.Node, Op: req.Op, DryRun: req.DryRun, Reason: req.Reason, Actor: actor}
		if !req.DryRun {
			ar.RequestID = requestID()
		}
		var res fleet.ActionResult
		if err := src.Call(ctx, api.OpAct, ar, &res); err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		rep = ActReply{Message: view.Clean(res.Message), Applied: res.Applied}
	default:
		http.Error(w, `bad request: op must be "sync", "stop" or "terminate"`, http.StatusBadRequest)
		return
	}
	writeJSON(w, r, rep)
}

func requestID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return "dash-" + hex.EncodeToString(b)
}

// Rows formats records as table rows relative to now.
func Rows(recs []registry.Record, now time.Time) []Row {
	vr := view.StatusRows(recs, now)
	out := make([]Row, len(recs))
	for i, r := range recs {
		row := Row{Row: vr[i], Ephemeral: r.Ephemeral}
		if !r.LastSeen.IsZero() {
			age := max(now.Sub(r.LastSeen).Seconds(), 0)
			row.AgeSeconds = &age
		}
		row.RPOBytes = r.RPO.UnsyncedBytes
		if h := r.Health; h != nil {
			var sum float64
			n := 0
			for _, g := range h.GPUs {
				if g.UtilizationPercent != nil {
					sum += *g.UtilizationPercent
					n++
				}
			}
			if n > 0 {
				m := sum / float64(n)
				row.UtilMean = &m
			}
			if len(h.Disks) > 0 && h.Disks[0].UsedPercent != nil {
				p := *h.Disks[0].UsedPercent
				row.DiskUsedPct = &p
			}
		}
		out[i] = row
	}
	return out
}

func intParam(r *http.Request, name string, def int) (int, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	return strconv.Atoi(s)
}

// writeJSON answers v as JSON, gzipped where the client takes it (a
// 10,000-node refresh is ~2.8 MB of JSON, which compresses well).
func writeJSON(w http.ResponseWriter, r *http.Request, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Add("Vary", "Accept-Encoding")
	if !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		_ = json.NewEncoder(w).Encode(v)
		return
	}
	w.Header().Set("Content-Encoding", "gzip")
	zw, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
	_ = json.NewEncoder(zw).Encode(v)
	_ = zw.Close()
}
