package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"
)

// ServerOptions are a listener's TLS files (mysqld's ssl-ca, ssl-cert,
// ssl-key, ssl-crl, ssl-crlpath).
type ServerOptions struct {
	CA, Cert, Key string
	// CRL and CRLPath are read as the client side reads them (LoadCRLs);
	// a client certificate is then checked as CheckRevocation does.
	CRL, CRLPath string
}

// Server holds reloadable server-side TLS material. Client certificates
// are asked for and verified against CA when presented, as mysqld does;
// whether one is required is the account's REQUIRE clause. With CRLs, a
// presented certificate that is revoked (or whose issuer's CRL is
// missing, stale or badly signed) fails the handshake with ReasonRevoked.
type Server struct {
	opts ServerOptions
	mat  atomic.Pointer[serverMaterial]
}

type serverMaterial struct {
	cert *tls.Certificate
	cas  *x509.CertPool
	list []*x509.Certificate
	crls []*x509.RevocationList
}

// NewServer loads the files; it returns nil, nil when no certificate is set.
// CRLs need the CA (a client certificate is checked for revocation only
// once its chain is verified) and the server's own certificate.
func NewServer(o ServerOptions) (*Server, error) {
	if o.checksCRL() && (o.CA == "" || o.Cert == "" || o.Key == "") {
		return nil, errors.New("ssl-crl/ssl-crlpath check slaves' client certificates: they need ssl-ca, ssl-cert and ssl-key too")
	}
	if o.Cert == "" && o.Key == "" {
		return nil, nil
	}
	if o.Cert == "" || o.Key == "" {
		return nil, fmt.Errorf("ssl-cert and ssl-key go together")
	}
	s := &Server{opts: o}
	return s, s.Reload()
}

// Reload re-reads the files and swaps them in only when all are good.
func (s *Server) Reload() error { return reload(s) }

// Stage re-reads the files and returns a commit that swaps them in, as
// Client.Stage does. A nil server (no TLS) stages nothing.
func (s *Server) Stage() (commit func(), err error) {
	if s == nil {
		return func() {}, nil
	}
	cert, err := LoadKeyPair(s.opts.Cert, s.opts.Key)
	if err != nil {
		return nil, err
	}
	m := &serverMaterial{cert: cert}
	if s.opts.CA != "" {
		if m.cas, m.list, err = LoadCAs(s.opts.CA, ""); err != nil {
			return nil, err
		}
	}
	if m.crls, err = LoadCRLs(s.opts.CRL, s.opts.CRLPath); err != nil {
		return nil, err
	}
	return func() { s.mat.Store(m) }, nil
}

func (o ServerOptions) checksCRL() bool { return o.CRL != "" || o.CRLPath != "" }

// Certificates describes the server certificate and CAs.
func (s *Server) Certificates() []CertInfo {
	if s == nil {
		return nil
	}
	m := s.mat.Load()
	out := []CertInfo{Describe("server", m.cert.Leaf)}
	for _, c := range m.list {
		out = append(out, Describe("ca", c))
	}
	return out
}

// Config returns a tls.Config that always uses the current material.
// observe, when set, sees every handshake's state as it completes, with
// the connection it happened on.
func (s *Server) Config(observe func(net.Conn, tls.ConnectionState)) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			m := s.mat.Load()
			cfg := &tls.Config{
				MinVersion:   tls.VersionTLS12,
				Certificates: []tls.Certificate{*m.cert},
				ClientAuth:   tls.RequestClientCert,
			}
			if m.cas != nil {
				cfg.ClientCAs = m.cas
				cfg.ClientAuth = tls.VerifyClientCertIfGiven
			}
			cfg.VerifyConnection = func(cs tls.ConnectionState) error {
				if observe != nil {
					observe(hello.Conn, cs)
				}
				return s.checkRevocation(m, cs, time.Now())
			}
			return cfg, nil
		},
	}
}

// checkRevocation checks a verified client certificate against the CRLs
// of m, the material this handshake started with. A client without a
// certificate passes: its account's REQUIRE clause decides. crypto/tls
// answers a failure with the bad_certificate alert (OpenSSL would send
// certificate_revoked); the error keeps its reason for the relay's log
// and metrics.
func (s *Server) checkRevocation(m *serverMaterial, cs tls.ConnectionState, now time.Time) error {
	if !s.opts.checksCRL() || len(cs.VerifiedChains) == 0 {
		return nil
	}
	return CheckRevocation(cs.VerifiedChains[0], m.crls, now)
}
