package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/ringmesh/ringmesh/pkg/mesh"
)

// SSH certificate authority for sync (docs/security.md, "Sync targets").
//
// The CA is an ed25519 key kept in the issuer store next to the other CA
// material: ssh-ca.key (OpenSSH private key, 0600) and ssh-ca.pub (one
// authorized_keys line). `meshctl target setup` creates it (EnsureSSHCA) and
// installs the public half on each persistent target as TrustedUserCAKeys;
// the leader coordinator signs each node's sync key with it (SignSyncCert).

// DefaultSyncCertValidity is how long a sync certificate is valid. The leader
// renews a node's certificate once less than half of it is left (with every
// sync_targets command, at least every 30 s), so a node that loses its bus
// credentials (meshctl revoke) can use its last certificate at most this long
// without the target's RevokedKeys list.
const DefaultSyncCertValidity = 2 * time.Hour

// syncCertBackdate is subtracted from ValidAfter to tolerate clock skew
// between the voter and the target.
const syncCertBackdate = 5 * time.Minute

// ErrNoSSHCA: the issuer store holds no SSH CA yet (`meshctl target setup`
// creates one).
var ErrNoSSHCA = errors.New("no ringmesh SSH CA in the issuer store (meshctl target setup creates it)")

const (
	sshCAKeyFile = "ssh-ca.key"
	sshCAPubFile = "ssh-ca.pub"
)

