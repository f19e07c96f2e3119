package synctarget

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/ringmesh/ringmesh/pkg/events"
)

// ErrHostKeyMismatch: the target presented another host key than the one
// confirmed or pinned; nothing is done.
var ErrHostKeyMismatch = errors.New("ssh host key mismatch")

// RecordsFile is the file in the issuer store (next to the CAs) holding one
// Record per target set up.
const RecordsFile = "sync-targets.json"

// Record is what `meshctl target setup` learned about a target: the
// coordinator sends agents Account, RemoteDir and Fingerprint instead of the
// inventory's admin login, and agents verify that fingerprint.
type Record struct {
	Node string `json:"node"`
	// Addr is the "host:port" setup connected to, AdminUser the login it
	// used and AdminKey the key file ("" = ssh-agent): what `meshctl revoke`
	// uses to reach the target again.
	Addr      string `json:"addr"`
	AdminUser string `json:"admin_user"`
	AdminKey  string `json:"admin_key,omitempty"`
	// Account is the sync login; RemoteDir the directory agents write to,
	// inside the chroot ("/incoming"); ChrootDir the chroot on the target.
	Account   string `json:"account"`
	RemoteDir string `json:"remote_dir"`
	ChrootDir string `json:"chroot_dir"`
	// ConfDir holds the CA key, revoked_ids and the KRL on the target
	// (needed to revoke).
	ConfDir string `json:"conf_dir"`
	// HostKey is the host key presented during setup (authorized_keys
	// form) and Fingerprint its SHA-256 fingerprint: the pin.
	HostKey     string `json:"host_key"`
	Fingerprint string `json:"host_key_fingerprint"`
	// CAFingerprint is the SSH CA installed as TrustedUserCAKeys.
	CAFingerprint string    `json:"ca_fingerprint"`
	SetupAt       time.Time `json:"setup_at"`
}

// Layout is the record's layout (for RevokeNode).
func (r Record) Layout() Layout {
	return Layout{Account: r.Account, ChrootDir: r.ChrootDir, Incoming: strings.TrimPrefix(r.RemoteDir, "/"), ConfDir: r.ConfDir}.WithDefaults()
}

// Check validates a record read from disk before it is used.
func (r Record) Check() error {
	switch {
	case !validNode(r.Node):
		return fmt.Errorf("node %q", events.StripControl(r.Node))
	case !events.ValidFingerprint(r.Fingerprint):
		return fmt.Errorf("%s: host key fingerprint %q", r.Node, events.StripControl(r.Fingerprint))
	}
	if err := r.Layout().Validate(); err != nil {
		return fmt.Errorf("%s: %w", r.Node, err)
	}
	return nil
}

// LoadRecords reads dir/RecordsFile (no file: no records). Every record is
// checked; a bad one is an error naming it.
func LoadRecords(dir string) (map[string]Record, error) {
	b, err := os.ReadFile(filepath.Join(dir, RecordsFile))
	if errors.Is(err, os.ErrNotExist) {
		return map[string]Record{}, nil
	}
	if err != nil {
		return nil, err
	}
	var recs map[string]Record
	if err := json.Unmarshal(b, &recs); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, RecordsFile), err)
	}
	for k, r := range recs {
		if err := r.Check(); err != nil || k != r.Node {
			return nil, fmt.Errorf("%s: record %q: %v", filepath.Join(dir, RecordsFile), events.StripControl(k), err)
		}
	}
	if recs == nil {
		recs = map[string]Record{}
	}
	return recs, nil
}

// SaveRecord adds or replaces rec in dir/RecordsFile (mode 0600, written
// to a temporary file and renamed).
func SaveRecord(dir string, rec Record) error {
	if err := rec.Check(); err != nil {
		return err
	}
	recs, err := LoadRecords(dir)
	if err != nil {
		return err
	}
	recs[rec.Node] = rec
	b, err := json.MarshalIndent(recs, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, RecordsFile+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, RecordsFile))
}

// Admin is an administrator's SSH login to a target.
type Admin struct {
	Node string
	Host string
	// Port; 0 = 22.
	Port int
	User string
	// Signers authenticate the admin (a key file, ssh-agent).
	Signers []ssh.Signer
	// Fingerprint is the host key the operator confirmed ("SHA256:...").
	// Empty: DialAdmin fails with an *UnconfirmedHostKeyError showing the
	// presented key, so the operator can check it out of band.
	Fingerprint string
	// Timeout bounds dialling and the handshake; 0 = 15 s.
	Timeout time.Duration
}

