package coordinator_test

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ringmesh/ringmesh/internal/testutil"
	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/coordinator"
	"github.com/ringmesh/ringmesh/pkg/mesh"
)

// Three voters, each embedding one member of a NATS cluster with R3
// streams; one leader; the leader's whole process goes away and another
// voter takes over while the agent moves to a live server.
func TestThreeVoterClusterFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster fail-over takes ~20 s; skipped with -short")
	}
	ports, err := bus.FreePorts(6)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	names := []string{"hetzner-cpu1", "hetzner-cpu2", "hetzner-cpu3"}
	var urls []string
	for i := range names {
		urls = append(urls, "nats://127.0.0.1:"+strconv.Itoa(ports[i]))
	}
	hs := make([]*harness, 3)
	started := make(chan error, 3)
	for i, name := range names {
		var routes []string
		for j := range names {
			if j != i {
				routes = append(routes, "nats-route://127.0.0.1:"+strconv.Itoa(ports[3+j]))
			}
		}
		cfg := coordinator.Config{
			Name: name,
			Embedded: bus.ServerConfig{Name: "ringmesh-" + name, Host: "127.0.0.1", Port: ports[i], StoreDir: filepath.Join(dir, name),
				ClusterName: "ringmesh", ClusterHost: "127.0.0.1", ClusterPort: ports[3+i], Routes: routes, SyncAlways: true, MaxStore: 8 << 30},
			Topology:  bus.Topology{Replicas: 3},
			Elect:     true,
			LeaderTTL: 3 * time.Second,
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
	_, _ = startAgent(t, urls, fakeNode{id: "vast-5", provider: "vast", instance: "5", root: t.TempDir()}, "")
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
	// The agent moved to a live server: still healthy in the new leader's view.
	testutil.Eventually(t, 30*time.Second, func() error {
		rec, ok := hs[second].coord.Registry().Get("vast-5")
		if !ok || rec.State != mesh.StateHealthy || time.Since(rec.LastSeen) > 2*time.Second {
			return fmt.Errorf("vast-5: %s, last seen %s", rec.State, rec.LastSeen)
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
