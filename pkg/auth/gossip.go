package auth

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nkeys"
)

// Gossip identity tokens bind a gossip member's name, role and advertised
// address to the bus credential issued for it, so that a GPU node holding
// the shared gossip key still cannot join as a voter or as another node.
// A token is "<user public key>.<signature>" (about 143 bytes; the
// signature is base64url, no padding, over GossipSigningInput) and is
// carried in the member's gossip metadata.

// GossipSigningInput is what a gossip token signs: cluster label, member
// name and advertised "ip:port", one per line.
func GossipSigningInput(cluster, name, addr string, port int) []byte {
	return []byte("ringmesh-gossip-v1\n" + cluster + "\n" + name + "\n" + net.JoinHostPort(addr, strconv.Itoa(port)))
}

// GossipToken signs this user's gossip identity for member name at
// addr:port in cluster. Its shape matches gossip.Config.Sign.
func (s *Signer) GossipToken(cluster, name, addr string, port int) (string, error) {
	pub, err := s.kp.PublicKey()
	if err != nil {
		return "", err
	}
	sig, err := s.kp.Sign(GossipSigningInput(cluster, name, addr, port))
	if err != nil {
		return "", err
	}
	return pub + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// GossipMemberName is the gossip name a user may claim: a node's own
// ID, or V for coordinator-V.
func GossipMemberName(u Issued) string {
	if u.Role == RoleCoordinator {
		return strings.TrimPrefix(u.Name, "coordinator-")
	}
	return u.Name
}

// GossipVerifier checks gossip identity tokens against the issuer store.
// Its Verify has the shape of gossip.Config.VerifyPeer.
type GossipVerifier struct {
	iss *Issuer

	mu     sync.Mutex
	mod    time.Time
	byKey  map[string]Issued
	loaded bool
}

// NewGossipVerifier verifies against iss's issued users; users.json is
// re-read when it changes, so a revocation counts from the next alive
// message on.
func NewGossipVerifier(iss *Issuer) *GossipVerifier { return &GossipVerifier{iss: iss} }

// Errors of GossipVerifier.Verify.
var (
	ErrNoGossipToken  = errors.New("no identity token")
	ErrBadGossipToken = errors.New("identity token does not verify")
)

// Verify returns nil when token was signed by an unrevoked user of this
// cluster's account whose gossip name is name, for cluster and addr:port,
// and role "coordinator" is claimed only by a coordinator user.
func (v *GossipVerifier) Verify(cluster, name, role, addr string, port int, token string) error {
	if token == "" {
		return ErrNoGossipToken
	}
	pub, sigS, ok := strings.Cut(token, ".")
	if !ok || !nkeys.IsValidPublicUserKey(pub) {
		return fmt.Errorf("%w: malformed", ErrBadGossipToken)
	}
	u, err := v.user(pub)
	if err != nil {
		return err
	}
	if GossipMemberName(u) != name {
		return fmt.Errorf("%w: issued to %s, claimed as %s", ErrBadGossipToken, u.Name, name)
	}
	if role == string(RoleCoordinator) && u.Role != RoleCoordinator {
		return fmt.Errorf("%w: %s claims role coordinator as a %s", ErrBadGossipToken, name, u.Role)
	}
	sig, err := base64.RawURLEncoding.DecodeString(sigS)
	if err != nil {
		return fmt.Errorf("%w: signature is not base64url", ErrBadGossipToken)
	}
	kp, err := nkeys.FromPublicKey(pub)
	if err != nil {
		return fmt.Errorf("%w: bad key", ErrBadGossipToken)
	}
	if kp.Verify(GossipSigningInput(cluster, name, addr, port), sig) != nil {
		return fmt.Errorf("%w: signature does not match %s at %s", ErrBadGossipToken, name, net.JoinHostPort(addr, strconv.Itoa(port)))
	}
	return nil
}

// user returns the unrevoked user with public key pub.
func (v *GossipVerifier) user(pub string) (Issued, error) {
	st, err := os.Stat(v.iss.path("users.json"))
	if err != nil {
		return Issued{}, fmt.Errorf("auth: %w", err)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.loaded || !st.ModTime().Equal(v.mod) {
		users, err := v.iss.Users()
		if err != nil {
			return Issued{}, err
		}
		v.byKey = make(map[string]Issued, len(users))
		for _, u := range users {
			v.byKey[u.PublicKey] = u
		}
		v.mod, v.loaded = st.ModTime(), true
	}
	u, ok := v.byKey[pub]
	if !ok {
		return Issued{}, fmt.Errorf("%w: key not issued by this cluster", ErrBadGossipToken)
	}
	if !u.RevokedAt.IsZero() {
		return Issued{}, fmt.Errorf("%w: credentials of %s are revoked", ErrBadGossipToken, u.Name)
	}
	v.iss.mu.Lock()
	lerr := v.iss.loadAccount()
	revoked := lerr == nil && v.iss.accountClaims.Revocations.IsRevoked(pub, u.IssuedAt)
	v.iss.mu.Unlock()
	if lerr != nil {
		return Issued{}, lerr
	}
	if revoked {
		return Issued{}, fmt.Errorf("%w: credentials of %s are revoked", ErrBadGossipToken, u.Name)
	}
	return u, nil
}
