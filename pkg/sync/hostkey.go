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

// parseFingerprint splits "[type ]SHA256:base64" and normalises the base64
// (no padding).
func parseFingerprint(s string) (keyType, fp string, err error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", "", nil
	}
	if i := strings.IndexByte(s, ' '); i > 0 {
		keyType, s = s[:i], strings.TrimSpace(s[i+1:])
	}
	if !strings.HasPrefix(s, "SHA256:") || len(s) <= len("SHA256:") {
		return "", "", fmt.Errorf("host key fingerprint %q: want \"SHA256:<base64>\" (as printed by ssh-keygen -lf)", s)
	}
	return keyType, strings.TrimRight(s, "="), nil
}

// hostKeyPolicy builds the host key callback and the host key algorithms to
// offer for a target. It refuses to build anything without a known_hosts
// file or a fingerprint: ringmesh never skips host key verification.
func hostKeyPolicy(t Target) (ssh.HostKeyCallback, []string, error) {
	hk := t.HostKey
	keyType, wantFP, err := parseFingerprint(hk.Fingerprint)
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
		algos = algosForKeyType(keyType)
	}
	if len(algos) == 0 && kh != nil {
		// Offer only the key types known_hosts holds for this host, so that
		// a server with several host keys does not pick one we cannot check.
		known := knownKeyTypes(kh, addr)
		if len(known) == 0 && wantFP == "" {
			return nil, nil, fmt.Errorf("%w: %s has no entry for %s (%s) and no fingerprint was given",
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
				if wantFP == "" {
					return fmt.Errorf("%w: %s (%s) presented %s key %s, which is not in %s; refusing to connect",
						ErrHostKeyUnknown, t.NodeID, hostname, key.Type(), got, hk.KnownHostsFile)
				}
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
