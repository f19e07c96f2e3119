package fleet

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ringmesh/ringmesh/pkg/config"
	"github.com/ringmesh/ringmesh/pkg/events"
	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/providers"
	"github.com/ringmesh/ringmesh/pkg/registry"
)

// Operations.
const (
	OpStart     = "start"
	OpStop      = "stop"
	OpTerminate = "terminate"
)

// ActionRequest asks for one mutating provider call on a node.
type ActionRequest struct {
	Node   string `json:"node"`
	Op     string `json:"op"`
	DryRun bool   `json:"dry_run"`
	// Force overrides the safe-to-terminate gate and voter protection; it is audited.
	Force  bool   `json:"force"`
	Reason string `json:"reason"`
	Actor  string `json:"actor"` // who asked, e.g. "meshctl:alice@laptop"
	// RequestID makes the request idempotent across retries and leader
	// fail-overs: a second request with the same ID is not applied again.
	RequestID string `json:"request_id,omitempty"`
}

// ActionResult says what happened.
type ActionResult struct {
	Node       string `json:"node"`
	Provider   string `json:"provider"`
	InstanceID string `json:"instance_id"`
	// InstanceSource says where InstanceID comes from (SourceInventory,
	// SourceAdmission, SourceListing; SourceClaim when refused for it).
	InstanceSource string `json:"instance_source,omitempty"`
	Op             string `json:"op"`
	DryRun         bool   `json:"dry_run"`
	Applied        bool   `json:"applied"`
	// Outcome of an applied call: OutcomeDone, or for a terminate whose
	// answer did not confirm it, what a get by ID said afterwards
	// (OutcomePending, OutcomeUnknown). "" when nothing was applied.
	Outcome string `json:"outcome,omitempty"`
	Message string `json:"message"`
	// Term is the leader term the decision was taken under (0 = single coordinator).
	Term uint64 `json:"term,omitempty"`
}

// Outcomes of an applied provider call (ActionResult.Outcome).
const (
	OutcomeDone    = "done"    // the provider's answer (or a get) confirms it
	OutcomePending = "pending" // accepted; a get still shows the instance, not yet terminating
	OutcomeUnknown = "unknown" // accepted, unconfirmed, and the confirming get failed
)

// ErrRefused wraps every gate refusal.
var ErrRefused = errors.New("refused")

// Auditor records a decision before and after the provider call.
type Auditor func(ctx context.Context, id string, a events.Audit)

// SafeToTerminate is the gate every destructive action passes: the node's
// RPO is known and zero (nothing exists only on it), or the operator forces
// it. An unknown RPO is not zero.
func SafeToTerminate(rec *registry.Record, force bool) (ok bool, why string) {
	if force {
		return true, "forced by operator"
	}
	if rec == nil {
		return false, "node has never reported; its RPO is unknown"
	}
	if rec.RPO.UnsyncedBytes == nil {
		return false, "RPO unknown (no sync report from the node)"
	}
	if *rec.RPO.UnsyncedBytes > 0 {
		n := 0
		if rec.RPO.UnsyncedFiles != nil {
			n = *rec.RPO.UnsyncedFiles
		}
		return false, fmt.Sprintf("%d bytes in %d files exist only on the node", *rec.RPO.UnsyncedBytes, n)
	}
	return true, "RPO is zero"
}

