package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	kv, err := c.stateKV(ctx)
	if err != nil {
		return nil, err
	}
	c.pruneTokens(ctx, kv)
	tok, err := bootstrap.NewToken()
	if err != nil {
		return nil, err
	}
	now := c.cfg.Now().UTC()
	h := bootstrap.HashToken(tok)
	rec := tokenRecord{Hash: h, EnrollToken: api.EnrollToken{ID: h[:12], Node: r.Node, InstanceID: r.InstanceID, Provider: r.Provider,
		CreatedAt: now, ExpiresAt: now.Add(ttl), CreatedBy: actor(ctx, "")}}
	b, _ := json.Marshal(rec)
	if _, err := kv.Create(ctx, enrollKeyPrefix+h, b); err != nil {
		return nil, fmt.Errorf("store the token: %w", err)
	}
	c.audit(ctx, "enroll", "token:create:"+rec.ID, events.Audit{Kind: "enroll", Node: r.Node, Cause: "enrollment token created", Actor: actor(ctx, ""),
		Detail: map[string]string{"token": rec.ID, "instance_id": r.InstanceID, "provider": r.Provider, "expires": rec.ExpiresAt.Format(time.RFC3339)}})
	return api.TokenCreated{Token: tok, Info: rec.view(now)}, nil
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
	var req bootstrap.Request
	if err := json.Unmarshal(data, &req); err != nil {
		return bootstrap.Reply{Error: "request refused: not JSON"}
	}
	if err := req.Validate(); err != nil {
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
