package nebius

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/ringmesh/ringmesh/pkg/providers"
)

func TestLaunchKind(t *testing.T) {
	exit := func(msg string) error {
		k, code := classifyStderr(msg)
		return &providers.Error{Provider: Name, Op: providers.OpLaunch, Kind: k, Code: code,
			Err: fmt.Errorf("nebius CLI exited with status 1: %s", msg)}
	}
	cases := []struct {
		err        error
		notApplied bool
	}{
		{exit("Error: rpc error: code = InvalidArgument desc = validation error: spec.resources.platform"), true},
		{exit("Error: rpc error: code = PermissionDenied desc = no access"), true},
		{exit("Error: rpc error: code = Unauthenticated desc = expired token"), true},
		{exit("Error: rpc error: code = NotFound desc = subnet vpcsubnet-x not found"), true},
		{exit("Error: rpc error: code = AlreadyExists desc = name taken"), true},
		{exit("Error: rpc error: code = ResourceExhausted desc = quota"), true},
		{exit("Error: rpc error: code = FailedPrecondition desc = x"), true},
		{exit("Error: unknown flag: --file"), true},
		{exit("Error: rpc error: code = Unavailable desc = connection reset"), false},
		{exit("Error: rpc error: code = Internal desc = x"), false},
		{exit("Error: rpc error: code = DeadlineExceeded desc = x"), false},
		{exit("Error: rpc error: code = Aborted desc = x"), false},
		{exit("Error: rpc error: code = Unknown desc = permission denied by proxy"), false},
		{exit("panic: runtime error"), false},
		{exit("Error: too many requests"), false}, // no status: the CLI's own text, outcome unknown
		{&providers.Error{Provider: Name, Op: providers.OpLaunch, Kind: providers.KindTransient,
			Err: fmt.Errorf("nebius CLI did not finish within 1s: %w", context.DeadlineExceeded)}, false},
		{&providers.Error{Provider: Name, Op: providers.OpLaunch, Kind: providers.KindNotSent,
			Err: fmt.Errorf("nebius CLI could not be started")}, true},
	}
	for _, c := range cases {
		got := launchKind(c.err)
		if providers.LaunchNotApplied(got) != c.notApplied {
			t.Errorf("%v -> kind %q, not applied %v; want %v", c.err, providers.KindOf(got), !c.notApplied, c.notApplied)
		}
	}
}

func TestCreateAnswer(t *testing.T) {
	cases := []struct {
		out, id string
		withVM  bool
	}{
		{`{"id":"computeoperation-1","resource_id":"computeinstance-e00a"}`, "computeinstance-e00a", false},
		{`{"id":"computeoperation-1","resourceId":"computeinstance-e00b"}`, "computeinstance-e00b", false},
		{`{"metadata":{"id":"computeinstance-e00c","name":"n"},"spec":{},"status":{"state":"RUNNING"}}`, "computeinstance-e00c", true},
		{`{"id":"computeoperation-1"}`, "", false},
		{`not json`, "", false},
	}
	for _, c := range cases {
		id, in, err := createAnswer([]byte(c.out))
		if c.id == "" {
			if err == nil {
				t.Errorf("%s: want an error, got %q", c.out, id)
			}
			continue
		}
		if err != nil || id != c.id || (in != nil) != c.withVM {
			t.Errorf("%s: id %q, instance %v, err %v", c.out, id, in != nil, err)
		}
	}
}

func TestScrubRemovesTheRequestsSecrets(t *testing.T) {
	ud := "#!/bin/sh\nexport RINGMESH_ENROLL_TOKEN='tok-abcdef'\necho hi\n"
	err := &providers.Error{Provider: Name, Op: providers.OpLaunch, Kind: providers.KindInvalid,
		Err: fmt.Errorf("nebius CLI exited with status 1: bad spec.cloud_init_user_data %s; quoted %q", ud, ud)}
	got := scrub(err, map[string]string{"RINGMESH_ENROLL_TOKEN": "tok-abcdef", "X": "ab"}, ud)
	// The verbatim user data goes whole; the quoted copy keeps its lines but not the token.
	if msg := got.Error(); strings.Contains(msg, "tok-abcdef") || strings.Count(msg, "echo hi") != 1 || !strings.Contains(msg, "[user data]") {
		t.Fatalf("scrubbed = %q", msg)
	}
	if providers.KindOf(got) != providers.KindInvalid {
		t.Errorf("kind = %q", providers.KindOf(got))
	}
	plain := &providers.Error{Provider: Name, Op: providers.OpLaunch, Kind: providers.KindTransient, Err: fmt.Errorf("no secret here")}
	if scrub(plain, map[string]string{"K": "tok-abcdef"}, ud) != error(plain) {
		t.Error("an error without secrets was rewritten")
	}
}
