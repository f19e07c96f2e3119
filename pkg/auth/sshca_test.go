package auth

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

func newSSHKey(t *testing.T) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSSHCAAndSyncCert(t *testing.T) {
	iss, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := iss.SSHCAPublicKey(); !errors.Is(err, ErrNoSSHCA) {
		t.Fatalf("fresh store: %v, want ErrNoSSHCA (the CA is made by target setup only)", err)
	}
	key := newSSHKey(t).PublicKey()
	if _, err := iss.SignSyncCert(SyncCertRequest{Node: "vast-1", Key: key, Principal: "ringmesh-sync"}); !errors.Is(err, ErrNoSSHCA) {
		t.Fatalf("sign without CA: %v", err)
	}
	ca, err := iss.EnsureSSHCA()
	if err != nil {
		t.Fatal(err)
	}
	again, err := iss.EnsureSSHCA()
	if err != nil || !bytes.Equal(again.Marshal(), ca.Marshal()) {
		t.Fatalf("EnsureSSHCA replaced the CA: %v", err)
	}
	if fi, err := os.Stat(iss.path(sshCAKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("CA key file %v %v", fi, err)
	}

	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	cert, err := iss.SignSyncCert(SyncCertRequest{Node: "vast-1", Key: key, Principal: "ringmesh-sync", Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if cert.KeyId != "vast-1" || len(cert.ValidPrincipals) != 2 || cert.ValidPrincipals[0] != "ringmesh-sync" || cert.ValidPrincipals[1] != "ringmesh-sync+sftp" ||
		cert.CertType != ssh.UserCert || cert.ValidBefore != uint64(now.Add(DefaultSyncCertValidity).Unix()) {
		t.Fatalf("cert %+v", cert)
	}
	if len(cert.Extensions) != 0 || cert.CriticalOptions["force-command"] != "ringmesh-sync-sftp --node=vast-1" {
		t.Fatalf("permissions %+v: want no extensions (no pty, forwarding) and force-command ringmesh-sync-sftp --node=vast-1", cert.Permissions)
	}
	if node, err := ParseSyncForceCommand(cert.CriticalOptions["force-command"]); err != nil || node != "vast-1" {
		t.Fatalf("ParseSyncForceCommand = %q, %v", node, err)
	}
	for _, bad := range []string{"internal-sftp", "ringmesh-sync-sftp --node=", "ringmesh-sync-sftp --node=../x",
		"ringmesh-sync-sftp --node=a b", "ringmesh-sync-sftp --node=vast-1; sh", "x ringmesh-sync-sftp --node=vast-1"} {
		if node, err := ParseSyncForceCommand(bad); err == nil {
			t.Errorf("ParseSyncForceCommand(%q) = %q, want an error", bad, node)
		}
	}

	// What sshd checks, with x/crypto's CertChecker: signed by the CA,
	// principal, validity.
	checker := &ssh.CertChecker{
		IsUserAuthority:          func(auth ssh.PublicKey) bool { return bytes.Equal(auth.Marshal(), ca.Marshal()) },
		SupportedCriticalOptions: []string{"force-command"}, // as sshd
		Clock:                    func() time.Time { return now },
	}
	if err := checker.CheckCert("ringmesh-sync", cert); err != nil {
		t.Fatalf("valid cert refused: %v", err)
	}
	if err := checker.CheckCert("root", cert); err == nil {
		t.Error("cert accepted for another principal (root)")
	}
	checker.Clock = func() time.Time { return now.Add(DefaultSyncCertValidity + time.Second) }
	if err := checker.CheckCert("ringmesh-sync", cert); err == nil {
		t.Error("expired cert accepted")
	}
	checker.Clock = func() time.Time { return now }
	other, _ := Open(t.TempDir())
	if _, err := other.EnsureSSHCA(); err != nil {
		t.Fatal(err)
	}
	foreign, err := other.SignSyncCert(SyncCertRequest{Node: "vast-1", Key: key, Principal: "ringmesh-sync", Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := checker.Authenticate(fakeConn{"ringmesh-sync"}, foreign); err == nil {
		t.Error("cert of another CA accepted")
	}

	for name, r := range map[string]SyncCertRequest{
		"root account": {Node: "vast-1", Key: key, Principal: "root"},
		"bad account":  {Node: "vast-1", Key: key, Principal: "-oProxy"},
		"bad node":     {Node: "vast 1", Key: key, Principal: "ringmesh-sync"},
		"too long":     {Node: "vast-1", Key: key, Principal: "ringmesh-sync", Validity: 48 * time.Hour},
		"cert as key":  {Node: "vast-1", Key: cert, Principal: "ringmesh-sync"},
		"no key":       {Node: "vast-1", Principal: "ringmesh-sync"},
	} {
		if _, err := iss.SignSyncCert(r); err == nil {
			t.Errorf("%s: signed", name)
		}
	}

	// A revoked node gets no certificate; enrolled again, it does.
	if _, err := iss.Issue(RoleNode, "vast-2"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := iss.Revoke("vast-2"); err != nil {
		t.Fatal(err)
	}
	if _, err := iss.SignSyncCert(SyncCertRequest{Node: "vast-2", Key: key, Principal: "ringmesh-sync"}); !errors.Is(err, ErrRevoked) {
		t.Fatalf("revoked node: %v, want ErrRevoked", err)
	}
	if _, err := iss.Issue(RoleNode, "vast-2"); err != nil {
		t.Fatal(err)
	}
	if _, err := iss.SignSyncCert(SyncCertRequest{Node: "vast-2", Key: key, Principal: "ringmesh-sync"}); err != nil {
		t.Fatalf("re-enrolled node: %v", err)
	}
}

type fakeConn struct{ user string }

func (f fakeConn) User() string        { return f.user }
func (fakeConn) SessionID() []byte     { return nil }
func (fakeConn) ClientVersion() []byte { return nil }
func (fakeConn) ServerVersion() []byte { return nil }
func (fakeConn) RemoteAddr() net.Addr  { return &net.TCPAddr{} }
func (fakeConn) LocalAddr() net.Addr   { return &net.TCPAddr{} }
