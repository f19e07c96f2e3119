package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/config"
	"github.com/ringmesh/ringmesh/pkg/events"
	"github.com/ringmesh/ringmesh/pkg/providers/demo"
	"github.com/ringmesh/ringmesh/pkg/providers/vast/vastfake"
)

func fleetLeaderKill() Scenario {
	return Scenario{
		Name: "fleet-leader-kill",
		Doc: "3 coordinator processes with the fleet-size policy enforcing one spot RTX 4090 on Vast; the leader is SIGKILLed while its create call is at the cloud (applied, answer held): " +
			"a new leader adopts that instance by request ID, and the cloud sees one create, never two",
		Heavy: "it builds cmd/coordinator and runs three coordinator processes",
		Run:   runFleetLeaderKill,
	}
}

const (
	fleetKind      = "r4090"
	fleetRequest   = "policy-fleet-r4090-0" // the policy's first launch: policy-fleet-<kind>-<generation>
	fleetNode      = "r4090-0"
	fleetClaimWait = 35 * time.Second // --launch-claim-stale: above one create attempt (30 s)
)

// fleetPolicyYAML is the policy section the scenario's inventory adds.
const fleetPolicyYAML = `
policies:
  fleet_size:
    mode: enforce
    backoff: 1m
    kinds:
      - name: r4090
        count: 1
        gpu: RTX 4090
        gpu_count: 1
        providers: [vast]
        max_price: 0.40
        kind: spot
`

func runFleetLeaderKill(ctx context.Context, env Env) (res Result, err error) {
	var ck checks
	bin, invPath, fakes, err := processRig(ctx, env, &res, writeFleetInventory)
	if err != nil {
		return res, err
	}
	defer fakes.Close()
	// The first create is applied at the cloud and its answer held until
	// the caller goes away: the leader dies with its call in the air.
	fakes.Vast.Inject(vastfake.Fault{Kind: vastfake.Timeout, Method: "PUT", Path: "/api/v0/asks/", AfterApply: true, Delay: 5 * time.Minute})

	t0 := time.Now()
	vs, restarts, err := startVoters(ctx, env, bin, invPath, fakes, voterOptions{Reconcile: 2 * time.Second, Extra: func(_ int, port int) []string {
		return []string{"--policy-interval", "1s", "--launch-claim-stale", fleetClaimWait.String(), "--launch-nats-url", "tls://127.0.0.1:" + strconv.Itoa(port)}
	}})
	if err != nil {
		return res, err
	}
	defer func() {
		vs.stop()
		if err != nil {
			vs.logTails(env, "fleet-leader-kill")
		}
	}()
	res.Add("start", time.Since(t0))
	res.Add("start_restarts", restarts)

	// The policy finds no healthy RTX 4090 node and launches one.
	if err := poll(ctx, 2*time.Minute, 100*time.Millisecond, func() error {
		if n := fakes.Vast.Creates(); n != 1 {
			return fmt.Errorf("%d Vast creates, want the policy's first", n)
		}
		return nil
	}); err != nil {
		return res, fmt.Errorf("the fleet-size policy did not launch: %w", err)
	}

	// Kill the coordinator that claimed the request (read from its KV
	// record, as a coordinator: operators have no KV access).
	cnc, js, err := vs.checker(env)
	if err != nil {
		return res, err
	}
	defer cnc.Close()
	var claim launchView
	if err := poll(ctx, 30*time.Second, 100*time.Millisecond, func() error {
		var err error
		claim, err = readLaunchView(ctx, js, fleetRequest)
		if err == nil && claim.State != "claimed" {
			err = fmt.Errorf("launch %s is %q, want claimed (its create call is held)", fleetRequest, claim.State)
		}
		return err
	}); err != nil {
		return res, err
	}
	victim, ok := vs.byName[claim.By]
	if !ok {
		return res, fmt.Errorf("launch %s claimed by %q, not a voter", fleetRequest, claim.By)
	}
	killed := time.Now()
	victim.kill()
	env.Logf("fleet-leader-kill: %s claimed %s and its create reached Vast; SIGKILLed it", claim.By, fleetRequest)

	// A new leader takes over and, once the claim is stale, adopts the
	// instance it finds at Vast under the request ID.
	nc, cli, err := vs.admin(env, "chaos-admin")
	if err != nil {
		return res, err
	}
	defer nc.Close()
	var st api.LaunchStatus
	if err := poll(ctx, fleetClaimWait+failoverBound+time.Minute, 250*time.Millisecond, func() error {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := cli.Call(cctx, api.OpLaunchStatus, api.LaunchStatusRequest{RequestID: fleetRequest}, &st); err != nil {
			return err
		}
		if st.InstanceID == "" {
			return fmt.Errorf("launch %s: stage %s, %s", fleetRequest, st.Stage, st.Detail)
		}
		return nil
	}); err != nil {
		return res, fmt.Errorf("no coordinator recorded the launch's instance after the kill: %w", err)
	}
	res.Add("adopted_after_kill", time.Since(killed))
	newLeader, err := vs.leader(ctx)
	if err != nil {
		ck.add(err)
	}
	res.Add("new_leader", newLeader)

	// More policy runs (1 s) and reconciles (2 s) under the new leader: the
	// booting instance counts, nothing is launched again.
	if err := sleep(ctx, 8*time.Second); err != nil {
		return res, err
	}
	res.Add("creates", fakes.Vast.Creates())
	if n := fakes.Vast.Creates(); n != 1 {
		ck.failf("%d Vast creates across the fail-over, want 1", n)
	}
	labelled := map[string][]int64{}
	for _, in := range fakes.Vast.All() {
		if in.Label != nil && strings.HasPrefix(*in.Label, fleetKind+"-") {
			labelled[*in.Label] = append(labelled[*in.Label], in.ID)
		}
	}
	if ids := labelled[fleetNode]; len(ids) != 1 || strconv.FormatInt(ids[0], 10) != st.InstanceID {
		ck.failf("Vast instances labelled %s: %v, want exactly the recorded %s", fleetNode, ids, st.InstanceID)
	}
	if len(labelled) != 1 {
		ck.failf("instances of kind %s: %v, want only %s", fleetKind, labelled, fleetNode)
	}
	// POST /api/v0/bundles/ is Vast's offer search, not a mutation.
	for _, c := range fakes.Vast.MutatingCalls() {
		if !strings.HasPrefix(c.Path, "/api/v0/asks/") && c.Path != "/api/v0/bundles/" {
			ck.failf("unexpected mutating Vast call %s %s", c.Method, c.Path)
		}
	}
	done, err := readLaunchView(ctx, js, fleetRequest)
	switch {
	case err != nil:
		ck.add(err)
	case done.State != "done" || done.By == claim.By:
		ck.failf("launch record %s: state %q by %s, want done by a surviving voter", fleetRequest, done.State, done.By)
	}

	// The adoption is audited once, naming the dead claimant.
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	audits, err := readStream(rctx, js, bus.StreamAudit, bus.Prefix+".audit.provider_call")
	cancel()
	if err != nil {
		ck.add(fmt.Errorf("read %s: %w", bus.StreamAudit, err))
	}
	found := 0
	for _, m := range audits {
		var e bus.Envelope
		var a events.Audit
		if json.Unmarshal(m.Data, &e) != nil || json.Unmarshal(e.Body, &a) != nil {
			ck.failf("unreadable audit record %d", m.Seq)
			continue
		}
		if a.Detail["request_id"] == fleetRequest && strings.HasPrefix(a.Detail["result"], "found: ") {
			found++
			if !strings.Contains(a.Detail["result"], claim.By) {
				ck.failf("adoption audit %q does not name the claimant %s", a.Detail["result"], claim.By)
			}
		}
	}
	res.Add("adoption_audits", found)
	if found != 1 {
		ck.failf("%d audits of the adoption of %s, want 1", found, fleetRequest)
	}
	return res, ck.err()
}

