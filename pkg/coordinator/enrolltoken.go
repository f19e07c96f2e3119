package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/auth"
	"github.com/ringmesh/ringmesh/pkg/bootstrap"
	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/events"
	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/wire"
)

// Enrollment tokens live in KV mesh_state under enrollKeyPrefix + the hex
// SHA-256 of the token (the token itself is never stored), so every voter
// sees them and a fail-over keeps them (one subject token after the dot,
// so the prefix filter "enroll.*" lists them). Redeeming one is a compare-and-set
// on that key's revision: of two concurrent presentations exactly one wins.
const enrollKeyPrefix = "enroll."

// enrollPrune is how long after expiry a token record is kept (for list and audit).
const enrollPrune = 7 * 24 * time.Hour

// tokenRecord is the stored form: the API view plus the JWT issued when it
// was redeemed (a public value, so a repeated request with the same key
// gets the same answer).
type tokenRecord struct {
	api.EnrollToken
	Hash string `json:"hash"`
	JWT  string `json:"jwt,omitempty"`
}

func (r tokenRecord) view(now time.Time) api.EnrollToken {
	v := r.EnrollToken
	switch {
	case !v.RevokedAt.IsZero():
		v.State = "revoked"
	case !v.UsedAt.IsZero():
		v.State = "used"
	case now.After(v.ExpiresAt):
		v.State = "expired"
	default:
		v.State = "pending"
	}
	return v
}

func (c *Coordinator) stateKV(ctx context.Context) (jetstream.KeyValue, error) {
	return c.js.KeyValue(ctx, bus.BucketState)
}

func (c *Coordinator) apiTokenCreate(ctx context.Context, req []byte) (any, error) {
	var r api.TokenCreateRequest
	if err := json.Unmarshal(req, &r); err != nil {
		return nil, errors.New(`bad request: want {"node": …, "instance_id": …, "provider": …, "ttl_seconds": …}`)
	}
	if err := mesh.ValidateNodeID(r.Node); err != nil {
		return nil, fmt.Errorf("bad request: node: %w", err)
	}
	if err := events.Check("instance_id", "instance_id", r.InstanceID); err != nil {
		return nil, fmt.Errorf("bad request: %w", err)
	}
	if r.Provider != "" && (!events.Match("node", r.Provider) || !mesh.KnownProvider(r.Provider)) {
		return nil, fmt.Errorf("bad request: unknown provider %q", events.StripControl(r.Provider))
	}
	ttl := time.Duration(r.TTLSeconds) * time.Second
	if r.TTLSeconds == 0 {
		ttl = api.DefaultTokenTTL
	}
	if ttl < api.MinTokenTTL || ttl > api.MaxTokenTTL {
		return nil, fmt.Errorf("bad request: ttl %s: want between %s and %s", ttl, api.MinTokenTTL, api.MaxTokenTTL)
	}
	if c.cfg.Auth == nil {
		return nil, errors.New("this coordinator has no issuer store (--auth-dir): it cannot issue node credentials, so it makes no enrollment tokens")
	}
	if c.isVoter(r.Node) || strings.HasPrefix(r.Node, "coordinator-") || r.Node == "bootstrap" {
		return nil, fmt.Errorf("bad request: %s is a voter or a reserved name; enrollment tokens are for nodes", r.Node)
	}
	users, err := c.cfg.Auth.Users()
	if err != nil {
		return nil, err
	}
	for _, u := range users {
		if u.Name == r.Node && u.Role != auth.RoleNode && u.RevokedAt.IsZero() {
			return nil, fmt.Errorf("bad request: %s holds %s credentials; a token cannot make it a node", r.Node, u.Role)
		}
	}
	tok, rec, err := c.issueToken(ctx, r.Node, r.InstanceID, r.Provider, ttl, actor(ctx, ""))
	if err != nil {
		return nil, err
	}
	return api.TokenCreated{Token: tok, Info: rec.view(c.cfg.Now())}, nil
}

