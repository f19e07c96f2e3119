package dashboard

import (
	"context"
	"net/http"
	"time"

	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/cost"
	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/view"
)

// MaxAudit is the most audit entries the node page shows (and GET
// /api/dashboard/audit returns).
const MaxAudit = 50

// NodeAudit is the reply of GET /api/dashboard/audit?node=ID.
type NodeAudit struct {
	Node string `json:"node"`
	// Items are the newest audit entries about the node, newest first, at
	// most MaxAudit, with control characters stripped from every string.
	Items []api.AuditEntry `json:"items"`
	// Partial is true when MESH_AUDIT holds older records than those
	// searched: the node may have older entries that are not shown.
	Partial bool `json:"partial"`
}

// NodeCost is a node's cost so far, as the cost tracker knows it.
type NodeCost struct {
	// Tracked is false when this coordinator tracks no cost: every other
	// field is then empty and the cost is unknown.
	Tracked bool `json:"tracked"`
	// Accrued is what the tracker holds for intervals linked to the node
	// (its retained days), per currency; UnknownHours are billable hours
	// at an unknown price, UnobservedHours are gaps nobody saw.
	Accrued cost.Totals `json:"accrued"`
	// Exact is true when Accrued is the whole cost of those intervals.
	Exact bool `json:"exact"`
	// Instance is the provider instance last observed linked to the node
	// ("" = none observed: its price is unknown).
	Provider string `json:"provider,omitempty"`
	Instance string `json:"instance,omitempty"`
	// State and Billable are that instance's latest state and whether it
	// bills in it.
	State    string `json:"state,omitempty"`
	Billable bool   `json:"billable"`
	// PerHour is the price per hour now, in Currency, from PriceSource;
	// nil when unknown (no instance observed, or a billable instance with
	// no price). A non-billable instance has no PerHour either: see Billable.
	PerHour     *float64  `json:"per_hour"`
	Currency    string    `json:"currency,omitempty"`
	PriceSource string    `json:"price_source,omitempty"`
	LastSeen    time.Time `json:"last_seen,omitzero"`
}

// NodeCostOf reads node's cost so far from t (nil = not tracked).
func NodeCostOf(t *cost.Tracker, node string) NodeCost {
	if t == nil {
		return NodeCost{}
	}
	out := NodeCost{Tracked: true, Accrued: t.Sum(cost.Filter{NodeID: node})}
	out.Exact = out.Accrued.Exact()
	var last *cost.InstanceCost
	for _, ic := range t.Current() {
		if ic.NodeID == node && (last == nil || ic.LastSeen.After(last.LastSeen)) {
			ic := ic
			last = &ic
		}
	}
	if last != nil {
		out.Provider, out.Instance, out.State, out.Billable, out.LastSeen = last.Provider, last.InstanceID, string(last.State), last.Billable, last.LastSeen
		if last.Billable && last.Price.Known() {
			p := last.Price.PerHour
			out.PerHour, out.Currency, out.PriceSource = &p, last.Price.Currency, last.Price.Source
		}
	}
	return out
}

// AuditHandler serves GET /api/dashboard/audit?node=ID: the newest
// MaxAudit audit entries about the node, newest first (404 when
// src.Audit is nil).
func AuditHandler(src Source) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Query().Get("node")
		if err := mesh.ValidateNodeID(id); err != nil {
			http.Error(w, "bad request: node: "+err.Error(), http.StatusBadRequest)
			return
		}
		if src.Audit == nil {
			http.Error(w, "audit: not available on this coordinator", http.StatusNotFound)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		items, partial, err := src.Audit(ctx, id, MaxAudit)
		if err != nil {
			http.Error(w, "audit of "+id+": "+err.Error(), http.StatusBadGateway)
			return
		}
		items = items[:min(len(items), MaxAudit)]
		out := NodeAudit{Node: id, Items: make([]api.AuditEntry, len(items)), Partial: partial}
		for i, e := range items {
			e.Kind, e.Node, e.From, e.To = view.Clean(e.Kind), view.Clean(e.Node), view.Clean(e.From), view.Clean(e.To)
			e.Cause, e.Actor, e.Subject = view.Clean(e.Cause), view.Clean(e.Actor), view.Clean(e.Subject)
			if e.Detail != nil {
				d := make(map[string]string, len(e.Detail))
				for k, v := range e.Detail {
					d[view.Clean(k)] = view.Clean(v)
				}
				e.Detail = d
			}
			out.Items[i] = e
		}
		writeJSON(w, r, out)
	})
}
