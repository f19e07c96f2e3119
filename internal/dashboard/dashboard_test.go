package dashboard

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ringmesh/ringmesh/internal/history"
	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/fleet"
	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/registry"
)

func source(n int, authorized bool) Source {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	nodes := make([]registry.Record, n)
	for i := range nodes {
		nodes[i] = registry.Record{Node: fmt.Sprintf("vast-%05d", i), Provider: "vast", State: mesh.StateHealthy, LastSeen: now.Add(-3 * time.Second)}
	}
	nodes[0].AgentVersion = `<img src=x onerror=alert(1)>`
	return Source{
		Status: func() api.Status { return api.Status{Coordinator: "c1", GeneratedAt: now, Nodes: nodes} },
		Voters: func(context.Context) []api.VoterStatus {
			return []api.VoterStatus{{Name: "c1", State: "healthy\x1b[2J", Leader: true}}
		},
		Authorized: func(*http.Request) bool { return authorized },
		History:    fakeHistory(now),
	}
}

// fakeHistory gives every node five points a minute apart; the third has
// no utilisation measured (a gap in its chart).
func fakeHistory(now time.Time) func(string) []history.Point {
	return func(string) []history.Point {
		var out []history.Point
		for i := 0; i < 5; i++ {
			u, d := float64(10*i), 40.0+float64(i)
			p := history.Point{At: now.Add(time.Duration(i-5) * time.Minute), GPUUtilPercent: &u, DiskUsedPercent: &d}
			if i == 2 {
				p.GPUUtilPercent = nil
			}
			out = append(out, p)
		}
		return out
	}
}

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	b, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(b)
}

