package meshsync

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// SyncKeyFile is the name of a node's own sync key in its agent's state
// directory (OpenSSH ed25519 private key, mode 0600). Its public half is
// reported in the agent's hello; the leader coordinator signs it into a
// short-lived SSH user certificate (docs/security.md, "Sync targets").
const SyncKeyFile = "sync_ed25519"

// LoadOrCreateSyncKey returns the ed25519 key at path, creating it (mode
// 0600, directory 0700) when it does not exist. A key of another type, or a
// file readable by group or others, is an error naming the file.
func LoadOrCreateSyncKey(path string) (ssh.Signer, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		block, err := ssh.MarshalPrivateKey(priv, "ringmesh-sync")
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("sync key %s: %w", path, err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("sync key %s: %w", path, err)
		}
		if _, err := f.Write(pem.EncodeToMemory(block)); err != nil {
			f.Close()
			return nil, fmt.Errorf("sync key %s: %w", path, err)
		}
		if err := f.Close(); err != nil {
			return nil, fmt.Errorf("sync key %s: %w", path, err)
		}
		return ssh.NewSignerFromKey(priv)
	}
	if err != nil {
		return nil, fmt.Errorf("sync key %s: %w", path, err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("sync key %s: mode %v, want 0600 (readable only by the agent)", path, fi.Mode().Perm())
	}
	s, err := ssh.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("sync key %s: %w", path, err)
	}
	if s.PublicKey().Type() != ssh.KeyAlgoED25519 {
		return nil, fmt.Errorf("sync key %s: %s key, want ssh-ed25519", path, s.PublicKey().Type())
	}
	return s, nil
}

// PublicKeyLine is key as one authorized_keys line without comment or
// newline ("ssh-ed25519 AAAA..."): the form an agent reports in its hello.
func PublicKeyLine(key ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key)))
}

// CertSigner checks a sync certificate the coordinator sent (one
// authorized_keys line, "ssh-ed25519-cert-v01@openssh.com AAAA...") against
// the node's own key and returns a signer that authenticates with it. The
// certificate must be a user certificate for exactly this key, with KeyId
// node, principal among its ValidPrincipals and now within its validity; any
// other certificate is refused with the reason.
func CertSigner(certLine string, key ssh.Signer, node, principal string, now time.Time) (ssh.Signer, *ssh.Certificate, error) {
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(certLine))
	if err != nil {
		return nil, nil, fmt.Errorf("sync certificate: %w", err)
	}
	cert, ok := pub.(*ssh.Certificate)
	if !ok {
		return nil, nil, fmt.Errorf("sync certificate: a plain %s key, not a certificate", pub.Type())
	}
	if err := CheckSyncCert(cert, key.PublicKey(), node, principal, now); err != nil {
		return nil, nil, err
	}
	s, err := ssh.NewCertSigner(cert, key)
	if err != nil {
		return nil, nil, fmt.Errorf("sync certificate: %w", err)
	}
	return s, cert, nil
}

// CheckSyncCert reports why cert is not a usable sync certificate of node
// for key and principal at now (nil when it is). It does not check the CA's
// signature: the target does, against its TrustedUserCAKeys.
func CheckSyncCert(cert *ssh.Certificate, key ssh.PublicKey, node, principal string, now time.Time) error {
	switch {
	case cert.CertType != ssh.UserCert:
		return fmt.Errorf("sync certificate: not a user certificate (type %d)", cert.CertType)
	case key != nil && !bytes.Equal(cert.Key.Marshal(), key.Marshal()):
		return fmt.Errorf("sync certificate: certifies %s, not this node's key %s", ssh.FingerprintSHA256(cert.Key), ssh.FingerprintSHA256(key))
	case cert.KeyId != node:
		return fmt.Errorf("sync certificate: key ID %q, want node %q", cert.KeyId, node)
	case !slices.Contains(cert.ValidPrincipals, principal):
		return fmt.Errorf("sync certificate: principals %v do not include the account %q", cert.ValidPrincipals, principal)
	}
	u := now.Unix()
	if u < 0 || uint64(u) < cert.ValidAfter {
		return fmt.Errorf("sync certificate: not valid before %s", time.Unix(int64(cert.ValidAfter), 0).UTC().Format(time.RFC3339))
	}
	if cert.ValidBefore == ssh.CertTimeInfinity {
		return errors.New("sync certificate: valid forever; ringmesh only uses short-lived certificates")
	}
	if uint64(u) >= cert.ValidBefore {
		return fmt.Errorf("sync certificate: expired at %s", time.Unix(int64(cert.ValidBefore), 0).UTC().Format(time.RFC3339))
	}
	return nil
}
