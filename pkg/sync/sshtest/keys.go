package sshtest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// KeyPair is a freshly generated ed25519 key with its OpenSSH encodings.
type KeyPair struct {
	Signer ssh.Signer
	// PrivatePEM is the private key in OpenSSH format ("-----BEGIN OPENSSH PRIVATE KEY-----").
	PrivatePEM []byte
	// AuthorizedKey is the public key as one authorized_keys line (with trailing newline).
	AuthorizedKey []byte
}

// NewKeyPair generates an ed25519 key pair.
func NewKeyPair() (KeyPair, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return KeyPair{}, err
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return KeyPair{}, err
	}
	block, err := ssh.MarshalPrivateKey(priv, "ringmesh-sshtest")
	if err != nil {
		return KeyPair{}, err
	}
	return KeyPair{
		Signer:        signer,
		PrivatePEM:    pem.EncodeToMemory(block),
		AuthorizedKey: ssh.MarshalAuthorizedKey(signer.PublicKey()),
	}, nil
}

// WriteFile writes the private key to path with mode 0600.
func (k KeyPair) WriteFile(path string) error {
	return os.WriteFile(path, k.PrivatePEM, 0o600)
}

// WriteKnownHosts writes a known_hosts file at path holding key for host:port
// (OpenSSH spelling: "[host]:port" for ports other than 22).
func WriteKnownHosts(path, host string, port int, key ssh.PublicKey) error {
	line := knownhosts.Line([]string{knownhosts.Normalize(net.JoinHostPort(host, strconv.Itoa(port)))}, key)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(path, []byte(line+"\n"), 0o600); err != nil {
		return fmt.Errorf("write known_hosts: %w", err)
	}
	return nil
}
