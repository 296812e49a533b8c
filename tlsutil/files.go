package tlsutil

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
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
	return ParseCerts(name, data)
}

// ParseCerts reads the PEM certificates in data (other blocks are
// skipped); name says where they came from in errors.
func ParseCerts(name string, data []byte) ([]*x509.Certificate, error) {
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

// oidDeltaCRLIndicator marks a delta CRL (RFC 5280, 5.2.4).
var oidDeltaCRLIndicator = asn1.ObjectIdentifier{2, 5, 29, 27}

// LoadCRLs reads ssl-crl (PEM or DER, one or more CRLs) and the hashed
// <hash>.rN files of ssl-crlpath. An issuer may have several CRLs in them,
// in any order: CheckRevocation picks the one to use.
//
// A delta CRL (one with the deltaCRLIndicator extension) is refused with an
// error naming the file. replink applies complete CRLs only, and so does
// the C API: MySQL and MariaDB never set X509_V_FLAG_USE_DELTAS, so
// OpenSSL never merges a delta into its base. What OpenSSL does instead
// depends on its version: 3.0 (without X509_V_FLAG_EXTENDED_CRL_SUPPORT,
// which the C API does not set either) scores a delta CRL like a complete
// one, so a delta newer than its base replaces it and hides every
// revocation that only the base lists; newer releases pass deltas over.
// Neither is safe to copy (using a delta as complete hides revocations,
// dropping it silently hides the ones it adds), so replink asks for a
// directory or bundle of complete CRLs.
func LoadCRLs(crlFile, crlPath string) ([]*x509.RevocationList, error) {
	type source struct{ option, file string }
	var files []source
	if crlFile != "" {
		files = append(files, source{"ssl-crl", crlFile})
	}
	if crlPath != "" {
		names, err := hashedNames(crlPath, hashedCRL)
		if err != nil {
			return nil, fmt.Errorf("ssl-crlpath %s: %w", crlPath, err)
		}
		if len(names) == 0 {
			return nil, fmt.Errorf("ssl-crlpath %s: no hashed CRL names (<hash>.r0); run `openssl rehash %s`", crlPath, crlPath)
		}
		for _, n := range names {
			files = append(files, source{"ssl-crlpath", n})
		}
	}
	var out []*x509.RevocationList
	for _, f := range files {
		data, err := os.ReadFile(f.file)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", f.option, f.file, err)
		}
		var crls []*x509.RevocationList
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
				return nil, fmt.Errorf("%s %s: %w", f.option, f.file, err)
			}
			crls = append(crls, crl)
		}
		if len(crls) == 0 {
			crl, err := x509.ParseRevocationList(data)
			if err != nil {
				return nil, fmt.Errorf("%s %s: neither PEM nor DER CRL: %w", f.option, f.file, err)
			}
			crls = append(crls, crl)
		}
		for _, crl := range crls {
			for _, ext := range crl.Extensions {
				if ext.Id.Equal(oidDeltaCRLIndicator) {
					return nil, fmt.Errorf("%s %s: delta CRL of %s (thisUpdate %s): replink applies complete CRLs only; remove the delta CRL",
						f.option, f.file, OneLine(crl.RawIssuer), crl.ThisUpdate.UTC().Format(time.RFC3339))
				}
			}
		}
		out = append(out, crls...)
	}
	return out, nil
}