// issueToken makes and stores one token for node. instanceID "" is a
// launch token: unbound until the create call answers (bindToken), and
// refused with "ask again" until then.
func (c *Coordinator) issueToken(ctx context.Context, node, instanceID, provider string, ttl time.Duration, by string) (string, tokenRecord, error) {
	kv, err := c.stateKV(ctx)
	if err != nil {
		return "", tokenRecord{}, err
	}
	c.pruneTokens(ctx, kv)
	tok, err := bootstrap.NewToken()
	if err != nil {
		return "", tokenRecord{}, err
	}
	now := c.cfg.Now().UTC()
	h := bootstrap.HashToken(tok)
	rec := tokenRecord{Hash: h, EnrollToken: api.EnrollToken{ID: h[:12], Node: node, InstanceID: instanceID, Provider: provider,
		CreatedAt: now, ExpiresAt: now.Add(ttl), CreatedBy: by}}
	b, _ := json.Marshal(rec)
	if _, err := kv.Create(ctx, enrollKeyPrefix+h, b); err != nil {
		return "", tokenRecord{}, fmt.Errorf("store the token: %w", err)
	}
	inst := instanceID
	if inst == "" {
		inst = "(bound when the launch's create call answers)"
	}
	c.audit(ctx, "enroll", "token:create:"+rec.ID, events.Audit{Kind: "enroll", Node: node, Cause: "enrollment token created", Actor: by,
		Detail: map[string]string{"token": rec.ID, "instance_id": inst, "provider": provider, "expires": rec.ExpiresAt.Format(time.RFC3339)}})
	return tok, rec, nil
}

// launchTokenTTL is how long a launched node has to boot and present its
// token: image pulls on Vast and RunPod take tens of minutes at worst.
const launchTokenTTL = 2 * time.Hour

// launchTokens is the TokenSource the coordinator gives an AgentScript
// without one when it has an issuer store: each launch gets a fresh
// one-time token for its node and provider, bound to the instance ID by
// bindToken once the create call returns it.
type launchTokens struct{ c *Coordinator }

// Token issues an unbound launch token for node on provider.
func (l launchTokens) Token(ctx context.Context, node, provider string) (string, error) {
	tok, _, err := l.c.issueToken(ctx, node, "", provider, launchTokenTTL, "launch via coordinator:"+l.c.cfg.Name)
	return tok, err
}

// BootstrapCreds returns the shared bootstrap credential launched nodes
// connect with (auth dir file launch-bootstrap.creds, issued once). When
// an operator revoked it (meshctl revoke bootstrap), a new one is issued:
// the revocation of the old key stands.
func (l launchTokens) BootstrapCreds(context.Context) ([]byte, error) {
	iss := l.c.cfg.Auth
	path := filepath.Join(iss.Dir(), "launch-bootstrap.creds")
	err := iss.EnsureCreds(auth.RoleBootstrap, auth.BootstrapName, path)
	if errors.Is(err, auth.ErrRevoked) {
		l.c.log.Info().Str("creds", path).Msg("the launch bootstrap credential was revoked; issuing a new one")
		if rerr := os.Remove(path); rerr != nil {
			return nil, fmt.Errorf("bootstrap credential: %w", rerr)
		}
		err = iss.EnsureCreds(auth.RoleBootstrap, auth.BootstrapName, path)
	}
	if err != nil {
		return nil, fmt.Errorf("bootstrap credential: %w", err)
	}
	return os.ReadFile(path)
}

// bindToken binds the launch token with hash h (bootstrap.HashToken) to
// instanceID. A token already bound to that instance is left as it is;
// one bound to another instance, used or revoked is an error.
func (c *Coordinator) bindToken(ctx context.Context, h, instanceID string) error {
	if err := events.Check("instance_id", "instance_id", instanceID); err != nil {
		return fmt.Errorf("bind enrollment token: %w", err)
	}
	kv, err := c.stateKV(ctx)
	if err != nil {
		return err
	}
	for attempt := 0; attempt < 3; attempt++ {
		e, err := kv.Get(ctx, enrollKeyPrefix+h)
		if err != nil {
			return fmt.Errorf("bind enrollment token %s: %w", h[:12], err)
		}
		var rec tokenRecord
		if err := json.Unmarshal(e.Value(), &rec); err != nil {
			return fmt.Errorf("bind enrollment token %s: unreadable record: %w", h[:12], err)
		}
		switch {
		case rec.InstanceID == instanceID:
			return nil
		case rec.InstanceID != "":
			return fmt.Errorf("enrollment token %s is bound to instance %s already", rec.ID, rec.InstanceID)
		case !rec.RevokedAt.IsZero() || !rec.UsedAt.IsZero():
			return fmt.Errorf("enrollment token %s was revoked or used before it was bound", rec.ID)
		}
		rec.InstanceID = instanceID
		b, _ := json.Marshal(rec)
		if _, err := kv.Update(ctx, e.Key(), b, e.Revision()); err != nil {
			continue // changed meanwhile: look again
		}
		c.audit(ctx, "enroll", "token:bind:"+rec.ID, events.Audit{Kind: "enroll", Node: rec.Node, Cause: "enrollment token bound to the launched instance",
			Actor: "coordinator:" + c.cfg.Name, Detail: map[string]string{"token": rec.ID, "instance_id": instanceID, "provider": rec.Provider}})
		return nil
	}
	return fmt.Errorf("enrollment token %s kept changing while it was bound", h[:12])
}

