package gossip

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ringmesh/ringmesh/internal/testutil"
)

// TestKeyringRotationWithoutRestart rotates a running three-member
// cluster from key A to key B in the documented three steps (add B, make B
// primary, drop A), through ReloadKeys as the key file would: nobody is
// restarted, every step keeps everyone alive, and afterwards a member that
// holds only A can no longer join while one with B can.
func TestKeyringRotationWithoutRestart(t *testing.T) {
	keyA, keyB := testKey, []byte("fedcba9876543210fedcba9876543210")
	var mu sync.Mutex
	ring := [][]byte{keyA}
	reload := func() ([][]byte, error) {
		mu.Lock()
		defer mu.Unlock()
		return append([][]byte(nil), ring...), nil
	}
	cfg := func(name string, seeds ...string) Config {
		c := testConfig(name, seeds...)
		c.ReloadKeys, c.KeyReloadInterval = reload, 100*time.Millisecond
		return c
	}
	a := start(t, cfg("rot-a"))
	b := start(t, cfg("rot-b", a.Addr()))
	c := start(t, cfg("rot-c", a.Addr()))
	nodes := []*tnode{a, b, c}
	names := []string{"rot-a", "rot-b", "rot-c"}
	testutil.Eventually(t, 30*time.Second, func() error { return allSee(nodes, 3, names...) })

	for _, step := range []struct {
		what string
		keys [][]byte
	}{
		{"add B", [][]byte{keyA, keyB}},
		{"B primary", [][]byte{keyB, keyA}},
		{"drop A", [][]byte{keyB}},
	} {
		mu.Lock()
		ring = step.keys
		mu.Unlock()
		testutil.Eventually(t, 30*time.Second, func() error {
			for _, n := range nodes {
				got := n.keyring.GetKeys()
				if len(got) != len(step.keys) || string(got[0]) != string(step.keys[0]) {
					return fmt.Errorf("%s: step %q: keyring not reloaded yet", n.cfg.NodeName, step.what)
				}
			}
			return nil
		})
		// A probe round trip under the new keyring: still all alive.
		time.Sleep(time.Second)
		if err := allSee(nodes, 3, names...); err != nil {
			t.Fatalf("after %q: %v", step.what, err)
		}
	}

	old := testConfig("rot-old", a.Addr()) // only key A, never reloaded
	stale := start(t, old)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if n, err := stale.Join(ctx, a.Addr()); err == nil && n > 0 {
		t.Fatalf("a member with the dropped key joined (%d contacted)", n)
	}
	fresh := testConfig("rot-new", a.Addr())
	fresh.Keys = [][]byte{keyB}
	start(t, fresh)
	testutil.Eventually(t, 30*time.Second, func() error { return a.sees(StateAlive, "rot-new") })
	if err := a.sees(StateAlive, "rot-old"); err == nil {
		t.Fatal("rot-old is in the view although it only has the dropped key")
	}
}

// TestSetKeysRefusesBadInput: a bad key or an empty ring changes nothing.
func TestSetKeysRefusesBadInput(t *testing.T) {
	a := start(t, testConfig("setkeys-a"))
	for _, keys := range [][][]byte{nil, {[]byte("short")}} {
		if err := a.SetKeys(keys); err == nil {
			t.Errorf("SetKeys(%d keys) accepted", len(keys))
		}
	}
	if got := a.keyring.GetKeys(); len(got) != 1 || string(got[0]) != string(testKey) {
		t.Fatalf("keyring changed: %d keys", len(got))
	}
	if _, err := ParseKeys("# comment\n\n" + "c2hvcnQ=\n"); err == nil || !strings.Contains(err.Error(), "line 3") {
		t.Fatalf("ParseKeys of a short key: %v, want an error naming line 3", err)
	}
}

// TestVerifyPeerKeepsUnboundNamesOut: a member whose alive claim fails
// VerifyPeer never enters the verifying member's view and is counted as
// rejected{reason="identity"}; one that passes does. The real verifier
// (pkg/auth) is tested against issued credentials in pkg/auth.
func TestVerifyPeerKeepsUnboundNamesOut(t *testing.T) {
	vcfg := testConfig("verifier")
	vcfg.VerifyPeer = func(cluster, name, role, addr string, port int, token string) error {
		if token != "ok:"+name+":"+addr {
			return errors.New("bad token")
		}
		return nil
	}
	v := start(t, vcfg)
	sign := func(cluster, name, addr string, port int) (string, error) { return "ok:" + name + ":" + addr, nil }
	good := testConfig("honest", v.Addr())
	good.Sign = sign
	bad := testConfig("impostor", v.Addr())
	bad.Sign = func(cluster, name, addr string, port int) (string, error) { return "ok:honest:" + addr, nil }
	start(t, good)
	start(t, bad)
	testutil.Eventually(t, 30*time.Second, func() error { return v.sees(StateAlive, "honest") })
	testutil.Eventually(t, 30*time.Second, func() error {
		if n := v.counter("ringmesh_gossip_rejected_total", "reason", ReasonIdentity); n < 1 {
			return fmt.Errorf("rejected{identity} = %v", n)
		}
		return nil
	})
	if _, ok := v.Member.Member("impostor"); ok {
		t.Fatal("the impostor is in the verifier's view")
	}
	if mi, _ := v.Member.Member("honest"); !strings.HasPrefix(mi.Meta.Token, "ok:honest:") {
		t.Fatalf("honest member's token not carried in meta: %q", mi.Meta.Token)
	}
}
