package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/events"
)

// syncEntry is ev as the events API returns it: the agent's envelope on
// mesh.v1.evt.<node>.sync, stored at at.
func syncEntry(t testing.TB, node string, seq uint64, at time.Time, ev events.Sync) api.EventEntry {
	t.Helper()
	env, err := bus.NewEnvelope(bus.KindSync, bus.MessageID(node, "boot1", seq), node, at, ev)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	subj, err := bus.EventSubject(node, bus.KindSync)
	if err != nil {
		t.Fatal(err)
	}
	return api.EventEntry{Seq: seq, At: at, Subject: subj, Size: len(b), Envelope: b}
}

// fakeSyncEvents are node's stored sync events, oldest first: a progress
// report, a continuous result that made two files, an RPO answer and a
// flush that made one file and missed one (its reason carries markup).
func fakeSyncEvents(t testing.TB, node string, now time.Time) []api.EventEntry {
	n := func(v int64) *int64 { return &v }
	k := func(v int) *int { return &v }
	return []api.EventEntry{
		syncEntry(t, node, 1, now.Add(-5*time.Minute), events.Sync{Phase: "progress", Trigger: "command:r1", BytesSent: 10, BytesTotal: 100}),
		syncEntry(t, node, 2, now.Add(-4*time.Minute), events.Sync{Phase: "result", Trigger: "continuous", BytesSent: 3072,
			Made: []events.FileRef{{Path: "/data/train/a.npz", Size: 1024, Targets: []string{"hetzner-1"}}, {Path: "/data/train/b.npz", Size: 2048, Targets: []string{"hetzner-1"}}},
			RPO:  events.RPO{UnsyncedBytes: n(0), UnsyncedFiles: k(0)}}),
		syncEntry(t, node, 3, now.Add(-3*time.Minute), events.Sync{Phase: "rpo", Trigger: "rpo:q1", RPO: events.RPO{UnsyncedBytes: n(5)}}),
		syncEntry(t, node, 4, now.Add(-2*time.Minute), events.Sync{Phase: "flush", Trigger: "preempt:vast notice", BytesSent: 4096,
			Made:   []events.FileRef{{Path: "/data/games/g.db", Size: 4096, Targets: []string{"hetzner-2"}}},
			Missed: []events.FileRef{{Path: "/data/train/c.npz", Size: 8192, Reason: `deadline passed <img src=x onerror="window.__pwned='yes'">`}},
			Error:  "1 file missed the deadline", RPO: events.RPO{UnsyncedBytes: n(8192), UnsyncedFiles: k(1)}}),
	}
}

// fakeEvents serves entries through api.OpEvents' paging, pageSize a page.
func fakeEvents(entries map[string][]api.EventEntry, pageSize int) func(context.Context, api.EventsRequest) (api.Events, error) {
	return func(_ context.Context, req api.EventsRequest) (api.Events, error) {
		if req.Kind != bus.KindSync {
			return api.Events{}, fmt.Errorf("kind %q, want sync", req.Kind)
		}
		out := api.Events{Items: []api.EventEntry{}, NextSeq: req.AfterSeq}
		for _, e := range entries[req.Node] {
			if e.Seq <= req.AfterSeq {
				continue
			}
			if len(out.Items) == pageSize {
				out.More = true
				break
			}
			out.Items = append(out.Items, e)
			out.NextSeq = e.Seq
		}
		return out, nil
	}
}

