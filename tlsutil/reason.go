package tlsutil

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
)

// Reason is the stable word that names why a connection to a peer failed.
// The same word appears in diagnose, logs, /status and the metric label.
type Reason string

const (
	ReasonServerNoSSL        Reason = "server_no_ssl"
	ReasonUnknownCA          Reason = "unknown_ca"
	ReasonCertExpired        Reason = "cert_expired"
	ReasonCertNotYetValid    Reason = "cert_not_yet_valid"
	ReasonHostnameMismatch   Reason = "hostname_mismatch"
	ReasonCNOnlyCert         Reason = "cn_only_cert"
	ReasonRevoked            Reason = "revoked"
	ReasonProtocolVersion    Reason = "protocol_version"
	ReasonNoSharedCipher     Reason = "no_shared_cipher"
	ReasonClientCertRejected Reason = "client_cert_rejected"
	ReasonAccessDenied       Reason = "access_denied"
	ReasonBadLocalKeypair    Reason = "bad_local_keypair"
	ReasonTimeout            Reason = "timeout"
	ReasonConnectionRefused  Reason = "connection_refused"
	ReasonOther              Reason = "other"
)

// Reasons lists every reason, for pre-initialising metric series.
var Reasons = []Reason{ReasonServerNoSSL, ReasonUnknownCA, ReasonCertExpired, ReasonCertNotYetValid,
	ReasonHostnameMismatch, ReasonCNOnlyCert, ReasonRevoked, ReasonProtocolVersion, ReasonNoSharedCipher,
	ReasonClientCertRejected, ReasonAccessDenied, ReasonBadLocalKeypair, ReasonTimeout,
	ReasonConnectionRefused, ReasonOther}

// Hint is a one-line fix for the on-call engineer.
func (r Reason) Hint() string {
	switch r {
	case ReasonServerNoSSL:
		return "enable TLS on the master (ssl_cert/ssl_key in my.cnf, then FLUSH SSL or restart), or set ssl-mode=PREFERRED/DISABLED if plaintext is acceptable"
	case ReasonUnknownCA:
		return "point ssl-ca/ssl-capath at the CA that issued the peer's certificate (check with: openssl verify -CAfile ca.pem server-cert.pem)"
	case ReasonCertExpired:
		return "renew the expired certificate, install it and run FLUSH SSL on the master (or SIGHUP replink for its own files)"
	case ReasonCertNotYetValid:
		return "the certificate's notBefore is in the future: check the clock (NTP) on both hosts or reissue the certificate"
	case ReasonHostnameMismatch:
		return "connect with a host name listed in the certificate's SANs, or reissue the certificate with this host in subjectAltName"
	case ReasonCNOnlyCert:
		return "the certificate has no subjectAltName (Go never matches the CN): reissue it with SANs, or use ssl-mode=VERIFY_CA"
	case ReasonRevoked:
		return "the certificate is revoked (or its issuer's CRL is missing or stale): issue a new certificate, or update ssl-crl/ssl-crlpath"
	case ReasonProtocolVersion:
		return "no TLS version in common: align tls-version with the peer's tls_version setting"
	case ReasonNoSharedCipher:
		return "no cipher in common: align ssl-cipher with the peer's ssl_cipher setting, or leave ssl-cipher empty"
	case ReasonClientCertRejected:
		return "the peer refused our client certificate: issue ssl-cert from the CA the peer trusts (its ssl_ca), and check it is neither expired nor revoked"
	case ReasonAccessDenied:
		return "check user and password, and the account's REQUIRE clause (SSL/X509/ISSUER/SUBJECT/CIPHER) against ssl-cert; GRANT REPLICATION SLAVE ON *.* TO the user"
	case ReasonBadLocalKeypair:
		return "ssl-cert and ssl-key must be a matching pair, the key not readable by others (chmod 600 it, or 640 to share it with a group)"
	case ReasonTimeout:
		return "the peer did not answer in time: check firewalls, that the port is MySQL's, and connect-timeout"
	case ReasonConnectionRefused:
		return "nothing listens on that host:port: check host, port and that the server is running"
	}
	return "see the detail above; run replink diagnose for a step-by-step check"
}

