// Package cost accrues what cloud instances cost from periodic observations.
//
// The coordinator observes every instance on each reconcile (provider, instance
// ID, linked node ID, normalised state, whether that state bills, and the
// price per hour with its currency and source). Between two consecutive
// observations of one instance the Tracker charges the interval with what was
// known at its start:
//
//   - billable with a known price: price × hours, in the price's currency;
//   - billable with an unknown price: counted as UnknownHours — the cost is
//     unknown, never 0;
//   - not billable (e.g. a stopped Vast instance): IdleHours, no charge;
//   - an interval longer than Options.MaxGap (coordinator down, provider API
//     unreachable): UnobservedHours, no charge, because nobody knows what the
//     instance did meanwhile. MaxGap defaults to 15 min (3 × a 5 min
//     reconcile interval); set it to about 3 × your reconcile interval.
//
// Intervals are split at UTC midnight into per-day buckets keyed by (day,
// provider, instance, node). Sums are always kept per currency: USD and EUR
// (Hetzner) are never added together. Cost is accrued when the next
// observation arrives, so totals lag by at most one reconcile interval; no
// provider minimum-charge rules (Vultr's 1 h minimum) are applied.
//
// Whether a state bills is the caller's call, normally
// providers.Instance.Billable(caps): Vultr and Hetzner bill while stopped,
// Vast, RunPod, Lambda and Nebius compute do not.
//
// The Tracker is safe for concurrent use, exports Prometheus metrics through
// Collector, and its whole state round-trips through Snapshot/Restore (JSON)
// so the coordinator can persist it.
package cost

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/ringmesh/ringmesh/pkg/providers"
)

// DayFormat is the layout of Bucket.Day (UTC calendar day).
const DayFormat = "2006-01-02"

// SnapshotVersion is the current Snapshot.Version.
const SnapshotVersion = 1

// ErrOutOfOrder is returned by Observe for an observation older than the
// instance's latest one; it is ignored.
var ErrOutOfOrder = errors.New("observation older than the latest one for this instance")

// Observation is one look at one instance.
type Observation struct {
	Provider   string          `json:"provider"`    // "vast", "vultr", …
	InstanceID string          `json:"instance_id"` // provider instance ID
	NodeID     string          `json:"node_id"`     // linked node ID; "" when not linked
	State      providers.State `json:"state"`
	Billable   bool            `json:"billable"` // the state accrues compute cost
	Price      providers.Price `json:"price"`    // per hour in Price.Currency; unknown when !Price.Known()
	At         time.Time       `json:"at"`
}

// ObservationOf builds an Observation from a provider's Instance, deciding
// billability with inst.Billable(caps). A stopped (or preempted) instance
// that the cloud does not bill in full but whose storage price it states
// (inst.StoragePrice, Vast instance.diskHour) is billable at that price:
// its disk keeps costing.
func ObservationOf(caps providers.Capabilities, inst providers.Instance, nodeID string, at time.Time) Observation {
	o := Observation{
		Provider: inst.Provider, InstanceID: inst.ID, NodeID: nodeID, State: inst.State,
		Billable: inst.Billable(caps), Price: inst.Price, At: at,
	}
	if !o.Billable && inst.StoragePrice.Known() && (inst.State == providers.StateStopped || inst.State == providers.StatePreempted) {
		o.Billable, o.Price = true, inst.StoragePrice
	}
	return o
}

// Totals is an accrued sum.
type Totals struct {
	Amount          map[string]float64 `json:"amount"`           // currency (ISO 4217) -> amount in that currency
	BillableHours   float64            `json:"billable_hours"`   // hours charged at a known price
	UnknownHours    float64            `json:"unknown_hours"`    // billable hours at an unknown price: cost unknown
	IdleHours       float64            `json:"idle_hours"`       // observed hours in a non-billable state
	UnobservedHours float64            `json:"unobserved_hours"` // gaps longer than MaxGap: not charged
}

// Exact reports whether the amounts are the whole cost: no billable hour had
// an unknown price and no interval went unobserved.
func (t Totals) Exact() bool { return t.UnknownHours == 0 && t.UnobservedHours == 0 }

