package fleet

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/pkg/config"
	"github.com/ringmesh/ringmesh/pkg/cost"
	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/providers"
	"github.com/ringmesh/ringmesh/pkg/registry"
)

// InstanceView is one provider instance with the node it is linked to.
type InstanceView struct {
	providers.Instance
	// Node is the linked node ID ("" = an instance without an agent or inventory entry).
	Node string `json:"node,omitempty"`
	// Stale is true when the latest list of its provider failed and this is the last known view.
	Stale bool `json:"stale,omitempty"`
	// ProviderRetired is true when the provider is retired in config.
	ProviderRetired bool `json:"provider_retired,omitempty"`
}

// ProviderStatus is the reconcile state of one provider.
type ProviderStatus struct {
	Name        string    `json:"name"`
	State       string    `json:"state"` // "ok", "error", "not_configured", "pending"
	Retired     bool      `json:"retired,omitempty"`
	Error       string    `json:"error,omitempty"`
	LastAttempt time.Time `json:"last_attempt,omitempty"`
	LastOK      time.Time `json:"last_ok,omitempty"`
	Instances   int       `json:"instances"`
	// Unconfirmed lists instance IDs that the latest list left out and whose
	// Get failed: their state is unknown (last known view kept, marked stale).
	Unconfirmed []string `json:"unconfirmed,omitempty"`
}

// NodeIssue is a node whose instance could not be matched.
type NodeIssue struct {
	Node     string `json:"node"`
	Provider string `json:"provider"`
	Reason   string `json:"reason"`
	// Gone is true only when the provider confirmed, by a Get by ID answering
	// a real not-found, that the node's instance does not exist.
	Gone bool `json:"gone,omitempty"`
}

// EndpointChange is an SSH endpoint that moved between two reconciles
// (Vast and RunPod ports change after a restart).
type EndpointChange struct {
	Provider   string    `json:"provider"`
	InstanceID string    `json:"instance_id"`
	Node       string    `json:"node,omitempty"`
	Kind       string    `json:"kind"`
	From       string    `json:"from"`
	To         string    `json:"to"`
	At         time.Time `json:"at"`
}

// Report is the latest reconcile picture.
type Report struct {
	At                     time.Time        `json:"at"`
	Providers              []ProviderStatus `json:"providers"`
	Instances              []InstanceView   `json:"instances"`
	InstancesWithoutAgents []string         `json:"instances_without_agents,omitempty"` // "provider/id"
	AgentsWithoutInstances []NodeIssue      `json:"agents_without_instances,omitempty"`
	EndpointChanges        []EndpointChange `json:"endpoint_changes,omitempty"` // of the latest pass
}

// Instance returns the view linked to node, if any.
func (r Report) Instance(node string) (InstanceView, bool) {
	for _, iv := range r.Instances {
		if iv.Node == node {
			return iv, true
		}
	}
	return InstanceView{}, false
}

type provState struct {
	status    ProviderStatus
	instances map[string]providers.Instance // by ID, from the last successful list (plus stale unconfirmed ones)
	gone      map[string]bool               // missing from the list, and Get said not found
	unknown   map[string]string             // missing from the list, and Get failed: why
}

// Reconciler lists every configured provider and links instances to nodes.
// It is safe for concurrent use.
type Reconciler struct {
	provs *providers.Registry
	inv   *config.Inventory
	cost  *cost.Tracker
	log   zerolog.Logger
	now   func() time.Time

	mu    sync.Mutex
	state map[string]*provState
	last  Report
}

// NewReconciler builds a reconciler; cost may be nil (no cost tracking).
func NewReconciler(provs *providers.Registry, inv *config.Inventory, tracker *cost.Tracker, log zerolog.Logger, now func() time.Time) *Reconciler {
	if now == nil {
		now = time.Now
	}
	return &Reconciler{provs: provs, inv: inv, cost: tracker, log: log.With().Str("component", "reconcile").Logger(), now: now, state: map[string]*provState{}}
}

// Providers returns the registry the reconciler uses.
func (r *Reconciler) Providers() *providers.Registry { return r.provs }

// Inventory returns the inventory (may be nil).
func (r *Reconciler) Inventory() *config.Inventory { return r.inv }