// The sync endpoint lists a node's sync and flush results newest first
// (no progress, no RPO answers), validated and bounded, through every page
// of the events API.
func TestSyncEndpoint(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	src := source(3, true)
	if code, body := get(t, New(src), "/api/dashboard/sync?node=vast-00001"); code != 404 || !strings.Contains(body, "sync history: not available") {
		t.Errorf("no Events source: %d %q, want 404 naming the sync history", code, body)
	}
	src.Events = fakeEvents(map[string][]api.EventEntry{"vast-00001": fakeSyncEvents(t, "vast-00001", now)}, 2)
	h := New(src)
	for _, bad := range []string{"", "a%20b", "vast.1", "..%2Fx", "*"} {
		if code, _ := get(t, h, "/api/dashboard/sync?node="+bad); code != 400 {
			t.Errorf("node %q: %d, want 400", bad, code)
		}
	}
	code, body := get(t, h, "/api/dashboard/sync?node=vast-00001")
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	var s NodeSync
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		t.Fatal(err)
	}
	if s.Node != "vast-00001" || len(s.Items) != 2 || s.Unreadable != 0 || s.Partial {
		t.Fatalf("reply %s: want 2 results for vast-00001, nothing unreadable", body)
	}
	fl, cont := s.Items[0], s.Items[1]
	if fl.Seq != 4 || fl.Kind != "flush" || fl.Trigger != "preempt:vast notice" || fl.MadeFiles != 1 || fl.MadeBytes != 4096 || fl.MissedFiles != 1 ||
		len(fl.Missed) != 1 || fl.Missed[0].Path != "/data/train/c.npz" || !strings.Contains(fl.Missed[0].Reason, "deadline passed <img") ||
		fl.Error != "1 file missed the deadline" || fl.RPO.UnsyncedBytes == nil || *fl.RPO.UnsyncedBytes != 8192 || !fl.At.Equal(now.Add(-2*time.Minute)) {
		t.Errorf("newest %+v: want the flush with its miss and reason (markup kept as data)", fl)
	}
	if cont.Seq != 2 || cont.Kind != "continuous sync" || cont.MadeFiles != 2 || cont.MadeBytes != 3072 || cont.BytesSent != 3072 || len(cont.Missed) != 0 {
		t.Errorf("second %+v: want the continuous result with two files made", cont)
	}
	if got, empty := get(t, h, "/api/dashboard/sync?node=vast-00002"); got != 200 || !strings.Contains(empty, `"items":[]`) {
		t.Errorf("node with no sync events: %d %s, want 200 and an empty list", got, empty)
	}

	src.Authorized = func(*http.Request) bool { return false }
	if code, _ := get(t, New(src), "/api/dashboard/sync?node=vast-00001"); code != 401 {
		t.Errorf("without the token: %d, want 401", code)
	}
	src.Authorized = nil
	src.Events = func(context.Context, api.EventsRequest) (api.Events, error) {
		return api.Events{}, errors.New("stream MESH_EVT: timeout")
	}
	if code, body := get(t, New(src), "/api/dashboard/sync?node=vast-00001"); code != 502 || !strings.Contains(body, "sync history of vast-00001: stream MESH_EVT: timeout") {
		t.Errorf("failing read: %d %q, want 502 naming the node and the reason", code, body)
	}
}

// What the trust boundary refuses, what is too large to read and what
// another node published are counted, never shown; only the newest
// MaxSync results stay, and each lists at most MaxSyncFiles files.
func TestSyncEndpointBoundsAndRefuses(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	node := "vast-00001"
	var all []api.EventEntry
	for i := range MaxSync + 5 {
		ev := events.Sync{Phase: "result", Trigger: "command:r" + fmt.Sprint(i), BytesSent: int64(i)}
		if i == MaxSync+4 {
			for j := range 30 {
				ev.Missed = append(ev.Missed, events.FileRef{Path: fmt.Sprintf("/data/f%02d.npz", j), Size: 1, Reason: "target down"})
			}
		}
		all = append(all, syncEntry(t, node, uint64(i+1), now.Add(time.Duration(i-40)*time.Minute), ev))
	}
	seq := uint64(len(all))
	bad := syncEntry(t, node, seq+1, now, events.Sync{Phase: "result", Trigger: "continuous", Error: "ok"})
	bad.Envelope = []byte(strings.Replace(string(bad.Envelope), `"error":"ok"`, `"error":"\u001b[2Jcleared"`, 1)) // control character: refused
	big := api.EventEntry{Seq: seq + 2, At: now, Subject: bad.Subject, Size: 1 << 20}                             // too large to read
	other := syncEntry(t, "vast-00002", seq+3, now, events.Sync{Phase: "result", Trigger: "continuous"})
	other.Subject = bad.Subject // another node's envelope on this node's subject
	old := syncEntry(t, node, seq+4, now, events.Sync{Phase: "result", Trigger: "continuous"})
	old.At = now.Add(30 * 24 * time.Hour) // stored a month after its ts: beyond the outbox's replay window
	all = append(all, bad, big, other, old)

	src := source(3, true)
	src.Events = fakeEvents(map[string][]api.EventEntry{node: all}, 7)
	code, body := get(t, New(src), "/api/dashboard/sync?node="+node)
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	var s NodeSync
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		t.Fatal(err)
	}
	if len(s.Items) != MaxSync || s.Unreadable != 4 {
		t.Fatalf("%d results, %d unreadable; want %d results and 4 unreadable (refused, too large, another node's, too old)", len(s.Items), s.Unreadable, MaxSync)
	}
	first := s.Items[0]
	if first.Trigger != fmt.Sprintf("command:r%d", MaxSync+4) || first.Kind != "sync now" || s.Items[MaxSync-1].Trigger != "command:r5" {
		t.Errorf("items %q … %q: want the newest %d, newest first", first.Trigger, s.Items[MaxSync-1].Trigger, MaxSync)
	}
	if len(first.Missed) != MaxSyncFiles || first.MissedFiles != 30 {
		t.Errorf("newest lists %d missed files of %d: want %d of 30", len(first.Missed), first.MissedFiles, MaxSyncFiles)
	}
}
