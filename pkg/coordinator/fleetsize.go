package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/config"
	"github.com/ringmesh/ringmesh/pkg/events"
	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/providers"
)

// fleetBootGrace is how long a launch of the fleet-size policy counts as a
// node of its kind before the node is healthy: a booting replacement is not
// replaced again.
const fleetBootGrace = 15 * time.Minute

// fleetMaxBackoff caps the doubling backoff after failed launches.
const fleetMaxBackoff = time.Hour

// fleetState is the fleet-size policy's state of one kind, in KV
// mesh_state under fleet_<kind>, so a new leader continues it:
// Generation numbers the launches (the next one's request ID is
// policy-fleet-<kind>-<generation>), Pending the launches not yet healthy.
type fleetState struct {
	Generation int            `json:"generation"`
	Pending    []fleetPending `json:"pending,omitempty"`
	Failures   int            `json:"failures,omitempty"`
	NextTry    time.Time      `json:"next_try,omitempty"`
	LastError  string         `json:"last_error,omitempty"`
}

type fleetPending struct {
	RequestID string    `json:"request_id"`
	Node      string    `json:"node"`
	At        time.Time `json:"at"`
}

func fleetKey(kind string) string { return "fleet_" + kind }

// fleetRequestID is the request ID of a kind's launch number gen: the same
// on every coordinator, so a leader fail-over in the middle of a launch
// repeats the request (answered from its record, or found at the cloud by
// the resilient layer), never makes a second instance.
func fleetRequestID(kind string, gen int) string {
	return "policy-fleet-" + kind + "-" + strconv.Itoa(gen)
}

