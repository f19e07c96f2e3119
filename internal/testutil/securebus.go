package testutil

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/auth"
	"github.com/ringmesh/ringmesh/pkg/bus"
)

// SecureBus is an issuer store for one test: servers started with its
// Security require user JWTs and TLS, as in production. Tests get
// credentials per role from it; Register makes a server URL find it again
// (helpers that only know a URL use Lookup).
type SecureBus struct {
	Issuer *auth.Issuer
	dir    string

	mu    sync.Mutex
	creds map[string]string
}

// NewSecureBus creates an issuer store under t.TempDir().
func NewSecureBus(t testing.TB) *SecureBus {
	t.Helper()
	dir, err := os.MkdirTemp("", "ringmesh-auth-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	iss, err := auth.Open(filepath.Join(dir, "auth"))
	if err != nil {
		t.Fatal(err)
	}
	return &SecureBus{Issuer: iss, dir: dir, creds: map[string]string{}}
}

// Security is the embedded-server configuration (JWT auth, TLS for
// clients and mTLS routes, certificate for loopback).
func (s *SecureBus) Security(t testing.TB) *bus.Security {
	t.Helper()
	sec, err := s.Issuer.Security(nil)
	if err != nil {
		t.Fatal(err)
	}
	return sec
}

// CAFile is the CA certificate to pin.
func (s *SecureBus) CAFile() string { return s.Issuer.CAFile() }

// Creds returns the creds file of a user of role r named name, issued once.
func (s *SecureBus) Creds(t testing.TB, r auth.Role, name string) string {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	key := string(r) + "/" + name
	if p, ok := s.creds[key]; ok {
		return p
	}
	p := filepath.Join(s.dir, "creds", string(r)+"-"+name+".creds")
	if err := s.Issuer.IssueFile(r, name, p); err != nil {
		t.Fatal(err)
	}
	s.creds[key] = p
	return p
}

// ConnConfig is a bus.ConnConfig for a user of role r named name.
func (s *SecureBus) ConnConfig(t testing.TB, urls []string, r auth.Role, name string) bus.ConnConfig {
	return bus.ConnConfig{URLs: urls, Name: name, CredsFile: s.Creds(t, r, name), CAFile: s.CAFile()}
}

// Connect opens a plain connection as role r / name.
func (s *SecureBus) Connect(t testing.TB, urls []string, r auth.Role, name string, extra ...nats.Option) (*nats.Conn, error) {
	t.Helper()
	opts, err := s.ConnConfig(t, urls, r, name).Options()
	if err != nil {
		return nil, err
	}
	return nats.Connect(strings.Join(urls, ","), append(opts, extra...)...)
}

// Client is an API client signed as the admin operator "test-admin".
func (s *SecureBus) Client(t testing.TB, nc *nats.Conn) api.Client {
	t.Helper()
	sg, err := auth.LoadSigner(s.Creds(t, auth.RoleAdmin, "test-admin"))
	if err != nil {
		t.Fatal(err)
	}
	return api.Client{NC: nc, Sign: sg.Sign}
}

// MeshctlArgs are the meshctl flags for the admin operator.
func (s *SecureBus) MeshctlArgs(t testing.TB) []string {
	return []string{"--creds", s.Creds(t, auth.RoleAdmin, "test-admin"), "--ca", s.CAFile()}
}

var (
	regMu    sync.Mutex
	registry = map[string]*SecureBus{}
	byDir    = map[string]*SecureBus{}
)

// SecureBusAt opens (or creates) the issuer store in dir, once per
// process: servers restarted on the same stores, and the voters of one
// cluster, share one operator.
func SecureBusAt(t testing.TB, dir string) *SecureBus {
	t.Helper()
	regMu.Lock()
	defer regMu.Unlock()
	if s, ok := byDir[dir]; ok {
		return s
	}
	iss, err := auth.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	s := &SecureBus{Issuer: iss, dir: dir, creds: map[string]string{}}
	byDir[dir] = s
	t.Cleanup(func() {
		regMu.Lock()
		defer regMu.Unlock()
		delete(byDir, dir)
	})
	return s
}

func hostPort(u string) string {
	if p, err := url.Parse(u); err == nil && p.Host != "" {
		return p.Host
	}
	return u
}

// Register records that the server at each URL uses s, until the test ends.
func (s *SecureBus) Register(t testing.TB, urls ...string) {
	regMu.Lock()
	defer regMu.Unlock()
	for _, u := range urls {
		registry[hostPort(u)] = s
	}
	t.Cleanup(func() {
		regMu.Lock()
		defer regMu.Unlock()
		for _, u := range urls {
			if registry[hostPort(u)] == s {
				delete(registry, hostPort(u))
			}
		}
	})
}

// Lookup returns the SecureBus registered for url (nil when the server has none).
func Lookup(u string) *SecureBus {
	regMu.Lock()
	defer regMu.Unlock()
	return registry[hostPort(u)]
}

// Dial connects to url as a coordinator-role test user when url's server
// is registered, or plainly otherwise.
func Dial(t testing.TB, u string, extra ...nats.Option) (*nats.Conn, error) {
	t.Helper()
	if s := Lookup(u); s != nil {
		return s.Connect(t, []string{u}, auth.RoleCoordinator, "coordinator-test", extra...)
	}
	return nats.Connect(u, append(extra, nats.Timeout(5*time.Second))...)
}

// APIClient is an admin-signed API client when url's server is registered.
func APIClient(t testing.TB, u string, nc *nats.Conn) api.Client {
	if s := Lookup(u); s != nil {
		return s.Client(t, nc)
	}
	return api.Client{NC: nc}
}
