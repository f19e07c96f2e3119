package providers_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ringmesh/ringmesh/pkg/providers"
)

const secret = "s3cr3t-value-never-printed"

func writeCred(t *testing.T, mode os.FileMode, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "cred")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestResolveCredentialEnvWins(t *testing.T) {
	p := writeCred(t, 0o600, "from-file\n")
	t.Setenv("RINGMESH_TEST_KEY", "  from-env \n")
	got, err := providers.ResolveCredential("vast", providers.CredentialSource{Env: "RINGMESH_TEST_KEY", File: p})
	if err != nil || got != "from-env" {
		t.Fatalf("got %q, %v; want from-env", got, err)
	}
}

func TestResolveCredentialFileFallback(t *testing.T) {
	p := writeCred(t, 0o600, "from-file\n")
	t.Setenv("RINGMESH_TEST_KEY", "")
	got, err := providers.ResolveCredential("vast", providers.CredentialSource{Env: "RINGMESH_TEST_KEY", File: p})
	if err != nil || got != "from-file" {
		t.Fatalf("got %q, %v; want from-file", got, err)
	}
}

func TestResolveCredentialRefusesGroupReadableFile(t *testing.T) {
	p := writeCred(t, 0o644, secret)
	t.Setenv("RINGMESH_TEST_KEY", "")
	got, err := providers.ResolveCredential("runpod", providers.CredentialSource{Env: "RINGMESH_TEST_KEY", File: p})
	if err == nil || got != "" {
		t.Fatalf("got %q, %v; want refusal", got, err)
	}
	if !strings.Contains(err.Error(), "chmod 600") || !strings.Contains(err.Error(), p) {
		t.Errorf("error should name the file and the fix: %v", err)
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("error leaks the secret: %v", err)
	}
	if errors.Is(err, providers.ErrNotConfigured) {
		t.Errorf("an unsafe file is a different problem from a missing one: %v", err)
	}
}

func TestResolveCredentialMissing(t *testing.T) {
	t.Setenv("RINGMESH_TEST_KEY", "")
	_, err := providers.ResolveCredential("lambda", providers.CredentialSource{Env: "RINGMESH_TEST_KEY", File: filepath.Join(t.TempDir(), "absent")})
	if !errors.Is(err, providers.ErrNotConfigured) {
		t.Fatalf("err = %v, want ErrNotConfigured", err)
	}
	if !strings.Contains(err.Error(), "RINGMESH_TEST_KEY") {
		t.Errorf("error should say where to put the key: %v", err)
	}
}

func TestResolveCredentialEmptyFileIsMissing(t *testing.T) {
	p := writeCred(t, 0o600, "  \n")
	t.Setenv("RINGMESH_TEST_KEY", "")
	_, err := providers.ResolveCredential("lambda", providers.CredentialSource{Env: "RINGMESH_TEST_KEY", File: p})
	if !errors.Is(err, providers.ErrNotConfigured) {
		t.Fatalf("err = %v, want ErrNotConfigured", err)
	}
}

func TestResolveCredentialDefaultSourceExpandsHome(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("VAST_API_KEY", "")
	dir := filepath.Join(home, ".config", "ringmesh", "credentials")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "vast"), []byte("vast-key"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := providers.ResolveCredential("vast", providers.CredentialSource{})
	if err != nil || got != "vast-key" {
		t.Fatalf("got %q, %v", got, err)
	}
	if providers.ExpandHome("~/x") != filepath.Join(home, "x") || providers.ExpandHome("/abs") != "/abs" {
		t.Errorf("ExpandHome wrong: %q", providers.ExpandHome("~/x"))
	}
}
