package busserver

import (
	"crypto/tls"
	"errors"
	"fmt"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/ringmesh/ringmesh/pkg/bus"
)

// applySecurity turns sec into o's operator, account resolver and TLS
// settings; the account JWTs are stored under bus.bus.ResolverDir(storeDir).
func applySecurity(sec *bus.Security, o *server.Options, storeDir string) error {
	if sec.OperatorJWT == "" || sec.SystemAccount == "" {
		return errors.New("bus: security needs the operator JWT and the system account")
	}
	op, err := jwt.DecodeOperatorClaims(sec.OperatorJWT)
	if err != nil {
		return fmt.Errorf("bus: operator JWT: %w", err)
	}
	if _, ok := sec.AccountJWTs[sec.SystemAccount]; !ok {
		return errors.New("bus: the system account's JWT is missing")
	}
	res, err := server.NewDirAccResolver(bus.ResolverDir(storeDir), 0, 0, server.NoDelete)
	if err != nil {
		return fmt.Errorf("bus: account resolver: %w", err)
	}
	for pub, j := range sec.AccountJWTs {
		if err := res.Store(pub, j); err != nil {
			return fmt.Errorf("bus: store account %s: %w", pub, err)
		}
	}
	o.TrustedOperators = []*jwt.OperatorClaims{op}
	o.SystemAccount = sec.SystemAccount
	o.AccountResolver = res
	if sec.TLS != nil {
		o.TLSConfig = sec.TLS
		o.TLS = true
		o.TLSVerify = sec.TLS.ClientAuth == tls.RequireAndVerifyClientCert
		o.TLSTimeout = 5
	}
	if sec.RouteTLS != nil {
		o.Cluster.TLSConfig = sec.RouteTLS
		o.Cluster.TLSTimeout = 5
	}
	return nil
}
