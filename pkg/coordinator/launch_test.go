package coordinator_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/internal/testutil"
	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/auth"
	"github.com/ringmesh/ringmesh/pkg/bootstrap"
	"github.com/ringmesh/ringmesh/pkg/config"
	"github.com/ringmesh/ringmesh/pkg/coordinator"
	"github.com/ringmesh/ringmesh/pkg/cost"
	"github.com/ringmesh/ringmesh/pkg/fleet"
	"github.com/ringmesh/ringmesh/pkg/meshctl"
	"github.com/ringmesh/ringmesh/pkg/providers"
	"github.com/ringmesh/ringmesh/pkg/providers/demo"
	"github.com/ringmesh/ringmesh/pkg/providers/vast/vastfake"
)

// startLaunchFleet is startFleet with a startup script configured and the
// inventory's budget replaced by budget.
func startLaunchFleet(t *testing.T, budget config.Budget) (*harness, *demo.Fakes) {
	return startLaunchFleetWith(t, func(inv *config.Inventory) { inv.Budget = budget }, nil)
}

// startLaunchFleetWith lets the test change the inventory and the coordinator's config.
func startLaunchFleetWith(t *testing.T, invMod func(*config.Inventory), cfgMod func(*coordinator.Config)) (*harness, *demo.Fakes) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	fakes, err := demo.StartFakes(ctx, demo.Options{Delay: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fakes.Close)
	inv, err := config.Parse("demo.yaml", []byte(demo.DemoInventory))
	if err != nil {
		t.Fatal(err)
	}
	invMod(inv)
	cfg := launchConfig(t, fakes, inv)
	if cfgMod != nil {
		cfgMod(&cfg)
	}
	h := startCoordinator(t, cfg)
	return h, fakes
}

