package tlsutil

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
)

func TestParseMode(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Mode
		ok   bool
	}{
		{"DISABLED", ModeDisabled, true}, {"preferred", ModePreferred, true}, {"REQUIRED", ModeRequired, true},
		{"verify_ca", ModeVerifyCA, true}, {"VERIFY_IDENTITY", ModeVerifyIdentity, true}, {"ON", 0, false}, {"", 0, false},
	} {
		got, err := ParseMode(c.in)
		if (err == nil) != c.ok || c.ok && got != c.want {
			t.Errorf("ParseMode(%q) = %v, %v", c.in, got, err)
		}
	}
}

func TestParseCipherList(t *testing.T) {
	for _, c := range []struct {
		in      string
		want    []uint16
		weak    int
		errPart string
	}{
		{"", nil, 0, ""},
		{"ECDHE-RSA-AES256-GCM-SHA384", []uint16{tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384}, 0, ""},
		{"ECDHE-RSA-AES128-GCM-SHA256:AES128-SHA", []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_RSA_WITH_AES_128_CBC_SHA}, 0, ""},
		{"DES-CBC3-SHA", []uint16{tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA}, 1, ""},
		{"DHE-RSA-AES256-GCM-SHA384", nil, 0, "DHE-RSA-AES256-GCM-SHA384 is not available"},
		{"HIGH:!aNULL", nil, 0, "cipher-string syntax"},
		{"TLS_AES_128_GCM_SHA256", nil, 0, "TLS 1.3 suite"},
	} {
		got, weak, err := ParseCipherList(c.in)
		if c.errPart != "" {
			if err == nil || !strings.Contains(err.Error(), c.errPart) {
				t.Errorf("ParseCipherList(%q) error %v, want one containing %q", c.in, err, c.errPart)
			}
			continue
		}
		if err != nil || fmt.Sprint(got) != fmt.Sprint(c.want) || len(weak) != c.weak {
			t.Errorf("ParseCipherList(%q) = %v, %v, %v", c.in, got, weak, err)
		}
	}
}

func TestCipherNamesRoundTrip(t *testing.T) {
	for name, id := range cipherNames {
		if got := CipherName(id); got != name {
			t.Errorf("CipherName(%#x) = %s, want %s", id, got, name)
		}
	}
	if got := CipherName(tls.TLS_AES_256_GCM_SHA384); got != "TLS_AES_256_GCM_SHA384" {
		t.Errorf("TLS 1.3 name %s", got)
	}
}

func TestTLS13Suites(t *testing.T) {
	for _, c := range []struct {
		in string
		ok bool
	}{
		{"", true},
		{"TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256", true},
		{"TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256", true},
		{"TLS_AES_256_GCM_SHA384", false},
		{"TLS_AES_128_CCM_SHA256", false},
	} {
		if err := CheckTLS13Suites(c.in); (err == nil) != c.ok {
			t.Errorf("CheckTLS13Suites(%q) = %v", c.in, err)
		}
	}
}

func TestParseTLSVersions(t *testing.T) {
	for _, c := range []struct {
		in       string
		min, max uint16
		ok       bool
	}{
		{"", tls.VersionTLS12, tls.VersionTLS13, true},
		{"TLSv1.2", tls.VersionTLS12, tls.VersionTLS12, true},
		{"TLSv1.3", tls.VersionTLS13, tls.VersionTLS13, true},
		{"TLSv1.2,TLSv1.3", tls.VersionTLS12, tls.VersionTLS13, true},
		{"TLSv1.1,TLSv1.3", 0, 0, false},
		{"SSLv3", 0, 0, false},
	} {
		lo, hi, err := ParseTLSVersions(c.in)
		if (err == nil) != c.ok || c.ok && (lo != c.min || hi != c.max) {
			t.Errorf("ParseTLSVersions(%q) = %x %x %v", c.in, lo, hi, err)
		}
	}
}

