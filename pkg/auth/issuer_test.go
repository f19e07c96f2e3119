package auth_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/ringmesh/ringmesh/pkg/auth"
)

// The store is private, a revoked name is not silently re-issued, and a
// second copy of the store never undoes a revocation (Merge).
func TestIssuerStore(t *testing.T) {
	dir := t.TempDir()
	iss, err := auth.Open(filepath.Join(dir, "auth"))
	if err != nil {
		t.Fatal(err)
	}
	creds := filepath.Join(dir, "creds", "n1.creds")
	if err := iss.EnsureCreds(auth.RoleNode, "n1", creds); err != nil {
		t.Fatal(err)
	}
	if err := iss.EnsureCreds(auth.RoleNode, "n1", creds); err != nil {
		t.Fatal(err)
	}
	if users, _ := iss.Users(); len(users) != 1 {
		t.Fatalf("EnsureCreds twice issued %d users", len(users))
	}
	for _, p := range []string{creds, filepath.Join(dir, "auth", "account.nk"), filepath.Join(dir, "auth", "operator.nk"), filepath.Join(dir, "auth", "ca-key.pem")} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %o, want 0600", p, fi.Mode().Perm())
		}
	}
	if _, err := iss.Issue(auth.RoleAdmin, "n1"); err == nil {
		t.Error("issued admin credentials under a node's name")
	}
	if _, err := auth.OpenExisting(filepath.Join(dir, "nothing")); err == nil {
		t.Error("OpenExisting created a store")
	}
	if _, err := auth.Permissions(auth.RoleNode, "bad.name"); err == nil {
		t.Error("a name with a dot got permissions")
	}

	// A copy of the store (another voter), then a revocation on the first.
	copyDir := filepath.Join(dir, "copy")
	if err := os.CopyFS(copyDir, os.DirFS(filepath.Join(dir, "auth"))); err != nil {
		t.Fatal(err)
	}
	tok, revoked, err := iss.Revoke("n1")
	if err != nil || len(revoked) != 1 {
		t.Fatalf("revoke: %v %v", revoked, err)
	}
	if err := iss.EnsureCreds(auth.RoleNode, "n1", creds); !errors.Is(err, auth.ErrRevoked) {
		t.Fatalf("EnsureCreds of a revoked user: %v, want ErrRevoked", err)
	}
	if _, _, err := iss.Revoke("never-issued"); err == nil {
		t.Error("revoking an unknown name succeeded")
	}
	other, err := auth.Open(copyDir)
	if err != nil {
		t.Fatal(err)
	}
	if changed, err := other.Merge(tok); err != nil || !changed {
		t.Fatalf("merge: %v %v", changed, err)
	}
	if err := other.EnsureCreds(auth.RoleNode, "n1", creds); !errors.Is(err, auth.ErrRevoked) {
		t.Fatalf("after merge the copy does not know the revocation: %v", err)
	}
	stranger, err := auth.Open(filepath.Join(dir, "stranger"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stranger.Merge(tok); err == nil {
		t.Error("merged another cluster's account JWT")
	}
}
