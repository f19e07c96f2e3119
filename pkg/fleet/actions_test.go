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
			res, err := Act(context.Background(), reg, inv, rec, ActionRequest{Node: "lambda-1", Op: OpTerminate, Reason: "test"}, 0, nil, nil)
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
	res, err := Act(context.Background(), reg, inv, rec, ActionRequest{Node: "lambda-1", Op: OpTerminate}, 0, nil, nil)
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
	_, err = Act(context.Background(), reg, inv, rec, ActionRequest{Node: "cpu-x", Op: OpStop}, 0, nil, nil)
	if !errors.Is(err, hetzner.ErrProtected) {
		t.Fatalf("stop of a labelled voter without --force: %v", err)
	}
	if c := fake.CountCalls("POST", ""); c != 0 {
		t.Fatalf("%d mutating calls without the override", c)
	}
	res, err := Act(context.Background(), reg, inv, rec, ActionRequest{Node: "cpu-x", Op: OpStop, Force: true, Reason: "replace"}, 0, nil, nil)
	if err != nil || res.Outcome != OutcomeDone {
		t.Fatalf("forced stop: %+v %v", res, err)
	}
}
