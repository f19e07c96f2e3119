package auth_test

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/ringmesh/ringmesh/pkg/auth"
)

// MergeUsers adds unknown records and revocations, never removes a record
// or undoes a revocation, and leaves out (naming them) records that are
// invalid or that give a known key another name or role.
func TestMergeUsers(t *testing.T) {
	iss, err := auth.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := iss.Issue(auth.RoleNode, "vast-1"); err != nil {
		t.Fatal(err)
	}
	users, _ := iss.Users()
	var mine auth.Issued
	for _, u := range users {
		if u.Name == "vast-1" {
			mine = u
		}
	}
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	now := time.Now().UTC().Truncate(time.Second)
	other := auth.Issued{Name: "vast-2", Role: auth.RoleNode, PublicKey: pub, IssuedAt: now}
	revokedMine := mine
	revokedMine.RevokedAt = now

	n, err := iss.MergeUsers([]auth.Issued{other, revokedMine})
	if err != nil || n != 2 {
		t.Fatalf("merge of a new record and a revocation: %d, %v", n, err)
	}
	// A stale copy (not revoked) does not undo the revocation; the same records again change nothing.
	if n, err := iss.MergeUsers([]auth.Issued{mine, other}); err != nil || n != 0 {
		t.Fatalf("merge of stale copies: %d, %v", n, err)
	}
	// Invalid or conflicting records are left out, named; the good one still lands.
	kp3, _ := nkeys.CreateUser()
	pub3, _ := kp3.PublicKey()
	good := auth.Issued{Name: "vast-3", Role: auth.RoleNode, PublicKey: pub3, IssuedAt: now}
	bad := []auth.Issued{
		{Name: "vast-x", Role: "root", PublicKey: pub3, IssuedAt: now},
		{Name: "vast\nx", Role: auth.RoleNode, PublicKey: pub3, IssuedAt: now},
		{Name: "vast-x", Role: auth.RoleNode, PublicKey: "SUAB", IssuedAt: now},
		{Name: "admin-eve", Role: auth.RoleAdmin, PublicKey: pub, IssuedAt: now}, // vast-2's key as an admin
	}
	n, err = iss.MergeUsers(append(bad, good))
	if n != 1 || err == nil || !strings.Contains(err.Error(), "this store") || !strings.Contains(err.Error(), "unknown role") {
		t.Fatalf("merge with bad records: %d, %v", n, err)
	}
	users, _ = iss.Users()
	state := map[string]bool{}
	for _, u := range users {
		state[u.Name+"/"+string(u.Role)] = u.RevokedAt.IsZero()
	}
	if live, ok := state["vast-1/node"]; !ok || live {
		t.Errorf("vast-1: present %v, live %v; want revoked", ok, live)
	}
	if !state["vast-2/node"] || !state["vast-3/node"] {
		t.Errorf("merged records missing: %v", state)
	}
	if _, ok := state["admin-eve/admin"]; ok {
		t.Error("a known key was taken over as an admin")
	}
}
