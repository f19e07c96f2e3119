package meshsync

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/ringmesh/ringmesh/pkg/sync/route"
)

// Class is the kind of data a Source holds (route.Class: the router and
// the API share it without linking this package).
type Class = route.Class

// Data classes (see route.Class).
const (
	ClassManifest   = route.ClassManifest
	ClassCheckpoint = route.ClassCheckpoint
	ClassModel      = route.ClassModel
	ClassNPZ        = route.ClassNPZ
	ClassDB         = route.ClassDB
)

// AllClasses lists every data class in flush order (route.AllClasses).
var AllClasses = route.AllClasses

// Source is one set of files an agent protects.
type Source struct {
	// Name identifies the source in remote paths (<RemoteDir>/<node>/<Name>/<rel>);
	// default: the class. It must be a single path segment, unique per agent.
	Name string
	// Class of every file of the source.
	Class Class
	// Root is the local directory scanned.
	Root string
	// Globs select files by their slash-separated path relative to Root
	// ("*.db", "**/*.pt", "models/**"). "**" matches any number of
	// directories. Empty: every regular file under Root.
	Globs []string
	// Priority orders files of the same class in a flush (higher first).
	Priority int
}

func (s Source) name() string {
	if s.Name != "" {
		return s.Name
	}
	return string(s.Class)
}

// Endpoint is one SSH address of a node: host and port always travel
// together (a Vast proxy port belongs to the proxy host, never to a
// Tailscale IP).
type Endpoint struct {
	Host string
	// Port; 0 means 22.
	Port int
	User string
}

// Addr is "host:port".
func (e Endpoint) Addr() string {
	p := e.Port
	if p == 0 {
		p = 22
	}
	return net.JoinHostPort(e.Host, strconv.Itoa(p))
}

// HostKeyConfig says how a target's SSH host key is verified. At least one
// of KnownHostsFile and Fingerprint must be set; an unverified key is never
// accepted (there is no "insecure" switch).
//
// When both are set, the presented key must match Fingerprint, and
// known_hosts must not contradict it: a known_hosts entry for the host with a
// different key (or a revoked key) is a mismatch, a host missing from
// known_hosts is fine.
type HostKeyConfig struct {
	// KnownHostsFile is an OpenSSH known_hosts file ("[host]:port" entries
	// for ports other than 22).
	KnownHostsFile string
	// Fingerprint is the SHA-256 fingerprint the target's agent reported,
	// "SHA256:base64...". A key type next to it ("ssh-ed25519 SHA256:...",
	// or ssh-keygen -l's "256 SHA256:... host (ED25519)") restricts the
	// host-key algorithms offered; without one, ed25519 is preferred.
	Fingerprint string
	// Algorithms optionally restricts the host key algorithms offered
	// (ssh.KeyAlgoED25519, ...).
	Algorithms []string
}

// Target is one receiver of this node's data.
type Target struct {
	// NodeID of the receiver; receipts are keyed by it.
	NodeID   string
	Endpoint Endpoint
	// KeyPath is a private key file (OpenSSH or PEM, unencrypted). Signer,
	// when set, is used instead.
	KeyPath string
	Signer  ssh.Signer
	HostKey HostKeyConfig
	// RemoteDir is the directory on the target under which the files of all
	// source nodes are stored (<RemoteDir>/<source node>/<source name>/<rel>).
	// Use an absolute path; a relative one is relative to the login
	// directory.
	RemoteDir string
	// BandwidthLimit in bytes/second for all transfers to this target taken
	// together; 0 = unlimited.
	BandwidthLimit int64
	// MinFreeBytes is kept free on the target beyond the file being sent.
	MinFreeBytes int64
	// Classes this target receives (from the router); empty = all.
	Classes []Class
	// ConnectTimeout bounds dialling and the SSH handshake; 0 = 15 s.
	ConnectTimeout time.Duration
}

// Accepts reports whether the target receives files of class c.
func (t Target) Accepts(c Class) bool {
	if len(t.Classes) == 0 {
		return true
	}
	for _, k := range t.Classes {
		if k == c {
			return true
		}
	}
	return false
}

// LocalFile is one file to push.
type LocalFile struct {
	// Path is the local file read (for a database: the snapshot).
	Path string
	// RemoteName is the slash-separated destination relative to the target's
	// RemoteDir. It must be relative and must not contain "..".
	RemoteName string
	// Size in bytes and ModTime of Path as the caller last saw it; when set
	// and the file differs at the start of the push, Push fails with
	// ErrSourceChanged (zero values: not checked).
	Size    int64
	ModTime time.Time
	// SHA256 (hex) the caller expects the content to have; "" = unknown.
	// When set and the bytes actually read differ, Push fails with
	// ErrSourceChanged and nothing is renamed into place.
	SHA256 string
	// Source* describe the manifest entry the push is for and are copied
	// into the receipt (for databases: the live file at snapshot time).
	SourceSize       int64
	SourceModTime    time.Time
	SourceWALSize    int64
	SourceWALModTime time.Time
	// Pages, when set, are the per-page hashes of Path, a database snapshot
	// (Snapshot.Pages): a transport that can (SFTP) then updates the
	// target's copy by its changed pages (see the package documentation,
	// "Databases"); SHA256 must be set with it. Others send the whole file.
	Pages *PageMap
	// Progress, when set, is called after each chunk with the total number
	// of bytes of this file sent so far in this push (resumed bytes not
	// counted). It must be fast and must not block.
	Progress func(sent int64)
}