// tokens reads every token record.
func (c *Coordinator) tokens(ctx context.Context, kv jetstream.KeyValue) ([]tokenRecord, []jetstream.KeyValueEntry, error) {
	lister, err := kv.ListKeysFiltered(ctx, enrollKeyPrefix+"*")
	if err != nil {
		return nil, nil, err
	}
	var recs []tokenRecord
	var entries []jetstream.KeyValueEntry
	for key := range lister.Keys() {
		e, err := kv.Get(ctx, key)
		if err != nil {
			continue // deleted meanwhile
		}
		var r tokenRecord
		if json.Unmarshal(e.Value(), &r) != nil {
			c.log.Warn().Str("key", key).Msg("unreadable enrollment token record; skipped")
			continue
		}
		recs = append(recs, r)
		entries = append(entries, e)
	}
	return recs, entries, nil
}

// pruneTokens deletes records expired longer than enrollPrune ago (leader).
func (c *Coordinator) pruneTokens(ctx context.Context, kv jetstream.KeyValue) {
	recs, _, err := c.tokens(ctx, kv)
	if err != nil {
		return
	}
	now := c.cfg.Now()
	for _, r := range recs {
		if now.Sub(r.ExpiresAt) > enrollPrune {
			_ = kv.Delete(ctx, enrollKeyPrefix+r.Hash)
		}
	}
}

func (c *Coordinator) apiTokenList(ctx context.Context, _ []byte) (any, error) {
	kv, err := c.stateKV(ctx)
	if err != nil {
		return nil, err
	}
	recs, _, err := c.tokens(ctx, kv)
	if err != nil {
		return nil, err
	}
	now := c.cfg.Now()
	out := api.TokenList{Tokens: []api.EnrollToken{}}
	for _, r := range recs {
		out.Tokens = append(out.Tokens, r.view(now))
	}
	sort.Slice(out.Tokens, func(i, j int) bool { return out.Tokens[i].CreatedAt.Before(out.Tokens[j].CreatedAt) })
	return out, nil
}

func (c *Coordinator) apiTokenRevoke(ctx context.Context, req []byte) (any, error) {
	var r api.TokenRevokeRequest
	if err := json.Unmarshal(req, &r); err != nil || (r.ID == "") == (r.Node == "") {
		return nil, errors.New(`bad request: want {"id": "<token ID>"} or {"node": "<node ID>"}`)
	}
	if r.ID != "" && (len(r.ID) < 8 || len(r.ID) > 64 || !events.Match("sha256_opt", r.ID+strings.Repeat("0", 64-len(r.ID)))) {
		return nil, errors.New("bad request: id: want at least 8 hex digits of a token ID (meshctl token list)")
	}
	if r.Node != "" {
		if err := mesh.ValidateNodeID(r.Node); err != nil {
			return nil, fmt.Errorf("bad request: node: %w", err)
		}
	}
	kv, err := c.stateKV(ctx)
	if err != nil {
		return nil, err
	}
	recs, entries, err := c.tokens(ctx, kv)
	if err != nil {
		return nil, err
	}
	now := c.cfg.Now().UTC()
	out := api.TokenRevoked{IDs: []string{}}
	for i, rec := range recs {
		if (r.ID != "" && !strings.HasPrefix(rec.Hash, r.ID)) || (r.Node != "" && rec.Node != r.Node) || rec.view(now).State != "pending" {
			continue
		}
		rec.RevokedAt = now
		b, _ := json.Marshal(rec)
		if _, err := kv.Update(ctx, entries[i].Key(), b, entries[i].Revision()); err != nil {
			return out, fmt.Errorf("token %s changed meanwhile (redeemed?); list again: %w", rec.ID, err)
		}
		out.IDs = append(out.IDs, rec.ID)
		c.audit(ctx, "enroll", "token:revoke:"+rec.ID, events.Audit{Kind: "enroll", Node: rec.Node, Cause: "enrollment token revoked", Actor: actor(ctx, ""),
			Detail: map[string]string{"token": rec.ID}})
	}
	if len(out.IDs) == 0 {
		return nil, errors.New("no pending token matches (used, expired and revoked tokens cannot be revoked; revoke a node's credentials with `meshctl revoke NODE`)")
	}
	return out, nil
}

