package auth

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ringmesh/ringmesh/pkg/events"
)

// Files WriteServerConfig writes into its directory.
const (
	// ServerAuthConf holds operator, system account, account resolver with
	// both account JWTs preloaded, and client TLS; include it at the top
	// level of nats-server's configuration.
	ServerAuthConf = "auth.conf"
	// ServerRouteTLSConf holds mutual TLS for routes; include it inside
	// the cluster block.
	ServerRouteTLSConf = "route-tls.conf"
	ServerCertFile     = "server-cert.pem"
	ServerKeyFile      = "server-key.pem"
	ServerCAFile       = "ca.pem"
)

// WriteServerConfig writes what a standalone nats-server needs to run the
// same decentralized auth and TLS as the embedded one (deploy/nats/voterN.conf
// includes the two .conf files): ServerAuthConf, ServerRouteTLSConf, a
// fresh 90-day certificate for hosts with its key, and the CA, all mode
// 0600 in dir (created 0700). resolverDir is the server's account JWT
// directory, where pushed revocations persist (conventionally
// <store_dir>/jwt). Paths inside the files are dir's absolute form. It
// returns the paths written.
func (iss *Issuer) WriteServerConfig(dir, resolverDir string, hosts []string) ([]string, error) {
	if resolverDir == "" || !filepath.IsAbs(resolverDir) {
		return nil, errors.New("auth: the resolver directory must be an absolute path")
	}
	for _, h := range hosts {
		if !events.ValidHost(h) {
			return nil, fmt.Errorf("auth: TLS host %q is not a host name or IP address", h)
		}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	acc, err := iss.AccountJWT()
	if err != nil {
		return nil, err
	}
	sysPub, err := iss.system.PublicKey()
	if err != nil {
		return nil, err
	}
	ca, der, key, err := iss.signServerCert(hosts)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	q := strconv.Quote
	in := func(name string) string { return q(filepath.Join(abs, name)) }
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by `meshctl creds server-config`: ringmesh's operator, accounts and TLS for\n")
	fmt.Fprintf(&b, "# nats-server. Regenerate it (and restart or reload) when the certificate nears its\n")
	fmt.Fprintf(&b, "# 90 days; revocations arrive at runtime and are kept in the resolver directory.\n")
	fmt.Fprintf(&b, "operator: %s\nsystem_account: %s\n", q(iss.operatorJWT), sysPub)
	fmt.Fprintf(&b, "resolver: {\n  type: full\n  dir: %s\n  allow_delete: false\n  interval: \"2m\"\n  timeout: \"5s\"\n}\n", q(resolverDir))
	fmt.Fprintf(&b, "resolver_preload: {\n  %s: %s\n  %s: %s\n}\n", sysPub, q(iss.systemJWT), iss.AccountPublicKey(), q(acc))
	fmt.Fprintf(&b, "tls {\n  cert_file: %s\n  key_file: %s\n  timeout: 5\n}\n", in(ServerCertFile), in(ServerKeyFile))
	route := fmt.Sprintf("# Written by `meshctl creds server-config`: mutual TLS between voters (same CA).\ntls {\n  cert_file: %s\n  key_file: %s\n  ca_file: %s\n  verify: true\n  timeout: 5\n}\n",
		in(ServerCertFile), in(ServerKeyFile), in(ServerCAFile))
	files := []struct {
		name string
		data []byte
	}{
		{ServerAuthConf, []byte(b.String())},
		{ServerRouteTLSConf, []byte(route)},
		{ServerCertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})},
		{ServerKeyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})},
		{ServerCAFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})},
	}
	var out []string
	for _, f := range files {
		p := filepath.Join(abs, f.name)
		if err := writeFile(p, f.data); err != nil {
			return out, err
		}
		out = append(out, p)
	}
	return out, nil
}
