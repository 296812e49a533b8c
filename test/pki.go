package test

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/replink/replink/tlsutil"
)

// PKI is a set of certificates for TLS tests, written under Dir.
type PKI struct {
	Dir string
	CA  *tlsutil.Issued
	// Files
	CAFile, OtherCAFile             string
	ServerCert, ServerKey           string // SANs localhost, 127.0.0.1, ::1
	ClientCert, ClientKey           string
	WrongHostCert, WrongHostKey     string // SAN db.example.com only
	CNOnlyCert, CNOnlyKey           string // no SANs, CN=127.0.0.1
	ExpiredCert, ExpiredKey         string
	NotYetValidCert, NotYetValidKey string
	RevokedCert, RevokedKey         string
	CRLFile                         string // revokes RevokedCert
	CAPath                          string // hashed directory holding the CA and the CRL
	UnhashedCAPath                  string // the CA under a plain name
	OtherClientCert, OtherClientKey string // from another CA
}

// ClientSubject is the client certificate's subject in OpenSSL's form.
const ClientSubject = "/C=US/ST=CA/O=replink-test/CN=repl-client"

// NewPKI makes the certificates.
func NewPKI(t testing.TB) *PKI {
	t.Helper()
	dir := t.TempDir()
	p := &PKI{Dir: dir}
	now := time.Now()
	nb, na := now.Add(-time.Hour), now.Add(365*24*time.Hour)
	must := func(is *tlsutil.Issued, err error) *tlsutil.Issued {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return is
	}
	write := func(is *tlsutil.Issued, name string) (string, string) {
		t.Helper()
		c, k, err := is.Write(dir, name)
		if err != nil {
			t.Fatal(err)
		}
		return c, k
	}
	p.CA = must(tlsutil.NewCA(pkix.Name{Organization: []string{"replink-test"}, CommonName: "replink test CA"}, nb, na))
	other := must(tlsutil.NewCA(pkix.Name{CommonName: "some other CA"}, nb, na))
	p.CAFile = filepath.Join(dir, "ca.pem")
	p.OtherCAFile = filepath.Join(dir, "other-ca.pem")
	writeFile(t, p.CAFile, p.CA.CertPEM)
	writeFile(t, p.OtherCAFile, other.CertPEM)
	server := func(cn string, hosts []string, noSAN bool, from, to time.Time) *tlsutil.Issued {
		return must(p.CA.Issue(tlsutil.CertSpec{Subject: pkix.Name{Organization: []string{"replink-test"}, CommonName: cn},
			Hosts: hosts, NoSAN: noSAN, NotBefore: from, NotAfter: to, Server: true}))
	}
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	p.ServerCert, p.ServerKey = write(server("localhost", hosts, false, nb, na), "server")
	p.WrongHostCert, p.WrongHostKey = write(server("db.example.com", []string{"db.example.com"}, false, nb, na), "wronghost")
	p.CNOnlyCert, p.CNOnlyKey = write(server("127.0.0.1", nil, true, nb, na), "cnonly")
	p.ExpiredCert, p.ExpiredKey = write(server("localhost", hosts, false, now.Add(-48*time.Hour), now.Add(-24*time.Hour)), "expired")
	p.NotYetValidCert, p.NotYetValidKey = write(server("localhost", hosts, false, now.Add(24*time.Hour), now.Add(48*time.Hour)), "notyet")
	revoked := server("localhost", hosts, false, nb, na)
	p.RevokedCert, p.RevokedKey = write(revoked, "revoked")
	crl, err := p.CA.CRL([]*x509.Certificate{revoked.Cert}, nb, na)
	if err != nil {
		t.Fatal(err)
	}
	p.CRLFile = filepath.Join(dir, "crl.pem")
	writeFile(t, p.CRLFile, crl)
	p.CAPath = filepath.Join(dir, "capath")
	p.UnhashedCAPath = filepath.Join(dir, "capath-plain")
	for _, d := range []string{p.CAPath, p.UnhashedCAPath} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(p.CAPath, opensslHash(t, "x509", p.CAFile)+".0"), p.CA.CertPEM)
	writeFile(t, filepath.Join(p.CAPath, opensslHash(t, "crl", p.CRLFile)+".r0"), crl)
	writeFile(t, filepath.Join(p.UnhashedCAPath, "ca.pem"), p.CA.CertPEM)
	client := must(p.CA.Issue(tlsutil.CertSpec{Subject: pkix.Name{Country: []string{"US"}, Province: []string{"CA"},
		Organization: []string{"replink-test"}, CommonName: "repl-client"}, NotBefore: nb, NotAfter: na, Client: true}))
	p.ClientCert, p.ClientKey = write(client, "client")
	oc := must(other.Issue(tlsutil.CertSpec{Subject: pkix.Name{CommonName: "intruder"}, NotBefore: nb, NotAfter: na, Client: true}))
	p.OtherClientCert, p.OtherClientKey = write(oc, "other-client")
	return p
}

func writeFile(t testing.TB, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// opensslHash returns OpenSSL's subject hash (for certs) or issuer hash (CRLs).
func opensslHash(t testing.TB, kind, file string) string {
	t.Helper()
	out, err := exec.Command("openssl", kind, "-hash", "-noout", "-in", file).Output()
	if err != nil {
		t.Fatalf("openssl %s -hash %s: %v", kind, file, err)
	}
	return strings.TrimSpace(string(out))
}