// CheckRevocation checks every certificate of a verified chain against the
// CRLs as OpenSSL does with X509_V_FLAG_CRL_CHECK_ALL (what the C API sets
// for ssl-crl/ssl-crlpath) and the default verify callback: each
// certificate but a self-signed root needs a CRL from its issuer, and the
// first problem fails the chain. The error texts are OpenSSL's.
//
// Of an issuer's CRLs (same issuer name, and authority key identifier if
// both sides have one) the one used is the one OpenSSL's get_crl_sk picks:
// a CRL current at now (thisUpdate <= now <= nextUpdate) before one that is
// not, then the latest thisUpdate, whatever the order of the files. So an
// older CRL cannot hide a revocation listed by a newer one, and a CRL whose
// thisUpdate is still in the future is passed over while a current one
// exists; when none is current the latest one is used, and fails the chain
// with "CRL is not yet valid" or "CRL has expired". The chosen CRL's
// signature is checked next: a bad one fails the chain ("CRL signature
// failure") rather than letting an older CRL stand in.
func CheckRevocation(chain []*x509.Certificate, crls []*x509.RevocationList, now time.Time) error {
	for i, cert := range chain {
		var issuer *x509.Certificate
		if i+1 < len(chain) {
			issuer = chain[i+1]
		} else {
			issuer = cert
		}
		if i == len(chain)-1 && bytes.Equal(cert.RawIssuer, cert.RawSubject) {
			continue // a self-signed root is not checked, as in OpenSSL
		}
		crl := pickCRL(crls, issuer, now)
		issuerName := OneLine(issuer.RawSubject)
		switch {
		case crl == nil:
			return &Error{Reason: ReasonRevoked, Err: fmt.Errorf("unable to get certificate CRL for issuer %s", issuerName)}
		case now.Before(crl.ThisUpdate):
			return &Error{Reason: ReasonRevoked, Err: fmt.Errorf("CRL is not yet valid (issuer %s, thisUpdate %s)", issuerName, crl.ThisUpdate.UTC().Format(time.RFC3339))}
		case !crl.NextUpdate.IsZero() && now.After(crl.NextUpdate):
			return &Error{Reason: ReasonRevoked, Err: fmt.Errorf("CRL has expired (issuer %s, nextUpdate %s)", issuerName, crl.NextUpdate.UTC().Format(time.RFC3339))}
		}
		if err := crl.CheckSignatureFrom(issuer); err != nil {
			return &Error{Reason: ReasonRevoked, Err: fmt.Errorf("CRL signature failure (issuer %s, thisUpdate %s): %w", issuerName, crl.ThisUpdate.UTC().Format(time.RFC3339), err)}
		}
		for _, e := range crl.RevokedCertificateEntries {
			if e.SerialNumber.Cmp(cert.SerialNumber) == 0 {
				return &Error{Reason: ReasonRevoked, Err: fmt.Errorf("certificate revoked: %s (serial %X, revoked %s, CRL thisUpdate %s)", OneLine(cert.RawSubject), cert.SerialNumber, e.RevocationTime.UTC().Format(time.RFC3339), crl.ThisUpdate.UTC().Format(time.RFC3339))}
			}
		}
	}
	return nil
}

// pickCRL returns issuer's CRL to use at now, or nil when it has none (see
// CheckRevocation).
func pickCRL(crls []*x509.RevocationList, issuer *x509.Certificate, now time.Time) *x509.RevocationList {
	current := func(l *x509.RevocationList) bool {
		return !now.Before(l.ThisUpdate) && (l.NextUpdate.IsZero() || !now.After(l.NextUpdate))
	}
	var best *x509.RevocationList
	for _, l := range crls {
		if !bytes.Equal(l.RawIssuer, issuer.RawSubject) {
			continue
		}
		if len(l.AuthorityKeyId) > 0 && len(issuer.SubjectKeyId) > 0 && !bytes.Equal(l.AuthorityKeyId, issuer.SubjectKeyId) {
			continue
		}
		switch {
		case best == nil:
			best = l
		case current(l) != current(best):
			if current(l) {
				best = l
			}
		case l.ThisUpdate.After(best.ThisUpdate):
			best = l
		}
	}
	return best
}

// CheckKeyFile refuses a private key file that others can read or write,
// or that its group can write: the key is the link's identity. A key its
// group can read (0640, 0440) is accepted, as a Kubernetes Secret volume
// with defaultMode 0440 (or 0400) and the pod's fsGroup gives it: root
// owns the file, the fsGroup reads it, and mode bits cannot say less. The
// mode is the file's, not a symlink's: a Secret's keys are symlinks into
// its ..data directory.
func CheckKeyFile(name string) error {
	st, err := os.Stat(name)
	if err != nil {
		return err
	}
	switch perm := st.Mode().Perm(); {
	case perm&0o007 != 0:
		return fmt.Errorf("key file %s is accessible by others (mode %04o); run chmod 600 %s (or 640 to share it with a group)", name, perm, name)
	case perm&0o030 != 0:
		return fmt.Errorf("key file %s is writable or executable by its group (mode %04o); run chmod 600 %s (or 640 to share it with a group)", name, perm, name)
	}
	return nil
}

// LoadKeyPair loads a certificate chain and its key, refusing a key file
// that others can read (CheckKeyFile). Errors carry ReasonBadLocalKeypair.
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