// 10,000 nodes come in pages of at most MaxPage rows that cover all of them once.
func TestSummaryPages(t *testing.T) {
	h := New(source(10000, true))
	seen, off, size := map[string]bool{}, 0, 0
	for page := 0; ; page++ {
		code, body := get(t, h, fmt.Sprintf("/api/dashboard?offset=%d&limit=5000", off))
		size += len(body)
		if code != 200 {
			t.Fatalf("page %d: %d %s", page, code, body)
		}
		var s Summary
		if err := json.Unmarshal([]byte(body), &s); err != nil {
			t.Fatal(err)
		}
		if len(s.Rows) > MaxPage || s.Total != 10000 {
			t.Fatalf("page %d: %d rows, total %d", page, len(s.Rows), s.Total)
		}
		for _, r := range s.Rows {
			if seen[r.Node] {
				t.Fatalf("%s twice", r.Node)
			}
			seen[r.Node] = true
			if r.AgeSeconds == nil || *r.AgeSeconds != 3 {
				t.Fatalf("%s: age %v, want 3", r.Node, r.AgeSeconds)
			}
		}
		if s.Voters[0].State != "healthy[2J" {
			t.Fatalf("voter state not cleaned: %q", s.Voters[0].State)
		}
		if s.NextOffset == 0 {
			break
		}
		off = s.NextOffset
	}
	if len(seen) != 10000 {
		t.Fatalf("saw %d nodes, want 10000", len(seen))
	}
	t.Logf("10,000 rows: %d bytes per refresh (plain)", size)
	req := httptest.NewRequest("GET", "/api/dashboard?limit=2000", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Header().Get("Content-Encoding") != "gzip" {
		t.Fatal("no gzip")
	}
	t.Logf("one page of %d rows: %d bytes gzipped", MaxPage, rec.Body.Len())
	zr, err := gzip.NewReader(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	var s Summary
	if err := json.NewDecoder(zr).Decode(&s); err != nil || len(s.Rows) != MaxPage {
		t.Fatalf("gzipped page: %v, %d rows", err, len(s.Rows))
	}
}

func TestBadRequestsAndAuth(t *testing.T) {
	h := New(source(3, true))
	for _, p := range []string{"/api/dashboard?offset=-1", "/api/dashboard?limit=x", "/api/dashboard/node?node=../x", "/api/dashboard/node"} {
		if code, _ := get(t, h, p); code != 400 {
			t.Errorf("GET %s: %d, want 400", p, code)
		}
	}
	if code, _ := get(t, h, "/api/dashboard/node?node=vast-99999"); code != 404 {
		t.Errorf("unknown node: %d, want 404", code)
	}
	code, body := get(t, h, "/")
	if code != 200 || !strings.Contains(body, "vast-00001") || strings.Contains(body, "<img src=x") {
		t.Errorf("GET /: %d; want the first rows, escaped:\n%s", code, body)
	}
	deny := New(source(3, false))
	code, body = get(t, deny, "/")
	if code != 401 || strings.Contains(body, "vast-00001") || !strings.Contains(body, "/ui/app.js") {
		t.Errorf("GET / without token: %d, want 401 with the bare page and no data:\n%s", code, body)
	}
	for _, p := range []string{"/api/dashboard", "/api/dashboard/node?node=vast-00001"} {
		if code, _ := get(t, deny, p); code != 401 {
			t.Errorf("GET %s without token: %d, want 401", p, code)
		}
	}
	if code, body := get(t, deny, "/ui/app.js"); code != 200 || !strings.Contains(body, "textContent") {
		t.Errorf("GET /ui/app.js: %d", code)
	}
}

// The page is served with a policy that runs only the embedded script and
// forbids plugins, <base> rewrites, foreign form targets and framing, with
// or without the token.
func TestIndexSecurityHeaders(t *testing.T) {
	for _, authorized := range []bool{true, false} {
		rec := httptest.NewRecorder()
		New(source(3, authorized)).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		directives := map[string]string{}
		for _, d := range strings.Split(rec.Header().Get("Content-Security-Policy"), ";") {
			name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
			directives[name] = value
		}
		for name, want := range map[string]string{"default-src": "'self'", "script-src": "'self'", "object-src": "'none'",
			"base-uri": "'none'", "form-action": "'self'", "frame-ancestors": "'none'"} {
			if got, ok := directives[name]; !ok || got != want {
				t.Errorf("authorized=%v: CSP %s = %q (present %v), want %q", authorized, name, got, ok, want)
			}
		}
		if got := rec.Header().Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("authorized=%v: X-Content-Type-Options = %q", authorized, got)
		}
	}
}

// The script never puts data into the page as markup.
func TestScriptUsesTextContentOnly(t *testing.T) {
	b, err := assets.ReadFile("assets/app.js")
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("} {
		if strings.Contains(string(b), bad) {
			t.Errorf("app.js uses %s", bad)
		}
	}
}

func post(t *testing.T, h http.Handler, body string) (int, string) {
	t.Helper()
	req := httptest.NewRequest("POST", "/api/dashboard/act", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

// Actions call the coordinator API as meshctl does, never with force; off
// without Call (no authenticated admin) and refused without the token.
func TestActions(t *testing.T) {
	if code, _ := post(t, New(source(3, true)), `{"node":"vast-00001","op":"stop"}`); code != http.StatusForbidden {
		t.Errorf("no Call: %d, want 403", code)
	}
	src := source(3, true)
	var calls []fleet.ActionRequest
	var ops []string
	src.Call = func(_ context.Context, op string, req, out any) error {
		ops = append(ops, op)
		switch r := req.(type) {
		case fleet.ActionRequest:
			calls = append(calls, r)
			*(out.(*fleet.ActionResult)) = fleet.ActionResult{Message: "stop vast-00001: ok\x1b[2J", Applied: !r.DryRun}
		case api.SyncRequest:
			*(out.(*api.SyncAccepted)) = api.SyncAccepted{Node: r.Node, Trigger: "command:" + r.RequestID}
		}
		return nil
	}
	h := New(src)
	code, body := post(t, h, `{"node":"vast-00001","op":"stop","dry_run":true}`)
	if code != 200 || !strings.Contains(body, "stop vast-00001: ok[2J") {
		t.Errorf("dry run: %d %s", code, body)
	}
	if code, body = post(t, h, `{"node":"vast-00001","op":"stop","force":true}`); code != 200 || !strings.Contains(body, `"applied":true`) {
		t.Errorf("stop: %d %s", code, body)
	}
	if code, body = post(t, h, `{"node":"vast-00001","op":"sync"}`); code != 200 || !strings.Contains(body, "command:dash-") {
		t.Errorf("sync: %d %s", code, body)
	}
	if len(calls) != 2 || calls[0].RequestID != "" || calls[1].RequestID == "" || calls[1].Force || !strings.HasPrefix(calls[1].Actor, "dashboard:") ||
		strings.Join(ops, ",") != "act,act,sync" {
		t.Errorf("calls %+v ops %v", calls, ops)
	}
	for _, b := range []string{`{"node":"vast-00001","op":"reboot"}`, `{"node":"../x","op":"stop"}`, `{`} {
		if code, _ := post(t, h, b); code != 400 {
			t.Errorf("%s: %d, want 400", b, code)
		}
	}
	deny := source(3, false)
	deny.Call = src.Call
	if code, _ := post(t, New(deny), `{"node":"vast-00001","op":"stop"}`); code != 401 {
		t.Errorf("without token: %d, want 401", code)
	}
}