// Act carries out req through the gates: known node with a linked
// instance from a trusted source (trustedInstance: inventory, admission, or
// the node's report confirmed by named, the provider listing's name of an
// instance; nil = none), configured provider, voter protection and the
// safe-to-terminate gate for stop/terminate. The decision is audited before the call (and
// the result after it); a dry run stops after the gates. The caller checks
// leadership. term stamps the audit IDs so a decision is applied once.
//
// canAct (may be nil) is asked once more right before the provider call:
// a coordinator that lost its lease meanwhile must not act.
func Act(ctx context.Context, provs *providers.Registry, inv *config.Inventory, rec *registry.Record, named func(provider, id string) string, req ActionRequest, term uint64, audit Auditor, canAct func() bool) (ActionResult, error) {
	res := ActionResult{Node: req.Node, Op: req.Op, DryRun: req.DryRun, Term: term}
	switch req.Op {
	case OpStart, OpStop, OpTerminate:
	default:
		return res, fmt.Errorf("%w: unknown operation %q (want start, stop or terminate)", ErrRefused, req.Op)
	}
	if err := mesh.ValidateNodeID(req.Node); err != nil {
		return res, fmt.Errorf("%w: %v", ErrRefused, err)
	}
	prov, id, source := trustedInstance(inv, rec, req.Node, named)
	if prov == "" && rec == nil {
		return res, fmt.Errorf("%w: node %q is neither in the inventory nor known to the registry", ErrRefused, req.Node)
	}
	res.Provider, res.InstanceID, res.InstanceSource = prov, id, source
	if !isCloud(prov) {
		return res, fmt.Errorf("%w: node %s has provider %q, which has no API", ErrRefused, req.Node, prov)
	}
	if id == "" {
		return res, fmt.Errorf("%w: node %s has no %s instance ID (inventory %s_id or agent detection)", ErrRefused, req.Node, prov, prov)
	}
	if source == SourceClaim {
		return res, fmt.Errorf("%w: node %s's %s instance ID %s comes only from the node's own report, which %s's listing does not confirm (it does not name that instance %s): set %s_id in the inventory, or name the instance %s at %s",
			ErrRefused, req.Node, prov, id, prov, req.Node, prov, req.Node, prov)
	}
	p, err := provs.Get(prov)
	if err != nil {
		return res, fmt.Errorf("%w: %v", ErrRefused, err)
	}
	if providers.IsRetired(p) {
		why, _ := providers.RetiredReason(p)
		return res, fmt.Errorf("%w: %s is retired (%s): %s refused", providers.ErrRetired, prov, why, req.Op)
	}
	destructive := req.Op != OpStart
	if destructive && inv != nil && inv.IsVoter(req.Node) && !req.Force {
		return res, fmt.Errorf("%w: %s is a voter (p2p_voters); stopping or terminating a voter needs an explicit override (--force)", ErrRefused, req.Node)
	}
	if destructive && req.Force {
		// The explicit override also reaches the provider: Hetzner refuses on
		// its own to stop or terminate a server its labels mark a voter or
		// with delete/rebuild protection, unless the context carries it.
		ctx = providers.WithOverride(ctx, "operator override: "+req.Reason)
	}
	if destructive {
		if ok, why := SafeToTerminate(rec, req.Force); !ok {
			return res, fmt.Errorf("%w: not safe to %s %s: %s (--force to override)", ErrRefused, req.Op, req.Node, why)
		}
	}
	if req.Op == OpStop && !p.Capabilities().CanStop {
		return res, fmt.Errorf("%w: %s cannot stop instances (terminate only)", ErrRefused, prov)
	}
	base := fmt.Sprintf("provider_call:%s:%s:%s:%d", prov, id, req.Op, term)
	detail := map[string]string{"provider": prov, "instance": id, "instance_source": source, "op": req.Op, "force": fmt.Sprint(req.Force)}
	intent := events.Audit{Kind: "provider_call", Node: req.Node, Cause: req.Reason, Actor: req.Actor, DryRun: req.DryRun, Detail: with(detail, "phase", "intent")}
	if audit != nil {
		audit(ctx, base+":intent:"+fmt.Sprint(time.Now().UnixNano()), intent)
	}
	if req.DryRun {
		res.Message = fmt.Sprintf("dry run: would %s %s instance %s of node %s", req.Op, prov, id, req.Node)
		return res, nil
	}
	if canAct != nil && !canAct() {
		return res, fmt.Errorf("%w: this coordinator lost the leader lease before the %s call; not acting", ErrRefused, req.Op)
	}
	switch req.Op {
	case OpStart:
		err = p.Start(ctx, id)
	case OpStop:
		err = p.Stop(ctx, id)
	case OpTerminate:
		err = p.Terminate(ctx, id)
	}
	res.Outcome = OutcomeDone
	var note string
	if req.Op == OpTerminate && errors.Is(err, providers.ErrUnconfirmed) {
		res.Outcome, note = confirmTerminate(ctx, p, id)
		err = nil
	}
	outcome := with(detail, "phase", "result")
	if err != nil {
		outcome["error"] = err.Error()
	} else {
		outcome["outcome"] = res.Outcome
		if note != "" {
			outcome["confirmation"] = note
		}
	}
	if audit != nil {
		audit(ctx, base+":result:"+fmt.Sprint(time.Now().UnixNano()), events.Audit{Kind: "provider_call", Node: req.Node, Cause: req.Reason, Actor: req.Actor, Detail: outcome})
	}
	if err != nil {
		res.Outcome = ""
		return res, err
	}
	res.Applied = true
	switch res.Outcome {
	case OutcomeDone:
		res.Message = fmt.Sprintf("%s %s instance %s of node %s: done", req.Op, prov, id, req.Node)
		if note != "" {
			res.Message += " (" + note + ")"
		}
	default:
		res.Message = fmt.Sprintf("%s %s instance %s of node %s: %s, not confirmed: %s", req.Op, prov, id, req.Node, res.Outcome, note)
	}
	return res, nil
}

// confirmTerminate asks the provider, by a get, what became of an instance
// whose terminate answer did not confirm it: a real not-found, the state
// terminated, or stopping on a cloud that cannot stop (Lambda "terminating")
// is done; any other state is
// pending; a failed get leaves it unknown.
func confirmTerminate(ctx context.Context, p providers.Provider, id string) (outcome, note string) {
	inst, err := p.Get(ctx, id)
	switch {
	case errors.Is(err, providers.ErrNotFound):
		return OutcomeDone, "confirmed by get: the instance no longer exists"
	case err != nil:
		return OutcomeUnknown, "the provider's answer did not list the instance as terminated and the confirming get failed: " + err.Error()
	case inst.State == providers.StateTerminated,
		// On a cloud that cannot stop (Lambda), stopping can only mean terminating.
		inst.State == providers.StateStopping && !p.Capabilities().CanStop:
		return OutcomeDone, fmt.Sprintf("confirmed by get: instance is %s (%s)", inst.State, inst.RawState)
	}
	return OutcomePending, fmt.Sprintf("the provider's answer did not list the instance as terminated and a get still shows it %s (%s)", inst.State, inst.RawState)
}

func with(m map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(m)+1)
	for a, b := range m {
		out[a] = b
	}
	out[k] = v
	return out
}