// Receipt is the proof that a target holds a verified copy of a file.
type Receipt struct {
	// NodeID of the target holding the copy.
	NodeID string `json:"node"`
	// SHA256 (hex) of the remote file after it was renamed into place, as
	// computed on the target (sha256sum) or read back from it.
	SHA256 string `json:"sha256"`
	// Size of the remote file in bytes.
	Size int64 `json:"size"`
	// VerifiedAt is when the remote checksum was confirmed.
	VerifiedAt time.Time `json:"verified_at"`
	// RemotePath is the absolute or home-relative path on the target.
	RemotePath string `json:"remote_path"`
	// Transport that made the copy ("sftp", "rsync").
	Transport string `json:"transport"`
	// BytesSent in this push (0 when the target already had the file).
	BytesSent int64 `json:"bytes_sent"`
	// ResumedFrom is the offset in bytes the upload resumed at (0 = from scratch).
	ResumedFrom int64 `json:"resumed_from,omitempty"`
	// Delta: the copy was made by writing only the pages that changed
	// since the version the target's spare held (databases, SFTP).
	Delta bool `json:"delta,omitempty"`
	// VerifiedBy says how a database copy was verified: "sha256sum" (run
	// on the target), "read back" (the whole copy read back over SFTP) or
	// "written pages" (only the pages of a delta read back; the whole copy
	// is read back at least every SFTPOptions.DBFullVerifyInterval). Empty
	// for other files.
	VerifiedBy string `json:"verified_by,omitempty"`
	// SourceSize and SourceModTime are the local file's size (bytes) and
	// mtime the copy corresponds to. For databases they describe the live
	// database file at snapshot time (SHA256 is the snapshot's), and
	// SourceWAL* its -wal file (0/zero when there is none).
	SourceSize       int64     `json:"source_size"`
	SourceModTime    time.Time `json:"source_mtime"`
	SourceWALSize    int64     `json:"source_wal_size,omitempty"`
	SourceWALModTime time.Time `json:"source_wal_mtime,omitzero"`
}

// Transport moves one file to one target and proves it arrived intact.
type Transport interface {
	// Push copies file to target and returns a receipt once the target holds
	// a copy whose SHA-256 was verified and which sits under its final name.
	Push(ctx context.Context, file LocalFile, target Target) (Receipt, error)
}

// Errors a transport wraps; test with errors.Is.
var (
	// ErrHostKeyMismatch: the target presented a host key other than the
	// expected one. The connection is refused.
	ErrHostKeyMismatch = errors.New("ssh host key mismatch")
	// ErrHostKeyUnknown: known_hosts has no key for the target and no
	// fingerprint was given. The connection is refused.
	ErrHostKeyUnknown = errors.New("ssh host key unknown")
	// ErrNoHostKeyPolicy: the target has neither a known_hosts file nor a
	// fingerprint; ringmesh never connects without host key verification.
	ErrNoHostKeyPolicy = errors.New("no ssh host key verification configured")
	// ErrChecksumMismatch: the remote copy's SHA-256 differs from the bytes
	// sent. The copy is not renamed into place and the partial is removed.
	ErrChecksumMismatch = errors.New("remote checksum mismatch")
	// ErrTargetDiskFull: the target has not enough free space (checked before
	// sending via statvfs, or reported by a failing write).
	ErrTargetDiskFull = errors.New("target disk full")
	// ErrSourceChanged: the local file changed while it was being sent.
	ErrSourceChanged = errors.New("source file changed during transfer")
	// ErrTransportUnavailable: the transport cannot be used for this target
	// (e.g. rsync missing on one end).
	ErrTransportUnavailable = errors.New("transport unavailable")
)

// PushError is the error a transport returns; it names the target and file.
type PushError struct {
	NodeID string
	Addr   string
	File   string
	Op     string
	Err    error
}

func (e *PushError) Error() string {
	return fmt.Sprintf("push %s to %s (%s): %s: %v", e.File, e.NodeID, e.Addr, e.Op, e.Err)
}

func (e *PushError) Unwrap() error { return e.Err }

// remotePath joins a target's RemoteDir with a file's RemoteName after
// checking that the name cannot escape the directory.
func remotePath(dir, name string) (string, error) {
	if name == "" || path.IsAbs(name) || strings.Contains(name, "\\") {
		return "", fmt.Errorf("invalid remote name %q: must be a relative slash-separated path", name)
	}
	for _, seg := range strings.Split(name, "/") {
		if seg == ".." || seg == "." || seg == "" {
			return "", fmt.Errorf("invalid remote name %q: empty, '.' or '..' segment", name)
		}
	}
	if dir == "" {
		return name, nil
	}
	return path.Join(dir, name), nil
}
