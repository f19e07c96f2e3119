// Package bootstrap is enrollment by one-time token: a node that boots by
// itself (the startup script of a launched Vast or RunPod instance) holds
// only the shared bootstrap credential (role bootstrap: it may send one
// request on bus.EnrollSubject and read its reply, nothing else) and a
// token an admin created for it (`meshctl token create`). It generates its
// own user nkey pair, sends the public key, the token and its provider
// instance ID, and receives a node user JWT for that key; the private key
// never leaves the node. The leader coordinator checks the token (hash,
// expiry, unused, instance ID and provider) and marks it used atomically
// (pkg/coordinator/enroll.go). docs/enrollment-token.md has the design.
package bootstrap

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"

	"github.com/ringmesh/ringmesh/pkg/events"
)

// TokenPrefix starts every enrollment token, so a leaked one is easy to
// recognise (secret scanners, logs).
const TokenPrefix = "rme_"

// MaxRequestBytes is the largest enrollment request the coordinator reads.
const MaxRequestBytes = events.MaxEnrollRequestBytes

// NewToken returns a fresh token: TokenPrefix and 32 random bytes
// (256 bits) in unpadded base64url, 47 characters in all.
func NewToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("bootstrap: random token: %w", err)
	}
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// HashToken is the hex SHA-256 of a token: the only form the coordinator
// stores (a KV key), so reading the store does not yield a usable token.
func HashToken(tok string) string {
	s := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(s[:])
}

// ValidToken reports whether tok has the shape NewToken makes.
func ValidToken(tok string) bool { return events.Match("enroll_token", tok) }

// Request is what a booting node sends on bus.EnrollSubject (JSON); the
// contract type lives in pkg/events, its decoding in pkg/wire.
type Request = events.EnrollRequest

// Reply answers a Request: either the node's ID and its user JWT (signed
// for Request.PublicKey), or Error. Refusals are deliberately alike ("token
// refused: …" names which check failed, never a stored value).
type Reply struct {
	Node  string `json:"node,omitempty"`
	JWT   string `json:"jwt,omitempty"`
	Error string `json:"error,omitempty"`
	// Retry is set when the refusal is temporary (rate limit, store
	// unavailable): the node may ask again later with the same token.
	Retry bool `json:"retry,omitempty"`
}