// Add adds o into t.
func (t *Totals) Add(o Totals) {
	for c, v := range o.Amount {
		if t.Amount == nil {
			t.Amount = map[string]float64{}
		}
		t.Amount[c] += v
	}
	t.BillableHours += o.BillableHours
	t.UnknownHours += o.UnknownHours
	t.IdleHours += o.IdleHours
	t.UnobservedHours += o.UnobservedHours
}

// Bucket is the accrual of one instance on one UTC day.
type Bucket struct {
	Day        string `json:"day"` // DayFormat, UTC
	Provider   string `json:"provider"`
	InstanceID string `json:"instance_id"`
	NodeID     string `json:"node_id"`
	Totals
}

// InstanceCost is the latest known cost facts of one instance.
type InstanceCost struct {
	Provider   string          `json:"provider"`
	InstanceID string          `json:"instance_id"`
	NodeID     string          `json:"node_id"`
	State      providers.State `json:"state"`
	Billable   bool            `json:"billable"`
	Price      providers.Price `json:"price"` // per hour; unknown when !Price.Known()
	LastSeen   time.Time       `json:"last_seen"`
}

// Options configures a Tracker.
type Options struct {
	// MaxGap is the longest interval between two observations that is still
	// charged; longer ones count as UnobservedHours. Default 15 min.
	MaxGap time.Duration
	// RetainDays keeps per-day buckets this many days before the newest
	// observed day. Default 400. Lifetime totals (metrics) are never pruned.
	RetainDays int
}

type instKey struct{ provider, id string }

type bucketKey struct{ day, provider, id, node string }

// Tracker accrues cost. Create it with New.
type Tracker struct {
	maxGap     time.Duration
	retainDays int

	mu        sync.Mutex
	last      map[instKey]Observation
	buckets   map[bucketKey]*Totals
	lifetime  map[string]*Totals // provider -> lifetime totals (monotonic)
	pruneDay  string
	newestDay time.Time
}

// New returns an empty Tracker.
func New(opts Options) *Tracker {
	if opts.MaxGap <= 0 {
		opts.MaxGap = 15 * time.Minute
	}
	if opts.RetainDays <= 0 {
		opts.RetainDays = 400
	}
	return &Tracker{
		maxGap: opts.MaxGap, retainDays: opts.RetainDays,
		last: map[instKey]Observation{}, buckets: map[bucketKey]*Totals{}, lifetime: map[string]*Totals{},
	}
}

// MaxGap returns the configured maximum charged interval.
func (t *Tracker) MaxGap() time.Duration { return t.maxGap }

func validate(o Observation) error {
	switch {
	case o.Provider == "":
		return errors.New("cost: observation without provider")
	case o.InstanceID == "":
		return fmt.Errorf("cost: %s observation without instance ID", o.Provider)
	case o.At.IsZero():
		return fmt.Errorf("cost: %s/%s observation without time", o.Provider, o.InstanceID)
	}
	if o.Price.Known() {
		p := o.Price.PerHour
		if math.IsNaN(p) || math.IsInf(p, 0) || p < 0 {
			return fmt.Errorf("cost: %s/%s price %v per hour is not a valid amount", o.Provider, o.InstanceID, p)
		}
		if o.Price.Currency == "" {
			return fmt.Errorf("cost: %s/%s price from %q has no currency", o.Provider, o.InstanceID, o.Price.Source)
		}
	}
	return nil
}

// Observe records an observation and charges the interval since the
// instance's previous one. An invalid observation is rejected with an error
// naming the field; an out-of-order one returns ErrOutOfOrder; neither
// changes any state.
func (t *Tracker) Observe(o Observation) error {
	if err := validate(o); err != nil {
		return err
	}
	o.At = o.At.UTC()
	t.mu.Lock()
	defer t.mu.Unlock()
	k := instKey{o.Provider, o.InstanceID}
	if prev, ok := t.last[k]; ok {
		if o.At.Before(prev.At) {
			return fmt.Errorf("cost: %s/%s at %s: %w (latest %s)", o.Provider, o.InstanceID,
				o.At.Format(time.RFC3339), ErrOutOfOrder, prev.At.Format(time.RFC3339))
		}
		t.accrue(prev, o.At)
	}
	t.last[k] = o
	t.prune(o.At)
	return nil
}

