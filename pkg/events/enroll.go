package events

import "errors"

// EnrollRequest is what a booting node sends on mesh.v1.enroll (JSON) to
// redeem a one-time enrollment token for its own credential. It arrives
// under the shared bootstrap credential, so it is untrusted: pkg/wire's
// DecodeEnrollRequest bounds, decodes and validates it once.
type EnrollRequest struct {
	// Token is the one-time enrollment token (pattern enroll_token).
	Token string `json:"token"`
	// InstanceID is the node's provider instance ID as the node sees it
	// (Vast CONTAINER_ID, RunPod RUNPOD_POD_ID, or --instance-id); it must
	// equal the one the token was created for.
	InstanceID string `json:"instance_id"`
	// Provider is the node's provider as detected ("" = unknown); when set
	// and the token names one, they must be equal.
	Provider string `json:"provider,omitempty"`
	// Node, when set, is the node ID the node was told it has (--node); it
	// must equal the token's.
	Node string `json:"node,omitempty"`
	// PublicKey is the node's own public user nkey ("U…"), for which the
	// node JWT is signed.
	PublicKey string `json:"public_key"`
}

// MaxEnrollRequestBytes is the largest enrollment request the coordinator
// reads; a valid one is about 300 bytes.
const MaxEnrollRequestBytes = 1024

// Validate checks every field against its pattern; the error names the
// field, never the token's value.
func (r EnrollRequest) Validate() error {
	if !Match("enroll_token", r.Token) {
		return errors.New("token: not an enrollment token (want rme_ and 43 base64url characters)")
	}
	if err := Check("instance_id", "instance_id", r.InstanceID); err != nil {
		return err
	}
	if r.Provider != "" {
		if err := Check("provider", "node", r.Provider); err != nil {
			return err
		}
	}
	if r.Node != "" {
		if err := Check("node", "node", r.Node); err != nil {
			return err
		}
	}
	return Check("public_key", "nkey_user", r.PublicKey)
}