// runFleetSizePolicy, on the leader, counts each kind's healthy nodes plus
// its launches still booting, and when fewer than the kind's count,
// launches one node of the cheapest matching offer (c.launch: budget
// caps, request-ID record, audit). A failed launch backs off (doubling
// from pol.Backoff, at most an hour); dry-run audits what it would launch
// at most once per backoff period. dryAt remembers the dry-run audits.
func (c *Coordinator) runFleetSizePolicy(ctx context.Context, pol config.FleetSizePolicy, dryAt map[string]time.Time) {
	if !c.IsLeader() || c.cfg.Fleet == nil {
		return
	}
	kv, err := c.js.KeyValue(ctx, bus.BucketState)
	if err != nil {
		c.log.Warn().Err(err).Msg("fleet-size policy: state bucket")
		return
	}
	now := c.cfg.Now()
	for _, k := range pol.Kinds {
		st, rev, err := readFleetState(ctx, kv, k.Name)
		if err != nil {
			c.log.Warn().Err(err).Str("kind", k.Name).Msg("fleet-size policy: state unreadable; not acting on this kind")
			continue
		}
		healthy := c.fleetHealthy(k)
		// Launches count until their node is healthy or the boot grace ends.
		var pending []fleetPending
		for _, p := range st.Pending {
			if !slices.Contains(healthy, p.Node) && c.fleetBooting(p, now) {
				pending = append(pending, p)
			}
		}
		have := len(healthy) + len(pending)
		c.log.Debug().Str("kind", k.Name).Strs("healthy", healthy).Int("booting", len(pending)).Int("wanted", k.Count).Time("next_try", st.NextTry).Msg("fleet-size policy: counted")
		if have >= k.Count {
			if len(pending) != len(st.Pending) {
				st.Pending = pending
				_ = writeFleetState(ctx, kv, k.Name, st, rev)
			}
			continue
		}
		if now.Before(st.NextTry) {
			continue
		}
		if pol.Mode == config.PolicyDryRun {
			if at, ok := dryAt[k.Name]; ok && now.Sub(at) < pol.Backoff {
				continue
			}
			dryAt[k.Name] = now
		}
		reqID := fleetRequestID(k.Name, st.Generation)
		node := k.Name + "-" + strconv.Itoa(st.Generation)
		why := fmt.Sprintf("fleet_size %s: %d healthy + %d booting < %d wanted (healthy: %s)", k.Name, len(healthy), len(pending), k.Count, strings.Join(healthy, ", "))
		req := api.LaunchRequest{Node: node, RequestID: reqID, DryRun: pol.Mode == config.PolicyDryRun, Reason: why,
			Filter: providers.OfferFilter{GPUModel: k.GPU, MinGPUs: k.GPUCount, MaxGPUs: k.GPUCount, MaxPricePerGPUHour: k.MaxPrice}}
		switch k.Kind {
		case "spot":
			req.Interruptible = providers.Ptr(true)
		case "on-demand":
			req.Interruptible = providers.Ptr(false)
		}
		res, lerr := c.launchAmong(ctx, req, k.Providers)
		a := events.Audit{Kind: "policy", Node: node, Cause: why, Actor: "policy:fleet_size coordinator:" + c.cfg.Name, DryRun: req.DryRun,
			Detail: map[string]string{"policy": "fleet_size", "mode": pol.Mode, "op": "launch", "kind": k.Name, "request_id": reqID,
				"healthy": strconv.Itoa(len(healthy)), "booting": strconv.Itoa(len(pending)), "wanted": strconv.Itoa(k.Count)}}
		if lerr == nil {
			a.Detail["offer"] = res.Offer.Provider + " " + res.Offer.ID
			a.Detail["price"] = priceText(res.Offer.Price)
		}
		switch {
		case errors.Is(lerr, errLaunchInFlight):
			// Another coordinator (the previous leader) is applying this very
			// request: wait for its outcome, try again next run, no penalty.
			c.log.Debug().Err(lerr).Str("kind", k.Name).Msg("fleet-size policy: launch in flight elsewhere")
			continue
		case lerr != nil:
			a.Detail["result"] = "refused: " + lerr.Error()
			if !req.DryRun {
				st.Failures++
				backoff := pol.Backoff << min(st.Failures-1, 10)
				st.NextTry, st.LastError = now.Add(min(backoff, fleetMaxBackoff)), lerr.Error()
				_ = writeFleetState(ctx, kv, k.Name, st, rev)
			}
			c.log.Warn().Err(lerr).Str("kind", k.Name).Msg("fleet-size policy: not launched")
		case req.DryRun:
			a.Detail["result"] = "dry-run: " + res.Message
		default:
			a.Detail["result"] = res.Message
			st.Generation++
			st.Failures, st.NextTry, st.LastError = 0, time.Time{}, ""
			st.Pending = append(pending, fleetPending{RequestID: reqID, Node: node, At: now})
			if err := writeFleetState(ctx, kv, k.Name, st, rev); err != nil {
				c.log.Error().Err(err).Str("kind", k.Name).Msg("fleet-size policy: state not saved (the next leader repeats the request: it is answered from its record)")
			}
			c.log.Info().Str("kind", k.Name).Str("node", node).Msg("fleet-size policy: launched")
		}
		c.audit(ctx, "policy", "policy:fleet_size:"+reqID+":"+now.Format("20060102T150405.000"), a)
	}
}

// fleetBooting reports whether a launch of the policy still counts as a
// node on its way: within the boot grace, its agent not heard from since
// the launch or still joining, and neither it nor its instance seen lost
// (preempted, dead, stopped, left, failed, terminated).
func (c *Coordinator) fleetBooting(p fleetPending, now time.Time) bool {
	if now.Sub(p.At) >= fleetBootGrace {
		return false
	}
	if rec, ok := c.reg.Get(p.Node); ok && rec.LastSeen.After(p.At) {
		switch rec.State {
		case mesh.StateUnknown, mesh.StateJoining, mesh.StateHealthy, mesh.StateDegraded, mesh.StateSuspect:
			// still on its way (or healthy: counted there)
		default:
			return false // it came and was lost: preempted, dead, stopped, left, ...
		}
	}
	if rep := c.report.Load(); rep != nil {
		for _, iv := range rep.Instances {
			if iv.Name != p.Node || iv.Stale {
				continue
			}
			switch iv.State {
			case providers.StatePreempted, providers.StateStopped, providers.StateError, providers.StateTerminated:
				return false
			}
		}
	}
	return true
}

