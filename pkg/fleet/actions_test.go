package fleet

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/time/rate"

	"github.com/ringmesh/ringmesh/pkg/config"
	"github.com/ringmesh/ringmesh/pkg/providers"
	"github.com/ringmesh/ringmesh/pkg/providers/hetzner"
	"github.com/ringmesh/ringmesh/pkg/providers/hetzner/hetznerfake"
	"github.com/ringmesh/ringmesh/pkg/providers/lambda"
	"github.com/ringmesh/ringmesh/pkg/providers/lambda/lambdafake"
	"github.com/ringmesh/ringmesh/pkg/registry"
)

// A Lambda terminate answered 200 {"data":{"terminated_instances":[]}} is
// confirmed by a get before it is reported done: still active → pending;
// terminating → done; the get failing → unknown.
func TestTerminateWithEmptyAnswerIsConfirmedByGet(t *testing.T) {
	cases := []struct {
		name       string
		afterApply bool // the fake carried the terminate out before answering []
		getFails   bool
		want       string
	}{
		{"not applied", false, false, OutcomePending},
		{"applied", true, false, OutcomeDone},
		{"get fails", true, true, OutcomeUnknown},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fake := lambdafake.New(lambdafake.Options{})
			t.Cleanup(fake.Close)
			id := fake.Add(lambdafake.SeedInstance("", "lambda-1", "198.51.100.2"))
			c, err := lambda.New(lambda.Options{BaseURL: fake.URL(), APIKey: fake.APIKey(), Log: zerolog.Nop(), Limiter: rate.NewLimiter(rate.Inf, 1)})
			if err != nil {
				t.Fatal(err)
			}
			inv, err := config.Parse("t.yaml", []byte("hosts:\n  lambda-1: {provider: lambda, ssh_host: 198.51.100.2, lambda_id: \""+id+"\"}\n"))
			if err != nil {
				t.Fatal(err)
			}
			// Through the resilience layer, as BuildProviders wires it: an
			// unconfirmed terminate is neither retried nor a breaker failure.
			pol := providers.DefaultPolicy()
			pol.BaseDelay = time.Millisecond
			reg := providers.NewRegistry()
			reg.Register(Wrap(c, inv, zerolog.Nop(), BuildOptions{Policy: &pol}))
			fake.Inject(lambdafake.Fault{Kind: lambdafake.Malformed, Method: "POST", Path: "/instance-operations/terminate",
				AfterApply: tc.afterApply, Body: `{"data":{"terminated_instances":[]}}`})
			if tc.getFails {
				fake.Inject(lambdafake.Fault{Kind: lambdafake.ServerError, Count: -1, Method: "GET", Path: "/instances/" + id, Status: 503})
			}
			rec := &registry.Record{Node: "lambda-1", RPO: eventsRPO(0, 0)}
			res, err := Act(context.Background(), reg, inv, rec, nil, ActionRequest{Node: "lambda-1", Op: OpTerminate, Reason: "test"}, 0, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !res.Applied || res.Outcome != tc.want {
				t.Fatalf("outcome %q (applied %v), want %q: %s", res.Outcome, res.Applied, tc.want, res.Message)
			}
			if tc.want != OutcomeDone && strings.Contains(res.Message, ": done") {
				t.Errorf("message says done: %s", res.Message)
			}
			if n := fake.CountCalls("POST", "/instance-operations/terminate"); n != 1 {
				t.Errorf("%d terminate calls, want 1 (an unconfirmed terminate is not retried)", n)
			}
			if n := fake.CountCalls("GET", "/instances/"+id); n != 1 && !tc.getFails {
				t.Errorf("%d confirming gets, want 1", n)
			}
		})
	}
}