// confirmConcurrency bounds the Get calls that confirm missing instances.
const confirmConcurrency = 4

// confirmation is what a Get by ID said about an instance the list left out.
type confirmation struct {
	inst  *providers.Instance // found: the list was wrong
	gone  bool                // a real not-found: the instance does not exist
	err   error               // anything else: the instance's state is unknown
	cause string
}

// Reconcile lists every provider (concurrently, each under ctx) and
// returns the new report. A provider whose list fails keeps its last known
// instances, marked stale, and its state becomes "error": nothing is guessed.
//
// A list is never taken as proof that an instance is gone. Every instance
// that is expected but missing from a successful list (one that the previous
// list had, or one that an active node of that provider is linked to) is
// confirmed by a Get by ID before anything changes: found means the list was
// wrong and the Get's view is used; a typed not-found (errors.Is
// providers.ErrNotFound) means it is gone (NodeIssue.Gone); any other answer
// means unknown: the last known view is kept, marked stale, and the node's
// issue says unknown. So a list answered as {"instances": null}, empty while
// twenty nodes are alive, or one row short flips nothing by itself.
func (r *Reconciler) Reconcile(ctx context.Context, nodes []registry.Record) Report {
	type result struct {
		name   string
		list   []providers.Instance
		err    error
		at     time.Time
		checks map[string]confirmation // missing instance ID -> what Get said
	}
	names := r.provs.Names()
	results := make(chan result, len(names))
	var wg sync.WaitGroup
	for _, name := range names {
		p, err := r.provs.Get(name)
		if err != nil {
			results <- result{name: name, err: err, at: r.now()}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			list, err := p.List(ctx)
			results <- result{name: name, list: list, err: err, at: r.now()}
		}()
	}
	wg.Wait()
	close(results)
	var all []*result
	for res := range results {
		all = append(all, &res)
	}

	// Which instances each provider should still have.
	r.mu.Lock()
	expected := r.expected(nodes)
	r.mu.Unlock()
	sem := make(chan struct{}, confirmConcurrency)
	var cmu sync.Mutex
	for _, res := range all {
		if res.err != nil {
			continue
		}
		listed := make(map[string]bool, len(res.list))
		for _, inst := range res.list {
			listed[inst.ID] = true
		}
		var missing []string
		for id := range expected[res.name] {
			if !listed[id] {
				missing = append(missing, id)
			}
		}
		if len(missing) == 0 {
			continue
		}
		sort.Strings(missing)
		p, err := r.provs.Get(res.name)
		if err != nil {
			continue
		}
		res.checks = make(map[string]confirmation, len(missing))
		r.log.Warn().Str("provider", res.name).Int("listed", len(res.list)).Strs("missing", missing).
			Msg("list leaves out expected instances; confirming each by get before any state change")
		for _, id := range missing {
			wg.Add(1)
			go func() {
				defer wg.Done()
				select {
				case sem <- struct{}{}:
					defer func() { <-sem }()
				case <-ctx.Done():
					cmu.Lock()
					res.checks[id] = confirmation{err: ctx.Err(), cause: ctx.Err().Error()}
					cmu.Unlock()
					return
				}
				c := confirm(ctx, p, id)
				cmu.Lock()
				res.checks[id] = c
				cmu.Unlock()
			}()
		}
	}
	wg.Wait()

	r.mu.Lock()
	defer r.mu.Unlock()
	links := linkIndex(r.inv, nodes)
	var changes []EndpointChange
	for _, res := range all {
		st := r.state[res.name]
		if st == nil {
			st = &provState{status: ProviderStatus{Name: res.name}}
			r.state[res.name] = st
		}
		_, retired, _ := r.provs.Status(res.name)
		st.status.Retired = retired || (r.inv != nil && r.inv.ProviderRetired(res.name))
		st.status.LastAttempt = res.at
		if res.err != nil {
			st.status.State, st.status.Error = "error", res.err.Error()
			if errors.Is(res.err, providers.ErrNotConfigured) {
				st.status.State = "not_configured"
			}
			continue
		}
		st.status.State, st.status.Error, st.status.LastOK = "ok", "", res.at
		list := res.list
		st.gone, st.unknown = map[string]bool{}, map[string]string{}
		var stale []providers.Instance
		for _, id := range sortedKeys(res.checks) {
			c := res.checks[id]
			switch {
			case c.inst != nil:
				r.log.Warn().Str("provider", res.name).Str("instance", id).Msg("instance missing from the list exists (get found it): the list was incomplete")
				list = append(list, *c.inst)
			case c.gone:
				st.gone[id] = true
			default:
				st.unknown[id] = c.cause
				r.log.Warn().Str("provider", res.name).Str("instance", id).Err(c.err).Msg("instance missing from the list and get failed: state unknown, nothing changed")
				if prev, ok := st.instances[id]; ok {
					stale = append(stale, prev)
				}
			}
		}
		st.status.Unconfirmed = sortedKeys(st.unknown)
		next := make(map[string]providers.Instance, len(list)+len(stale))
		for _, inst := range list {
			inst = named(inst, links[key(res.name, inst.ID)])
			next[inst.ID] = inst
			if prev, ok := st.instances[inst.ID]; ok {
				changes = append(changes, endpointChanges(prev, inst, links[key(res.name, inst.ID)], res.at)...)
			}
			if r.cost != nil {
				p, _ := r.provs.Get(res.name)
				if p != nil {
					if err := r.cost.Observe(cost.ObservationOf(p.Capabilities(), inst, links[key(res.name, inst.ID)], res.at)); err != nil {
						r.log.Warn().Err(err).Str("provider", res.name).Str("instance", inst.ID).Msg("cost observation")
					}
				}
			}
		}
		for _, inst := range stale { // last known view, not observed again
			next[inst.ID] = inst
		}
		if r.cost != nil {
			for id := range st.instances {
				if _, still := next[id]; !still {
					r.cost.Remove(res.name, id, res.at)
				}
			}
		}
		st.instances = next
		st.status.Instances = len(next)
	}
	r.last = r.build(links, nodes)
	r.last.EndpointChanges = changes
	return r.last
}

