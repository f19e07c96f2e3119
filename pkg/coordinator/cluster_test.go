package coordinator_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ringmesh/ringmesh/internal/promcheck"
	"github.com/ringmesh/ringmesh/internal/testutil"
	"github.com/ringmesh/ringmesh/pkg/auth"
	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/bus/busserver"
	"github.com/ringmesh/ringmesh/pkg/coordinator"
	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/registry"
)

// Three voters, each embedding one member of a NATS cluster with R3
// streams; one leader; the leader's whole process goes away and another
// voter takes over while the agent moves to a live server.
func TestThreeVoterClusterFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster fail-over takes ~20 s; skipped with -short")
	}
	names := []string{"hetzner-cpu1", "hetzner-cpu2", "hetzner-cpu3"}
	hs, urls := startVoters(t, names)
	ag, _ := startAgent(t, urls, fakeNode{id: "vast-5", provider: "vast", instance: "5", root: t.TempDir()}, "")
	leaderIdx := func() (int, error) {
		n, idx := 0, -1
		for i, h := range hs {
			if h != nil && h.coord.IsLeader() {
				n++
				idx = i
			}
		}
		if n != 1 {
			return -1, fmt.Errorf("%d leaders", n)
		}
		return idx, nil
	}
	var first int
	testutil.Eventually(t, 20*time.Second, func() error {
		var err error
		first, err = leaderIdx()
		return err
	})
	// Every voter's status names the same leader and sees the agent healthy.
	for _, u := range urls {
		testutil.Eventually(t, 15*time.Second, func() error {
			st := status(t, u)
			if st.Leader != names[first] {
				return fmt.Errorf("%s says leader %q, want %q", u, st.Leader, names[first])
			}
			if r, ok := nodeIn(st, "vast-5"); !ok || r.State != mesh.StateHealthy {
				return fmt.Errorf("%s: vast-5 %+v", u, r.State)
			}
			healthy, leaders := 0, 0
			for _, v := range st.Voters {
				if v.State == "healthy" {
					healthy++
				}
				if v.Leader {
					leaders++
				}
			}
			if healthy != 3 || leaders != 1 {
				return fmt.Errorf("%s: voters %+v", u, st.Voters)
			}
			return nil
		})
	}
	// The leader's process goes away (coordinator and its NATS server).
	killed := time.Now()
	hs[first].stop()
	hs[first] = nil
	var second int
	testutil.Eventually(t, 30*time.Second, func() error {
		var err error
		second, err = leaderIdx()
		return err
	})
	t.Logf("new leader %s after %s", names[second], time.Since(killed).Round(time.Millisecond))
	if second == first {
		t.Fatal("the stopped voter cannot lead")
	}
	// The agent moved to a live server: its heartbeats keep reaching the
	// new leader, so the sequence it applied passes the one it had at the
	// failover by several (a record's age would measure the machine's load).
	var before registry.Record
	testutil.Eventually(t, 30*time.Second, func() error {
		var ok bool
		if before, ok = hs[second].coord.Registry().Get("vast-5"); !ok {
			return fmt.Errorf("vast-5 not in the new leader's registry")
		}
		return nil
	})
	boot := ag.Boot()
	testutil.Eventually(t, 30*time.Second, func() error {
		rec, _ := hs[second].coord.Registry().Get("vast-5")
		if rec.State != mesh.StateHealthy || rec.Applied[boot] < before.Applied[boot]+3 || !rec.LastSeen.After(before.LastSeen) {
			return fmt.Errorf("vast-5: %s, seq %d (at failover %d), last seen %s (at failover %s)",
				rec.State, rec.Applied[boot], before.Applied[boot], rec.LastSeen, before.LastSeen)
		}
		return nil
	})
	// The stopped voter (a graceful stop here) is reported as such by the others.
	testutil.Eventually(t, 20*time.Second, func() error {
		st := status(t, urls[second])
		for _, v := range st.Voters {
			if v.Name == names[first] && strings.HasPrefix(v.State, "stopped") && !v.Leader {
				return nil
			}
		}
		return fmt.Errorf("voters %+v", st.Voters)
	})
}

// startVoters starts one coordinator per name, each embedding one member of
// a NATS cluster on loopback, R3 streams, leader election on.
func startVoters(t *testing.T, names []string) ([]*harness, []string) {
	t.Helper()
	return startVotersWith(t, names, nil)
}

// startVotersWith is startVoters; mod (may be nil) changes voter i's
// config before it starts; dir is the cluster's scratch directory (the
// shared issuer store is dir/.auth).
func startVotersWith(t *testing.T, names []string, mod func(dir string, i int, cfg *coordinator.Config)) ([]*harness, []string) {
	t.Helper()
	ports, err := busserver.FreePorts(2 * len(names))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var urls []string
	for i := range names {
		urls = append(urls, "nats://127.0.0.1:"+strconv.Itoa(ports[i]))
	}
	hs := make([]*harness, len(names))
	started := make(chan error, len(names))
	for i, name := range names {
		var routes []string
		for j := range names {
			if j != i {
				routes = append(routes, "nats-route://127.0.0.1:"+strconv.Itoa(ports[len(names)+j]))
			}
		}
		cfg := coordinator.Config{
			Name: name,
			Embedded: busserver.ServerConfig{Name: "ringmesh-" + name, Host: "127.0.0.1", Port: ports[i], StoreDir: filepath.Join(dir, name),
				ClusterName: "ringmesh", ClusterHost: "127.0.0.1", ClusterPort: ports[len(names)+i], Routes: routes, SyncAlways: true, MaxStore: 8 << 30},
			Topology:  bus.Topology{Replicas: len(names)},
			Elect:     true,
			LeaderTTL: 3 * time.Second,
		}
		if mod != nil {
			mod(dir, i, &cfg)
		}
		go func(i int) {
			var err error
			hs[i], err = launchCoordinator(t, cfg, 90*time.Second)
			started <- err
		}(i)
	}
	for range names {
		if err := <-started; err != nil {
			t.Fatal(err)
		}
	}
	return hs, urls
}

