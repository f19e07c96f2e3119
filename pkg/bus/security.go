package bus

import (
	"crypto/tls"
	"net/url"
	"path/filepath"
	"strings"
)

// Security turns on NATS decentralized authentication (operator → accounts
// → user JWTs signed with nkeys) and TLS for an embedded server
// (pkg/bus/busserver applies it). pkg/auth
// builds it from the issuer store; see docs/security.md.
type Security struct {
	// OperatorJWT is the trusted operator's JWT (required).
	OperatorJWT string
	// SystemAccount is the public key of the system account; it must be
	// among AccountJWTs.
	SystemAccount string
	// AccountJWTs maps account public keys to their JWTs. They are stored in
	// the server's account resolver directory (<StoreDir>/jwt) when newer
	// than what is there, so a revocation pushed at runtime survives a restart.
	AccountJWTs map[string]string
	// TLS, when set, is the server side of client connections: every
	// client must then use TLS.
	TLS *tls.Config
	// RouteTLS, when set, secures the cluster routes; it should require and
	// verify the peer's certificate (mTLS between voters).
	RouteTLS *tls.Config
}

// ResolverDir is where the embedded server keeps account JWTs.
func ResolverDir(storeDir string) string { return filepath.Join(storeDir, "jwt") }

// Redact removes user info (user:password, token) from every URL in a
// comma-joined list, for logs and errors.
func Redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, u := range parts {
		parts[i] = RedactURL(strings.TrimSpace(u))
	}
	return strings.Join(parts, ",")
}

// RedactURL returns u without its user info; unparsable input becomes "<invalid URL>".
func RedactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "<invalid URL>"
	}
	if p.User != nil {
		p.User = url.User("redacted")
	}
	return p.String()
}