// launchConfig is a coordinator config over the fakes: every cloud behind
// the resilient layer, a reconciler, a cost tracker and a startup script.
func launchConfig(t *testing.T, fakes *demo.Fakes, inv *config.Inventory) coordinator.Config {
	t.Helper()
	list, err := fakes.Providers(testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	reg := providers.NewRegistry()
	pol := providers.DefaultPolicy()
	pol.BaseDelay = 10 * time.Millisecond
	for _, p := range list {
		reg.Register(fleet.Wrap(p, inv, testLog(t), fleet.BuildOptions{Policy: &pol}))
	}
	tracker := cost.New(cost.Options{})
	rec := fleet.NewReconciler(reg, inv, tracker, testLog(t), nil)
	return coordinator.Config{Inventory: inv, Fleet: rec, ReconcileInterval: 300 * time.Millisecond, Cost: tracker,
		Startup: coordinator.AgentScript{NATSURL: "tls://127.0.0.1:4222", CAPEM: []byte("-----BEGIN CERTIFICATE-----\nfake\n-----END CERTIFICATE-----\n")}}
}

func launchStatus(t *testing.T, h *harness, id string) (api.LaunchStatus, error) {
	t.Helper()
	nc, err := natsConnect(t, h.url)
	if err != nil {
		return api.LaunchStatus{}, err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var st api.LaunchStatus
	err = testutil.Lookup(h.url).Client(t, nc).Call(ctx, api.OpLaunchStatus, api.LaunchStatusRequest{RequestID: id}, &st)
	return st, err
}

// TestMeshctlLaunchEndToEnd: a dry run shows the offer and its price per
// hour and per day and creates nothing; --yes creates one Vast instance
// carrying the request ID, the node name, the startup script and a
// one-time enrollment token (in the container env, never in the script);
// an agent on that instance redeems the token for its own key with the
// instance ID the cloud gave and makes the launch healthy; the token does
// not work twice; the same request again creates nothing.
func TestMeshctlLaunchEndToEnd(t *testing.T) {
	h, fakes := startLaunchFleet(t, config.Budget{Daily: map[string]float64{"USD": 100000}})
	before := fakes.Vast.Len()

	out, err := run(t, h.url, "", "launch", "--gpu", "RTX 4090", "--count", "1", "--max-price", "0.40", "--provider", "vast", "--kind", "on-demand")
	if err != nil {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	for _, want := range []string{"would rent:", "vast offer 7001", "1x RTX 4090", "0.3500 USD/h", "8.40 USD/day", "budget:", "all USD", "cap 100000.00  ok",
		"script:", "enroll-token", "dry run: nothing created"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run lacks %q:\n%s", want, out)
		}
	}
	if fakes.Vast.Creates() != 0 || fakes.Vast.Len() != before {
		t.Fatalf("a dry run created an instance (creates %d)", fakes.Vast.Creates())
	}

	out, err = run(t, h.url, "", "launch", "--offer", "7001", "--provider", "vast", "--kind", "on-demand", "--name", "vast-launched-1",
		"--request-id", "e2e-launch-1", "--yes", "--wait", "0", "--json")
	if err != nil {
		t.Fatalf("launch --yes: %v\n%s", err, out)
	}
	var res meshctl.LaunchResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if res.Launch.Instance == nil || res.Launch.Stage != "created" || fakes.Vast.Creates() != 1 {
		t.Fatalf("launch = %+v, creates %d", res.Launch, fakes.Vast.Creates())
	}
	id := res.Launch.Instance.ID
	var vid int64
	for _, r := range id {
		vid = vid*10 + int64(r-'0')
	}
	inst, ok := fakes.Vast.Instance(vid)
	if !ok || inst.Label == nil || *inst.Label != "vast-launched-1" || !strings.Contains(inst.Onstart, "--node 'vast-launched-1' --provider 'vast'") {
		t.Fatalf("fake instance %d: %+v", vid, inst)
	}
	envOK, token, bootB64 := false, "", ""
	for _, kv := range inst.ExtraEnv {
		envOK = envOK || (kv[0] == providers.EnvRequestID && kv[1] == "e2e-launch-1")
		switch kv[0] {
		case coordinator.EnvEnrollToken:
			token = kv[1]
		case coordinator.EnvBootstrapCreds:
			bootB64 = kv[1]
		}
	}
	if !envOK {
		t.Errorf("instance env lacks the request ID")
	}
	if !bootstrap.ValidToken(token) {
		t.Fatalf("instance env has no enrollment token (%q)", token)
	}
	if strings.Contains(inst.Onstart, token) || !strings.Contains(inst.Onstart, "--enroll-token-file /etc/ringmesh/enroll.token") {
		t.Fatalf("startup script carries the token or does not use it:\n%s", inst.Onstart)
	}

	// Before the agent reports: booting or agent not seen, never healthy.
	st, err := launchStatus(t, h, "e2e-launch-1")
	if err != nil || st.InstanceID != id || st.Stage == api.LaunchStageHealthy {
		t.Fatalf("status before the agent: %+v, %v", st, err)
	}

	// The node redeems the token with the bootstrap credential from its
	// env, as the script's agent --enroll-token-file does: the coordinator
	// bound the token to the instance the create answered.
	boot, err := base64.StdEncoding.DecodeString(bootB64)
	if err != nil || !strings.Contains(string(boot), "NATS USER JWT") {
		t.Fatalf("instance env has no bootstrap credential (%v)", err)
	}
	bootFile := filepath.Join(t.TempDir(), "bootstrap.creds")
	if err := os.WriteFile(bootFile, boot, 0o600); err != nil {
		t.Fatal(err)
	}
	sb := testutil.Lookup(h.url)
	enroll := func(instance string) (string, string, error) {
		out := filepath.Join(t.TempDir(), "node.creds")
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		node, err := bootstrap.Enroll(ctx, bootstrap.Config{URLs: []string{h.url}, BootstrapCreds: bootFile,
			CAFile: sb.CAFile(), Token: token, InstanceID: instance, Provider: "vast", CredsOut: out, RetryWait: 100 * time.Millisecond}, zerolog.Nop())
		return node, out, err
	}
	if _, _, err := enroll("999999"); !errors.Is(err, bootstrap.ErrRefused) || !strings.Contains(err.Error(), "instance ID does not match") {
		t.Fatalf("token redeemed from another instance: %v", err)
	}
	node, creds, err := enroll(id)
	if err != nil || node != "vast-launched-1" {
		t.Fatalf("enroll with the launch token: node %q, %v", node, err)
	}
	if _, _, err := enroll(id); !errors.Is(err, bootstrap.ErrRefused) || !strings.Contains(err.Error(), "already used") {
		t.Fatalf("second use of the launch token (another key): %v", err)
	}

	// The node's agent says hello under its own identity from that instance.
	startAgent(t, []string{h.url}, fakeNode{id: "vast-launched-1", provider: "vast", instance: id, root: t.TempDir(), creds: creds}, "")
	testutil.Eventually(t, 30*time.Second, func() error {
		st, err := launchStatus(t, h, "e2e-launch-1")
		if err != nil {
			return err
		}
		if st.Stage != api.LaunchStageHealthy {
			return &stageErr{st}
		}
		return nil
	})

	// The same request again: answered from the record, nothing created, and the wait ends healthy.
	out, err = run(t, h.url, "", "launch", "--offer", "7001", "--provider", "vast", "--kind", "on-demand", "--name", "vast-launched-1",
		"--request-id", "e2e-launch-1", "--yes", "--wait", "30s", "--poll", "100ms")
	if err != nil {
		t.Fatalf("repeated launch: %v\n%s", err, out)
	}
	if !strings.Contains(out, "already created") || !strings.Contains(out, "healthy") || fakes.Vast.Creates() != 1 {
		t.Fatalf("repeated launch (creates %d):\n%s", fakes.Vast.Creates(), out)
	}

	// The create is in the audit stream with its request ID.
	testutil.Eventually(t, 10*time.Second, func() error {
		out, err := run(t, h.url, "", "audit", "--kind", "provider_call", "--json")
		if err != nil {
			return err
		}
		if !strings.Contains(out, `"request_id": "e2e-launch-1"`) || !strings.Contains(out, `"op": "launch"`) {
			return &auditErr{out}
		}
		return nil
	})
}

// TestMeshctlLaunchRetryAfterTimeoutCreatesOne: the create's answer is
// held until meshctl has given up; the operator retries with the printed
// request ID (while the first call is still in flight it is refused, not
// applied twice) and gets the one instance.
func TestMeshctlLaunchRetryAfterTimeoutCreatesOne(t *testing.T) {
	h, fakes := startLaunchFleet(t, config.Budget{})
	fakes.Vast.Inject(vastfake.Fault{Kind: vastfake.Timeout, Method: "PUT", Path: "/api/v0/asks/", AfterApply: true, Delay: 3 * time.Second})
	args := []string{"launch", "--offer", "7001", "--provider", "vast", "--kind", "on-demand", "--name", "vast-retried-1",
		"--request-id", "retry-1", "--yes", "--wait", "0"}
	out, err := run(t, h.url, "", append(args, "--timeout", "1s")...)
	if err == nil || !strings.Contains(out+err.Error(), "--request-id retry-1") {
		t.Fatalf("first launch should time out and print how to retry: %v\n%s", err, out)
	}
	testutil.Eventually(t, 30*time.Second, func() error {
		out, err := run(t, h.url, "", args...)
		if err != nil {
			return err // "being applied" while the first call is in flight
		}
		if !strings.Contains(out, "created vast instance") {
			return &auditErr{out}
		}
		return nil
	})
	if n := fakes.Vast.Creates(); n != 1 {
		t.Fatalf("creates = %d after a retried launch, want 1", n)
	}
	labelled := 0
	for _, in := range fakesVastInstances(fakes) {
		if in.Label != nil && *in.Label == "vast-retried-1" {
			labelled++
		}
	}
	if labelled != 1 {
		t.Fatalf("%d instances named vast-retried-1, want 1", labelled)
	}
}

// TestLaunchTokenBoundAfterUnknownOutcome: the instance boots and presents
// its token while the create call's answer is lost. The node is told to ask
// again (not refused, token not used up); the operator's retry finds the
// instance and binds the token that instance really carries, and the node
// enrolls.
func TestLaunchTokenBoundAfterUnknownOutcome(t *testing.T) {
	h, fakes := startLaunchFleet(t, config.Budget{})
	fakes.Vast.Inject(vastfake.Fault{Kind: vastfake.Timeout, Method: "PUT", Path: "/api/v0/asks/", AfterApply: true, Delay: 20 * time.Second})
	args := []string{"launch", "--offer", "7001", "--provider", "vast", "--kind", "on-demand", "--name", "vast-tok-1",
		"--request-id", "tok-1", "--yes", "--wait", "0"}
	if out, err := run(t, h.url, "", append(args, "--timeout", "1s")...); err == nil {
		t.Fatalf("first launch should time out:\n%s", out)
	}
	var inst vastfake.Instance
	testutil.Eventually(t, 10*time.Second, func() error {
		for _, in := range fakesVastInstances(fakes) {
			if in.Label != nil && *in.Label == "vast-tok-1" {
				inst = in
				return nil
			}
		}
		return errors.New("no instance vast-tok-1 at the fake yet")
	})
	token, id := "", fmt.Sprint(inst.ID)
	for _, kv := range inst.ExtraEnv {
		if kv[0] == coordinator.EnvEnrollToken {
			token = kv[1]
		}
	}
	sb := testutil.Lookup(h.url)
	enroll := func(timeout time.Duration) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		return bootstrap.Enroll(ctx, bootstrap.Config{URLs: []string{h.url}, BootstrapCreds: sb.Creds(t, auth.RoleBootstrap, auth.BootstrapName),
			CAFile: sb.CAFile(), Token: token, InstanceID: id, Provider: "vast", CredsOut: filepath.Join(t.TempDir(), "node.creds"),
			RetryWait: 100 * time.Millisecond}, zerolog.Nop())
	}
	// Unbound (the create's answer is held 20 s): ask again, never refused.
	if _, err := enroll(2 * time.Second); err == nil || errors.Is(err, bootstrap.ErrRefused) {
		t.Fatalf("an unbound launch token: %v, want the node to keep asking", err)
	}
	testutil.Eventually(t, 90*time.Second, func() error {
		out, err := run(t, h.url, "", args...)
		if err != nil {
			return err
		}
		if !strings.Contains(out, "created vast instance "+id) {
			return &auditErr{out}
		}
		return nil
	})
	node, err := enroll(30 * time.Second)
	if err != nil || node != "vast-tok-1" {
		t.Fatalf("enroll after the retry bound the token: %q, %v", node, err)
	}
	if n := fakes.Vast.Creates(); n != 1 {
		t.Fatalf("creates = %d", n)
	}
}

// TestMeshctlLaunchRefusedOverBudget: a cap the new hourly price would push
// past by the end of the UTC day refuses the launch, with the figures, and
// nothing is created.
func TestMeshctlLaunchRefusedOverBudget(t *testing.T) {
	h, fakes := startLaunchFleet(t, config.Budget{Providers: map[string]map[string]float64{"vast": {"USD": 0.0001}}})
	out, err := run(t, h.url, "", "launch", "--offer", "7001", "--provider", "vast", "--kind", "on-demand", "--request-id", "over-1", "--yes", "--wait", "0")
	if err == nil {
		t.Fatalf("launch over the vast cap was not refused:\n%s", out)
	}
	msg := err.Error()
	for _, want := range []string{"launch refused (vast offer 7001, 0.3500 USD/h (vast:dph_total), node vast-rtx4090-1): over budget", "vast USD: spent", "this 0.3500/h", "h left", "projected > cap 0.00"} {
		if !strings.Contains(msg, want) {
			t.Errorf("refusal lacks %q: %s", want, msg)
		}
	}
	if fakes.Vast.Creates() != 0 {
		t.Fatalf("creates = %d after a refused launch", fakes.Vast.Creates())
	}
	// A dry run shows the same check as OVER.
	out, err = run(t, h.url, "", "launch", "--offer", "7001", "--provider", "vast", "--kind", "on-demand")
	if err == nil || !strings.Contains(err.Error(), "over budget") {
		t.Fatalf("dry run over budget: %v\n%s", err, out)
	}
}

func fakesVastInstances(f *demo.Fakes) []vastfake.Instance { return f.Vast.All() }

type stageErr struct{ st api.LaunchStatus }

func (e *stageErr) Error() string {
	b, _ := json.Marshal(e.st)
	return "launch not healthy yet: " + string(b)
}

type auditErr struct{ out string }

func (e *auditErr) Error() string { return "not there yet:\n" + e.out }
