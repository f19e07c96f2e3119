package coordinator_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ringmesh/ringmesh/internal/testutil"
	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/bus"
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

// TestAttackClaimedInstanceNotActedOn: a box admitted because Vast lists
// it under its node ID is then compromised; its hello claims the instance
// ID of another configured Vast box. The coordinator records the claim
// but acts on the instance the node was admitted with, never on the
// victim's: the act names the admitted instance, and Vast sees no call on
// the victim.
func TestAttackClaimedInstanceNotActedOn(t *testing.T) {
	h, fakes, _ := startFleet(t)
	fakes.Vast.Add(vastfake.SeedInstance(39000002, "vast-39000002"))
	nc, err := natsConnect(t, h.url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	admin := testutil.Lookup(h.url).Client(t, nc)
	testutil.Eventually(t, 30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return admin.Call(ctx, api.OpEnroll, api.EnrollRequest{Node: "vast-39000002"}, nil)
	})

	evil := newAttacker(t, h.url, "vast-39000002")
	b := hello("ssh9.vast.ai", "root", "")
	b.InstanceID = "29129529" // vast-29129529's, from the demo inventory
	evil.publish("vast-39000002", bus.KindHello, 1, b)
	testutil.Eventually(t, 15*time.Second, func() error {
		if rec, _ := h.coord.Registry().Get("vast-39000002"); rec.InstanceID != "29129529" {
			return fmt.Errorf("claim not recorded yet: %q", rec.InstanceID)
		}
		return nil
	})
	before := len(fakes.Vast.MutatingCalls())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var res fleet.ActionResult
	err = admin.Call(ctx, api.OpAct, fleet.ActionRequest{Node: "vast-39000002", Op: fleet.OpStop, Force: true, Reason: "attack test", RequestID: "claim-1"}, &res)
	if err != nil || res.InstanceID != "39000002" || res.InstanceSource != fleet.SourceAdmission {
		t.Fatalf("act on the compromised node: %+v %v, want its admitted instance 39000002", res, err)
	}
	for _, c := range fakes.Vast.MutatingCalls()[before:] {
		if strings.Contains(c.Path, "29129529") {
			t.Fatalf("a call reached the victim's instance: %s %s", c.Method, c.Path)
		}
	}
}
