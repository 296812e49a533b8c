package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// serverPKI is a CA, the relay's certificate and two slaves' client
// certificates, one of them revoked by crl.pem.
type serverPKI struct {
	dir, ca, cert, key, crl string
	issuer                  *Issued
	good, revoked           *Issued
	now                     time.Time
}

func newServerPKI(t *testing.T) *serverPKI {
	t.Helper()
	p := &serverPKI{dir: t.TempDir(), now: time.Now()}
	nb, na := p.now.Add(-time.Hour), p.now.Add(24*time.Hour)
	var err error
	if p.issuer, err = NewCA(pkix.Name{CommonName: "relay test CA"}, nb, na); err != nil {
		t.Fatal(err)
	}
	issue := func(spec CertSpec) *Issued {
		t.Helper()
		spec.NotBefore, spec.NotAfter = nb, na
		is, err := p.issuer.Issue(spec)
		if err != nil {
			t.Fatal(err)
		}
		return is
	}
	server := issue(CertSpec{Subject: pkix.Name{CommonName: "relay"}, Hosts: []string{"127.0.0.1"}, Server: true})
	p.good = issue(CertSpec{Subject: pkix.Name{CommonName: "slave1"}, Client: true})
	p.revoked = issue(CertSpec{Subject: pkix.Name{CommonName: "slave1"}, Client: true})
	if p.ca, _, err = p.issuer.Write(p.dir, "ca"); err != nil {
		t.Fatal(err)
	}
	if p.cert, p.key, err = server.Write(p.dir, "server"); err != nil {
		t.Fatal(err)
	}
	p.crl = filepath.Join(p.dir, "crl.pem")
	p.writeCRL(t, nb, na, p.revoked)
	return p
}

// writeCRL replaces crl.pem with one revoking the given certificates.
func (p *serverPKI) writeCRL(t *testing.T, thisUpdate, nextUpdate time.Time, revoked ...*Issued) {
	t.Helper()
	var certs []*x509.Certificate
	for _, r := range revoked {
		certs = append(certs, r.Cert)
	}
	b, err := p.issuer.CRL(certs, thisUpdate, nextUpdate)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.crl, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// handshake connects a client presenting c (none when nil) to srv and
// returns the server side's handshake error.
func handshake(t *testing.T, srv *Server, c *Issued) error {
	t.Helper()
	sc, cc := net.Pipe()
	defer sc.Close()
	deadline := time.Now().Add(10 * time.Second)
	_ = sc.SetDeadline(deadline)
	_ = cc.SetDeadline(deadline)
	ccfg := &tls.Config{InsecureSkipVerify: true}
	if c != nil {
		ccfg.Certificates = []tls.Certificate{{Certificate: [][]byte{c.Cert.Raw}, PrivateKey: c.Key}}
	}
	go func() {
		defer cc.Close()
		tc := tls.Client(cc, ccfg)
		if tc.Handshake() == nil {
			// TLS 1.3: the server's verdict on our certificate comes after
			// our Finished; read it so the server's alert is not stuck.
			_, _ = tc.Read(make([]byte, 1))
		}
	}()
	return tls.Server(sc, srv.Config(nil)).Handshake()
}

// wantRevoked fails unless err is a revocation failure containing text.
func wantRevoked(t *testing.T, err error, text string) {
	t.Helper()
	if err == nil {
		t.Fatalf("handshake succeeded, want it refused with %q", text)
	}
	if Classify(err) != ReasonRevoked || !strings.Contains(err.Error(), text) {
		t.Fatalf("handshake failed with %v (reason %s), want reason %s and %q", err, Classify(err), ReasonRevoked, text)
	}
}

func TestServerRefusesRevokedClientCert(t *testing.T) {
	p := newServerPKI(t)
	srv, err := NewServer(ServerOptions{CA: p.ca, Cert: p.cert, Key: p.key, CRL: p.crl})
	if err != nil {
		t.Fatal(err)
	}
	if err := handshake(t, srv, p.good); err != nil {
		t.Fatalf("a client certificate the CRL does not list: %v", err)
	}
	if err := handshake(t, srv, nil); err != nil {
		t.Fatalf("no client certificate (the account's REQUIRE decides): %v", err)
	}
	wantRevoked(t, handshake(t, srv, p.revoked), "certificate revoked: /CN=slave1")

	// A new CRL revoking both is taken by Reload; a broken one is not,
	// and the last good CRL stays in force.
	p.writeCRL(t, p.now.Add(-time.Minute), p.now.Add(24*time.Hour), p.good, p.revoked)
	if err := srv.Reload(); err != nil {
		t.Fatal(err)
	}
	wantRevoked(t, handshake(t, srv, p.good), "certificate revoked")
	if err := os.WriteFile(p.crl, []byte("-----BEGIN X509 CRL-----\ntorn"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := srv.Reload(); err == nil || !strings.Contains(err.Error(), "ssl-crl "+p.crl) {
		t.Fatalf("Reload with a broken CRL: %v, want an error naming ssl-crl and the file", err)
	}
	wantRevoked(t, handshake(t, srv, p.good), "certificate revoked")
}

// TestServerCRLAsClientSide: the relay applies ssl-crl/ssl-crlpath as the
// master side does (CheckRevocation): an expired CRL fails every client
// certificate of its issuer, ssl-crlpath is a hashed directory, and files
// that are not CRLs are configuration errors naming the option and file.
func TestServerCRLAsClientSide(t *testing.T) {
	p := newServerPKI(t)
	p.writeCRL(t, p.now.Add(-48*time.Hour), p.now.Add(-24*time.Hour), p.revoked)
	srv, err := NewServer(ServerOptions{CA: p.ca, Cert: p.cert, Key: p.key, CRL: p.crl})
	if err != nil {
		t.Fatal(err)
	}
	wantRevoked(t, handshake(t, srv, p.good), "CRL has expired")

	p.writeCRL(t, p.now.Add(-time.Hour), p.now.Add(time.Hour), p.revoked)
	dir := filepath.Join(p.dir, "crls")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p.crl)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "0badc0de.r0"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	srv, err = NewServer(ServerOptions{CA: p.ca, Cert: p.cert, Key: p.key, CRLPath: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := handshake(t, srv, p.good); err != nil {
		t.Fatal(err)
	}
	wantRevoked(t, handshake(t, srv, p.revoked), "certificate revoked")

	for _, c := range []struct {
		name string
		opts ServerOptions
		want string
	}{
		{"not a CRL", ServerOptions{CA: p.ca, Cert: p.cert, Key: p.key, CRL: p.ca}, "ssl-crl " + p.ca},
		{"missing file", ServerOptions{CA: p.ca, Cert: p.cert, Key: p.key, CRL: p.crl + ".gone"}, "ssl-crl " + p.crl + ".gone"},
		{"unhashed directory", ServerOptions{CA: p.ca, Cert: p.cert, Key: p.key, CRLPath: p.dir}, "ssl-crlpath " + p.dir},
		{"no CA to verify against", ServerOptions{Cert: p.cert, Key: p.key, CRL: p.crl}, "need ssl-ca"},
	} {
		if _, err := NewServer(c.opts); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: NewServer error %v, want one containing %q", c.name, err, c.want)
		}
	}
}
