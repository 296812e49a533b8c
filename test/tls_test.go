package test

import (
	"context"
	"crypto/tls"
	"fmt"
	"testing"
	"time"

	"github.com/replink/replink/replica"
	"github.com/replink/replink/tlsutil"
)

// probe connects to addr as user with the options and returns the
// reason (empty on success), the session's Ssl_cipher as the server
// reports it, and the TLS state.
func probe(t *testing.T, port int, host, user string, o tlsutil.ClientOptions) (tlsutil.Reason, string, *tls.ConnectionState) {
	t.Helper()
	c, err := tlsutil.NewClient(o)
	if err != nil {
		t.Fatalf("options %+v: %v", o, err)
	}
	ep := replica.Endpoint{Host: host, Port: port, User: user, Password: "replpass", TLS: c, ConnectTimeout: 5 * time.Second}
	conn, a, err := ep.Connect(context.Background(), "master", unmetered())
	if err != nil {
		var cs *tls.ConnectionState
		if a != nil {
			cs = a.State()
		}
		t.Logf("connect %s@%s:%d %+v: %v", user, host, port, o, err)
		return tlsutil.Classify(err), "", cs
	}
	defer conn.Close()
	res, err := conn.Execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
	if err != nil {
		t.Fatal(err)
	}
	cipher, _ := res.GetString(0, 1)
	return "", cipher, a.State()
}

func TestSSLModes(t *testing.T) {
	p := NewPKI(t)
	ssl := StartSSLServer(t, "ssl", p, 1)
	ssl.SetupReplUsers()
	plain := StartServer(t, "plain", ServerOptions{ServerID: 2})
	plain.SetupReplUsers()

	cases := []struct {
		mode      string
		ca        string
		sslWant   tlsutil.Reason
		sslTLS    bool
		plainWant tlsutil.Reason
		plainTLS  bool
	}{
		{"DISABLED", "", "", false, "", false},
		{"PREFERRED", "", "", true, "", false},
		{"REQUIRED", "", "", true, tlsutil.ReasonServerNoSSL, false},
		{"VERIFY_CA", p.CAFile, "", true, tlsutil.ReasonServerNoSSL, false},
		{"VERIFY_IDENTITY", p.CAFile, "", true, tlsutil.ReasonServerNoSSL, false},
	}
	for _, c := range cases {
		t.Run(c.mode, func(t *testing.T) {
			o := tlsutil.ClientOptions{Mode: c.mode, CA: c.ca}
			for _, srv := range []struct {
				s       *Server
				want    tlsutil.Reason
				wantTLS bool
			}{{ssl, c.sslWant, c.sslTLS}, {plain, c.plainWant, c.plainTLS}} {
				reason, cipher, cs := probe(t, srv.s.Port, "127.0.0.1", "repl", o)
				if reason != srv.want {
					t.Fatalf("%s against %s master: reason %q, want %q", c.mode, srv.s.Name, reason, srv.want)
				}
				if reason == "" && (cipher != "") != srv.wantTLS {
					t.Fatalf("%s against %s master: Ssl_cipher %q, want TLS=%v", c.mode, srv.s.Name, cipher, srv.wantTLS)
				}
				if reason == "" && srv.wantTLS && cipher != tlsutil.CipherName(cs.CipherSuite) {
					t.Fatalf("cipher name: master says %q, replink says %q", cipher, tlsutil.CipherName(cs.CipherSuite))
				}
			}
		})
	}
}