// A terminate whose answer lists the instance as terminating needs no get.
func TestTerminateListedIsDoneWithoutGet(t *testing.T) {
	fake := lambdafake.New(lambdafake.Options{})
	t.Cleanup(fake.Close)
	id := fake.Add(lambdafake.SeedInstance("", "lambda-1", "198.51.100.2"))
	c, err := lambda.New(lambda.Options{BaseURL: fake.URL(), APIKey: fake.APIKey(), Log: zerolog.Nop(), Limiter: rate.NewLimiter(rate.Inf, 1)})
	if err != nil {
		t.Fatal(err)
	}
	reg := providers.NewRegistry()
	reg.Register(c)
	inv, err := config.Parse("t.yaml", []byte("hosts:\n  lambda-1: {provider: lambda, ssh_host: 198.51.100.2, lambda_id: \""+id+"\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	rec := &registry.Record{Node: "lambda-1", RPO: eventsRPO(0, 0)}
	res, err := Act(context.Background(), reg, inv, rec, nil, ActionRequest{Node: "lambda-1", Op: OpTerminate}, 0, nil, nil)
	if err != nil || res.Outcome != OutcomeDone || !strings.Contains(res.Message, "done") {
		t.Fatalf("%+v %v", res, err)
	}
	if n := fake.CountCalls("GET", "/instances/"); n != 0 {
		t.Errorf("%d gets after a confirmed terminate", n)
	}
}

// A Hetzner server labelled ringmesh.io/role=voter but not in p2p_voters:
// a stop without --force is refused by the provider before any mutating
// call; with --force the override reaches it and the stop is done.
func TestActLabelledHetznerVoterNeedsForce(t *testing.T) {
	fake := hetznerfake.New(hetznerfake.Options{Token: "tok"})
	t.Cleanup(fake.Close)
	n := fake.Seed(hetznerfake.SeedServer{Name: "cpu-x", Labels: map[string]string{hetzner.VoterLabel: hetzner.VoterLabelValue}})[0]
	p, err := hetzner.New(hetzner.Options{Token: "tok", Endpoint: fake.URL(), PollInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	reg := providers.NewRegistry()
	reg.Register(p)
	inv, err := config.Parse("t.yaml", []byte(fmt.Sprintf("hosts:\n  cpu-x: {provider: hetzner, ssh_host: 203.0.113.7, hetzner_id: \"%d\"}\n", n)))
	if err != nil {
		t.Fatal(err)
	}
	rec := &registry.Record{Node: "cpu-x", RPO: eventsRPO(0, 0)}
	_, err = Act(context.Background(), reg, inv, rec, nil, ActionRequest{Node: "cpu-x", Op: OpStop}, 0, nil, nil)
	if !errors.Is(err, hetzner.ErrProtected) {
		t.Fatalf("stop of a labelled voter without --force: %v", err)
	}
	if c := fake.CountCalls("POST", ""); c != 0 {
		t.Fatalf("%d mutating calls without the override", c)
	}
	res, err := Act(context.Background(), reg, inv, rec, nil, ActionRequest{Node: "cpu-x", Op: OpStop, Force: true, Reason: "replace"}, 0, nil, nil)
	if err != nil || res.Outcome != OutcomeDone {
		t.Fatalf("forced stop: %+v %v", res, err)
	}
}

// A node's own report of its instance ID is never enough to act on: a
// compromised node naming another box of the same account gets the act
// refused (no provider call); the instance it was admitted with wins over
// what it reports; a report the provider's listing confirms (the instance
// carries the node's name) is acted on.
func TestActOnlyOnTrustedInstanceIDs(t *testing.T) {
	fake := lambdafake.New(lambdafake.Options{})
	t.Cleanup(fake.Close)
	victim := fake.Add(lambdafake.SeedInstance("", "someone-else", "198.51.100.9"))
	own := fake.Add(lambdafake.SeedInstance("", "lambda-x", "198.51.100.10"))
	c, err := lambda.New(lambda.Options{BaseURL: fake.URL(), APIKey: fake.APIKey(), Log: zerolog.Nop(), Limiter: rate.NewLimiter(rate.Inf, 1)})
	if err != nil {
		t.Fatal(err)
	}
	reg := providers.NewRegistry()
	reg.Register(c)
	inv, err := config.Parse("t.yaml", []byte("hosts:\n  lambda-cfg: {provider: lambda, ssh_host: 198.51.100.11}\n"))
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]string{victim: "someone-else", own: "lambda-x"}
	named := func(prov, id string) string {
		if prov != "lambda" {
			return ""
		}
		return names[id]
	}
	terminate := func(rec registry.Record, named func(string, string) string) (ActionResult, error) {
		return Act(context.Background(), reg, inv, &rec, named, ActionRequest{Node: rec.Node, Op: OpTerminate, Force: true, Reason: "test"}, 0, nil, nil)
	}

	// Enrolled (no instance in the admission), claims the victim's ID.
	for _, rec := range []registry.Record{
		{Node: "lambda-x", Provider: "lambda", InstanceID: victim, Admitted: "enrolled"},
		{Node: "lambda-cfg", Provider: "lambda", InstanceID: victim, Configured: true},
	} {
		for _, nm := range []func(string, string) string{nil, named} {
			_, err := terminate(rec, nm)
			if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "own report") {
				t.Errorf("%s claiming %s (listing %v): %v, want refused for an unconfirmed report", rec.Node, victim, nm != nil, err)
			}
		}
	}
	if n := fake.CountCalls("POST", "/instance-operations/terminate"); n != 0 {
		t.Fatalf("%d terminate calls on a claimed instance ID", n)
	}

	// Admitted with its own instance, claims the victim's: its own is used.
	res, err := Act(context.Background(), reg, inv, &registry.Record{Node: "lambda-x", Provider: "lambda", InstanceID: victim, Admitted: "launch:lambda/" + own}, nil,
		ActionRequest{Node: "lambda-x", Op: OpTerminate, Force: true, DryRun: true}, 0, nil, nil)
	if err != nil || res.InstanceID != own || res.InstanceSource != SourceAdmission {
		t.Fatalf("admitted node: %+v %v, want its admitted instance %s", res, err, own)
	}
	// Its report, confirmed by the listing's name, is acted on.
	res, err = terminate(registry.Record{Node: "lambda-x", Provider: "lambda", InstanceID: own, Admitted: "enrolled"}, named)
	if err != nil || !res.Applied || res.InstanceID != own || res.InstanceSource != SourceListing {
		t.Fatalf("confirmed report: %+v %v", res, err)
	}
	if n := fake.CountCalls("POST", "/instance-operations/terminate"); n != 1 {
		t.Fatalf("%d terminate calls, want the one on the node's own instance", n)
	}
}
