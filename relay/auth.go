package relay

import (
	"crypto/sha1"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"

	"github.com/replink/replink/tlsutil"
)

// Require is an account's REQUIRE clause.
type Require string

const (
	RequireNone Require = "NONE"
	RequireSSL  Require = "SSL"
	RequireX509 Require = "X509"
)

// User is one account slaves log in with.
type User struct {
	Name     string
	Password string
	Require  Require
	Issuer   string // exact match with the OpenSSL one-line form, as REQUIRE ISSUER
	Subject  string // as REQUIRE SUBJECT
	Cipher   string // as REQUIRE CIPHER

	hash [sha1.Size]byte // as mysql_native_password stores it
}

// ParseRequire reads a require value.
func ParseRequire(s string) (Require, error) {
	switch r := Require(strings.ToUpper(strings.TrimSpace(s))); r {
	case "":
		return RequireNone, nil
	case RequireNone, RequireSSL, RequireX509:
		return r, nil
	}
	return "", fmt.Errorf("require %q: want NONE, SSL or X509", s)
}

// check applies the REQUIRE clause and require-secure-transport to an
// authenticated connection. cs is nil for plaintext.
func (u *User) check(cs *tls.ConnectionState, requireSecure bool) error {
	if cs == nil {
		if requireSecure {
			return errors.New("require-secure-transport is on and the connection is not encrypted")
		}
		if u.Require != RequireNone || u.Issuer != "" || u.Subject != "" || u.Cipher != "" {
			return fmt.Errorf("account requires %s but the connection is not encrypted", u.Require)
		}
		return nil
	}
	needCert := u.Require == RequireX509 || u.Issuer != "" || u.Subject != ""
	if needCert {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("account requires a client certificate (X509) and none was presented")
		}
		if len(cs.VerifiedChains) == 0 {
			return errors.New("client certificate was not verified against ssl-ca")
		}
		leaf := cs.PeerCertificates[0]
		if u.Issuer != "" {
			if got := tlsutil.OneLine(leaf.RawIssuer); got != u.Issuer {
				return fmt.Errorf("REQUIRE ISSUER mismatch: certificate issuer %q, account wants %q", got, u.Issuer)
			}
		}
		if u.Subject != "" {
			if got := tlsutil.OneLine(leaf.RawSubject); got != u.Subject {
				return fmt.Errorf("REQUIRE SUBJECT mismatch: certificate subject %q, account wants %q", got, u.Subject)
			}
		}
	}
	if u.Cipher != "" {
		if got := tlsutil.CipherName(cs.CipherSuite); got != u.Cipher {
			return fmt.Errorf("REQUIRE CIPHER mismatch: negotiated %s, account wants %s", got, u.Cipher)
		}
	}
	return nil
}

func hostOf(addr string) string {
	if i := strings.LastIndexByte(addr, ':'); i > 0 {
		return strings.Trim(addr[:i], "[]")
	}
	return addr
}
