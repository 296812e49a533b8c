package tlsutil

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"time"
)

var (
	hashedCert = regexp.MustCompile(`^[0-9a-f]{8}\.[0-9]+$`)
	hashedCRL  = regexp.MustCompile(`^[0-9a-f]{8}\.r[0-9]+$`)
)

// LoadCAs reads ssl-ca (a PEM bundle) and ssl-capath (an OpenSSL hashed
// directory: only <subject_hash>.N names count, as OpenSSL looks certificates
// up by hash; run `openssl rehash DIR` to make them).
func LoadCAs(caFile, caPath string) (*x509.CertPool, []*x509.Certificate, error) {
	pool := x509.NewCertPool()
	var all []*x509.Certificate
	if caFile != "" {
		certs, err := readCertFile(caFile)
		if err != nil {
			return nil, nil, fmt.Errorf("ssl-ca %s: %w", caFile, err)
		}
		all = append(all, certs...)
	}
	if caPath != "" {
		names, err := hashedNames(caPath, hashedCert)
		if err != nil {
			return nil, nil, fmt.Errorf("ssl-capath %s: %w", caPath, err)
		}
		if len(names) == 0 {
			return nil, nil, fmt.Errorf("ssl-capath %s: no hashed certificate names (<hash>.0); run `openssl rehash %s`", caPath, caPath)
		}
		for _, n := range names {
			certs, err := readCertFile(n)
			if err != nil {
				return nil, nil, fmt.Errorf("ssl-capath %s: %w", caPath, err)
			}
			all = append(all, certs...)
		}
	}
	for _, c := range all {
		pool.AddCert(c)
	}
	return pool, all, nil
}

func hashedNames(dir string, re *regexp.Regexp) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if re.MatchString(e.Name()) {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	sort.Strings(out)
	return out, nil
}

func readCertFile(name string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no PEM certificate found", name)
	}
	return out, nil
}

// LoadCRLs reads ssl-crl (PEM or DER, one or more CRLs) and the hashed
// <hash>.rN files of ssl-crlpath.
func LoadCRLs(crlFile, crlPath string) ([]*x509.RevocationList, error) {
	var files []string
	if crlFile != "" {
		files = append(files, crlFile)
	}
	if crlPath != "" {
		names, err := hashedNames(crlPath, hashedCRL)
		if err != nil {
			return nil, fmt.Errorf("ssl-crlpath %s: %w", crlPath, err)
		}
		if len(names) == 0 {
			return nil, fmt.Errorf("ssl-crlpath %s: no hashed CRL names (<hash>.r0); run `openssl rehash %s`", crlPath, crlPath)
		}
		files = append(files, names...)
	}
	var out []*x509.RevocationList
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("ssl-crl %s: %w", f, err)
		}
		found := false
		rest := data
		for {
			var b *pem.Block
			b, rest = pem.Decode(rest)
			if b == nil {
				break
			}
			if b.Type != "X509 CRL" {
				continue
			}
			crl, err := x509.ParseRevocationList(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("ssl-crl %s: %w", f, err)
			}
			out, found = append(out, crl), true
		}
		if !found {
			crl, err := x509.ParseRevocationList(data)
			if err != nil {
				return nil, fmt.Errorf("ssl-crl %s: neither PEM nor DER CRL: %w", f, err)
			}
			out = append(out, crl)
		}
	}
	return out, nil
}

// CheckRevocation checks every certificate of a verified chain against the
// CRLs, as OpenSSL's X509_V_FLAG_CRL_CHECK_ALL does: each certificate but a
// self-signed root needs a valid CRL from its issuer.
func CheckRevocation(chain []*x509.Certificate, crls []*x509.RevocationList, now time.Time) error {
	for i, cert := range chain {
		var issuer *x509.Certificate
		if i+1 < len(chain) {
			issuer = chain[i+1]
		} else {
			issuer = cert
		}
		selfSigned := bytes.Equal(cert.RawIssuer, cert.RawSubject)
		var crl *x509.RevocationList
		for _, l := range crls {
			if bytes.Equal(l.RawIssuer, issuer.RawSubject) && l.CheckSignatureFrom(issuer) == nil {
				crl = l
				break
			}
		}
		if crl == nil {
			if selfSigned && i == len(chain)-1 {
				continue
			}
			return &Error{Reason: ReasonRevoked, Err: fmt.Errorf("unable to get certificate CRL for issuer %s", OneLine(issuer.RawSubject))}
		}
		if !crl.NextUpdate.IsZero() && now.After(crl.NextUpdate) {
			return &Error{Reason: ReasonRevoked, Err: fmt.Errorf("CRL has expired (issuer %s, nextUpdate %s)", OneLine(issuer.RawSubject), crl.NextUpdate.UTC().Format(time.RFC3339))}
		}
		for _, e := range crl.RevokedCertificateEntries {
			if e.SerialNumber.Cmp(cert.SerialNumber) == 0 {
				return &Error{Reason: ReasonRevoked, Err: fmt.Errorf("certificate revoked: %s (serial %X, revoked %s)", OneLine(cert.RawSubject), cert.SerialNumber, e.RevocationTime.UTC().Format(time.RFC3339))}
			}
		}
	}
	return nil
}

// CheckKeyFile refuses a private key file that group or others can read or
// write: the key is the link's identity.
func CheckKeyFile(name string) error {
	st, err := os.Stat(name)
	if err != nil {
		return err
	}
	if perm := st.Mode().Perm(); perm&0o066 != 0 {
		return fmt.Errorf("key file %s is accessible by group or others (mode %04o); run chmod 600 %s", name, perm, name)
	}
	return nil
}

// LoadKeyPair loads a certificate chain and its key, refusing a key file
// that others can read. Errors carry ReasonBadLocalKeypair.
func LoadKeyPair(certFile, keyFile string) (*tls.Certificate, error) {
	if err := CheckKeyFile(keyFile); err != nil {
		return nil, &Error{Reason: ReasonBadLocalKeypair, Err: fmt.Errorf("ssl-key: %w", err)}
	}
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, &Error{Reason: ReasonBadLocalKeypair, Err: fmt.Errorf("ssl-cert %s: %w", certFile, err)}
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, &Error{Reason: ReasonBadLocalKeypair, Err: fmt.Errorf("ssl-key %s: %w", keyFile, err)}
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// tls.X509KeyPair's errors never include key material.
		return nil, &Error{Reason: ReasonBadLocalKeypair, Err: fmt.Errorf("ssl-cert %s / ssl-key %s: %w", certFile, keyFile, err)}
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, &Error{Reason: ReasonBadLocalKeypair, Err: fmt.Errorf("ssl-cert %s: %w", certFile, err)}
		}
	}
	return &cert, nil
}