// launchAmong launches the cheapest offer among the providers (all when
// empty): the cheapest per GPU-hour wins across them.
func (c *Coordinator) launchAmong(ctx context.Context, req api.LaunchRequest, provs []string) (api.Launch, error) {
	if len(provs) == 0 {
		return c.launch(ctx, req, "policy:fleet_size")
	}
	// A request some coordinator already started (a fail-over in the
	// middle): repeat it as it was, on its provider.
	if kv, err := c.js.KeyValue(ctx, bus.BucketState); err == nil {
		if prev, _, err := c.readLaunch(ctx, kv, req.RequestID); err == nil && prev != nil && !req.DryRun {
			req.Provider = prev.Provider
			return c.launch(ctx, req, "policy:fleet_size")
		}
	}
	// Find the cheapest provider by a dry run of each, then launch there.
	best, bestProv := -1.0, ""
	var errs []string
	for _, p := range provs {
		dry := req
		dry.DryRun, dry.Provider = true, p
		res, err := c.launch(ctx, dry, "policy:fleet_size")
		if err != nil {
			errs = append(errs, p+": "+err.Error())
			continue
		}
		if res.Offer.PerGPUHour != nil && (best < 0 || *res.Offer.PerGPUHour < best) {
			best, bestProv = *res.Offer.PerGPUHour, p
		}
	}
	if bestProv == "" {
		return api.Launch{}, fmt.Errorf("no launchable offer: %s", strings.Join(errs, "; "))
	}
	req.Provider = bestProv
	return c.launch(ctx, req, "policy:fleet_size")
}

// fleetHealthy lists the healthy nodes of kind k: healthy in the registry,
// not quarantined, on one of its providers, linked to an instance with its
// GPU model and count, at or under its max price per GPU-hour (an unknown
// price counts: it is not known to be over).
func (c *Coordinator) fleetHealthy(k config.FleetKind) []string {
	rep := c.report.Load()
	if rep == nil {
		return nil
	}
	var out []string
	for _, iv := range rep.Instances {
		if iv.Node == "" || iv.Stale || iv.State != providers.StateRunning || (len(k.Providers) > 0 && !slices.Contains(k.Providers, iv.Provider)) {
			continue
		}
		if !strings.EqualFold(iv.GPUModel, providers.NormalizeGPU(k.GPU)) || iv.GPUCount != k.GPUCount {
			continue
		}
		if iv.Price.Known() && iv.Price.Currency == "USD" && iv.GPUCount > 0 && iv.Price.PerHour/float64(iv.GPUCount) > k.MaxPrice {
			continue
		}
		rec, ok := c.reg.Get(iv.Node)
		if !ok || rec.Quarantined || rec.State != mesh.StateHealthy || (rec.InstanceID != "" && rec.InstanceID != iv.ID) {
			continue
		}
		out = append(out, iv.Node)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func readFleetState(ctx context.Context, kv jetstream.KeyValue, kind string) (fleetState, uint64, error) {
	e, err := kv.Get(ctx, fleetKey(kind))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return fleetState{}, 0, nil
	}
	if err != nil {
		return fleetState{}, 0, err
	}
	var st fleetState
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		return fleetState{}, 0, fmt.Errorf("fleet state %s: %w", kind, err)
	}
	return st, e.Revision(), nil
}

// writeFleetState stores st if nobody wrote since rev (0 = not there yet).
func writeFleetState(ctx context.Context, kv jetstream.KeyValue, kind string, st fleetState, rev uint64) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if rev == 0 {
		_, err = kv.Create(ctx, fleetKey(kind), b)
	} else {
		_, err = kv.Update(ctx, fleetKey(kind), b, rev)
	}
	return err
}
