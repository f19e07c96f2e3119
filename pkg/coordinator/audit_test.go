package coordinator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ringmesh/ringmesh/internal/testutil"
	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/providers/demo"
)

// An operator's stop of an interruptible RunPod pod (which RunPod reports
// like a preemption: EXITED) leaves the node stopped, never preempting or
// preempted; a real preemption after the operator started it again is still
// recognised. meshctl audit shows who did what, filtered and paged.
func TestOperatorStopIsNotPreemptionAndAudit(t *testing.T) {
	h, fakes, _ := startFleet(t)
	const node = "runpod-spot-1"
	spot := fakeNode{id: node, provider: "runpod", instance: demo.RunPodSpotPod, root: t.TempDir()}
	_, stopAgent := startAgent(t, []string{h.url}, spot, "")
	waitState(t, h.url, node, mesh.StateHealthy, 15*time.Second)
	t0 := time.Now()

	out, err := run(t, h.url, "", "stop", node, "--yes", "--force", "--reason", "maintenance window")
	if err != nil || !strings.Contains(out, "done") {
		t.Fatalf("stop: %v %s", err, out)
	}
	// Let a few reconciles see the pod EXITED while its agent still beats, then the agent goes.
	for range 3 {
		select {
		case <-h.coord.Reconciled():
		case <-time.After(10 * time.Second):
			t.Fatal("no reconcile")
		}
	}
	stopAgent()
	waitState(t, h.url, node, mesh.StateStopped, 20*time.Second)
	for range 3 {
		<-h.coord.Reconciled()
	}
	if tr := auditTransitions(t, h.url, node); slices.Contains(tr, "preempting") || slices.Contains(tr, "preempted") {
		t.Fatalf("the operator's stop was relabelled a preemption: transitions %v", tr)
	}
	if rec, _ := h.coord.Registry().Get(node); rec.State != mesh.StateStopped {
		t.Fatalf("%s is %s after the operator's stop, want stopped", node, rec.State)
	}

	// meshctl audit: the stop, with who asked and why.
	out, err = run(t, h.url, "", "audit", "--node", node, "--kind", "provider_call")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"stop runpod/" + demo.RunPodSpotPod + " (intent)", "stop runpod/" + demo.RunPodSpotPod + " (result: ok)", "admin:test-admin (", "maintenance window"} {
		if !strings.Contains(out, want) {
			t.Errorf("meshctl audit lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "transition") {
		t.Errorf("--kind provider_call shows other kinds:\n%s", out)
	}
	out, err = run(t, h.url, "", "audit", "--node", node, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var page struct {
		Items []api.AuditEntry `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &page); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	kinds := map[string]bool{}
	for _, e := range page.Items {
		kinds[e.Kind] = true
		if e.Node != node {
			t.Errorf("--node %s shows an entry about %q", node, e.Node)
		}
	}
	if !kinds["transition"] || !kinds["provider_call"] {
		t.Errorf("kinds %v, want transition and provider_call", kinds)
	}
	// --limit keeps the newest; paging through the API with pages of 1
	// yields the same entries as one page; Since drops older entries.
	out, err = run(t, h.url, "", "audit", "--node", node, "--json", "--limit", "2")
	if err != nil {
		t.Fatal(err)
	}
	var last2 struct {
		Items []api.AuditEntry `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &last2); err != nil || len(last2.Items) != 2 || last2.Items[1].Seq != page.Items[len(page.Items)-1].Seq {
		t.Fatalf("--limit 2: %v %+v", err, last2.Items)
	}
	nc, err := natsConnect(t, h.url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c := testutil.APIClient(t, h.url, nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var paged []uint64
	req := api.AuditRequest{Node: node, Limit: 1}
	for i := 0; i < 100; i++ {
		var a api.Audit
		if err := c.Call(ctx, api.OpAudit, req, &a); err != nil {
			t.Fatal(err)
		}
		for _, e := range a.Items {
			paged = append(paged, e.Seq)
		}
		if !a.More {
			break
		}
		req.AfterSeq = a.NextSeq
	}
	var whole []uint64
	for _, e := range page.Items {
		whole = append(whole, e.Seq)
	}
	if len(paged) < len(whole) || fmt.Sprint(paged[:len(whole)]) != fmt.Sprint(whole) {
		t.Errorf("paged %v, one page %v", paged, whole)
	}
	var recent api.Audit
	if err := c.Call(ctx, api.OpAudit, api.AuditRequest{Node: node, Since: t0}, &recent); err != nil {
		t.Fatal(err)
	}
	for _, e := range recent.Items {
		if e.To == "joining" {
			t.Errorf("Since %s returned the earlier join: %+v", t0, e)
		}
	}
	if len(recent.Items) == 0 || len(recent.Items) >= len(page.Items) {
		t.Errorf("Since: %d entries of %d", len(recent.Items), len(page.Items))
	}
	if err := c.Call(ctx, api.OpAudit, api.AuditRequest{Kind: "no such kind!"}, nil); err == nil || !strings.Contains(err.Error(), "bad request") {
		t.Errorf("bad kind: %v", err)
	}

	// Control: started again by the operator, then really preempted.
	if out, err := run(t, h.url, "", "start", node, "--yes"); err != nil {
		t.Fatalf("start: %v %s", err, out)
	}
	startAgent(t, []string{h.url}, spot, "")
	waitState(t, h.url, node, mesh.StateHealthy, 20*time.Second)
	if err := fakes.RunPod.Preempt(demo.RunPodSpotPod); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 20*time.Second, func() error {
		rec, _ := h.coord.Registry().Get(node)
		if rec.State != mesh.StatePreempting && rec.State != mesh.StatePreempted {
			return fmt.Errorf("%s is %s after a real preemption", node, rec.State)
		}
		return nil
	})
}
