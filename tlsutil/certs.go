package tlsutil

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Issued is a certificate with its key, as made by NewCA and Issue.
type Issued struct {
	Cert    *x509.Certificate
	Key     crypto.Signer
	CertPEM []byte
	KeyPEM  []byte
}

// CertSpec says what certificate to issue.
type CertSpec struct {
	Subject   pkix.Name
	Hosts     []string // DNS names and IP addresses for subjectAltName
	NoSAN     bool     // leave subjectAltName out (a CN-only certificate)
	NotBefore time.Time
	NotAfter  time.Time
	Server    bool
	Client    bool
	IsCA      bool
}

// NewCA makes a self-signed RSA CA.
func NewCA(subject pkix.Name, notBefore, notAfter time.Time) (*Issued, error) {
	return issue(nil, CertSpec{Subject: subject, NotBefore: notBefore, NotAfter: notAfter, IsCA: true})
}

// Issue signs a certificate for spec with this CA.
func (ca *Issued) Issue(spec CertSpec) (*Issued, error) { return issue(ca, spec) }

func issue(ca *Issued, spec CertSpec) (*Issued, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               spec.Subject,
		NotBefore:             spec.NotBefore,
		NotAfter:              spec.NotAfter,
		BasicConstraintsValid: true,
		IsCA:                  spec.IsCA,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
	}
	if spec.IsCA {
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	}
	if spec.Server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	if spec.Client {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	if !spec.NoSAN {
		for _, h := range spec.Hosts {
			if ip := net.ParseIP(h); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			} else {
				tmpl.DNSNames = append(tmpl.DNSNames, h)
			}
		}
	}
	parent, signer := tmpl, crypto.Signer(key)
	if ca != nil {
		parent, signer = ca.Cert, ca.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), signer)
	if err != nil {
		return nil, fmt.Errorf("sign certificate %s: %w", spec.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &Issued{Cert: cert, Key: key,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})}, nil
}

// CRL makes a PEM CRL signed by this CA that revokes the given certificates.
func (ca *Issued) CRL(revoked []*x509.Certificate, thisUpdate, nextUpdate time.Time) ([]byte, error) {
	tmpl := &x509.RevocationList{Number: big.NewInt(thisUpdate.Unix()), ThisUpdate: thisUpdate, NextUpdate: nextUpdate}
	for _, c := range revoked {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries,
			x509.RevocationListEntry{SerialNumber: c.SerialNumber, RevocationTime: thisUpdate})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.Cert, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("sign CRL: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), nil
}

// Write stores the certificate as DIR/NAME-cert.pem (0644) and the key as
// DIR/NAME-key.pem (0600), and returns both paths.
func (is *Issued) Write(dir, name string) (certFile, keyFile string, err error) {
	certFile = filepath.Join(dir, name+"-cert.pem")
	keyFile = filepath.Join(dir, name+"-key.pem")
	if err := os.WriteFile(certFile, is.CertPEM, 0o644); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(keyFile, is.KeyPEM, 0o600); err != nil {
		return "", "", err
	}
	return certFile, keyFile, nil
}

// CertSet is what `replink certs` makes, like mysql_ssl_rsa_setup: a CA,
// a server and a client certificate. Kept: the files were there already
// and nothing was written.
type CertSet struct {
	CA, CAKey, ServerCert, ServerKey, ClientCert, ClientKey string
	Kept                                                    bool
}

// caDays is the least a CA made here lives: its leaves are renewed under
// it for years, and replacing a CA means touching every slave.
const caDays = 10 * 365

// MakeCertSet writes ca.pem, ca-key.pem, server-cert.pem, server-key.pem,
// client-cert.pem and client-key.pem into dir. The server certificate
// carries hosts as subjectAltNames; the leaves live days, the CA at least
// ten years. Existing files are never overwritten, as mysql_ssl_rsa_setup
// does not: when all six are there nothing is written (Kept); when only
// some are, it is an error naming them (a CA replaced under running
// slaves breaks every one of them).
func MakeCertSet(dir string, hosts []string, days int, now time.Time) (*CertSet, error) {
	set := &CertSet{CA: filepath.Join(dir, "ca.pem"), CAKey: filepath.Join(dir, "ca-key.pem"),
		ServerCert: filepath.Join(dir, "server-cert.pem"), ServerKey: filepath.Join(dir, "server-key.pem"),
		ClientCert: filepath.Join(dir, "client-cert.pem"), ClientKey: filepath.Join(dir, "client-key.pem")}
	all := []string{set.CA, set.CAKey, set.ServerCert, set.ServerKey, set.ClientCert, set.ClientKey}
	var there []string
	for _, f := range all {
		if _, err := os.Lstat(f); err == nil {
			there = append(there, f)
		}
	}
	switch len(there) {
	case len(all):
		set.Kept = true
		return set, nil
	case 0:
	default:
		return nil, fmt.Errorf("%s already exist; not overwriting them (remove them, or choose another directory, to make a new set)", strings.Join(there, ", "))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	notBefore, notAfter := now.Add(-time.Hour), now.Add(time.Duration(days)*24*time.Hour)
	ca, err := NewCA(pkix.Name{Organization: []string{"replink"}, CommonName: "replink CA"}, notBefore, now.Add(time.Duration(max(days, caDays))*24*time.Hour))
	if err != nil {
		return nil, err
	}
	server, err := ca.Issue(CertSpec{Subject: pkix.Name{Organization: []string{"replink"}, CommonName: hosts[0]},
		Hosts: hosts, NotBefore: notBefore, NotAfter: notAfter, Server: true})
	if err != nil {
		return nil, err
	}
	client, err := ca.Issue(CertSpec{Subject: pkix.Name{Organization: []string{"replink"}, CommonName: "replink-client"},
		NotBefore: notBefore, NotAfter: notAfter, Client: true})
	if err != nil {
		return nil, err
	}
	for _, w := range []struct {
		name string
		data []byte
		perm os.FileMode
	}{{set.CA, ca.CertPEM, 0o644}, {set.CAKey, ca.KeyPEM, 0o600}, {set.ServerCert, server.CertPEM, 0o644},
		{set.ServerKey, server.KeyPEM, 0o600}, {set.ClientCert, client.CertPEM, 0o644}, {set.ClientKey, client.KeyPEM, 0o600}} {
		if err := writeNew(w.name, w.data, w.perm); err != nil {
			return nil, err
		}
	}
	return set, nil
}

// writeNew writes a file that must not exist yet.
func writeNew(name string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
