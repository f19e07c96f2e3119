package main

import (
	"path/filepath"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/ringmesh/ringmesh/pkg/agent"
	"github.com/ringmesh/ringmesh/pkg/auth"
	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/bus/busserver"
	"github.com/ringmesh/ringmesh/pkg/coordinator"
)

// secure is a scenario's issuer store: every scenario runs the bus as in
// production, with user JWTs per role and TLS (mTLS routes in clusters).
type secure struct {
	iss *auth.Issuer
	dir string

	mu    sync.Mutex
	creds map[string]string
}

func newSecure(env Env) (*secure, error) {
	dir := filepath.Join(env.Dir, "auth")
	iss, err := auth.Open(dir)
	if err != nil {
		return nil, err
	}
	return &secure{iss: iss, dir: dir, creds: map[string]string{}}, nil
}

// credsFile issues a user once per scenario.
func (s *secure) credsFile(r auth.Role, name string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := string(r) + "/" + name
	if p, ok := s.creds[key]; ok {
		return p, nil
	}
	p := filepath.Join(s.dir, "creds", string(r)+"-"+name+".creds")
	if err := s.iss.IssueFile(r, name, p); err != nil {
		return "", err
	}
	s.creds[key] = p
	return p, nil
}

// coordinator gives cfg the issuer (embedded server secured, signed API)
// and, with external NATS, its own credentials.
func (s *secure) coordinator(cfg coordinator.Config) (coordinator.Config, error) {
	cfg.Auth = s.iss
	if len(cfg.NATSURLs) > 0 {
		p, err := s.credsFile(auth.RoleCoordinator, "coordinator-"+cfg.Name)
		if err != nil {
			return cfg, err
		}
		cfg.CredsFile, cfg.CAFile = p, s.iss.CAFile()
	}
	return cfg, nil
}

// agent gives cfg the node's credentials.
func (s *secure) agent(cfg agent.Config) (agent.Config, error) {
	p, err := s.credsFile(auth.RoleNode, cfg.NodeID)
	if err != nil {
		return cfg, err
	}
	cfg.CredsFile, cfg.CAFile = p, s.iss.CAFile()
	return cfg, nil
}

// conn adds role credentials to a connection config.
func (s *secure) conn(cc bus.ConnConfig, r auth.Role, name string) (bus.ConnConfig, error) {
	p, err := s.credsFile(r, name)
	if err != nil {
		return cc, err
	}
	cc.CredsFile, cc.CAFile = p, s.iss.CAFile()
	return cc, nil
}

// cluster is the ClusterOptions of a secured test cluster.
func (s *secure) cluster() (busserver.ClusterOptions, error) {
	sec, err := s.iss.Security(nil)
	if err != nil {
		return busserver.ClusterOptions{}, err
	}
	cc, err := s.conn(bus.ConnConfig{}, auth.RoleCoordinator, "coordinator-probe")
	if err != nil {
		return busserver.ClusterOptions{}, err
	}
	opts, err := cc.Options()
	if err != nil {
		return busserver.ClusterOptions{}, err
	}
	return busserver.ClusterOptions{Security: sec, Client: append(opts, nats.Name("probe"))}, nil
}

// signer is the admin operator's request signer (API calls of the checkers).
func (s *secure) signer() (*auth.Signer, error) {
	p, err := s.credsFile(auth.RoleAdmin, "chaos-admin")
	if err != nil {
		return nil, err
	}
	return auth.LoadSigner(p)
}
