package dashboard

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/events"
	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/view"
	"github.com/ringmesh/ringmesh/pkg/wire"
)

// MaxSync is the most sync results the node page shows (and GET
// /api/dashboard/sync returns).
const MaxSync = 20

// MaxSyncFiles is the most made and missed files a SyncResult lists each.
const MaxSyncFiles = 20

// maxSyncPages bounds the api.OpEvents pages one request reads: a node's
// sync subject keeps bus.Topology.EventHistory messages (default 60), so
// the bound matters only with a huge retention.
const maxSyncPages = 50

// SyncResult is one continuous sync or flush result of a node: the
// events.Sync its agent published on mesh.v1.evt.<node>.sync (what
// `meshctl events --kind sync --node NODE` prints), accepted by the bus's
// trust boundary (pkg/wire) and with control characters stripped.
type SyncResult struct {
	// Seq is the MESH_EVT stream sequence, At when the stream stored it.
	Seq uint64    `json:"seq"`
	At  time.Time `json:"at"`
	// Kind is "continuous sync", "sync now" (a command), "flush" or, for
	// a result with another trigger, "sync".
	Kind string `json:"kind"`
	// Made and Missed hold at most MaxSyncFiles files each; MadeFiles and
	// MissedFiles count them all, MadeBytes adds up the sizes of all made.
	events.Sync
	MadeFiles   int   `json:"made_files"`
	MadeBytes   int64 `json:"made_bytes"`
	MissedFiles int   `json:"missed_files"`
}

// NodeSync is the reply of GET /api/dashboard/sync?node=ID.
type NodeSync struct {
	Node string `json:"node"`
	// Items are the node's newest sync and flush results, newest first,
	// at most MaxSync (progress reports and RPO answers are left out).
	Items []SyncResult `json:"items"`
	// Unreadable counts the node's sync events not shown: refused by the
	// trust boundary (`meshctl events --invalid` says why) or too large
	// for the events API.
	Unreadable int `json:"unreadable"`
	// Partial is true when the node had more sync events than one request
	// reads: the newest results may be missing.
	Partial bool `json:"partial"`
}

// SyncHandler serves GET /api/dashboard/sync?node=ID: the node's newest
// MaxSync sync and flush results from src.Events, newest first (404 when
// src.Events is nil).
func SyncHandler(src Source) http.Handler {
	decoder := sync.OnceValues(func() (*wire.Decoder, error) { return wire.NewDecoder(wire.Limits{}) })
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Query().Get("node")
		if err := mesh.ValidateNodeID(id); err != nil {
			http.Error(w, "bad request: node: "+err.Error(), http.StatusBadRequest)
			return
		}
		if src.Events == nil {
			http.Error(w, "sync history: not available on this coordinator", http.StatusNotFound)
			return
		}
		dec, err := decoder()
		if err != nil {
			http.Error(w, "sync history: "+err.Error(), http.StatusInternalServerError)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		out := NodeSync{Node: id, Items: []SyncResult{}}
		// Oldest first, as the stream keeps them; only the newest MaxSync stay.
		req := api.EventsRequest{Kind: bus.KindSync, Node: id, Limit: api.EventsMaxLimit}
		for page := 0; ; page++ {
			if page == maxSyncPages {
				out.Partial = true
				break
			}
			ev, err := src.Events(ctx, req)
			if err != nil {
				http.Error(w, "sync history of "+id+": "+err.Error(), http.StatusBadGateway)
				return
			}
			for _, e := range ev.Items {
				res, ok, readable := syncResult(dec, id, e)
				if !readable {
					out.Unreadable++
				}
				if ok {
					out.Items = append(out.Items, res)
					if len(out.Items) > MaxSync {
						out.Items = out.Items[1:]
					}
				}
			}
			if !ev.More || ev.NextSeq <= req.AfterSeq {
				break
			}
			req.AfterSeq = ev.NextSeq
		}
		slices.Reverse(out.Items)
		writeJSON(w, r, out)
	})
}

// syncResult decodes one stored event of node through the trust boundary,
// as the coordinator does before it applies one. ok: it is a sync or flush
// result; readable: it could be decoded at all.
func syncResult(dec *wire.Decoder, node string, e api.EventEntry) (res SyncResult, ok, readable bool) {
	if e.Envelope == nil {
		return res, false, false
	}
	m, err := dec.Decode(e.Subject, e.Envelope, e.At)
	if err != nil || m.Sync == nil || m.Node != node {
		return res, false, false
	}
	s := *m.Sync
	switch {
	case s.Phase == "flush":
		res.Kind = "flush"
	case s.Phase != "result":
		return res, false, true // progress, or an RPO answer: no result
	case s.Trigger == "continuous":
		res.Kind = "continuous sync"
	case strings.HasPrefix(s.Trigger, "command:"):
		res.Kind = "sync now"
	default:
		res.Kind = "sync"
	}
	res.Seq, res.At = e.Seq, e.At
	res.MadeFiles, res.MissedFiles = len(s.Made), len(s.Missed)
	for _, f := range s.Made {
		res.MadeBytes += f.Size
	}
	s.Phase, s.Trigger, s.Error = view.Clean(s.Phase), view.Clean(s.Trigger), view.Clean(s.Error)
	s.Made, s.Missed = cleanRefs(s.Made), cleanRefs(s.Missed)
	res.Sync = s
	return res, true, true
}

func cleanRefs(in []events.FileRef) []events.FileRef {
	if in == nil {
		return nil
	}
	out := make([]events.FileRef, min(len(in), MaxSyncFiles))
	for i := range out {
		f := in[i]
		f.Path, f.SHA256, f.Reason = view.Clean(f.Path), view.Clean(f.SHA256), view.Clean(f.Reason)
		if f.Targets != nil {
			ts := make([]string, len(f.Targets))
			for j, t := range f.Targets {
				ts[j] = view.Clean(t)
			}
			f.Targets = ts
		}
		out[i] = f
	}
	return out
}