// /readyz follows the JetStream quorum: ready on all three voters, still
// ready on two, not ready on the last one standing (no meta leader, no
// MESH_EVT leader), with ringmesh_coordinator_quorum 0 in its /metrics.
func TestReadyzWithoutQuorum(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-voter cluster takes ~20 s; skipped with -short")
	}
	hs, _ := startVoters(t, []string{"hetzner-cpu1", "hetzner-cpu2", "hetzner-cpu3"})
	readyz := func(h *harness) (int, string) {
		resp, err := http.Get("http://" + h.coord.HTTPAddr() + "/readyz")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, h := range hs {
		testutil.Eventually(t, 30*time.Second, func() error {
			if code, body := readyz(h); code != http.StatusOK {
				return fmt.Errorf("%d %s", code, body)
			}
			return nil
		})
	}
	hs[0].stop()
	testutil.Eventually(t, 30*time.Second, func() error {
		if code, body := readyz(hs[2]); code != http.StatusOK {
			return fmt.Errorf("two of three voters up must keep quorum: %d %s", code, body)
		}
		return nil
	})
	hs[1].stop()
	lost := time.Now()
	testutil.Eventually(t, 60*time.Second, func() error {
		code, body := readyz(hs[2])
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "no quorum") {
			return fmt.Errorf("one of three voters up: %d %s", code, body)
		}
		return nil
	})
	testutil.Eventually(t, 30*time.Second, func() error {
		m := promcheck.Samples(promcheck.Scrape(t, "http://"+hs[2].coord.HTTPAddr()+"/metrics"))
		if v, ok := m["ringmesh_coordinator_quorum"]; !ok || v != 0 {
			return fmt.Errorf("ringmesh_coordinator_quorum = %v (present %v), want 0", v, ok)
		}
		return nil
	})
	_, body := readyz(hs[2])
	t.Logf("last voter standing, %s after the second voter stopped: /readyz says %q", time.Since(lost).Round(100*time.Millisecond), strings.TrimSpace(body))
}

// TestUserRecordsReplicateAcrossVoterStores: each voter has its own copy
// of the issuer store, as deploy/README.md sets voters up. A credential
// issued on one voter's store (meshctl creds issue there, or an
// enrollment it answered) reaches the other voters' stores through KV; so
// does a revocation made on another voter; and the leader can revoke, by
// name, a node it did not issue.
func TestUserRecordsReplicateAcrossVoterStores(t *testing.T) {
	if testing.Short() {
		t.Skip("three voters; skipped with -short")
	}
	names := []string{"hetzner-cpu1", "hetzner-cpu2", "hetzner-cpu3"}
	stores := make([]*auth.Issuer, len(names))
	hs, _ := startVotersWith(t, names, func(dir string, i int, cfg *coordinator.Config) {
		shared := testutil.SecureBusAt(t, filepath.Join(dir, ".auth")).Issuer
		if i == 0 {
			stores[0] = shared // voter 0 uses the store the test helpers know
			return
		}
		own := filepath.Join(dir, ".auth-"+names[i])
		if err := os.CopyFS(own, os.DirFS(filepath.Join(dir, ".auth"))); err != nil {
			t.Fatal(err)
		}
		iss, err := auth.Open(own)
		if err != nil {
			t.Fatal(err)
		}
		stores[i], cfg.Auth = iss, iss
	})
	has := func(iss *auth.Issuer, name string, revoked bool) error {
		users, err := iss.Users()
		if err != nil {
			return err
		}
		for _, u := range users {
			if u.Name == name && u.RevokedAt.IsZero() != revoked {
				return nil
			}
		}
		return fmt.Errorf("%s: no record of %s (revoked %v)", iss.Dir(), name, revoked)
	}
	everywhere := func(name string, revoked bool) {
		t.Helper()
		testutil.Eventually(t, 60*time.Second, func() error {
			for _, iss := range stores {
				if err := has(iss, name, revoked); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if _, err := stores[1].Issue(auth.RoleNode, "vast-repl-1"); err != nil {
		t.Fatal(err)
	}
	everywhere("vast-repl-1", false)
	if _, _, err := stores[2].Revoke("vast-repl-1"); err != nil {
		t.Fatal(err)
	}
	everywhere("vast-repl-1", true)

	// The leader revokes a node issued on another voter's store.
	var leader int
	testutil.Eventually(t, 30*time.Second, func() error {
		for i, h := range hs {
			if h.coord.IsLeader() {
				leader = i
				return nil
			}
		}
		return errors.New("no leader")
	})
	other := (leader + 1) % len(names)
	if _, err := stores[other].Issue(auth.RoleNode, "vast-repl-2"); err != nil {
		t.Fatal(err)
	}
	everywhere("vast-repl-2", false)
	out, err := run(t, hs[0].url, "", "revoke", "vast-repl-2")
	if err != nil || !strings.Contains(out, "revoked vast-repl-2") {
		t.Fatalf("meshctl revoke through leader %s of a node issued on %s: %v\n%s", names[leader], names[other], err, out)
	}
	everywhere("vast-repl-2", true)
}
