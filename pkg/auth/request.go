package auth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// Headers of a signed API request.
const (
	// HeaderJWT carries the operator's user JWT.
	HeaderJWT = "Ringmesh-Jwt"
	// HeaderTime is the signing time, Unix nanoseconds.
	HeaderTime = "Ringmesh-Time"
	// HeaderSig is the nkey signature (base64url, no padding) over
	// SigningInput(subject, time, body).
	HeaderSig = "Ringmesh-Sig"
)

// MaxRequestSkew is how far a signed request's time may be from the
// verifier's clock; inside it, a signature is accepted once.
const MaxRequestSkew = 2 * time.Minute

// SigningInput is what an operator signs: the subject, the time and the
// SHA-256 of the body, one per line.
func SigningInput(subject string, unixNano int64, body []byte) []byte {
	sum := sha256.Sum256(body)
	return fmt.Appendf(nil, "ringmesh-request-v1\n%s\n%d\n%x", subject, unixNano, sum)
}

// Signer signs API requests with a user's nkey.
type Signer struct {
	jwt string
	kp  nkeys.KeyPair
}

// LoadSigner reads a creds file.
func LoadSigner(credsFile string) (*Signer, error) {
	b, err := os.ReadFile(credsFile)
	if err != nil {
		return nil, fmt.Errorf("auth: credentials: %w", err)
	}
	tok, err := jwt.ParseDecoratedJWT(b)
	if err != nil {
		return nil, fmt.Errorf("auth: credentials %s: %w", credsFile, err)
	}
	kp, err := jwt.ParseDecoratedNKey(b)
	if err != nil {
		return nil, fmt.Errorf("auth: credentials %s: %w", credsFile, err)
	}
	return &Signer{jwt: tok, kp: kp}, nil
}

// Sign returns the headers that prove who sends body to subject.
func (s *Signer) Sign(subject string, body []byte) (nats.Header, error) {
	ts := time.Now().UnixNano()
	sig, err := s.kp.Sign(SigningInput(subject, ts, body))
	if err != nil {
		return nil, err
	}
	h := nats.Header{}
	h.Set(HeaderJWT, s.jwt)
	h.Set(HeaderTime, strconv.FormatInt(ts, 10))
	h.Set(HeaderSig, base64.RawURLEncoding.EncodeToString(sig))
	return h, nil
}

// Identity is the verified sender of a request.
type Identity struct {
	// Name is the user's name (operator, node or coordinator name).
	Name string
	// Role is the role in the user's JWT.
	Role Role
	// PublicKey is the user's nkey.
	PublicKey string
}

// String is how the audit names the identity: "<role>:<name> (<key prefix>)".
func (id Identity) String() string {
	k := id.PublicKey
	if len(k) > 12 {
		k = k[:12]
	}
	return string(id.Role) + ":" + id.Name + " (" + k + ")"
}

// Verifier checks signed requests against the issuer's account: the JWT
// must be signed by the account key, unexpired and not revoked, and the
// signature fresh and not seen before.
type Verifier struct {
	iss *Issuer
	now func() time.Time

	mu   sync.Mutex
	seen map[string]time.Time
}

// NewVerifier verifies with iss's account and revocations; now is the clock (nil = time.Now).
func NewVerifier(iss *Issuer, now func() time.Time) *Verifier {
	if now == nil {
		now = time.Now
	}
	return &Verifier{iss: iss, now: now, seen: map[string]time.Time{}}
}

// Errors of Verify.
var (
	ErrUnsigned  = errors.New("request is not signed (meshctl needs --creds)")
	ErrForbidden = errors.New("forbidden")
)

// Verify returns who signed a request to subject with headers h and body.
func (v *Verifier) Verify(subject string, h nats.Header, body []byte) (Identity, error) {
	tok, tsS, sigS := h.Get(HeaderJWT), h.Get(HeaderTime), h.Get(HeaderSig)
	if tok == "" || tsS == "" || sigS == "" {
		return Identity{}, ErrUnsigned
	}
	uc, err := jwt.DecodeUserClaims(tok)
	if err != nil {
		return Identity{}, fmt.Errorf("bad request signature: user JWT: %w", err)
	}
	if uc.Issuer != v.iss.AccountPublicKey() || uc.IssuerAccount != "" {
		return Identity{}, errors.New("bad request signature: user JWT not issued by this cluster's account")
	}
	now := v.now()
	if uc.Expires > 0 && now.Unix() > uc.Expires {
		return Identity{}, errors.New("bad request signature: user JWT expired")
	}
	ts, err := strconv.ParseInt(tsS, 10, 64)
	if err != nil || ts <= 0 {
		return Identity{}, errors.New("bad request signature: bad time header")
	}
	if d := now.Sub(time.Unix(0, ts)); d > MaxRequestSkew || d < -MaxRequestSkew {
		return Identity{}, fmt.Errorf("bad request signature: signed %s away from the coordinator's clock (max %s)", d.Round(time.Second), MaxRequestSkew)
	}
	sig, err := base64.RawURLEncoding.DecodeString(sigS)
	if err != nil {
		return Identity{}, errors.New("bad request signature: signature is not base64url")
	}
	kp, err := nkeys.FromPublicKey(uc.Subject)
	if err != nil {
		return Identity{}, errors.New("bad request signature: bad user key")
	}
	if err := kp.Verify(SigningInput(subject, ts, body), sig); err != nil {
		return Identity{}, errors.New("bad request signature: signature does not match")
	}
	v.iss.mu.Lock()
	lerr := v.iss.loadAccount()
	revoked := lerr == nil && v.iss.accountClaims.IsClaimRevoked(uc)
	v.iss.mu.Unlock()
	if lerr != nil {
		return Identity{}, lerr
	}
	if revoked {
		return Identity{}, fmt.Errorf("%w: credentials of %s are revoked", ErrForbidden, uc.Name)
	}
	var role Role
	for _, t := range uc.Tags {
		if r, ok := strings.CutPrefix(t, "role:"); ok {
			role = Role(r)
		}
	}
	if _, err := ParseRole(string(role)); err != nil {
		return Identity{}, errors.New("bad request signature: user JWT has no role")
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	for k, t := range v.seen {
		if now.Sub(t) > 2*MaxRequestSkew {
			delete(v.seen, k)
		}
	}
	if _, dup := v.seen[sigS]; dup {
		return Identity{}, errors.New("bad request signature: replayed request")
	}
	v.seen[sigS] = now
	return Identity{Name: uc.Name, Role: role, PublicKey: uc.Subject}, nil
}

// Allowed reports whether role may call the API operation op: viewers the
// read operations, admins and coordinators every one, nodes none.
func Allowed(role Role, op string) bool {
	switch role {
	case RoleAdmin, RoleCoordinator:
		return true
	case RoleViewer:
		for _, r := range ReadOps {
			if r == op {
				return true
			}
		}
	}
	return false
}

// Push sends an account JWT to every server's resolver over nc, which must
// be a system-account connection (SystemCreds); servers apply it at once
// (revoked users are disconnected) and store it.
func Push(ctx context.Context, nc *nats.Conn, accountJWT string) error {
	msg, err := nc.RequestWithContext(ctx, "$SYS.REQ.CLAIMS.UPDATE", []byte(accountJWT))
	if err != nil {
		return fmt.Errorf("auth: push account JWT: %w", err)
	}
	// The server answers {"data":{...}} or {"error":{"code":..,"description":..}}.
	if strings.Contains(string(msg.Data), `"error"`) {
		return fmt.Errorf("auth: push account JWT: server said %s", msg.Data)
	}
	return nil
}
