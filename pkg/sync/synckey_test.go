package meshsync

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/ringmesh/ringmesh/pkg/sync/sshtest"
)

func TestSyncKeyAndCertSigner(t *testing.T) {
	p := filepath.Join(t.TempDir(), "state", SyncKeyFile)
	k, err := LoadOrCreateSyncKey(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file %v %v", fi, err)
	}
	k2, err := LoadOrCreateSyncKey(p)
	if err != nil || PublicKeyLine(k2.PublicKey()) != PublicKeyLine(k.PublicKey()) {
		t.Fatalf("reload gave another key: %v", err)
	}
	if !strings.HasPrefix(PublicKeyLine(k.PublicKey()), "ssh-ed25519 ") || strings.ContainsAny(PublicKeyLine(k.PublicKey()), "\n") {
		t.Fatalf("public line %q", PublicKeyLine(k.PublicKey()))
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateSyncKey(p); err == nil {
		t.Error("a world-readable key was accepted")
	}

	ca, _ := sshtest.NewKeyPair()
	now := time.Now()
	sign := func(mod func(c *ssh.Certificate)) string {
		c := &ssh.Certificate{Key: k.PublicKey(), CertType: ssh.UserCert, KeyId: "vast-1", ValidPrincipals: []string{"ringmesh-sync"},
			ValidAfter: uint64(now.Add(-time.Minute).Unix()), ValidBefore: uint64(now.Add(time.Hour).Unix())}
		if mod != nil {
			mod(c)
		}
		if err := c.SignCert(rand.Reader, ca.Signer); err != nil {
			t.Fatal(err)
		}
		return string(ssh.MarshalAuthorizedKey(c))
	}
	s, cert, err := CertSigner(sign(nil), k, "vast-1", "ringmesh-sync", now)
	if err != nil || cert.KeyId != "vast-1" || s.PublicKey().Type() != ssh.CertAlgoED25519v01 {
		t.Fatalf("good cert: %v", err)
	}
	other, _ := sshtest.NewKeyPair()
	for name, line := range map[string]string{
		"other key":       sign(func(c *ssh.Certificate) { c.Key = other.Signer.PublicKey() }),
		"other node":      sign(func(c *ssh.Certificate) { c.KeyId = "vast-2" }),
		"wrong principal": sign(func(c *ssh.Certificate) { c.ValidPrincipals = []string{"root"} }),
		"expired":         sign(func(c *ssh.Certificate) { c.ValidBefore = uint64(now.Add(-time.Second).Unix()) }),
		"not yet valid":   sign(func(c *ssh.Certificate) { c.ValidAfter = uint64(now.Add(time.Hour).Unix()) }),
		"forever":         sign(func(c *ssh.Certificate) { c.ValidBefore = ssh.CertTimeInfinity }),
		"host cert":       sign(func(c *ssh.Certificate) { c.CertType = ssh.HostCert }),
		"plain key":       string(other.AuthorizedKey),
		"garbage":         "ssh-ed25519-cert-v01@openssh.com !!!",
	} {
		if _, _, err := CertSigner(line, k, "vast-1", "ringmesh-sync", now); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