func TestNewClientModeRules(t *testing.T) {
	dir := t.TempDir()
	set, err := MakeCertSet(dir, []string{"localhost"}, 1, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		o       ClientOptions
		mode    Mode
		warn    bool
		errPart string
	}{
		{"no options is PREFERRED", ClientOptions{}, ModePreferred, false, ""},
		{"a CA alone implies VERIFY_CA", ClientOptions{CA: set.CA}, ModeVerifyCA, false, ""},
		{"REQUIRED with a CA warns", ClientOptions{Mode: "REQUIRED", CA: set.CA}, ModeRequired, true, ""},
		{"VERIFY_IDENTITY needs a CA", ClientOptions{Mode: "VERIFY_IDENTITY"}, 0, false, "CA certificate is required"},
		{"missing CA file names it", ClientOptions{CA: filepath.Join(dir, "nope.pem")}, 0, false, "nope.pem"},
		{"key readable by others", ClientOptions{Mode: "REQUIRED", Cert: set.ClientCert, Key: set.CA}, 0, false, "chmod 600"},
		{"cert and key that do not match", ClientOptions{Mode: "REQUIRED", Cert: set.ServerCert, Key: set.ClientKey}, 0, false, "private key does not match"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cl, err := NewClient(c.o)
			if c.errPart != "" {
				if err == nil || !strings.Contains(err.Error(), c.errPart) {
					t.Fatalf("err %v, want %q", err, c.errPart)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cl.Mode() != c.mode || (len(cl.Warnings()) > 0) != c.warn {
				t.Fatalf("mode %v warnings %v", cl.Mode(), cl.Warnings())
			}
		})
	}
}

func TestOneLine(t *testing.T) {
	ca, err := NewCA(pkix.Name{Country: []string{"US"}, Province: []string{"CA"}, Organization: []string{"Example"}, CommonName: "repl-client"}, time.Now(), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := OneLine(ca.Cert.RawSubject), "/C=US/ST=CA/O=Example/CN=repl-client"; got != want {
		t.Fatalf("OneLine = %q, want %q", got, want)
	}
}

func TestClassify(t *testing.T) {
	now := time.Now()
	expired := &x509.Certificate{NotBefore: now.Add(-2 * time.Hour), NotAfter: now.Add(-time.Hour)}
	future := &x509.Certificate{NotBefore: now.Add(time.Hour), NotAfter: now.Add(2 * time.Hour)}
	for _, c := range []struct {
		err  error
		want Reason
	}{
		{errors.New("the MySQL Server does not support TLS required by the client"), ReasonServerNoSSL},
		{x509.UnknownAuthorityError{}, ReasonUnknownCA},
		{x509.CertificateInvalidError{Cert: expired, Reason: x509.Expired}, ReasonCertExpired},
		{x509.CertificateInvalidError{Cert: future, Reason: x509.Expired}, ReasonCertNotYetValid},
		{x509.HostnameError{Certificate: &x509.Certificate{DNSNames: []string{"a"}}, Host: "b"}, ReasonHostnameMismatch},
		{x509.HostnameError{Certificate: &x509.Certificate{}, Host: "b"}, ReasonCNOnlyCert},
		{&mysql.MyError{Code: 1045, Message: "Access denied"}, ReasonAccessDenied},
		{fmt.Errorf("wrapped: %w", &Error{Reason: ReasonRevoked, Err: errors.New("x")}), ReasonRevoked},
		{errors.New("remote error: tls: protocol version not supported"), ReasonProtocolVersion},
		{errors.New("remote error: tls: handshake failure"), ReasonNoSharedCipher},
		{errors.New("read: remote error: tls: unknown certificate authority: connection was bad"), ReasonClientCertRejected},
		{fmt.Errorf("dial: %w", syscall.ECONNREFUSED), ReasonConnectionRefused},
		{fmt.Errorf("x: %w", os.ErrDeadlineExceeded), ReasonTimeout},
		{tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}, ReasonOther},
	} {
		if got := Classify(c.err); got != c.want {
			t.Errorf("Classify(%v) = %s, want %s", c.err, got, c.want)
		}
	}
}

func TestCheckRevocationNeedsCRLForEveryIssuer(t *testing.T) {
	now := time.Now()
	ca, _ := NewCA(pkix.Name{CommonName: "ca"}, now.Add(-time.Hour), now.Add(time.Hour))
	leaf, _ := ca.Issue(CertSpec{Subject: pkix.Name{CommonName: "leaf"}, Hosts: []string{"x"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)})
	chain := []*x509.Certificate{leaf.Cert, ca.Cert}
	if err := CheckRevocation(chain, nil, now); Classify(err) != ReasonRevoked || !strings.Contains(err.Error(), "unable to get certificate CRL") {
		t.Fatalf("no CRL: %v", err)
	}
	empty, _ := ca.CRL(nil, now.Add(-time.Minute), now.Add(time.Hour))
	crls := parseCRLs(t, empty)
	if err := CheckRevocation(chain, crls, now); err != nil {
		t.Fatalf("clean CRL: %v", err)
	}
	if err := CheckRevocation(chain, crls, now.Add(2*time.Hour)); err == nil || !strings.Contains(err.Error(), "CRL has expired") {
		t.Fatalf("stale CRL: %v", err)
	}
	rev, _ := ca.CRL([]*x509.Certificate{leaf.Cert}, now.Add(-time.Minute), now.Add(time.Hour))
	if err := CheckRevocation(chain, parseCRLs(t, rev), now); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("revoked: %v", err)
	}
}

func parseCRLs(t *testing.T, pemData []byte) []*x509.RevocationList {
	t.Helper()
	f := filepath.Join(t.TempDir(), "crl.pem")
	if err := os.WriteFile(f, pemData, 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := LoadCRLs(f, "")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// `replink certs` never replaces what is there: a second run keeps the
// set (the CA slaves trust), a partial set is refused naming the files;
// the CA outlives the leaves.
func TestMakeCertSetNeverOverwrites(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	set, err := MakeCertSet(dir, []string{"localhost"}, 30, now)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := os.ReadFile(set.CA)
	again, err := MakeCertSet(dir, []string{"localhost"}, 30, now)
	if err != nil || !again.Kept {
		t.Fatalf("second run: %+v, %v; want the set kept", again, err)
	}
	if now, _ := os.ReadFile(set.CA); !bytes.Equal(now, ca) {
		t.Fatal("a second run replaced the CA")
	}
	if err := os.Remove(set.ClientKey); err != nil {
		t.Fatal(err)
	}
	if _, err := MakeCertSet(dir, []string{"localhost"}, 30, now); err == nil || !strings.Contains(err.Error(), set.CA) {
		t.Fatalf("a partial set: %v, want an error naming %s", err, set.CA)
	}
	caCert, leaf := parseCertFile(t, set.CA), parseCertFile(t, set.ServerCert)
	if caCert.NotAfter.Sub(now) < 9*365*24*time.Hour || leaf.NotAfter.Sub(now) > 31*24*time.Hour {
		t.Fatalf("CA until %s, server until %s; want the CA for ten years, the leaves for 30 days", caCert.NotAfter, leaf.NotAfter)
	}
}

func parseCertFile(t *testing.T, name string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM", name)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
