package auth

import (
	"fmt"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// IssueForKey signs a user JWT of role node named name for a public user
// nkey the node generated itself (enrollment by one-time token: the
// private key never leaves the node). It returns the JWT and records the
// user in users.json like Issue; pub must be a user public key ("U…").
// The same name rule as Issue applies: a name held by an unrevoked user
// of another role is refused.
func (iss *Issuer) IssueForKey(name, pub string) (string, error) {
	perms, err := Permissions(RoleNode, name)
	if err != nil {
		return "", err
	}
	if !nkeys.IsValidPublicUserKey(pub) {
		return "", fmt.Errorf("auth: %q is not a public user nkey", pub)
	}
	uc := jwt.NewUserClaims(pub)
	uc.Name = name
	uc.Tags.Add("role:" + string(RoleNode))
	uc.Permissions = perms
	limitRole(RoleNode, &uc.Limits)
	tok, err := uc.Encode(iss.account)
	if err != nil {
		return "", err
	}
	iss.mu.Lock()
	defer iss.mu.Unlock()
	users, err := iss.users()
	if err != nil {
		return "", err
	}
	for _, u := range users {
		if u.Name == name && u.Role != RoleNode && u.RevokedAt.IsZero() {
			return "", fmt.Errorf("auth: %q already holds unrevoked %s credentials; revoke them first or choose another name", name, u.Role)
		}
	}
	users = append(users, Issued{Name: name, Role: RoleNode, PublicKey: pub, IssuedAt: time.Unix(uc.IssuedAt, 0).UTC()})
	if err := iss.saveUsers(users); err != nil {
		return "", err
	}
	return tok, nil
}