// enrollServer answers bus.EnrollSubject on the leader.
type enrollServer struct {
	c    *Coordinator
	lim  *rate.Limiter
	sem  chan struct{}
	wg   sync.WaitGroup
	sub  *nats.Subscription
	stop context.CancelFunc
	ctx  context.Context
}

// Enrollment request limits: 10 requests a second with bursts of 20 over
// the whole cluster's booting nodes, at most 8 at a time.
const (
	enrollRate    = 10
	enrollBurst   = 20
	enrollWorkers = 8
)

// startEnroll subscribes to the enrollment subject (every coordinator
// hears it; only the leader answers). It needs the issuer store.
func (c *Coordinator) startEnroll(ctx context.Context) (func(), error) {
	if c.cfg.Auth == nil {
		return func() {}, nil
	}
	ectx, cancel := context.WithCancel(ctx)
	s := &enrollServer{c: c, lim: rate.NewLimiter(enrollRate, enrollBurst), sem: make(chan struct{}, enrollWorkers), ctx: ectx, stop: cancel}
	sub, err := c.nc.Subscribe(bus.EnrollSubject, s.handle)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("subscribe %s: %w", bus.EnrollSubject, err)
	}
	s.sub = sub
	return func() {
		_ = sub.Unsubscribe()
		cancel()
		s.wg.Wait()
	}, nil
}

func (s *enrollServer) handle(m *nats.Msg) {
	c := s.c
	if !c.IsLeader() || m.Reply == "" {
		return
	}
	reply := func(r bootstrap.Reply) {
		b, _ := json.Marshal(r)
		if err := m.Respond(b); err != nil {
			c.m.respondErrors.WithLabelValues("enroll").Inc()
			c.log.Warn().Err(err).Msg("enrollment reply failed")
		}
	}
	if len(m.Data) > bootstrap.MaxRequestBytes {
		c.log.Warn().Int("bytes", len(m.Data)).Msg("enrollment request too large; refused")
		reply(bootstrap.Reply{Error: fmt.Sprintf("request refused: larger than %d bytes", bootstrap.MaxRequestBytes)})
		return
	}
	if !s.lim.Allow() {
		reply(bootstrap.Reply{Error: "busy: too many enrollment requests; ask again shortly", Retry: true})
		return
	}
	select {
	case s.sem <- struct{}{}:
	default:
		reply(bootstrap.Reply{Error: "busy: too many enrollment requests; ask again shortly", Retry: true})
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() { <-s.sem }()
		ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
		defer cancel()
		reply(c.redeem(ctx, m.Data))
	}()
}