// Remove closes an instance's last interval at `at` (charging it like an
// observation would) and forgets the instance, e.g. after it was terminated
// and vanished from the provider's list. Accrued buckets stay. It reports
// whether the instance was known.
func (t *Tracker) Remove(provider, instanceID string, at time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := instKey{provider, instanceID}
	prev, ok := t.last[k]
	if !ok {
		return false
	}
	if at = at.UTC(); at.After(prev.At) {
		t.accrue(prev, at)
	}
	delete(t.last, k)
	return true
}

// accrue charges [prev.At, end) with prev's facts, split at UTC midnight.
// Caller holds t.mu.
func (t *Tracker) accrue(prev Observation, end time.Time) {
	total := end.Sub(prev.At)
	if total <= 0 {
		return
	}
	unobserved := total > t.maxGap
	for start := prev.At; start.Before(end); {
		y, m, d := start.Date()
		midnight := time.Date(y, m, d+1, 0, 0, 0, 0, time.UTC)
		segEnd := end
		if midnight.Before(segEnd) {
			segEnd = midnight
		}
		h := segEnd.Sub(start).Hours()
		var delta Totals
		switch {
		case unobserved:
			delta.UnobservedHours = h
		case !prev.Billable:
			delta.IdleHours = h
		case !prev.Price.Known():
			delta.UnknownHours = h
		default:
			delta.BillableHours = h
			delta.Amount = map[string]float64{prev.Price.Currency: prev.Price.PerHour * h}
		}
		bk := bucketKey{start.Format(DayFormat), prev.Provider, prev.InstanceID, prev.NodeID}
		b := t.buckets[bk]
		if b == nil {
			b = &Totals{}
			t.buckets[bk] = b
		}
		b.Add(delta)
		lt := t.lifetime[prev.Provider]
		if lt == nil {
			lt = &Totals{}
			t.lifetime[prev.Provider] = lt
		}
		lt.Add(delta)
		start = segEnd
	}
}

// prune drops buckets older than RetainDays before the newest observed day,
// once per new day. Caller holds t.mu.
func (t *Tracker) prune(at time.Time) {
	if at.After(t.newestDay) {
		t.newestDay = at
	}
	day := t.newestDay.Format(DayFormat)
	if day == t.pruneDay {
		return
	}
	t.pruneDay = day
	cutoff := t.newestDay.AddDate(0, 0, -t.retainDays).Format(DayFormat)
	for k := range t.buckets {
		if k.day < cutoff {
			delete(t.buckets, k)
		}
	}
}

// Filter selects buckets. Empty fields match everything. From and To select
// whole UTC days: a bucket counts when day(From) <= its day <= day(To); a zero
// time leaves that side open.
type Filter struct {
	Provider   string
	InstanceID string
	NodeID     string // matches the node the interval was linked to; see also Unlinked
	Unlinked   bool   // only intervals with no node ID
	From, To   time.Time
}

func (f Filter) match(k bucketKey) bool {
	if f.Provider != "" && k.provider != f.Provider {
		return false
	}
	if f.InstanceID != "" && k.id != f.InstanceID {
		return false
	}
	if f.NodeID != "" && k.node != f.NodeID {
		return false
	}
	if f.Unlinked && k.node != "" {
		return false
	}
	if !f.From.IsZero() && k.day < f.From.UTC().Format(DayFormat) {
		return false
	}
	if !f.To.IsZero() && k.day > f.To.UTC().Format(DayFormat) {
		return false
	}
	return true
}

// GroupBy names a grouping for Group.
type GroupBy string

// Groupings. ByNode groups intervals not linked to a node under "".
const (
	ByNode     GroupBy = "node"
	ByProvider GroupBy = "provider"
	ByDay      GroupBy = "day" // UTC day, DayFormat
	ByInstance GroupBy = "instance"
)