// Addr is "host:port".
func (a Admin) Addr() string {
	p := a.Port
	if p == 0 {
		p = 22
	}
	return net.JoinHostPort(a.Host, strconv.Itoa(p))
}

// UnconfirmedHostKeyError: no fingerprint was given for a target, so its
// host key was not accepted; Key is what it presented.
type UnconfirmedHostKeyError struct {
	Node, Addr string
	Key        ssh.PublicKey
}

func (e *UnconfirmedHostKeyError) Error() string {
	return fmt.Sprintf("host key of %s (%s) is %s %s; not confirmed: check it on the host (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub, or the provider's console) and run again with --fingerprint %s",
		e.Node, e.Addr, e.Key.Type(), ssh.FingerprintSHA256(e.Key), ssh.FingerprintSHA256(e.Key))
}

// hostKeyAlgos prefers ed25519, like the agents' sync transport does for a
// fingerprint without key type, so that setup pins the key agents will see.
var hostKeyAlgos = []string{ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521, ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256}

// DialAdmin connects as the administrator, accepting the host key only when
// its fingerprint is a.Fingerprint (ErrHostKeyMismatch otherwise),
// and returns the client and the host key (the pin to record).
func DialAdmin(ctx context.Context, a Admin) (*ssh.Client, ssh.PublicKey, error) {
	if !events.ValidHost(a.Host) || !events.Match("user", a.User) || a.User == "" || a.Port < 0 || a.Port > 65535 {
		return nil, nil, fmt.Errorf("target %s: SSH endpoint %q port %d user %q fails its pattern", a.Node, events.StripControl(a.Host), a.Port, events.StripControl(a.User))
	}
	if a.Fingerprint != "" && !events.ValidFingerprint(a.Fingerprint) {
		return nil, nil, fmt.Errorf("target %s: --fingerprint %q: want SHA256:<43 base64 characters>", a.Node, events.StripControl(a.Fingerprint))
	}
	if len(a.Signers) == 0 {
		return nil, nil, fmt.Errorf("target %s: no admin SSH key (give --identity, ssh_key in the inventory, or an ssh-agent)", a.Node)
	}
	timeout := a.Timeout
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	var presented ssh.PublicKey
	cfg := &ssh.ClientConfig{
		User:              a.User,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(a.Signers...)},
		HostKeyAlgorithms: hostKeyAlgos,
		Timeout:           timeout,
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			presented = key
			got := ssh.FingerprintSHA256(key)
			switch {
			case a.Fingerprint == "":
				return &UnconfirmedHostKeyError{Node: a.Node, Addr: a.Addr(), Key: key}
			case got != a.Fingerprint:
				return fmt.Errorf("%w: %s (%s) presented %s key %s, expected %s; refusing to connect (if the host was reinstalled, check its new key out of band and pass it with --fingerprint)",
					ErrHostKeyMismatch, a.Node, a.Addr(), key.Type(), got, a.Fingerprint)
			}
			return nil
		},
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	nc, err := (&net.Dialer{}).DialContext(dctx, "tcp", a.Addr())
	if err != nil {
		return nil, nil, fmt.Errorf("connect to %s (%s): %w", a.Node, a.Addr(), err)
	}
	stop := context.AfterFunc(dctx, func() { _ = nc.Close() })
	conn, chans, reqs, err := ssh.NewClientConn(nc, a.Addr(), cfg)
	stopped := stop()
	if err != nil {
		_ = nc.Close()
		var ue *UnconfirmedHostKeyError
		if errors.As(err, &ue) {
			return nil, presented, ue
		}
		return nil, presented, fmt.Errorf("ssh to %s (%s) as %s: %w", a.Node, a.Addr(), a.User, err)
	}
	if !stopped {
		_ = conn.Close()
		return nil, nil, fmt.Errorf("ssh to %s (%s): %w", a.Node, a.Addr(), dctx.Err())
	}
	return ssh.NewClient(conn, chans, reqs), presented, nil
}
