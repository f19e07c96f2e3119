package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ringmesh/ringmesh/pkg/api"
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
	seen, off := map[string]bool{}, 0
	for page := 0; ; page++ {
		code, body := get(t, h, fmt.Sprintf("/api/dashboard?offset=%d&limit=5000", off))
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
