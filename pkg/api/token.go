package api

import "time"

// Enrollment token operations (admin only): a token lets one node that
// boots by itself obtain its own node credentials once (pkg/bootstrap,
// docs/enrollment-token.md). Create and revoke are answered by the leader.
const (
	OpTokenCreate = "token_create"
	OpTokenList   = "token_list"
	OpTokenRevoke = "token_revoke"
)

// Token lifetimes accepted by OpTokenCreate.
const (
	DefaultTokenTTL = 30 * time.Minute
	MaxTokenTTL     = 7 * 24 * time.Hour
	MinTokenTTL     = time.Minute
)

// TokenCreateRequest asks for a token for node, bound to its provider
// instance ID (and provider, when given), valid for TTLSeconds (0 = 30 min;
// at most 7 days).
type TokenCreateRequest struct {
	Node       string `json:"node"`
	InstanceID string `json:"instance_id"`
	Provider   string `json:"provider,omitempty"`
	TTLSeconds int64  `json:"ttl_seconds,omitempty"`
}

// EnrollToken is what the coordinator keeps about a token (never the token
// itself: only its SHA-256, of which ID is the first 12 hex digits).
type EnrollToken struct {
	ID         string    `json:"id"`
	Node       string    `json:"node"`
	InstanceID string    `json:"instance_id"`
	Provider   string    `json:"provider,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	CreatedBy  string    `json:"created_by"`
	// UsedAt and UsedKey say when and for which public user nkey the token
	// was redeemed (zero = not yet).
	UsedAt  time.Time `json:"used_at,omitzero"`
	UsedKey string    `json:"used_key,omitempty"`
	// RevokedAt is set by OpTokenRevoke.
	RevokedAt time.Time `json:"revoked_at,omitzero"`
	// State is pending, used, expired or revoked, as of the reply.
	State string `json:"state"`
}

// TokenCreated answers OpTokenCreate. Token is shown this once.
type TokenCreated struct {
	Token string      `json:"token"`
	Info  EnrollToken `json:"info"`
}

// TokenList answers OpTokenList, oldest first.
type TokenList struct {
	Tokens []EnrollToken `json:"tokens"`
}

// TokenRevokeRequest names the tokens to revoke: one by ID (or a prefix of
// at least 8 hex digits of it), or every unused token of Node.
type TokenRevokeRequest struct {
	ID   string `json:"id,omitempty"`
	Node string `json:"node,omitempty"`
}

// TokenRevoked answers OpTokenRevoke: the IDs revoked now.
type TokenRevoked struct {
	IDs []string `json:"ids"`
}
