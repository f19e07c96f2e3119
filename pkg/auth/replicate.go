package auth

import (
	"errors"
	"fmt"

	"github.com/nats-io/nkeys"

	"github.com/ringmesh/ringmesh/pkg/mesh"
)

// Valid checks a user record that arrives from outside this store (another
// voter's copy, through the coordinators' replication): a known role, a
// name that is a node ID (a user name is one: node, coordinator-<voter>,
// operator) and a public user nkey.
func (u Issued) Valid() error {
	if _, err := ParseRole(string(u.Role)); err != nil {
		return fmt.Errorf("auth: user record: %w", err)
	}
	if err := mesh.ValidateNodeID(u.Name); err != nil {
		return fmt.Errorf("auth: user record: name: %w", err)
	}
	if !nkeys.IsValidPublicUserKey(u.PublicKey) {
		return fmt.Errorf("auth: user record %s: %q is not a public user nkey", u.Name, u.PublicKey)
	}
	if u.IssuedAt.IsZero() {
		return fmt.Errorf("auth: user record %s: no issue time", u.Name)
	}
	return nil
}

// MergeUsers folds user records issued or revoked on another voter into
// this store's users.json, so that every voter knows every credential
// (who may be revoked, whose gossip token is genuine): a record with an
// unknown public key is added; a known one takes the other's revocation
// when it is revoked there and not here. Nothing is ever removed and a
// revocation is never undone. It returns how many records changed. An
// invalid record, or one whose key this store has under another name or
// role, is left out and named in the error; the others are still merged.
//
// A revocation learned here is a record, not a NATS revocation: the voter
// that revoked pushed the account JWT to the servers, and RevokeAndPush
// merges the servers' revocations before it pushes its own.
func (iss *Issuer) MergeUsers(in []Issued) (int, error) {
	var bad []error
	iss.mu.Lock()
	defer iss.mu.Unlock()
	users, err := iss.users()
	if err != nil {
		return 0, err
	}
	byKey := make(map[string]int, len(users))
	for i, u := range users {
		byKey[u.PublicKey] = i
	}
	changed := 0
	for _, u := range in {
		if err := u.Valid(); err != nil {
			bad = append(bad, err)
			continue
		}
		i, ok := byKey[u.PublicKey]
		switch {
		case !ok:
			byKey[u.PublicKey] = len(users)
			users = append(users, u)
			changed++
		case users[i].Name != u.Name || users[i].Role != u.Role:
			bad = append(bad, fmt.Errorf("auth: user record for key %s says %s/%s, this store %s/%s", u.PublicKey, u.Role, u.Name, users[i].Role, users[i].Name))
		case users[i].RevokedAt.IsZero() && !u.RevokedAt.IsZero():
			users[i].RevokedAt = u.RevokedAt
			changed++
		}
	}
	if changed > 0 {
		if err := iss.saveUsers(users); err != nil {
			return 0, err
		}
	}
	return changed, errors.Join(bad...)
}