// launchView is the part of a coordinator's launch record (KV mesh_state,
// launch_<request ID>) the scenario checks.
type launchView struct {
	State string `json:"state"`
	By    string `json:"by"`
}

func readLaunchView(ctx context.Context, js jetstream.JetStream, id string) (launchView, error) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	kv, err := js.KeyValue(cctx, bus.BucketState)
	if err != nil {
		return launchView{}, err
	}
	e, err := kv.Get(cctx, "launch_"+id)
	if err != nil {
		return launchView{}, fmt.Errorf("launch record %s: %w", id, err)
	}
	var v launchView
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		return launchView{}, fmt.Errorf("launch record %s: %w", id, err)
	}
	return v, nil
}

// writeFleetInventory is writeFakeInventory (which has no budget: a cap
// would refuse the launch the scenario is about) with the fleet-size
// policy on.
func writeFleetInventory(path string, fakes *demo.Fakes) error {
	if err := writeFakeInventory(path, fakes); err != nil {
		return err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	text := string(b)
	j := strings.Index(text, "\nhosts:\n")
	if j < 0 || strings.Contains(text, "\nbudget:\n") {
		return errors.New("chaos inventory: want a hosts section and no budget section")
	}
	text = text[:j] + fleetPolicyYAML + text[j:]
	parsed, err := config.Parse(path, []byte(text))
	if err != nil {
		return fmt.Errorf("chaos fleet inventory: %w", err)
	}
	if len(parsed.Policies.FleetSize.Kinds) != 1 || parsed.Policies.FleetSize.Mode != config.PolicyEnforce {
		return errors.New("chaos fleet inventory: fleet_size policy not parsed as enforce with one kind")
	}
	return os.WriteFile(path, []byte(text), 0o600)
}
