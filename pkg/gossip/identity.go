package gossip

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/hashicorp/memberlist"
)

// ReasonIdentity labels alive claims rejected because their identity
// token did not bind the name, role and address they claimed.
const ReasonIdentity = "identity"

var _ memberlist.AliveDelegate = delegate{}

// NotifyAlive is memberlist's AliveDelegate (installed only with
// Config.VerifyPeer): a claim that fails verification is ignored, so the
// member never enters this member's view under that name.
func (d delegate) NotifyAlive(peer *memberlist.Node) error {
	m := d.m
	if peer.Name == m.cfg.NodeName {
		return nil // our own name: memberlist refutes impostors itself
	}
	meta, err := DecodeMeta(peer.Meta)
	if err == nil {
		err = m.cfg.VerifyPeer(m.cfg.ClusterLabel, peer.Name, meta.Role, peer.Addr.String(), int(peer.Port), meta.Token)
	}
	if err == nil {
		return nil
	}
	m.metrics.rejected.WithLabelValues(ReasonIdentity).Inc()
	if ok, supp := m.limiter.allow("identity|"+peer.Name+"|"+peer.Address(), rejectLogEvery); ok {
		m.log.Warn().Str("reason", ReasonIdentity).Str("name", peer.Name).Str("remote", peer.Address()).
			Int("suppressed", supp).Err(err).Msg("gossip: ignored a member whose name is not bound to its identity")
	}
	return fmt.Errorf("identity: %w", err)
}

// reloadKeys replaces the keyring with ReloadKeys' answer when it
// differs: new keys are installed first, then the primary is switched,
// then keys no longer listed are removed, so traffic under any listed key
// keeps being accepted throughout.
func (m *Member) reloadKeys() {
	keys, err := m.cfg.ReloadKeys()
	if err == nil && len(keys) == 0 {
		err = errors.New("no key")
	}
	if err == nil {
		err = m.SetKeys(keys)
	}
	if err != nil {
		if ok, supp := m.limiter.allow("keyreload", rejectLogEvery); ok {
			m.log.Error().Err(err).Int("suppressed", supp).Msg("gossip: could not reload the keyring; keeping the current one")
		}
	}
}

// SetKeys makes keys the keyring, keys[0] the primary (each 16, 24 or 32
// bytes). It is a no-op when nothing changes, and fails without a change
// on a bad key or when the member has no encryption. Safe for concurrent use.
func (m *Member) SetKeys(keys [][]byte) error {
	if m.keyring == nil {
		return errors.New("gossip: this member has no keyring (encryption off)")
	}
	for i, k := range keys {
		if n := len(k); n != 16 && n != 24 && n != 32 {
			return fmt.Errorf("gossip: key %d is %d bytes, want 16, 24 or 32", i+1, n)
		}
	}
	if len(keys) == 0 {
		return errors.New("gossip: empty keyring")
	}
	cur := m.keyring.GetKeys()
	if bytes.Equal(cur[0], keys[0]) && sameKeys(cur, keys) {
		return nil
	}
	for _, k := range keys {
		if err := m.keyring.AddKey(k); err != nil {
			return fmt.Errorf("gossip: add key: %w", err)
		}
	}
	if err := m.keyring.UseKey(keys[0]); err != nil {
		return fmt.Errorf("gossip: use key: %w", err)
	}
	for _, k := range cur {
		if !containsKey(keys, k) {
			if err := m.keyring.RemoveKey(k); err != nil {
				return fmt.Errorf("gossip: remove key: %w", err)
			}
		}
	}
	m.log.Info().Int("keys", len(keys)).Msg("gossip: keyring replaced")
	return nil
}

func sameKeys(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for _, k := range a {
		if !containsKey(b, k) {
			return false
		}
	}
	return true
}

func containsKey(keys [][]byte, k []byte) bool {
	for _, x := range keys {
		if bytes.Equal(x, k) {
			return true
		}
	}
	return false
}
