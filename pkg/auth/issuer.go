// Package auth issues and checks ringmesh identities on the bus: one NATS
// operator, a system account and one application account (all nkeys), and
// one user JWT per node, coordinator and operator, each saved as a creds
// file (mode 0600). Permissions come from the user's role (perms.go); a
// revocation is written into the account JWT, persisted here and pushed to
// the servers' account resolvers, which drop the user's connection at once.
// The package also keeps ringmesh's private TLS CA (tls.go) and signs and
// verifies operator API requests (request.go). docs/security.md has the design.
//
// Store layout (directory mode 0700, every file 0600):
//
//	operator.nk, system.nk, account.nk   nkey seeds
//	operator.jwt, system.jwt, account.jwt signed JWTs (account.jwt carries the revocations)
//	users.json                             every user issued: name, role, public key, time
//	ca.pem, ca-key.pem                     the TLS CA
package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/mesh"
)

// ErrRevoked means credentials were revoked.
var ErrRevoked = errors.New("credentials are revoked")

// AccountName is the application account every ringmesh user lives in.
const AccountName = "RINGMESH"

// Issued is one user the issuer signed.
type Issued struct {
	Name      string    `json:"name"`
	Role      Role      `json:"role"`
	PublicKey string    `json:"public_key"`
	IssuedAt  time.Time `json:"issued_at"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
}

// Issuer is an opened store. Its methods are safe for concurrent use;
// every change re-reads the store first, so a CLI and a coordinator may
// share it.
type Issuer struct {
	dir string
	mu  sync.Mutex

	operator, system, account nkeys.KeyPair
	operatorJWT, systemJWT    string
	accountJWT                string
	accountClaims             *jwt.AccountClaims
	accountMod                time.Time
}

// Open opens the store in dir, creating the operator, the accounts and the
// CA when dir holds none yet (the first voter, or --dev).
func Open(dir string) (*Issuer, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("auth: store %s: %w", dir, err)
	}
	iss := &Issuer{dir: dir}
	if _, err := os.Stat(iss.path("operator.nk")); errors.Is(err, os.ErrNotExist) {
		if err := iss.create(); err != nil {
			return nil, err
		}
	}
	if err := iss.load(); err != nil {
		return nil, err
	}
	if err := iss.ensureCA(); err != nil {
		return nil, err
	}
	return iss, nil
}

// OpenExisting opens dir and fails when no store is there (CLI use, so a
// typo does not create a new operator).
func OpenExisting(dir string) (*Issuer, error) {
	if _, err := os.Stat(filepath.Join(dir, "operator.nk")); err != nil {
		return nil, fmt.Errorf("auth: no issuer store in %s (create one with `meshctl creds init --store %s`): %w", dir, dir, err)
	}
	return Open(dir)
}

// Dir is the store directory.
func (iss *Issuer) Dir() string { return iss.dir }

func (iss *Issuer) path(name string) string { return filepath.Join(iss.dir, name) }

func (iss *Issuer) create() error {
	op, err := nkeys.CreateOperator()
	if err != nil {
		return err
	}
	sys, err := nkeys.CreateAccount()
	if err != nil {
		return err
	}
	acc, err := nkeys.CreateAccount()
	if err != nil {
		return err
	}
	opPub, _ := op.PublicKey()
	sysPub, _ := sys.PublicKey()
	accPub, _ := acc.PublicKey()
	oc := jwt.NewOperatorClaims(opPub)
	oc.Name = "ringmesh"
	oc.SystemAccount = sysPub
	opJWT, err := oc.Encode(op)
	if err != nil {
		return err
	}
	sc := jwt.NewAccountClaims(sysPub)
	sc.Name = "SYS"
	sysJWT, err := sc.Encode(op)
	if err != nil {
		return err
	}
	ac := jwt.NewAccountClaims(accPub)
	ac.Name = AccountName
	ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
	accJWT, err := ac.Encode(op)
	if err != nil {
		return err
	}
	for name, kp := range map[string]nkeys.KeyPair{"operator.nk": op, "system.nk": sys, "account.nk": acc} {
		seed, _ := kp.Seed()
		if err := writeFile(iss.path(name), seed); err != nil {
			return err
		}
	}
	for name, j := range map[string]string{"operator.jwt": opJWT, "system.jwt": sysJWT, "account.jwt": accJWT} {
		if err := writeFile(iss.path(name), []byte(j)); err != nil {
			return err
		}
	}
	return writeFile(iss.path("users.json"), []byte("[]\n"))
}

func (iss *Issuer) load() error {
	var err error
	if iss.operator, err = readSeed(iss.path("operator.nk")); err != nil {
		return err
	}
	if iss.system, err = readSeed(iss.path("system.nk")); err != nil {
		return err
	}
	if iss.account, err = readSeed(iss.path("account.nk")); err != nil {
		return err
	}
	b, err := os.ReadFile(iss.path("operator.jwt"))
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	iss.operatorJWT = string(b)
	if b, err = os.ReadFile(iss.path("system.jwt")); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	iss.systemJWT = string(b)
	return iss.loadAccount()
}

// loadAccount (re)reads account.jwt when it changed on disk.
func (iss *Issuer) loadAccount() error {
	st, err := os.Stat(iss.path("account.jwt"))
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	if iss.accountClaims != nil && st.ModTime().Equal(iss.accountMod) {
		return nil
	}
	b, err := os.ReadFile(iss.path("account.jwt"))
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	ac, err := jwt.DecodeAccountClaims(string(b))
	if err != nil {
		return fmt.Errorf("auth: account.jwt: %w", err)
	}
	iss.accountJWT, iss.accountClaims, iss.accountMod = string(b), ac, st.ModTime()
	return nil
}

func readSeed(path string) (nkeys.KeyPair, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	kp, err := nkeys.FromSeed(b)
	if err != nil {
		return nil, fmt.Errorf("auth: %s: not an nkey seed", path)
	}
	return kp, nil
}

// writeFile writes b to path atomically with mode 0600.
func writeFile(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	return nil
}

// AccountPublicKey is the application account's public key (the issuer
// of every user JWT).
func (iss *Issuer) AccountPublicKey() string {
	pub, _ := iss.account.PublicKey()
	return pub
}

// AccountJWT is the current account JWT, revocations included.
func (iss *Issuer) AccountJWT() (string, error) {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	if err := iss.loadAccount(); err != nil {
		return "", err
	}
	return iss.accountJWT, nil
}

// Issue signs a new user with role r named name and returns its creds file
// content. The user is recorded in users.json; earlier users of the same
// name stay valid until revoked.
func (iss *Issuer) Issue(r Role, name string) ([]byte, error) {
	perms, err := Permissions(r, name)
	if err != nil {
		return nil, err
	}
	ukp, err := nkeys.CreateUser()
	if err != nil {
		return nil, err
	}
	upub, _ := ukp.PublicKey()
	uc := jwt.NewUserClaims(upub)
	uc.Name = name
	uc.Tags.Add("role:" + string(r))
	uc.Permissions = perms
	limitRole(r, &uc.Limits)
	uc.IssuerAccount = "" // signed by the account key itself
	tok, err := uc.Encode(iss.account)
	if err != nil {
		return nil, err
	}
	seed, _ := ukp.Seed()
	creds, err := jwt.FormatUserConfig(tok, seed)
	if err != nil {
		return nil, err
	}
	iss.mu.Lock()
	defer iss.mu.Unlock()
	users, err := iss.users()
	if err != nil {
		return nil, err
	}
	for _, u := range users {
		if u.Name == name && u.Role != r && u.RevokedAt.IsZero() {
			// Names are one name space (inbox prefix, revoke by name).
			return nil, fmt.Errorf("auth: %q already holds unrevoked %s credentials; revoke them first or choose another name", name, u.Role)
		}
	}
	users = append(users, Issued{Name: name, Role: r, PublicKey: upub, IssuedAt: time.Unix(uc.IssuedAt, 0).UTC()})
	if err := iss.saveUsers(users); err != nil {
		return nil, err
	}
	return creds, nil
}

// IssueFile issues a user and writes its creds to path (mode 0600).
func (iss *Issuer) IssueFile(r Role, name, path string) error {
	creds, err := iss.Issue(r, name)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	return writeFile(path, creds)
}

// SystemCreds signs a short-lived system-account user (1 h), for pushing
// account JWTs to the servers' resolvers; it is not recorded.
func (iss *Issuer) SystemCreds() ([]byte, error) {
	ukp, err := nkeys.CreateUser()
	if err != nil {
		return nil, err
	}
	upub, _ := ukp.PublicKey()
	uc := jwt.NewUserClaims(upub)
	uc.Name = "ringmesh-sys"
	uc.Expires = time.Now().Add(time.Hour).Unix()
	tok, err := uc.Encode(iss.system)
	if err != nil {
		return nil, err
	}
	seed, _ := ukp.Seed()
	return jwt.FormatUserConfig(tok, seed)
}

// Users lists every issued user, sorted by name then time.
func (iss *Issuer) Users() ([]Issued, error) {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	return iss.users()
}

func (iss *Issuer) users() ([]Issued, error) {
	b, err := os.ReadFile(iss.path("users.json"))
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	var out []Issued
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("auth: users.json: %w", err)
	}
	return out, nil
}

func (iss *Issuer) saveUsers(u []Issued) error {
	sort.SliceStable(u, func(i, j int) bool { return u[i].Name < u[j].Name })
	b, err := json.MarshalIndent(u, "", "  ")
	if err != nil {
		return err
	}
	return writeFile(iss.path("users.json"), append(b, '\n'))
}

// Revoke revokes every user issued under name (node, coordinator or
// operator) and returns the re-signed account JWT, already persisted in
// the store; push it to the servers with Push. It fails when name has no
// user. Revoking twice is harmless.
func (iss *Issuer) Revoke(name string) (accountJWT string, revoked []Issued, err error) {
	if err := mesh.ValidateNodeID(name); err != nil {
		return "", nil, err
	}
	iss.mu.Lock()
	defer iss.mu.Unlock()
	if err := iss.loadAccount(); err != nil {
		return "", nil, err
	}
	users, err := iss.users()
	if err != nil {
		return "", nil, err
	}
	now := time.Now().UTC()
	ac := iss.accountClaims
	for i, u := range users {
		if u.Name != name {
			continue
		}
		// Revoke at "now + 1 s": the server compares whole seconds
		// (issued <= revoked), so a user issued this very second is covered too.
		ac.RevokeAt(u.PublicKey, now.Add(time.Second))
		if users[i].RevokedAt.IsZero() {
			users[i].RevokedAt = now
		}
		revoked = append(revoked, users[i])
	}
	if len(revoked) == 0 {
		return "", nil, fmt.Errorf("auth: no credentials were issued to %q", name)
	}
	tok, err := ac.Encode(iss.operator)
	if err != nil {
		return "", nil, err
	}
	if err := writeFile(iss.path("account.jwt"), []byte(tok)); err != nil {
		return "", nil, err
	}
	if err := iss.saveUsers(users); err != nil {
		return "", nil, err
	}
	iss.accountMod = time.Time{}
	if err := iss.loadAccount(); err != nil {
		return "", nil, err
	}
	return tok, revoked, nil
}

// Security is the embedded server's configuration: trusted operator,
// system account, both account JWTs, and TLS for clients and routes with
// a certificate for hosts (loopback names are always included).
func (iss *Issuer) Security(hosts []string) (*bus.Security, error) {
	acc, err := iss.AccountJWT()
	if err != nil {
		return nil, err
	}
	sysPub, _ := iss.system.PublicKey()
	srvTLS, routeTLS, err := iss.ServerTLS(hosts)
	if err != nil {
		return nil, err
	}
	return &bus.Security{
		OperatorJWT:   iss.operatorJWT,
		SystemAccount: sysPub,
		AccountJWTs:   map[string]string{sysPub: iss.systemJWT, iss.AccountPublicKey(): acc},
		TLS:           srvTLS,
		RouteTLS:      routeTLS,
	}, nil
}

// EnsureCreds keeps the creds file at path when it holds an unrevoked user
// of role r named name signed by this account, and issues a new one there
// when it is missing or not such a user. A revoked user is an error
// (ErrRevoked): a revocation must not be undone by a restart; remove the
// file to issue anew. --dev and the coordinator use it so a restart does
// not grow users.json.
func (iss *Issuer) EnsureCreds(r Role, name, path string) error {
	if b, err := os.ReadFile(path); err == nil {
		if tok, err := jwt.ParseDecoratedJWT(b); err == nil {
			if uc, err := jwt.DecodeUserClaims(tok); err == nil && uc.Issuer == iss.AccountPublicKey() && uc.Name == name && uc.Tags.Contains("role:"+string(r)) {
				iss.mu.Lock()
				lerr := iss.loadAccount()
				revoked := lerr == nil && iss.accountClaims.IsClaimRevoked(uc)
				iss.mu.Unlock()
				if lerr != nil {
					return lerr
				}
				if revoked {
					return fmt.Errorf("%w: %s in %s (remove the file to issue new credentials)", ErrRevoked, name, path)
				}
				if uc.Expires == 0 || time.Now().Unix() < uc.Expires {
					return nil
				}
			}
		}
	}
	return iss.IssueFile(r, name, path)
}

// Merge folds the revocations of another signed version of the account
// JWT (e.g. what a server's resolver holds, pushed by another voter) into
// the store, so re-signing never drops a revocation. It returns whether
// the store changed.
func (iss *Issuer) Merge(accountJWT string) (bool, error) {
	ac, err := jwt.DecodeAccountClaims(accountJWT)
	if err != nil {
		return false, fmt.Errorf("auth: merge: %w", err)
	}
	opPub, _ := iss.operator.PublicKey()
	if ac.Subject != iss.AccountPublicKey() || ac.Issuer != opPub {
		return false, errors.New("auth: merge: not this cluster's account JWT")
	}
	iss.mu.Lock()
	defer iss.mu.Unlock()
	if err := iss.loadAccount(); err != nil {
		return false, err
	}
	mine := iss.accountClaims
	changed := false
	for pub, at := range ac.Revocations {
		if cur, ok := mine.Revocations[pub]; !ok || cur < at {
			mine.RevokeAt(pub, time.Unix(at, 0))
			changed = true
		}
	}
	if !changed {
		return false, nil
	}
	tok, err := mine.Encode(iss.operator)
	if err != nil {
		return false, err
	}
	if err := writeFile(iss.path("account.jwt"), []byte(tok)); err != nil {
		return false, err
	}
	iss.accountMod = time.Time{}
	return true, iss.loadAccount()
}

// SystemConnOptions are nats.go options that connect as a fresh system
// user (for Push and account lookups).
func (iss *Issuer) SystemConnOptions() ([]nats.Option, error) {
	creds, err := iss.SystemCreds()
	if err != nil {
		return nil, err
	}
	tok, err := jwt.ParseDecoratedJWT(creds)
	if err != nil {
		return nil, err
	}
	kp, err := jwt.ParseDecoratedNKey(creds)
	if err != nil {
		return nil, err
	}
	seed, _ := kp.Seed()
	return []nats.Option{nats.UserJWTAndSeed(tok, string(seed)), nats.RootCAs(iss.CAFile()), nats.Name("ringmesh-sys")}, nil
}

// RevokeAndPush revokes name, after merging what the servers' resolver
// holds, and pushes the new account JWT through urls (system user). The
// revocation is persisted in the store even when the push fails; the
// error then says so.
func (iss *Issuer) RevokeAndPush(ctx context.Context, urls []string, name string) ([]Issued, error) {
	opts, err := iss.SystemConnOptions()
	if err != nil {
		return nil, err
	}
	nc, cerr := nats.Connect(strings.Join(urls, ","), append(opts, nats.Timeout(5*time.Second))...)
	if cerr == nil {
		defer nc.Close()
		if m, err := nc.RequestWithContext(ctx, "$SYS.REQ.ACCOUNT."+iss.AccountPublicKey()+".CLAIMS.LOOKUP", nil); err == nil && len(m.Data) > 0 {
			_, _ = iss.Merge(string(m.Data))
		}
	}
	tok, revoked, err := iss.Revoke(name)
	if err != nil {
		return nil, err
	}
	if cerr != nil {
		return revoked, fmt.Errorf("auth: revoked %s in the store, but could not reach the bus to apply it (%v); the servers load it at their next start", name, cerr)
	}
	if err := Push(ctx, nc, tok); err != nil {
		return revoked, fmt.Errorf("auth: revoked %s in the store, but: %w", name, err)
	}
	return revoked, nil
}
