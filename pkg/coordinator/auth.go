package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/auth"
	"github.com/ringmesh/ringmesh/pkg/events"
	"github.com/ringmesh/ringmesh/pkg/mesh"
)

type identityKey struct{}

// identityFrom returns the verified sender of the API request being
// answered (ok false when the coordinator runs without authentication).
func identityFrom(ctx context.Context) (auth.Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(auth.Identity)
	return id, ok
}

// actor is how the audit names who asked: the verified identity, or what
// the request claimed, marked as such, when authentication is off.
func actor(ctx context.Context, claimed string) string {
	if id, ok := identityFrom(ctx); ok {
		return id.String()
	}
	if claimed == "" {
		return "unauthenticated"
	}
	return claimed + " (claimed, unauthenticated)"
}

// authorize checks the signature of an API request and the role of its
// sender; it returns ctx carrying the identity. Without Auth every request passes.
func (c *Coordinator) authorize(ctx context.Context, op string, r micro.Request) (context.Context, error) {
	if c.verifier == nil {
		return ctx, nil
	}
	id, err := c.verifier.Verify(r.Subject(), nats.Header(r.Headers()), r.Data())
	if err != nil {
		c.log.Warn().Str("op", op).Err(err).Msg("API request refused")
		return ctx, err
	}
	if !auth.Allowed(id.Role, op) {
		c.log.Warn().Str("op", op).Str("who", id.String()).Msg("API request refused: role")
		return ctx, fmt.Errorf("%w: %s may not call %s (role %s)", auth.ErrForbidden, id.Name, op, id.Role)
	}
	return context.WithValue(ctx, identityKey{}, id), nil
}

// ownCreds issues (once) this coordinator's own user in the store.
func (c *Coordinator) ownCreds() (string, error) {
	name := "coordinator-" + c.cfg.Name
	p := filepath.Join(c.cfg.Auth.Dir(), "creds", name+".creds")
	if err := c.cfg.Auth.EnsureCreds(auth.RoleCoordinator, name, p); err != nil {
		return "", err
	}
	return p, nil
}

// apiRevoke revokes a name's credentials and applies it on the bus at once.
func (c *Coordinator) apiRevoke(ctx context.Context, req []byte) (any, error) {
	var r api.RevokeRequest
	if err := json.Unmarshal(req, &r); err != nil || r.Name == "" {
		return nil, errors.New(`bad request: want {"name": "<node, coordinator or operator name>"}`)
	}
	if err := mesh.ValidateNodeID(r.Name); err != nil {
		return nil, fmt.Errorf("bad request: %w", err)
	}
	if c.cfg.Auth == nil {
		return nil, errors.New("this coordinator has no issuer store (--auth-dir); revoke with `meshctl creds revoke --store DIR` on a voter that has it")
	}
	if id, ok := identityFrom(ctx); ok && id.Name == r.Name {
		return nil, errors.New("refusing to revoke the credentials this request is signed with")
	}
	revoked, err := c.cfg.Auth.RevokeAndPush(ctx, c.busURLs, r.Name)
	out := api.Revoked{Name: r.Name}
	for _, u := range revoked {
		out.PublicKeys = append(out.PublicKeys, u.PublicKey)
	}
	if len(revoked) > 0 {
		c.audit(ctx, "revoke", "revoke:"+r.Name+":"+revoked[len(revoked)-1].PublicKey, auditRevoke(ctx, r.Name, out.PublicKeys, err))
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

func auditRevoke(ctx context.Context, name string, keys []string, err error) events.Audit {
	d := map[string]string{"keys": strings.Join(keys, ",")}
	if err != nil {
		d["error"] = err.Error()
	}
	return events.Audit{Kind: "revoke", Node: name, Cause: "credentials revoked", Actor: actor(ctx, ""), Detail: d}
}
