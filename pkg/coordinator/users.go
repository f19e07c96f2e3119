package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ringmesh/ringmesh/pkg/auth"
	"github.com/ringmesh/ringmesh/pkg/bus"
)

// usersKeyPrefix: KV mesh_state keys users.<public user nkey> each hold one
// auth.Issued (JSON), so every voter knows every credential any voter
// issued or revoked.
const usersKeyPrefix = "users."

// usersPushInterval is how often a coordinator offers its store's records
// (issued or revoked here, or by meshctl creds on this voter) to KV.
const usersPushInterval = 5 * time.Second

// replicateUsers keeps this coordinator's issuer store and the other
// voters' in step through KV mesh_state: records the store has and KV does
// not (or that are revoked here and not there) are written to KV; records
// KV has are merged into the store (auth.Issuer.MergeUsers: added, or
// revoked; never removed, never un-revoked). Each voter keeps its own store
// copy (deploy/README.md): without this, a node enrolled through one voter
// would be unknown to the others (its revocation there would find nothing
// to revoke, its gossip token would be refused). Runs until ctx ends.
func (c *Coordinator) replicateUsers(ctx context.Context) {
	kv, err := c.js.KeyValue(ctx, bus.BucketState)
	if err != nil {
		c.log.Error().Err(err).Msg("user replication: state bucket unavailable; credentials issued on other voters stay unknown here")
		return
	}
	for ctx.Err() == nil {
		if err := c.replicateUsersOnce(ctx, kv); err != nil && ctx.Err() == nil {
			c.log.Warn().Err(err).Msg("user replication: watch ended; starting again")
			select {
			case <-ctx.Done():
				return
			case <-time.After(usersPushInterval):
			}
		}
	}
}

func (c *Coordinator) replicateUsersOnce(ctx context.Context, kv jetstream.KeyValue) error {
	w, err := kv.Watch(ctx, usersKeyPrefix+"*", jetstream.IgnoreDeletes())
	if err != nil {
		return err
	}
	defer func() { _ = w.Stop() }()
	known := map[string]auth.Issued{} // what KV holds, by public key
	var pending []auth.Issued
	initial := true
	push := time.NewTicker(usersPushInterval)
	defer push.Stop()
	merge := func() {
		if len(pending) == 0 {
			return
		}
		n, err := c.cfg.Auth.MergeUsers(pending)
		if err != nil {
			c.log.Warn().Err(err).Msg("user replication: records refused")
		}
		if n > 0 {
			c.log.Info().Int("records", n).Msg("user replication: credentials issued or revoked on other voters merged into this store")
		}
		pending = pending[:0]
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("watcher closed")
			}
			if e == nil { // the initial values are all in
				initial = false
				merge()
				c.pushUsers(ctx, kv, known)
				continue
			}
			var u auth.Issued
			if err := json.Unmarshal(e.Value(), &u); err != nil || usersKeyPrefix+u.PublicKey != e.Key() {
				c.log.Warn().Str("key", e.Key()).Msg("user replication: unreadable record ignored")
				continue
			}
			known[u.PublicKey] = u
			pending = append(pending, u)
			if !initial {
				merge()
			}
		case <-push.C:
			if !initial {
				c.pushUsers(ctx, kv, known)
			}
		}
	}
}

// pushUsers writes the store's records that KV lacks, and revocations KV
// does not have yet.
func (c *Coordinator) pushUsers(ctx context.Context, kv jetstream.KeyValue, known map[string]auth.Issued) {
	users, err := c.cfg.Auth.Users()
	if err != nil {
		c.log.Warn().Err(err).Msg("user replication: reading the issuer store")
		return
	}
	for _, u := range users {
		k, have := known[u.PublicKey]
		if have && (!k.RevokedAt.IsZero() || u.RevokedAt.IsZero()) {
			continue
		}
		b, err := json.Marshal(u)
		if err != nil {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if have {
			_, err = kv.Put(pctx, usersKeyPrefix+u.PublicKey, b)
		} else {
			_, err = kv.Create(pctx, usersKeyPrefix+u.PublicKey, b)
			if errors.Is(err, jetstream.ErrKeyExists) {
				err = nil // another voter wrote it meanwhile; the watcher brings it
			}
		}
		cancel()
		if err != nil {
			c.log.Warn().Err(err).Str("user", u.Name).Msg("user replication: writing a record")
			return
		}
		known[u.PublicKey] = u
	}
}
