package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/pkg/config"
	"github.com/ringmesh/ringmesh/pkg/providers"
	"github.com/ringmesh/ringmesh/pkg/providers/vast"
	"github.com/ringmesh/ringmesh/pkg/providers/vast/vastfake"
)

// vastFleet starts the Vast fake with n running instances, each linked to an
// inventory host vast-<id>, and a reconciler over the real Vast client.
func vastFleet(t *testing.T, n int) (*vastfake.Server, *Reconciler, []int64) {
	t.Helper()
	fake := vastfake.New(vastfake.Options{})
	t.Cleanup(fake.Close)
	var ids []int64
	var yaml strings.Builder
	yaml.WriteString("hosts:\n")
	for i := 0; i < n; i++ {
		id := fake.Add(vastfake.SeedInstance(int64(31337001+i), fmt.Sprintf("vast-%d", 31337001+i)))
		ids = append(ids, id)
		fmt.Fprintf(&yaml, "  vast-%d: {provider: vast, ssh_host: ssh5.vast.ai, ssh_port: 10600, vast_instance_id: \"%d\"}\n", id, id)
	}
	inv, err := config.Parse("t.yaml", []byte(yaml.String()))
	if err != nil {
		t.Fatal(err)
	}
	c, err := vast.New(vast.Options{BaseURL: fake.URL(), APIKey: fake.APIKey(), HTTPClient: &http.Client{Timeout: 10 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	reg := providers.NewRegistry()
	reg.Register(c)
	return fake, NewReconciler(reg, inv, nil, zerolog.Nop(), nil), ids
}

func gone(rep Report) []string {
	var out []string
	for _, g := range rep.AgentsWithoutInstances {
		if g.Gone {
			out = append(out, g.Node)
		}
	}
	return out
}

// A list answered {"instances": null} (documented list shape, implausible
// content) while twenty nodes are alive flips nothing: each instance is
// confirmed by a get, found, and stays as it was.
func TestReconcileNullListIsConfirmedPerInstance(t *testing.T) {
	fake, rec, ids := vastFleet(t, 20)
	ctx := context.Background()
	rep := rec.Reconcile(ctx, nil)
	if len(rep.Instances) != 20 || len(rep.AgentsWithoutInstances) != 0 {
		t.Fatalf("first pass: %d instances, issues %+v", len(rep.Instances), rep.AgentsWithoutInstances)
	}
	fake.ResetCalls()
	fake.Inject(vastfake.Fault{Kind: vastfake.Malformed, Method: "GET", Path: "/api/v1/instances/", Body: `{"success": true, "instances": null}`})
	rep = rec.Reconcile(ctx, nil)
	if len(rep.AgentsWithoutInstances) != 0 {
		t.Fatalf("null list produced node issues: %+v", rep.AgentsWithoutInstances)
	}
	if len(rep.Instances) != 20 {
		t.Fatalf("null list: %d instances in the report, want 20", len(rep.Instances))
	}
	for _, iv := range rep.Instances {
		if iv.Stale || iv.Node == "" || iv.State != providers.StateRunning {
			t.Errorf("instance %s after a confirmed null list: %+v", iv.ID, iv)
		}
	}
	if n := fake.CountCalls("GET", "/api/v0/instances/"); n != len(ids) {
		t.Errorf("%d gets to confirm, want one per instance (%d)", n, len(ids))
	}
}

// An empty list with one instance really destroyed: only that one is
// reported gone (its get answers the documented {"instances": null}).
func TestReconcileEmptyListConfirmsOnlyRealNotFound(t *testing.T) {
	fake, rec, ids := vastFleet(t, 5)
	ctx := context.Background()
	rec.Reconcile(ctx, nil)
	req, _ := http.NewRequest(http.MethodDelete, fmt.Sprintf("%s/api/v0/instances/%d/", fake.URL(), ids[2]), strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer "+fake.APIKey())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	fake.Inject(vastfake.Fault{Kind: vastfake.Malformed, Method: "GET", Path: "/api/v1/instances/", Body: `{"success": true, "instances": []}`})
	rep := rec.Reconcile(ctx, nil)
	want := fmt.Sprintf("vast-%d", ids[2])
	if g := gone(rep); len(g) != 1 || g[0] != want {
		t.Fatalf("gone = %v, want [%s]; issues %+v", g, want, rep.AgentsWithoutInstances)
	}
	if len(rep.Instances) != 4 {
		t.Fatalf("%d instances, want the 4 that get found", len(rep.Instances))
	}
}

// A list missing one instance whose get then fails (5xx) leaves that
// instance unknown: last known view kept and marked stale, no node gone.
func TestReconcileMissingInstanceWithFailingGetIsUnknown(t *testing.T) {
	fake, rec, ids := vastFleet(t, 3)
	ctx := context.Background()
	rec.Reconcile(ctx, nil)
	body := fmt.Sprintf(`{"success": true, "instances": [%s, %s]}`, mustJSON(t, fake, ids[0]), mustJSON(t, fake, ids[1]))
	fake.Inject(vastfake.Fault{Kind: vastfake.Malformed, Method: "GET", Path: "/api/v1/instances/", Body: body})
	fake.Inject(vastfake.Fault{Kind: vastfake.ServerError, Method: "GET", Path: fmt.Sprintf("/api/v0/instances/%d/", ids[2]), Status: 502})
	rep := rec.Reconcile(ctx, nil)
	if g := gone(rep); len(g) != 0 {
		t.Fatalf("a failing get flipped %v to gone", g)
	}
	if len(rep.Instances) != 3 {
		t.Fatalf("%d instances, want 3 (one stale)", len(rep.Instances))
	}
	for _, iv := range rep.Instances {
		if stale := iv.ID == fmt.Sprint(ids[2]); iv.Stale != stale {
			t.Errorf("instance %s stale=%v", iv.ID, iv.Stale)
		}
	}
	if len(rep.AgentsWithoutInstances) != 1 || !strings.Contains(rep.AgentsWithoutInstances[0].Reason, "unknown") {
		t.Errorf("issues: %+v", rep.AgentsWithoutInstances)
	}
	if u := rep.Providers[0].Unconfirmed; len(u) != 1 || u[0] != fmt.Sprint(ids[2]) {
		t.Errorf("unconfirmed = %v", u)
	}
	// The next normal list clears it.
	rep = rec.Reconcile(ctx, nil)
	if len(rep.AgentsWithoutInstances) != 0 || len(rep.Providers[0].Unconfirmed) != 0 {
		t.Errorf("after a full list: issues %+v unconfirmed %v", rep.AgentsWithoutInstances, rep.Providers[0].Unconfirmed)
	}
}

func mustJSON(t *testing.T, fake *vastfake.Server, id int64) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/api/v0/instances/%d/", fake.URL(), id), nil)
	req.Header.Set("Authorization", "Bearer "+fake.APIKey())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var show struct {
		Instances json.RawMessage `json:"instances"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&show); err != nil {
		t.Fatal(err)
	}
	return string(show.Instances)
}

// Vast's label is null until set: the name falls back to the inventory's node
// for that instance ID, else vast-<id>; public_ipaddr and ssh_host come with
// stray whitespace and are trimmed before they become endpoints.
func TestReconcileVastNullLabelAndPaddedAddresses(t *testing.T) {
	fake := vastfake.New(vastfake.Options{})
	t.Cleanup(fake.Close)
	linked := vastfake.SeedInstance(31337001, "")
	linked.Label = nil
	linked.PublicIPAddr = " 203.0.113.45\n"
	linked.SSHHost = "ssh5.vast.ai "
	fake.Add(linked)
	lonely := vastfake.SeedInstance(31337002, "")
	lonely.Label = nil
	fake.Add(lonely)
	inv, err := config.Parse("t.yaml", []byte("hosts:\n  trainer-a: {provider: vast, ssh_host: ssh5.vast.ai, ssh_port: 10600, vast_instance_id: \"31337001\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := vast.New(vast.Options{BaseURL: fake.URL(), APIKey: fake.APIKey()})
	if err != nil {
		t.Fatal(err)
	}
	reg := providers.NewRegistry()
	reg.Register(c)
	rep := NewReconciler(reg, inv, nil, zerolog.Nop(), nil).Reconcile(context.Background(), nil)
	byID := map[string]InstanceView{}
	for _, iv := range rep.Instances {
		byID[iv.ID] = iv
	}
	a, b := byID["31337001"], byID["31337002"]
	if a.Name != "trainer-a" || a.Node != "trainer-a" {
		t.Errorf("linked instance with null label: name %q node %q, want trainer-a", a.Name, a.Node)
	}
	if b.Name != "vast-31337002" {
		t.Errorf("unlinked instance with null label: name %q, want vast-31337002", b.Name)
	}
	if a.PublicIP != "203.0.113.45" {
		t.Errorf("public_ipaddr not trimmed: %q", a.PublicIP)
	}
	d, okD := a.Endpoint(providers.EndpointDirect)
	p, okP := a.Endpoint(providers.EndpointProxy)
	if !okD || d.Host != "203.0.113.45" || d.Port != 40001 || !okP || p.Host != "ssh5.vast.ai" {
		t.Errorf("endpoints from padded strings: %+v", a.SSH)
	}
}