// named fills an instance's empty name (Vast's label is null until someone
// sets it): the node the inventory (or an agent) links to that instance ID,
// else "<provider>-<id>" (the inventory's naming convention, e.g. vast-31337001).
func named(inst providers.Instance, node string) providers.Instance {
	if strings.TrimSpace(inst.Name) != "" {
		return inst
	}
	if node != "" {
		inst.Name = node
	} else {
		inst.Name = inst.Provider + "-" + inst.ID
	}
	return inst
}

// confirm asks the provider for one instance by ID.
func confirm(ctx context.Context, p providers.Provider, id string) confirmation {
	inst, err := p.Get(ctx, id)
	switch {
	case err == nil && inst.ID == id:
		return confirmation{inst: &inst}
	case err == nil:
		return confirmation{err: fmt.Errorf("get %s answered instance %q", id, inst.ID), cause: fmt.Sprintf("get answered instance %q", inst.ID)}
	case errors.Is(err, providers.ErrNotFound):
		return confirmation{gone: true}
	}
	return confirmation{err: err, cause: err.Error()}
}

// expected returns, per provider, the instance IDs that should be in its
// list: those of the previous successful list and those linked to an active
// node of that provider. The caller holds r.mu.
func (r *Reconciler) expected(nodes []registry.Record) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	add := func(prov, id string) {
		if out[prov] == nil {
			out[prov] = map[string]bool{}
		}
		out[prov][id] = true
	}
	for name, st := range r.state {
		for id := range st.instances {
			add(name, id)
		}
	}
	for _, n := range nodeIDs(r.inv, nodes) {
		prov, id := nodeInstance(r.inv, nodes, n)
		if id == "" || !isCloud(prov) || inactive(r.inv, nodes, n) {
			continue
		}
		add(prov, id)
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Report returns the latest picture, re-linked against nodes (no API calls).
func (r *Reconciler) Report(nodes []registry.Record) Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	rep := r.build(linkIndex(r.inv, nodes), nodes)
	rep.EndpointChanges = r.last.EndpointChanges
	return rep
}

