package coordinator_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ringmesh/ringmesh/internal/testutil"
	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/providers/vast/vastfake"
)

// The Vast list answers {"instances": null} on every reconcile: no node is
// moved to terminated on that answer (each instance is confirmed by a get,
// and found). Only the instance that is really destroyed (its get answers
// the documented {"instances": null}) takes its node to terminated.
func TestImplausibleListFlipsNoNode(t *testing.T) {
	h, fakes, _ := startFleet(t)
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
}