// Sum returns the totals of all buckets matching f.
func (t *Tracker) Sum(f Filter) Totals {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out Totals
	for k, b := range t.buckets {
		if f.match(k) {
			out.Add(*b)
		}
	}
	return out
}

// Group returns the totals of the buckets matching f, grouped by `by`.
// ByInstance keys are "provider/instanceID".
func (t *Tracker) Group(f Filter, by GroupBy) (map[string]Totals, error) {
	var key func(bucketKey) string
	switch by {
	case ByNode:
		key = func(k bucketKey) string { return k.node }
	case ByProvider:
		key = func(k bucketKey) string { return k.provider }
	case ByDay:
		key = func(k bucketKey) string { return k.day }
	case ByInstance:
		key = func(k bucketKey) string { return k.provider + "/" + k.id }
	default:
		return nil, fmt.Errorf("cost: unknown grouping %q (node, provider, day, instance)", by)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[string]Totals{}
	for k, b := range t.buckets {
		if !f.match(k) {
			continue
		}
		g := out[key(k)]
		g.Add(*b)
		out[key(k)] = g
	}
	return out, nil
}

// Buckets returns the buckets matching f, sorted by day, provider, instance, node.
func (t *Tracker) Buckets(f Filter) []Bucket {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Bucket
	for k, b := range t.buckets {
		if f.match(k) {
			out = append(out, Bucket{Day: k.day, Provider: k.provider, InstanceID: k.id, NodeID: k.node, Totals: copyTotals(*b)})
		}
	}
	sortBuckets(out)
	return out
}

func sortBuckets(b []Bucket) {
	sort.Slice(b, func(i, j int) bool {
		x, y := b[i], b[j]
		if x.Day != y.Day {
			return x.Day < y.Day
		}
		if x.Provider != y.Provider {
			return x.Provider < y.Provider
		}
		if x.InstanceID != y.InstanceID {
			return x.InstanceID < y.InstanceID
		}
		return x.NodeID < y.NodeID
	})
}

func copyTotals(t Totals) Totals {
	out := t
	out.Amount = nil
	for c, v := range t.Amount {
		if out.Amount == nil {
			out.Amount = map[string]float64{}
		}
		out.Amount[c] = v
	}
	return out
}

// Current returns the latest facts of every known instance, sorted by provider and ID.
func (t *Tracker) Current() []InstanceCost {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]InstanceCost, 0, len(t.last))
	for _, o := range t.last {
		out = append(out, toInstanceCost(o))
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Provider != out[j].Provider {
			return out[i].Provider < out[j].Provider
		}
		return out[i].InstanceID < out[j].InstanceID
	})
	return out
}

// Instance returns the latest facts of one instance.
func (t *Tracker) Instance(provider, instanceID string) (InstanceCost, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	o, ok := t.last[instKey{provider, instanceID}]
	if !ok {
		return InstanceCost{}, false
	}
	return toInstanceCost(o), true
}

func toInstanceCost(o Observation) InstanceCost {
	return InstanceCost{Provider: o.Provider, InstanceID: o.InstanceID, NodeID: o.NodeID, State: o.State,
		Billable: o.Billable, Price: o.Price, LastSeen: o.At}
}

// BurnRate is what the currently billable instances cost per hour, per
// currency, plus how many billable instances have an unknown price (so a
// budget check can tell "cheap" from "unknown").
func (t *Tracker) BurnRate() (perHour map[string]float64, unknownPriced int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	perHour = map[string]float64{}
	for _, o := range t.last {
		if !o.Billable {
			continue
		}
		if !o.Price.Known() {
			unknownPriced++
			continue
		}
		perHour[o.Price.Currency] += o.Price.PerHour
	}
	return perHour, unknownPriced
}

// Lifetime returns the never-pruned totals per provider (what the
// ringmesh_cost_accrued_total metric reports).
func (t *Tracker) Lifetime() map[string]Totals {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]Totals, len(t.lifetime))
	for p, v := range t.lifetime {
		out[p] = copyTotals(*v)
	}
	return out
}