func (r *Reconciler) build(links map[string]string, nodes []registry.Record) Report {
	rep := Report{At: r.now()}
	seen := map[string]bool{}
	for _, name := range r.provs.Names() {
		st := r.state[name]
		if st == nil {
			configured, retired, reason := r.provs.Status(name)
			ps := ProviderStatus{Name: name, State: "pending", Retired: retired}
			if !configured {
				ps.State, ps.Error = "not_configured", reason
			}
			rep.Providers = append(rep.Providers, ps)
			continue
		}
		rep.Providers = append(rep.Providers, st.status)
		for _, inst := range st.instances {
			_, unconfirmed := st.unknown[inst.ID]
			iv := InstanceView{Instance: inst, Node: links[key(name, inst.ID)], Stale: st.status.State != "ok" || unconfirmed, ProviderRetired: st.status.Retired}
			rep.Instances = append(rep.Instances, iv)
			seen[key(name, inst.ID)] = true
			if iv.Node == "" {
				rep.InstancesWithoutAgents = append(rep.InstancesWithoutAgents, key(name, inst.ID))
			}
		}
	}
	sort.Slice(rep.Instances, func(i, j int) bool {
		if rep.Instances[i].Provider != rep.Instances[j].Provider {
			return rep.Instances[i].Provider < rep.Instances[j].Provider
		}
		return rep.Instances[i].ID < rep.Instances[j].ID
	})
	sort.Strings(rep.InstancesWithoutAgents)
	for _, n := range nodeIDs(r.inv, nodes) {
		prov, id := nodeInstance(r.inv, nodes, n)
		if !isCloud(prov) || inactive(r.inv, nodes, n) {
			continue
		}
		st := r.state[prov]
		if st == nil || st.status.State != "ok" {
			continue // cannot tell: the provider's view is unknown
		}
		switch {
		case id == "":
			rep.AgentsWithoutInstances = append(rep.AgentsWithoutInstances, NodeIssue{Node: n, Provider: prov, Reason: "no provider instance ID (set " + prov + "_id in the inventory or let the agent detect it)"})
		case st.gone[id]:
			rep.AgentsWithoutInstances = append(rep.AgentsWithoutInstances, NodeIssue{Node: n, Provider: prov, Gone: true,
				Reason: fmt.Sprintf("instance %s not in %s's list, and get by ID confirms it does not exist", id, prov)})
		case st.unknown[id] != "":
			rep.AgentsWithoutInstances = append(rep.AgentsWithoutInstances, NodeIssue{Node: n, Provider: prov,
				Reason: fmt.Sprintf("instance %s missing from %s's list and get by ID failed (%s): state unknown", id, prov, st.unknown[id])})
		case !seen[key(prov, id)]:
			rep.AgentsWithoutInstances = append(rep.AgentsWithoutInstances, NodeIssue{Node: n, Provider: prov,
				Reason: fmt.Sprintf("instance %s missing from %s's list; not yet confirmed by get", id, prov)})
		}
	}
	return rep
}

func key(provider, id string) string { return provider + "/" + id }

func isCloud(p string) bool {
	for _, c := range mesh.Providers {
		if c == p {
			return true
		}
	}
	return false
}

// linkIndex maps provider/instance ID to node ID: the inventory's *_id
// fields first, then the instance each node was admitted with, then what
// agents report. Never by (host, port).
func linkIndex(inv *config.Inventory, nodes []registry.Record) map[string]string {
	out := map[string]string{}
	for _, n := range nodes {
		if n.InstanceID != "" && isCloud(n.Provider) {
			out[key(n.Provider, n.InstanceID)] = n.Node
		}
	}
	// A trusted link (the instance a node was admitted with, then the
	// inventory's) wins over any node's report naming the same instance.
	for _, n := range nodes {
		if p, id, ok := admittedInstance(n.Admitted); ok {
			out[key(p, id)] = n.Node
		}
	}
	if inv != nil {
		for name, h := range inv.Hosts {
			if id := h.InstanceID(); id != "" {
				out[key(h.Provider, id)] = name
			}
		}
	}
	return out
}

