package coordinator_test

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ringmesh/ringmesh/internal/testutil"
	"github.com/ringmesh/ringmesh/pkg/auth"
	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/providers/vast/vastfake"
)

// The Vast list answers {"instances": null} on every reconcile: no node is
// moved to terminated on that answer (each instance is confirmed by a get,
// and found). Only the instance that is really destroyed (its get answers
// the documented {"instances": null}) takes its node to terminated, and
// that node's bus credentials are revoked (the others' are not).
func TestImplausibleListFlipsNoNode(t *testing.T) {
	h, fakes, _ := startFleet(t)
	sb := testutil.Lookup(h.url)
	goneCreds := sb.Creds(t, auth.RoleNode, "vast-29129531")
	keptCreds := sb.Creds(t, auth.RoleNode, "vast-29129530")
	vastNodes := []string{"vast-12345678", "vast-29129529", "vast-29129530", "vast-29129531"}
	testutil.Eventually(t, 15*time.Second, func() error {
		st := status(t, h.url)
		for _, n := range vastNodes {
			rec, ok := nodeIn(st, n)
			if !ok || rec.Instance == nil {
				return fmt.Errorf("%s: no instance view yet", n)
			}
		}
		return nil
	})
	fakes.Vast.Inject(vastfake.Fault{Kind: vastfake.Malformed, Count: -1, Method: "GET", Path: "/api/v1/instances/",
		Body: `{"success": true, "instances_found": 0, "instances": null, "next_token": null}`})
	lists := fakes.Vast.CountCalls("GET", "/api/v1/instances/")
	gets := fakes.Vast.CountCalls("GET", "/api/v0/instances/")
	testutil.Eventually(t, 15*time.Second, func() error {
		if n := fakes.Vast.CountCalls("GET", "/api/v1/instances/"); n < lists+3 {
			return fmt.Errorf("%d lists since the fault, want 3", n-lists)
		}
		return nil
	})
	if fakes.Vast.CountCalls("GET", "/api/v0/instances/") <= gets {
		t.Error("no get confirmed the instances the null list left out")
	}
	st := status(t, h.url)
	for _, n := range vastNodes {
		rec, _ := nodeIn(st, n)
		if rec.State == mesh.StateTerminated {
			t.Errorf("%s terminated on a null list: %s", n, rec.Cause)
		}
	}

	// One instance is really destroyed: its node, silent, becomes terminated.
	req, _ := http.NewRequest(http.MethodDelete, fakes.Vast.URL()+"/api/v0/instances/29129531/", strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer "+fakes.Vast.APIKey())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	waitState(t, h.url, "vast-29129531", mesh.StateTerminated, 15*time.Second)
	st = status(t, h.url)
	for _, n := range vastNodes[:3] {
		if rec, _ := nodeIn(st, n); rec.State == mesh.StateTerminated {
			t.Errorf("%s terminated with the destroyed one: %s", n, rec.Cause)
		}
	}

	// The terminated node's credentials no longer open the bus; a live node's still do.
	testutil.Eventually(t, 15*time.Second, func() error {
		nc, err := nats.Connect(h.url, nats.UserCredentials(goneCreds), nats.RootCAs(sb.CAFile()), nats.MaxReconnects(0), nats.Timeout(2*time.Second))
		if err == nil {
			nc.Close()
			return errors.New("the terminated node's credentials still connect")
		}
		return nil
	})
	nc, err := nats.Connect(h.url, nats.UserCredentials(keptCreds), nats.RootCAs(sb.CAFile()), nats.MaxReconnects(0), nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatalf("a live node's credentials were revoked too: %v", err)
	}
	nc.Close()
	users, err := sb.Issuer.Users()
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		if u.Name == "vast-29129531" && u.RevokedAt.IsZero() {
			t.Errorf("issuer store: %s not revoked", u.Name)
		}
	}
}