// Snapshot is the Tracker's whole state, JSON-serialisable, for persistence.
type Snapshot struct {
	Version   int               `json:"version"`
	Instances []Observation     `json:"instances"` // latest observation per instance
	Buckets   []Bucket          `json:"buckets"`
	Lifetime  map[string]Totals `json:"lifetime"` // provider -> totals
}

// Snapshot returns a deep copy of the state.
func (t *Tracker) Snapshot() Snapshot {
	s := Snapshot{Version: SnapshotVersion, Buckets: t.Buckets(Filter{}), Lifetime: t.Lifetime()}
	t.mu.Lock()
	for _, o := range t.last {
		s.Instances = append(s.Instances, o)
	}
	t.mu.Unlock()
	sort.Slice(s.Instances, func(i, j int) bool {
		if s.Instances[i].Provider != s.Instances[j].Provider {
			return s.Instances[i].Provider < s.Instances[j].Provider
		}
		return s.Instances[i].InstanceID < s.Instances[j].InstanceID
	})
	return s
}

// Restore replaces the Tracker's state with s after validating all of it; on
// error nothing changes. The interval from an instance's restored last
// observation to its next one is charged as usual (or counted unobserved when
// longer than MaxGap, e.g. after a long coordinator outage).
func (t *Tracker) Restore(s Snapshot) error {
	if s.Version != SnapshotVersion {
		return fmt.Errorf("cost: snapshot version %d, want %d", s.Version, SnapshotVersion)
	}
	last := map[instKey]Observation{}
	var newest time.Time
	for i, o := range s.Instances {
		if err := validate(o); err != nil {
			return fmt.Errorf("cost: snapshot instances[%d]: %w", i, err)
		}
		o.At = o.At.UTC()
		k := instKey{o.Provider, o.InstanceID}
		if _, dup := last[k]; dup {
			return fmt.Errorf("cost: snapshot instances[%d]: duplicate %s/%s", i, o.Provider, o.InstanceID)
		}
		last[k] = o
		if o.At.After(newest) {
			newest = o.At
		}
	}
	buckets := map[bucketKey]*Totals{}
	for i, b := range s.Buckets {
		if _, err := time.Parse(DayFormat, b.Day); err != nil {
			return fmt.Errorf("cost: snapshot buckets[%d]: day %q: %v", i, b.Day, err)
		}
		if b.Provider == "" || b.InstanceID == "" {
			return fmt.Errorf("cost: snapshot buckets[%d]: provider and instance_id are required", i)
		}
		if err := checkTotals(b.Totals); err != nil {
			return fmt.Errorf("cost: snapshot buckets[%d]: %w", i, err)
		}
		k := bucketKey{b.Day, b.Provider, b.InstanceID, b.NodeID}
		if _, dup := buckets[k]; dup {
			return fmt.Errorf("cost: snapshot buckets[%d]: duplicate bucket", i)
		}
		c := copyTotals(b.Totals)
		buckets[k] = &c
	}
	lifetime := map[string]*Totals{}
	for p, v := range s.Lifetime {
		if err := checkTotals(v); err != nil {
			return fmt.Errorf("cost: snapshot lifetime[%s]: %w", p, err)
		}
		c := copyTotals(v)
		lifetime[p] = &c
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.last, t.buckets, t.lifetime = last, buckets, lifetime
	t.newestDay, t.pruneDay = newest, ""
	return nil
}

func checkTotals(v Totals) error {
	bad := func(x float64) bool { return math.IsNaN(x) || math.IsInf(x, 0) || x < 0 }
	for c, a := range v.Amount {
		if c == "" || bad(a) {
			return fmt.Errorf("amount %q = %v is invalid", c, a)
		}
	}
	if bad(v.BillableHours) || bad(v.UnknownHours) || bad(v.IdleHours) || bad(v.UnobservedHours) {
		return errors.New("negative or non-finite hours")
	}
	return nil
}
