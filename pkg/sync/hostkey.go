package meshsync

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// preferredHostKeyAlgos is offered when only a fingerprint without key type
// is known: ed25519 first, because that is the host key an agent reports by
// default and the one every current OpenSSH has.
var preferredHostKeyAlgos = []string{
	ssh.KeyAlgoED25519,
	ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521,
	ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256,
}

// algosForKeyType maps a public key type (ssh.PublicKey.Type()) to the host
// key algorithms that negotiate it.
func algosForKeyType(t string) []string {
	switch t {
	case ssh.KeyAlgoRSA:
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256}
	case "":
		return nil
	default:
		return []string{t}
	}
}

// fingerprintTypes maps the key type spellings found next to fingerprints
// (ssh-keygen -l prints "256 SHA256:... comment (ED25519)") to key types.
var fingerprintTypes = map[string][]string{
	"ssh-ed25519": {ssh.KeyAlgoED25519}, "ed25519": {ssh.KeyAlgoED25519},
	"ssh-rsa": {ssh.KeyAlgoRSA}, "rsa": {ssh.KeyAlgoRSA},
	"ecdsa-sha2-nistp256": {ssh.KeyAlgoECDSA256}, "ecdsa-sha2-nistp384": {ssh.KeyAlgoECDSA384},
	"ecdsa-sha2-nistp521": {ssh.KeyAlgoECDSA521},
	"ecdsa":               {ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521},
}

// parseFingerprint finds the "SHA256:<base64>" token in s (normalising the
// base64: no padding) and the key types named next to it, if any: "SHA256:x",
// "ssh-ed25519 SHA256:x" and ssh-keygen's "256 SHA256:x comment (ED25519)"
// are all accepted.
func parseFingerprint(s string) (keyTypes []string, fp string, err error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, "", nil
	}
	for _, tok := range strings.Fields(s) {
		switch {
		case strings.HasPrefix(tok, "SHA256:") && len(tok) > len("SHA256:"):
			if fp == "" {
				fp = strings.TrimRight(tok, "=")
			}
		default:
			if t, ok := fingerprintTypes[strings.ToLower(strings.Trim(tok, "()"))]; ok && keyTypes == nil {
				keyTypes = t
			}
		}
	}
	if fp == "" {
		return nil, "", fmt.Errorf("host key fingerprint %q: want \"SHA256:<base64>\" (as printed by ssh-keygen -lf)", s)
	}
	return keyTypes, fp, nil
}

// hostKeyPolicy builds the host key callback and the host key algorithms to
// offer for a target. It refuses to build anything without a known_hosts
// file or a fingerprint: ringmesh never skips host key verification.
func hostKeyPolicy(t Target) (ssh.HostKeyCallback, []string, error) {
	hk := t.HostKey
	keyTypes, wantFP, err := parseFingerprint(hk.Fingerprint)
	if err != nil {
		return nil, nil, err
	}
	if hk.KnownHostsFile == "" && wantFP == "" {
		return nil, nil, fmt.Errorf("%w for target %s (set a known_hosts file or the fingerprint its agent reported)", ErrNoHostKeyPolicy, t.NodeID)
	}
	var kh ssh.HostKeyCallback
	if hk.KnownHostsFile != "" {
		kh, err = knownhosts.New(hk.KnownHostsFile)
		if err != nil {
			return nil, nil, fmt.Errorf("read known_hosts %s: %w", hk.KnownHostsFile, err)
		}
	}
	addr := t.Endpoint.Addr()

	algos := hk.Algorithms
	if len(algos) == 0 {
		for _, kt := range keyTypes {
			algos = append(algos, algosForKeyType(kt)...)
		}
	}
	if len(algos) == 0 && kh != nil {
		// Offer only the key types known_hosts holds for this host, so that
		// a server with several host keys does not pick one we cannot check.
		known := knownKeyTypes(kh, addr)
		if len(known) == 0 {
			// A known_hosts file is an allowlist: a host it does not list is
			// refused even when a fingerprint (from the bus) was given.
			return nil, nil, fmt.Errorf("%w: %s has no entry for %s (%s)",
				ErrHostKeyUnknown, hk.KnownHostsFile, knownhosts.Normalize(addr), t.NodeID)
		}
		for _, k := range known {
			algos = append(algos, algosForKeyType(k)...)
		}
	}
	if len(algos) == 0 {
		algos = preferredHostKeyAlgos
	}

	cb := func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		got := ssh.FingerprintSHA256(key)
		if kh != nil {
			err := kh(hostname, remote, key)
			var ke *knownhosts.KeyError
			var re *knownhosts.RevokedError
			switch {
			case err == nil:
			case errors.As(err, &re):
				return fmt.Errorf("%w: %s (%s) presented %s key %s, which %s marks as revoked",
					ErrHostKeyMismatch, t.NodeID, hostname, key.Type(), got, re.Revoked.String())
			case errors.As(err, &ke) && len(ke.Want) > 0:
				var want []string
				for _, w := range ke.Want {
					want = append(want, fmt.Sprintf("%s %s (%s:%d)", w.Key.Type(), ssh.FingerprintSHA256(w.Key), w.Filename, w.Line))
				}
				return fmt.Errorf("%w: %s (%s) presented %s key %s, known_hosts expects %s; refusing to connect",
					ErrHostKeyMismatch, t.NodeID, hostname, key.Type(), got, strings.Join(want, ", "))
			case errors.As(err, &ke):
				// Allowlist: no fall-through to a fingerprint from the bus.
				return fmt.Errorf("%w: %s (%s) presented %s key %s, which is not in %s; refusing to connect",
					ErrHostKeyUnknown, t.NodeID, hostname, key.Type(), got, hk.KnownHostsFile)
			default:
				return fmt.Errorf("known_hosts check for %s: %w", hostname, err)
			}
		}
		if wantFP != "" && got != wantFP {
			return fmt.Errorf("%w: %s (%s) presented %s key %s, but its agent reported %s; refusing to connect",
				ErrHostKeyMismatch, t.NodeID, hostname, key.Type(), got, wantFP)
		}
		return nil
	}
	return cb, algos, nil
}

// knownKeyTypes returns the key types known_hosts holds for addr, found by
// asking the callback about a key that cannot match and reading the
// mismatch report.
func knownKeyTypes(kh ssh.HostKeyCallback, addr string) []string {
	remote := &net.TCPAddr{IP: net.IPv4zero}
	if host, _, err := net.SplitHostPort(addr); err == nil {
		if ip := net.ParseIP(host); ip != nil {
			remote.IP = ip
		}
	}
	err := kh(addr, remote, probeKey)
	var ke *knownhosts.KeyError
	if !errors.As(err, &ke) {
		return nil
	}
	var types []string
	seen := map[string]bool{}
	for _, w := range ke.Want {
		if !seen[w.Key.Type()] {
			seen[w.Key.Type()] = true
			types = append(types, w.Key.Type())
		}
	}
	return types
}

// probeKey is a fixed ed25519 public key that no real host uses.
var probeKey = func() ssh.PublicKey {
	blob := make([]byte, 32)
	for i := range blob {
		blob[i] = byte(i + 1)
	}
	k, err := ssh.ParsePublicKey(ssh.Marshal(struct {
		Type string
		Key  []byte
	}{ssh.KeyAlgoED25519, blob}))
	if err != nil {
		panic(err)
	}
	return k
}()
