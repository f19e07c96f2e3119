package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/auth"
	"github.com/ringmesh/ringmesh/pkg/events"
	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/synctarget"
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
		a := auditRevoke(ctx, r.Name, out.PublicKeys, err)
		if err == nil {
			c.revokeSyncOnTargets(ctx, r.Name, "credentials revoked by "+a.Actor, &a)
		}
		c.audit(ctx, "revoke", "revoke:"+r.Name+":"+revoked[len(revoked)-1].PublicKey, a)
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

// revokeSyncOnTargets sends every sync target set up from this voter's
// issuer store (sync-targets.json) a sync_revoke command for node, so that
// the target's own agent adds it to the target's KRL at once
// (events.VerbSyncRevoke); a target whose agent cannot (not root, down
// longer than the command stream keeps it) still refuses the node once its
// last certificate expires, since none is signed for a revoked node. The
// targets sent to, and those that could not be, go into a's Detail.
func (c *Coordinator) revokeSyncOnTargets(ctx context.Context, node, why string, a *events.Audit) {
	if c.cfg.Auth == nil || c.isVoter(node) {
		return
	}
	recs, err := synctarget.LoadRecords(c.cfg.Auth.Dir())
	if err != nil {
		c.log.Warn().Err(err).Str("node", node).Msg("sync revocation: reading the sync target records")
		return
	}
	var sent, failed []string
	for _, name := range slices.Sorted(maps.Keys(recs)) {
		rec := recs[name]
		if name == node {
			continue
		}
		err := c.command(ctx, name, events.VerbSyncRevoke, map[string]string{
			"node": node, "account": rec.Account, "chroot": rec.ChrootDir, "conf_dir": rec.ConfDir,
		}, why)
		if err != nil {
			c.log.Warn().Err(err).Str("node", node).Str("target", name).Msg("sync revocation not sent")
			failed = append(failed, name)
			continue
		}
		sent = append(sent, name)
	}
	if a.Detail == nil {
		a.Detail = map[string]string{}
	}
	if len(sent) > 0 {
		a.Detail["sync_revoke_sent"] = strings.Join(sent, ",")
	}
	if len(failed) > 0 {
		a.Detail["sync_revoke_failed"] = strings.Join(failed, ",")
	}
}