func TestCertificateFailures(t *testing.T) {
	p := NewPKI(t)
	m := StartSSLServer(t, "certs", p, 1)
	m.SetupReplUsers()
	verifyID := tlsutil.ClientOptions{Mode: "VERIFY_IDENTITY", CA: p.CAFile}
	cases := []struct {
		name       string
		cert, key  string
		host, user string
		opts       tlsutil.ClientOptions
		want       tlsutil.Reason
	}{
		{"good cert by IP", p.ServerCert, p.ServerKey, "127.0.0.1", "repl", verifyID, ""},
		{"good cert by name", p.ServerCert, p.ServerKey, "localhost", "repl", verifyID, ""},
		{"wrong host", p.WrongHostCert, p.WrongHostKey, "127.0.0.1", "repl", verifyID, tlsutil.ReasonHostnameMismatch},
		{"wrong host passes VERIFY_CA", p.WrongHostCert, p.WrongHostKey, "127.0.0.1", "repl", tlsutil.ClientOptions{Mode: "VERIFY_CA", CA: p.CAFile}, ""},
		{"CN-only cert", p.CNOnlyCert, p.CNOnlyKey, "127.0.0.1", "repl", verifyID, tlsutil.ReasonCNOnlyCert},
		{"unknown CA", p.ServerCert, p.ServerKey, "127.0.0.1", "repl", tlsutil.ClientOptions{Mode: "VERIFY_CA", CA: p.OtherCAFile}, tlsutil.ReasonUnknownCA},
		{"expired", p.ExpiredCert, p.ExpiredKey, "127.0.0.1", "repl", verifyID, tlsutil.ReasonCertExpired},
		{"expired passes REQUIRED", p.ExpiredCert, p.ExpiredKey, "127.0.0.1", "repl", tlsutil.ClientOptions{Mode: "REQUIRED"}, ""},
		{"not yet valid", p.NotYetValidCert, p.NotYetValidKey, "127.0.0.1", "repl", verifyID, tlsutil.ReasonCertNotYetValid},
		{"revoked with ssl-crl", p.RevokedCert, p.RevokedKey, "127.0.0.1", "repl", tlsutil.ClientOptions{Mode: "VERIFY_IDENTITY", CA: p.CAFile, CRL: p.CRLFile}, tlsutil.ReasonRevoked},
		{"revoked without crl", p.RevokedCert, p.RevokedKey, "127.0.0.1", "repl", verifyID, ""},
		{"good cert with ssl-crl", p.ServerCert, p.ServerKey, "127.0.0.1", "repl", tlsutil.ClientOptions{Mode: "VERIFY_IDENTITY", CA: p.CAFile, CRL: p.CRLFile}, ""},
		{"revoked with ssl-crlpath", p.RevokedCert, p.RevokedKey, "127.0.0.1", "repl", tlsutil.ClientOptions{Mode: "VERIFY_IDENTITY", CAPath: p.CAPath, CRLPath: p.CAPath}, tlsutil.ReasonRevoked},
		{"ssl-capath hashed", p.ServerCert, p.ServerKey, "127.0.0.1", "repl", tlsutil.ClientOptions{Mode: "VERIFY_IDENTITY", CAPath: p.CAPath}, ""},
		{"X509 user with client cert", p.ServerCert, p.ServerKey, "127.0.0.1", "replx", tlsutil.ClientOptions{Mode: "VERIFY_IDENTITY", CA: p.CAFile, Cert: p.ClientCert, Key: p.ClientKey}, ""},
		{"X509 user without client cert", p.ServerCert, p.ServerKey, "127.0.0.1", "replx", verifyID, tlsutil.ReasonAccessDenied},
		{"X509 user with cert from another CA", p.ServerCert, p.ServerKey, "127.0.0.1", "replx", tlsutil.ClientOptions{Mode: "VERIFY_IDENTITY", CA: p.CAFile, Cert: p.OtherClientCert, Key: p.OtherClientKey}, tlsutil.ReasonClientCertRejected},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m.InstallCert(c.cert, c.key)
			reason, cipher, _ := probe(t, m.Port, c.host, c.user, c.opts)
			if reason != c.want {
				t.Fatalf("reason %q, want %q", reason, c.want)
			}
			if reason == "" && cipher == "" {
				t.Fatal("connected without TLS")
			}
		})
	}
}

func TestUnhashedCAPathRefused(t *testing.T) {
	p := NewPKI(t)
	_, err := tlsutil.NewClient(tlsutil.ClientOptions{Mode: "VERIFY_CA", CAPath: p.UnhashedCAPath})
	if err == nil {
		t.Fatal("an unhashed ssl-capath was accepted; OpenSSL would find no CA there")
	}
	t.Log(err)
}

func TestTLSVersionAndCipher(t *testing.T) {
	p := NewPKI(t)
	open := StartSSLServer(t, "open", p, 1)
	open.SetupReplUsers()
	strict := StartSSLServer(t, "strict", p, 2, "tls_version=TLSv1.2", "ssl_cipher=ECDHE-RSA-AES256-GCM-SHA384")
	strict.SetupReplUsers()
	base := tlsutil.ClientOptions{Mode: "VERIFY_IDENTITY", CA: p.CAFile}
	with := func(f func(*tlsutil.ClientOptions)) tlsutil.ClientOptions { o := base; f(&o); return o }
	cases := []struct {
		name       string
		srv        *Server
		opts       tlsutil.ClientOptions
		want       tlsutil.Reason
		wantVer    uint16
		wantCipher string
	}{
		{"TLSv1.3 default", open, base, "", tls.VersionTLS13, ""},
		{"tls-version TLSv1.2", open, with(func(o *tlsutil.ClientOptions) { o.TLSVersion = "TLSv1.2" }), "", tls.VersionTLS12, ""},
		{"ssl-cipher honoured", open, with(func(o *tlsutil.ClientOptions) {
			o.TLSVersion, o.Cipher = "TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256"
		}), "", tls.VersionTLS12, "ECDHE-RSA-AES128-GCM-SHA256"},
		{"server allows only TLSv1.2", strict, with(func(o *tlsutil.ClientOptions) { o.TLSVersion = "TLSv1.3" }), tlsutil.ReasonProtocolVersion, 0, ""},
		{"no shared cipher", strict, with(func(o *tlsutil.ClientOptions) { o.Cipher = "ECDHE-RSA-AES128-GCM-SHA256" }), tlsutil.ReasonNoSharedCipher, 0, ""},
		{"the server's cipher", strict, with(func(o *tlsutil.ClientOptions) { o.Cipher = "ECDHE-RSA-AES256-GCM-SHA384" }), "", tls.VersionTLS12, "ECDHE-RSA-AES256-GCM-SHA384"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			reason, cipher, cs := probe(t, c.srv.Port, "127.0.0.1", "repl", c.opts)
			if reason != c.want {
				t.Fatalf("reason %q, want %q", reason, c.want)
			}
			if reason != "" {
				return
			}
			if cs.Version != c.wantVer {
				t.Fatalf("version %s, want %s", tlsutil.VersionName(cs.Version), tlsutil.VersionName(c.wantVer))
			}
			if c.wantCipher != "" && cipher != c.wantCipher {
				t.Fatalf("master's Ssl_cipher %q, want %q", cipher, c.wantCipher)
			}
			if got := tlsutil.CipherName(cs.CipherSuite); got != cipher {
				t.Fatalf("replink names the cipher %q, master %q", got, cipher)
			}
		})
	}
	_ = fmt.Sprint
}