// redeem checks one enrollment request and, when the token is good,
// marks it used (compare-and-set) and issues the node's JWT. Every
// outcome but a malformed request is audited.
func (c *Coordinator) redeem(ctx context.Context, data []byte) bootstrap.Reply {
	req, err := wire.DecodeEnrollRequest(data) // the trust boundary: bounded, strict, every field checked
	if err != nil {
		c.log.Warn().Err(err).Msg("enrollment request refused: invalid")
		return bootstrap.Reply{Error: "request refused: " + err.Error()}
	}
	h := bootstrap.HashToken(req.Token)
	kv, err := c.stateKV(ctx)
	if err != nil {
		return bootstrap.Reply{Error: "coordinator store unavailable; ask again later", Retry: true}
	}
	key := enrollKeyPrefix + h
	refuse := func(node, why string) bootstrap.Reply {
		c.auditEnroll(ctx, h, node, req, "refused: "+why)
		return bootstrap.Reply{Error: "token refused: " + why}
	}
	for attempt := 0; attempt < 3; attempt++ {
		e, err := kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			return refuse("", "unknown token")
		}
		if err != nil {
			return bootstrap.Reply{Error: "coordinator store unavailable; ask again later", Retry: true}
		}
		var rec tokenRecord
		if json.Unmarshal(e.Value(), &rec) != nil {
			return refuse("", "unreadable token record")
		}
		now := c.cfg.Now().UTC()
		switch {
		case !rec.RevokedAt.IsZero():
			return refuse(rec.Node, "revoked")
		case !rec.UsedAt.IsZero() && rec.UsedKey != req.PublicKey:
			return refuse(rec.Node, "already used")
		case rec.UsedAt.IsZero() && now.After(rec.ExpiresAt):
			return refuse(rec.Node, "expired")
		case rec.InstanceID == "":
			// A launch token whose create call has not answered yet: the
			// instance booted first. Not a refusal to record, and not used up.
			return bootstrap.Reply{Error: "token not yet bound to its instance (the launch is still being recorded); ask again shortly", Retry: true}
		case rec.InstanceID != req.InstanceID:
			return refuse(rec.Node, "instance ID does not match the token's")
		case rec.Provider != "" && req.Provider != rec.Provider:
			return refuse(rec.Node, "provider does not match the token's")
		case req.Node != "" && req.Node != rec.Node:
			return refuse(rec.Node, "node ID does not match the token's")
		}
		if rec.UsedAt.IsZero() {
			// Claim it first: only one presentation can move this revision.
			rec.UsedAt, rec.UsedKey = now, req.PublicKey
			b, _ := json.Marshal(rec)
			rev, err := kv.Update(ctx, key, b, e.Revision())
			if err != nil {
				continue // someone else changed it: look again
			}
			c.reg.Admit(rec.Node, "enrolled")
			tok, err := c.cfg.Auth.IssueForKey(rec.Node, req.PublicKey)
			if err != nil {
				c.log.Error().Err(err).Str("node", rec.Node).Msg("enrollment: issuing the node JWT failed")
				c.auditEnroll(ctx, h, rec.Node, req, "accepted, but issuing failed: "+err.Error())
				return bootstrap.Reply{Error: "coordinator could not issue credentials; ask again later", Retry: true}
			}
			rec.JWT = tok
			b, _ = json.Marshal(rec)
			if _, err := kv.Update(ctx, key, b, rev); err != nil {
				c.log.Warn().Err(err).Str("node", rec.Node).Msg("enrollment: storing the issued JWT failed (a repeated request issues a new one)")
			}
			c.auditEnroll(ctx, h, rec.Node, req, "accepted: node credentials issued")
			return bootstrap.Reply{Node: rec.Node, JWT: tok}
		}
		// The same key asks again (its reply was lost): answer again.
		if rec.JWT == "" {
			tok, err := c.cfg.Auth.IssueForKey(rec.Node, req.PublicKey)
			if err != nil {
				return bootstrap.Reply{Error: "coordinator could not issue credentials; ask again later", Retry: true}
			}
			rec.JWT = tok
			b, _ := json.Marshal(rec)
			_, _ = kv.Update(ctx, key, b, e.Revision())
		}
		c.auditEnroll(ctx, h, rec.Node, req, "repeated by the same key: credentials sent again")
		return bootstrap.Reply{Node: rec.Node, JWT: rec.JWT}
	}
	return refuse("", "token changed during the request; ask again")
}

func (c *Coordinator) auditEnroll(ctx context.Context, hash, node string, req bootstrap.Request, outcome string) {
	key := req.PublicKey
	if len(key) > 12 {
		key = key[:12]
	}
	now := c.cfg.Now()
	c.audit(ctx, "enroll", fmt.Sprintf("enroll:%s:%s:%d", hash[:12], key, now.UnixNano()), events.Audit{
		Kind: "enroll", Node: node, Cause: "enrollment " + outcome,
		Actor:  "bootstrap:" + req.InstanceID + " (" + key + ")",
		Detail: map[string]string{"token": hash[:12], "instance_id": req.InstanceID, "provider": req.Provider, "public_key": req.PublicKey},
	})
	c.log.Info().Str("node", node).Str("token", hash[:12]).Str("instance_id", req.InstanceID).Str("outcome", outcome).Msg("enrollment")
}

// admitEnrolled takes nodes enrolled by token out of quarantine after a
// restart or fail-over (the admission itself is not in KV).
func (c *Coordinator) admitEnrolled(ctx context.Context) {
	if c.cfg.Auth == nil {
		return
	}
	kv, err := c.stateKV(ctx)
	if err != nil {
		return
	}
	recs, _, err := c.tokens(ctx, kv)
	if err != nil {
		return
	}
	for _, r := range recs {
		if !r.UsedAt.IsZero() {
			c.reg.Admit(r.Node, "enrolled")
		}
	}
}