// EnsureSSHCA creates the SSH CA when the store holds none and returns its
// public key. It is idempotent: an existing CA is loaded, never replaced.
func (iss *Issuer) EnsureSSHCA() (ssh.PublicKey, error) {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	if s, err := iss.loadSSHCA(); err == nil {
		return s.PublicKey(), nil
	} else if !errors.Is(err, ErrNoSSHCA) {
		return nil, err
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("auth: generate SSH CA: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "ringmesh-ssh-ca")
	if err != nil {
		return nil, fmt.Errorf("auth: encode SSH CA: %w", err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, err
	}
	if err := writeFile(iss.path(sshCAKeyFile), pem.EncodeToMemory(block)); err != nil {
		return nil, err
	}
	if err := writeFile(iss.path(sshCAPubFile), ssh.MarshalAuthorizedKey(signer.PublicKey())); err != nil {
		return nil, err
	}
	return signer.PublicKey(), nil
}

// SSHCAPublicKey returns the SSH CA's public key, or ErrNoSSHCA.
func (iss *Issuer) SSHCAPublicKey() (ssh.PublicKey, error) {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	s, err := iss.loadSSHCA()
	if err != nil {
		return nil, err
	}
	return s.PublicKey(), nil
}

func (iss *Issuer) loadSSHCA() (ssh.Signer, error) {
	b, err := os.ReadFile(iss.path(sshCAKeyFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoSSHCA
	}
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	s, err := ssh.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("auth: %s: %w", iss.path(sshCAKeyFile), err)
	}
	return s, nil
}

// SyncCertRequest asks for a sync certificate.
type SyncCertRequest struct {
	// Node is the node ID; it becomes the certificate's KeyId (what sshd logs
	// and what a KRL revokes with "id: <node>").
	Node string
	// Key is the node's own sync public key (ed25519), as its agent reported it.
	Key ssh.PublicKey
	// Principal is the target's sync account (e.g. "ringmesh-sync").
	Principal string
	// Validity; 0 = DefaultSyncCertValidity, at most 24 h.
	Validity time.Duration
	// Now is the signing time (zero = time.Now()).
	Now time.Time
}

// SyncShellName is the name of the agent binary inside a sync target's
// chroot, where it is the sync account's login shell (/bin/<name>) and
// serves SFTP confined to the node's own directory (internal/syncserve).
const SyncShellName = "ringmesh-sync-sftp"

// SyncNodePrincipal is the second principal of every sync certificate for
// account, next to the account itself: "<account>+sftp" ('+' is not in an
// account name, so it names no login). A target set up by `meshctl target
// setup` accepts only certificates naming it (AuthorizedPrincipalsFile), so
// certificates signed before the per-node SFTP server existed (the account
// as the only principal, force-command=internal-sftp) are refused there at
// once, and a certificate for another account is refused as before.
func SyncNodePrincipal(account string) string { return account + "+sftp" }

// SyncForceCommand is the force-command critical option of node's sync
// certificate: "ringmesh-sync-sftp --node=<node>". On a target set up by
// `meshctl target setup` sshd runs it through the account's shell, the
// agent binary, which serves only <incoming>/<node>; on a target whose
// sshd configuration forces internal-sftp, that configuration wins.
func SyncForceCommand(node string) string { return SyncShellName + " --node=" + node }

// ParseSyncForceCommand returns the node of a SyncForceCommand string; an
// error for anything else or an invalid node ID.
func ParseSyncForceCommand(cmd string) (string, error) {
	node, ok := strings.CutPrefix(cmd, SyncShellName+" --node=")
	if !ok {
		return "", fmt.Errorf("forced command %q: want %q", cmd, SyncForceCommand("<node>"))
	}
	if err := ValidSyncNode(node); err != nil {
		return "", fmt.Errorf("forced command %q: %w", cmd, err)
	}
	return node, nil
}

// ValidSyncNode checks a node ID that names a directory on a sync target.
func ValidSyncNode(node string) error {
	if err := mesh.ValidateNodeID(node); err != nil {
		return err
	}
	if node == "." || node == ".." || strings.ContainsAny(node, "/\\") {
		return fmt.Errorf("node ID %q cannot name a directory", node)
	}
	return nil
}

// SignSyncCert signs a short-lived SSH user certificate for a node's sync
// key: KeyId = node ID, ValidPrincipals = [Principal, SyncNodePrincipal(Principal)], ValidBefore = now +
// Validity, the critical option force-command=SyncForceCommand(node) and no
// extensions (so no pty, no port, agent or X11 forwarding, no user rc). It
// refuses a node whose bus credentials are all revoked (users.json), an invalid
// node ID or account name, a key that is not ed25519 or is a certificate
// itself, and ErrNoSSHCA when the store has no CA.
func (iss *Issuer) SignSyncCert(r SyncCertRequest) (*ssh.Certificate, error) {
	if err := mesh.ValidateNodeID(r.Node); err != nil {
		return nil, fmt.Errorf("auth: sync certificate: %w", err)
	}
	if !ValidSyncAccount(r.Principal) {
		return nil, fmt.Errorf("auth: sync certificate for %s: account %q is not a valid unprivileged login name", r.Node, r.Principal)
	}
	if r.Key == nil || r.Key.Type() != ssh.KeyAlgoED25519 {
		return nil, fmt.Errorf("auth: sync certificate for %s: want an ssh-ed25519 key", r.Node)
	}
	if r.Validity <= 0 {
		r.Validity = DefaultSyncCertValidity
	}
	if r.Validity > 24*time.Hour {
		return nil, fmt.Errorf("auth: sync certificate for %s: validity %s is over 24h", r.Node, r.Validity)
	}
	if r.Now.IsZero() {
		r.Now = time.Now()
	}
	iss.mu.Lock()
	defer iss.mu.Unlock()
	users, err := iss.users()
	if err != nil {
		return nil, err
	}
	// Refused when every user issued under the name is revoked (a node
	// enrolled again after a revocation has a fresh, unrevoked user).
	var revokedAt time.Time
	active := false
	for _, u := range users {
		if u.Name != r.Node {
			continue
		}
		if u.RevokedAt.IsZero() {
			active = true
		} else {
			revokedAt = u.RevokedAt
		}
	}
	if !active && !revokedAt.IsZero() {
		return nil, fmt.Errorf("auth: sync certificate for %s: %w (since %s)", r.Node, ErrRevoked, revokedAt.UTC().Format(time.RFC3339))
	}
	ca, err := iss.loadSSHCA()
	if err != nil {
		return nil, err
	}
	var serial [8]byte
	if _, err := rand.Read(serial[:]); err != nil {
		return nil, err
	}
	cert := &ssh.Certificate{
		Key:             r.Key,
		Serial:          uint64(serial[0])<<56 | uint64(serial[1])<<48 | uint64(serial[2])<<40 | uint64(serial[3])<<32 | uint64(serial[4])<<24 | uint64(serial[5])<<16 | uint64(serial[6])<<8 | uint64(serial[7]),
		CertType:        ssh.UserCert,
		KeyId:           r.Node,
		ValidPrincipals: []string{r.Principal, SyncNodePrincipal(r.Principal)},
		ValidAfter:      uint64(r.Now.Add(-syncCertBackdate).Unix()),
		ValidBefore:     uint64(r.Now.Add(r.Validity).Unix()),
		Permissions: ssh.Permissions{
			CriticalOptions: map[string]string{"force-command": SyncForceCommand(r.Node)},
			Extensions:      map[string]string{},
		},
	}
	if err := cert.SignCert(rand.Reader, ca); err != nil {
		return nil, fmt.Errorf("auth: sign sync certificate for %s: %w", r.Node, err)
	}
	return cert, nil
}

// ValidSyncAccount reports whether name may be a sync account: a POSIX
// login name (events "user" pattern, non-empty) that is not root.
func ValidSyncAccount(name string) bool {
	if name == "" || name == "root" || len(name) > 32 {
		return false
	}
	for i, c := range name {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_':
		case i > 0 && (c >= '0' && c <= '9' || c == '.' || c == '-'):
		default:
			return false
		}
	}
	return true
}