func nodeIDs(inv *config.Inventory, nodes []registry.Record) []string {
	set := map[string]bool{}
	for _, n := range nodes {
		set[n.Node] = true
	}
	if inv != nil {
		for name := range inv.Hosts {
			set[name] = true
		}
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Where a node's instance ID comes from (ActionResult.InstanceSource).
const (
	// SourceInventory: <provider>_id in distributed_hosts.yaml.
	SourceInventory = "inventory"
	// SourceAdmission: the coordinator launched the instance for the node,
	// or the provider's listing named the instance after the node when the
	// node was admitted (registry.Record.Admitted "launch:P/ID", "provider:P/ID").
	SourceAdmission = "admission"
	// SourceListing: the node's own report, confirmed by the provider's
	// current listing, which names that instance after the node.
	SourceListing = "listing"
	// SourceClaim: only the node's own report (hello). A node may say
	// anything about itself, so no provider call is made on it.
	SourceClaim = "claim"
)

// admittedInstance parses an admission source "launch:<provider>/<id>" or
// "provider:<provider>/<id>"; ok is false for any other source.
func admittedInstance(src string) (provider, id string, ok bool) {
	for _, pre := range []string{"launch:", "provider:"} {
		if rest, found := strings.CutPrefix(src, pre); found {
			provider, id, ok = strings.Cut(rest, "/")
			return provider, id, ok && provider != "" && id != ""
		}
	}
	return "", "", false
}

// trustedInstance returns the provider and instance ID a provider call on
// node may use, and their source: the inventory's ID, else the instance
// the node was admitted with, else the node's own report when named (the
// provider's current listing, may be nil) calls that instance by the
// node's name. A report confirmed by none of these comes back with
// SourceClaim: shown, never acted on (a compromised node must not point a
// stop or terminate at another box of the same account).
func trustedInstance(inv *config.Inventory, rec *registry.Record, node string, named func(provider, id string) string) (provider, id, source string) {
	if inv != nil {
		if h := inv.Hosts[node]; h != nil {
			provider = h.Provider
			if id = h.InstanceID(); id != "" {
				return provider, id, SourceInventory
			}
		}
	}
	if rec == nil {
		return provider, "", ""
	}
	if p, i, ok := admittedInstance(rec.Admitted); ok && (provider == "" || provider == mesh.ProviderUnknown || provider == p) {
		return p, i, SourceAdmission
	}
	if provider == "" || provider == mesh.ProviderUnknown {
		provider = rec.Provider
	}
	if rec.InstanceID == "" {
		return provider, "", ""
	}
	if named != nil && named(provider, rec.InstanceID) == node {
		return provider, rec.InstanceID, SourceListing
	}
	return provider, rec.InstanceID, SourceClaim
}

// InstanceName returns the name provider's last successful listing gives
// instance id ("" when not listed or unknown), for trustedInstance.
func (r *Reconciler) InstanceName(provider, id string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if st := r.state[provider]; st != nil {
		if in, ok := st.instances[id]; ok {
			return in.Name
		}
	}
	return ""
}

// nodeInstance returns the node's provider and instance ID for display and
// linking: inventory first, then the agent's report (provider calls use
// trustedInstance).
func nodeInstance(inv *config.Inventory, nodes []registry.Record, node string) (provider, id string) {
	if inv != nil {
		if h := inv.Hosts[node]; h != nil {
			provider, id = h.Provider, h.InstanceID()
		}
	}
	for _, n := range nodes {
		if n.Node == node {
			if provider == "" || provider == mesh.ProviderUnknown {
				provider = n.Provider
			}
			if id == "" {
				id = n.InstanceID
			}
		}
	}
	return provider, id
}

func inactive(inv *config.Inventory, nodes []registry.Record, node string) bool {
	if inv != nil {
		if h := inv.Hosts[node]; h != nil && h.Inactive() {
			return true
		}
	}
	for _, n := range nodes {
		if n.Node == node && (n.State == mesh.StateRetired || n.State == mesh.StateTerminated) {
			return true
		}
	}
	return false
}

func endpointChanges(prev, cur providers.Instance, node string, at time.Time) []EndpointChange {
	var out []EndpointChange
	for _, kind := range []providers.EndpointKind{providers.EndpointProxy, providers.EndpointDirect} {
		a, okA := prev.Endpoint(kind)
		b, okB := cur.Endpoint(kind)
		if okA && okB && a != b {
			out = append(out, EndpointChange{Provider: cur.Provider, InstanceID: cur.ID, Node: node, Kind: string(kind), From: a.String(), To: b.String(), At: at})
		}
	}
	return out
}
