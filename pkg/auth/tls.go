package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"time"
)

// CAFile is the path of the CA certificate (PEM) that agents and meshctl pin.
func (iss *Issuer) CAFile() string { return iss.path("ca.pem") }

// ensureCA creates the CA (ECDSA P-256, 10 years) when the store has none.
func (iss *Issuer) ensureCA() error {
	if _, err := os.Stat(iss.path("ca-key.pem")); err == nil {
		return nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "ringmesh CA", Organization: []string{"ringmesh"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := writeFile(iss.path("ca-key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})); err != nil {
		return err
	}
	return writeFile(iss.path("ca.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func (iss *Issuer) loadCA() (*x509.Certificate, *ecdsa.PrivateKey, error) {
	cb, err := os.ReadFile(iss.path("ca.pem"))
	if err != nil {
		return nil, nil, fmt.Errorf("auth: %w", err)
	}
	kb, err := os.ReadFile(iss.path("ca-key.pem"))
	if err != nil {
		return nil, nil, fmt.Errorf("auth: %w", err)
	}
	cp, _ := pem.Decode(cb)
	kp, _ := pem.Decode(kb)
	if cp == nil || kp == nil {
		return nil, nil, errors.New("auth: ca.pem or ca-key.pem is not PEM")
	}
	cert, err := x509.ParseCertificate(cp.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("auth: ca.pem: %w", err)
	}
	key, err := x509.ParseECPrivateKey(kp.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("auth: ca-key.pem: %w", err)
	}
	return cert, key, nil
}

// CertPool is a pool holding only the ringmesh CA.
func (iss *Issuer) CertPool() (*x509.CertPool, error) {
	ca, _, err := iss.loadCA()
	if err != nil {
		return nil, err
	}
	p := x509.NewCertPool()
	p.AddCert(ca)
	return p, nil
}

// ServerTLS signs a fresh certificate (90 days) for this voter, valid for
// hosts plus 127.0.0.1, ::1 and localhost, usable both as a server and as
// a route client, and returns the TLS configuration of the client listener
// and of the routes (mutual TLS: a route peer must present a certificate of
// the same CA).
func (iss *Issuer) ServerTLS(hosts []string) (clients, routes *tls.Config, err error) {
	ca, der, key, err := iss.signServerCert(hosts)
	if err != nil {
		return nil, nil, err
	}
	pair := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	clients = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	routes = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12,
		RootCAs: pool, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}
	return clients, routes, nil
}

// signServerCert returns the CA and a fresh voter certificate (DER) and key.
func (iss *Issuer) signServerCert(hosts []string) (ca *x509.Certificate, der []byte, key *ecdsa.PrivateKey, err error) {
	ca, caKey, err := iss.loadCA()
	if err != nil {
		return nil, nil, nil, err
	}
	key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "ringmesh voter", Organization: []string{"ringmesh"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(0, 0, 90),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
		DNSNames:     []string{"localhost"},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			if !ip.IsUnspecified() {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			}
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err = x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	return ca, der, key, nil
}
