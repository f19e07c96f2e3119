package enroll

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/ringmesh/ringmesh/pkg/events"
)

// ErrHostKeyChanged is returned (wrapped) when a node offers a host key
// other than the one pinned for it: enrollment stops, nothing is written.
var ErrHostKeyChanged = errors.New("host key changed")

// ErrHostKeyUntrusted is returned (wrapped) when a node's host key is not
// pinned yet and neither the provider, the node's agent, --accept-host-key
// nor the operator vouched for it.
var ErrHostKeyUntrusted = errors.New("host key not trusted")

// Confirm asks the operator once whether to trust fingerprint as node's
// host key (an interactive y/N prompt); it returns false to refuse.
type Confirm func(node, fingerprint string) (bool, error)

// Pins is a known_hosts file in which host keys are pinned per node, the
// node ID standing in for the host name, exactly as `meshctl ssh-config`
// writes HostKeyAlias=<node> (fleet.KnownHostsFile): one "NODE type base64"
// line per node. It is safe for concurrent use by enrollments running in
// parallel; prompts are asked one at a time.
type Pins struct {
	// File is the known_hosts path (~ already expanded).
	File string

	mu       sync.Mutex
	promptMu sync.Mutex
}

// NewPins returns the pins kept in file.
func NewPins(file string) *Pins { return &Pins{File: file} }

// trust says how an unpinned key may become trusted.
type trust struct {
	// expected is a fingerprint vouched for by the provider or the node's
	// agent ("" = none), accepted the fingerprint the operator gave with
	// --accept-host-key ("" = none).
	expected, accepted string
	confirm            Confirm
}

// callback returns the HostKeyCallback for node: a pinned key must match
// (else ErrHostKeyChanged); an unpinned one is trusted when it matches
// the expected or accepted fingerprint, or the operator confirms it, and
// is then pinned.
func (p *Pins) callback(node string, tr trust) ssh.HostKeyCallback {
	return func(_ string, remote net.Addr, key ssh.PublicKey) error {
		fp := ssh.FingerprintSHA256(key)
		pinned, err := p.lookup(node, remote, key)
		if err != nil {
			return err
		}
		if pinned {
			return nil
		}
		switch {
		case tr.expected != "" && tr.expected == fp, tr.accepted != "" && tr.accepted == fp:
		case tr.expected != "":
			return fmt.Errorf("%w: %s offers %s, but its provider/agent reported %s; not pinned, nothing done", ErrHostKeyUntrusted, node, fp, tr.expected)
		case tr.accepted != "":
			return fmt.Errorf("%w: %s offers %s, not the %s given with --accept-host-key; nothing done", ErrHostKeyUntrusted, node, fp, tr.accepted)
		case tr.confirm != nil:
			p.promptMu.Lock()
			ok, err := tr.confirm(node, fp)
			p.promptMu.Unlock()
			if err != nil {
				return fmt.Errorf("%w: %s: %v", ErrHostKeyUntrusted, node, err)
			}
			if !ok {
				return fmt.Errorf("%w: %s: host key %s refused by the operator", ErrHostKeyUntrusted, node, fp)
			}
		default:
			return fmt.Errorf("%w: %s offers host key %s, which is not pinned and was not confirmed; check it on the provider's console and run again with --accept-host-key %s", ErrHostKeyUntrusted, node, fp, fp)
		}
		return p.pin(node, key)
	}
}

// lookup reports whether key is node's pinned key; a different pinned key
// is ErrHostKeyChanged.
func (p *Pins) lookup(node string, remote net.Addr, key ssh.PublicKey) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := os.Stat(p.File); errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	cb, err := knownhosts.New(p.File)
	if err != nil {
		return false, fmt.Errorf("known_hosts %s: %w", p.File, err)
	}
	// The node ID is the host name of its line (HostKeyAlias); port 22
	// makes knownhosts look for the bare name.
	err = cb(net.JoinHostPort(node, "22"), remote, key)
	var ke *knownhosts.KeyError
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &ke) && len(ke.Want) == 0:
		return false, nil
	case errors.As(err, &ke):
		var want []string
		for _, w := range ke.Want {
			want = append(want, fmt.Sprintf("%s (%s line %d)", ssh.FingerprintSHA256(w.Key), w.Filename, w.Line))
		}
		return false, fmt.Errorf("%w: %s now offers %s, but %s is pinned; the machine may have been replaced or someone is in the middle. Stopped, nothing done. If the box was really re-created, delete the line for %s from %s and enroll again",
			ErrHostKeyChanged, node, ssh.FingerprintSHA256(key), strings.Join(want, ", "), node, p.File)
	default:
		return false, fmt.Errorf("known_hosts %s: %w", p.File, err)
	}
}

// pin appends node's key to the file (mode 0600, directory 0700), keeping
// every other line.
func (p *Pins) pin(node string, key ssh.PublicKey) error {
	if !events.Match("node", node) {
		return fmt.Errorf("pin host key: bad node ID %q", events.StripControl(node))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(p.File), 0o700); err != nil {
		return fmt.Errorf("pin host key: %w", err)
	}
	old, err := os.ReadFile(p.File)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("pin host key: %w", err)
	}
	b := string(old)
	if b != "" && !strings.HasSuffix(b, "\n") {
		b += "\n"
	}
	b += node + " " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key))) + "\n"
	tmp := p.File + ".tmp"
	if err := os.WriteFile(tmp, []byte(b), 0o600); err != nil {
		return fmt.Errorf("pin host key: %w", err)
	}
	if err := os.Rename(tmp, p.File); err != nil {
		return fmt.Errorf("pin host key: %w", err)
	}
	return nil
}

// algorithms returns the host key algorithms to ask node for: the type of
// its pinned key when there is one (so a server with several keys offers
// the pinned one), else every usual type, ed25519 first.
func (p *Pins) algorithms(node string) []string {
	p.mu.Lock()
	b, _ := os.ReadFile(p.File)
	p.mu.Unlock()
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) >= 3 && f[0] == node {
			switch f[1] {
			case ssh.KeyAlgoRSA:
				return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
			default:
				return []string{f[1]}
			}
		}
	}
	return []string{ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521, ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256}
}
