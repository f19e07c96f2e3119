package coordinator_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ringmesh/ringmesh/internal/testutil"
	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/fleet"
	"github.com/ringmesh/ringmesh/pkg/providers/vast/vastfake"
)

// A box rented under its node ID, in no inventory, is enrollable once its
// provider lists it: the enroll operation issues its credential, and
// meshctl finds its endpoint in the listing. A name no provider lists
// gets nothing.
func TestEnrollAdmitsABoxNamedAfterItsNode(t *testing.T) {
	h, fakes, _ := startFleet(t)
	n := vastfake.SeedInstance(39000001, "vast-39000001")
	n.SSHHost, n.SSHPort = "ssh9.vast.ai", 24001
	fakes.Vast.Add(n)

	nc, err := natsConnect(t, h.url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	admin := testutil.Lookup(h.url).Client(t, nc)
	testutil.Eventually(t, 30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var rep fleet.Report
		if err := admin.Call(ctx, api.OpInstances, api.InstancesRequest{Provider: "vast"}, &rep); err != nil {
			return err
		}
		e, _, ok := fleet.NamedInstanceEntry(rep, "vast-39000001")
		if !ok || e.Host != "ssh9.vast.ai" || e.Port != 24001 {
			return fmt.Errorf("not listed yet: %+v %v", e, ok)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out api.Enrolled
	if err := admin.Call(ctx, api.OpEnroll, api.EnrollRequest{Node: "vast-39000001"}, &out); err != nil {
		t.Fatalf("enroll a box named after its node: %v", err)
	}
	if !strings.Contains(out.Creds, "BEGIN NATS USER JWT") || out.CAPEM == "" || out.Valid {
		t.Fatalf("reply: valid %v, creds %d bytes, CA %d bytes", out.Valid, len(out.Creds), len(out.CAPEM))
	}
	// The key it holds now is valid: nothing new is issued.
	var again api.Enrolled
	if err := admin.Call(ctx, api.OpEnroll, api.EnrollRequest{Node: "vast-39000001", CurrentKey: out.PublicKey}, &again); err != nil || !again.Valid || again.Creds != "" {
		t.Fatalf("re-check of a valid key: %v %+v", err, again.Valid)
	}
	if err := admin.Call(ctx, api.OpEnroll, api.EnrollRequest{Node: "vast-39000999"}, nil); err == nil || !strings.Contains(err.Error(), "not known to the coordinator") {
		t.Fatalf("a name no provider lists: %v", err)
	}
}
