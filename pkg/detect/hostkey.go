package detect

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/crypto/ssh"
)

// DefaultHostKeyPaths are the public host keys SSHHostKeyFingerprint reads
// when given no paths, in order: ed25519, then RSA, then ECDSA (OpenSSH's
// default locations, sshd_config(5) HostKey).
var DefaultHostKeyPaths = []string{
	"/etc/ssh/ssh_host_ed25519_key.pub",
	"/etc/ssh/ssh_host_rsa_key.pub",
	"/etc/ssh/ssh_host_ecdsa_key.pub",
}

// SSHHostKeyFingerprint returns the OpenSSH SHA-256 fingerprint
// ("SHA256:<unpadded base64>", as ssh-keygen -lf prints it) of the first of
// paths (default DefaultHostKeyPaths) that holds a parsable public key in
// authorized_keys / .pub format. Missing files are skipped; the error names
// every path tried and why it did not serve.
func SSHHostKeyFingerprint(paths ...string) (string, error) {
	if len(paths) == 0 {
		paths = DefaultHostKeyPaths
	}
	var errs []error
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("%s: not found", p))
			} else {
				errs = append(errs, err)
			}
			continue
		}
		key, _, _, _, err := ssh.ParseAuthorizedKey(b)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p, err))
			continue
		}
		return ssh.FingerprintSHA256(key), nil
	}
	return "", fmt.Errorf("no SSH host key: %w", errors.Join(errs...))
}