// Error is a failure with its reason. It is returned from certificate
// verification and by Classify's callers that want to keep the reason
// with the error.
type Error struct {
	Reason Reason
	Err    error
}

func (e *Error) Error() string { return string(e.Reason) + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Classify names the reason of a connection or handshake failure, from
// errors as they come back through crypto/tls, net and go-mysql (which
// flattens some of them into text).
func Classify(err error) Reason {
	if err == nil {
		return ""
	}
	var te *Error
	if errors.As(err, &te) {
		return te.Reason
	}
	var myErr *mysql.MyError
	if errors.As(err, &myErr) {
		switch myErr.Code {
		case mysql.ER_ACCESS_DENIED_ERROR, 3159, mysql.ER_DBACCESS_DENIED_ERROR:
			return ReasonAccessDenied
		}
	}
	var hn x509.HostnameError
	if errors.As(err, &hn) {
		if hn.Certificate != nil && len(hn.Certificate.DNSNames) == 0 && len(hn.Certificate.IPAddresses) == 0 {
			return ReasonCNOnlyCert
		}
		return ReasonHostnameMismatch
	}
	var ua x509.UnknownAuthorityError
	if errors.As(err, &ua) {
		return ReasonUnknownCA
	}
	var ci x509.CertificateInvalidError
	if errors.As(err, &ci) && ci.Reason == x509.Expired && ci.Cert != nil {
		if time.Now().Before(ci.Cert.NotBefore) {
			return ReasonCertNotYetValid
		}
		return ReasonCertExpired
	}
	var rh tls.RecordHeaderError
	if errors.As(err, &rh) {
		return ReasonOther
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return ReasonTimeout
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return ReasonConnectionRefused
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return ReasonTimeout
	}
	return classifyText(err.Error())
}

// classifyText reads errors that reached us only as text (go-mysql wraps
// packet read errors with %v, so TLS 1.3 alerts after the handshake arrive
// this way).
func classifyText(s string) Reason {
	l := strings.ToLower(s)
	switch {
	case strings.Contains(l, "does not support tls required by the client"),
		strings.Contains(l, "server doesn't support"):
		return ReasonServerNoSSL
	case strings.Contains(l, "error 1045"), strings.Contains(l, "access denied"), strings.Contains(l, "error 3159"):
		return ReasonAccessDenied
	case strings.Contains(l, "certificate is not valid for any names"),
		strings.Contains(l, "relies on legacy common name"):
		return ReasonCNOnlyCert
	case strings.Contains(l, "certificate is valid for"), strings.Contains(l, "not valid for"):
		return ReasonHostnameMismatch
	case strings.Contains(l, "signed by unknown authority"):
		return ReasonUnknownCA
	case strings.Contains(l, "has expired"):
		return ReasonCertExpired
	case strings.Contains(l, "not yet valid"):
		return ReasonCertNotYetValid
	case strings.Contains(l, "protocol version not supported"), strings.Contains(l, "unsupported protocol version"),
		strings.Contains(l, "no supported versions"):
		return ReasonProtocolVersion
	case strings.Contains(l, "remote error: tls: handshake failure"), strings.Contains(l, "illegal parameter"),
		strings.Contains(l, "unconfigured cipher suite"), strings.Contains(l, "no cipher suite supported"),
		strings.Contains(l, "insufficient security"):
		return ReasonNoSharedCipher
	case strings.Contains(l, "remote error: tls: unknown certificate authority"),
		strings.Contains(l, "remote error: tls: bad certificate"),
		strings.Contains(l, "remote error: tls: revoked certificate"),
		strings.Contains(l, "remote error: tls: expired certificate"),
		strings.Contains(l, "remote error: tls: unsupported certificate"),
		strings.Contains(l, "remote error: tls: certificate required"),
		strings.Contains(l, "remote error: tls: access denied"):
		return ReasonClientCertRejected
	case strings.Contains(l, "private key does not match"), strings.Contains(l, "failed to find any pem data"),
		strings.Contains(l, "failed to parse private key"):
		return ReasonBadLocalKeypair
	case strings.Contains(l, "i/o timeout"), strings.Contains(l, "deadline exceeded"):
		return ReasonTimeout
	case strings.Contains(l, "connection refused"):
		return ReasonConnectionRefused
	}
	return ReasonOther
}
