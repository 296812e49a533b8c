package relay

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/hashicorp/go-hclog"

	"github.com/replink/replink/tlsutil"
)

// TestRevokedSlaveCertRefused: with [relay] ssl-crl, a slave whose client
// certificate the CRL lists is refused in the TLS handshake (counted as
// rejected tls, logged and counted as revoked), while a slave of the same
// account and subject with a certificate that is not listed logs in; a
// new CRL is taken by Reload, as SIGHUP does.
func TestRevokedSlaveCertRefused(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	nb, na := now.Add(-time.Hour), now.Add(24*time.Hour)
	ca, err := tlsutil.NewCA(pkix.Name{CommonName: "relay CRL test CA"}, nb, na)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(spec tlsutil.CertSpec) *tlsutil.Issued {
		t.Helper()
		spec.NotBefore, spec.NotAfter = nb, na
		is, err := ca.Issue(spec)
		if err != nil {
			t.Fatal(err)
		}
		return is
	}
	server := issue(tlsutil.CertSpec{Subject: pkix.Name{CommonName: "relay"}, Hosts: []string{"127.0.0.1"}, Server: true})
	good := issue(tlsutil.CertSpec{Subject: pkix.Name{CommonName: "slave1"}, Client: true})
	revoked := issue(tlsutil.CertSpec{Subject: pkix.Name{CommonName: "slave1"}, Client: true})
	caFile, _, err := ca.Write(dir, "ca")
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := server.Write(dir, "server")
	if err != nil {
		t.Fatal(err)
	}
	crlFile := filepath.Join(dir, "crl.pem")
	writeCRL := func(thisUpdate time.Time, certs ...*tlsutil.Issued) {
		t.Helper()
		var list []*x509.Certificate
		for _, c := range certs {
			list = append(list, c.Cert)
		}
		b, err := ca.CRL(list, thisUpdate, na)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(crlFile, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeCRL(nb, revoked)
	ts, err := tlsutil.NewServer(tlsutil.ServerOptions{CA: caFile, Cert: certFile, Key: keyFile, CRL: crlFile})
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	rl := startRelayWith(t, hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Info}), func(c *Config) {
		c.TLS, c.RequireSecureTransport = ts, true
		c.Users = []User{{Name: "slave1", Password: "pw", Require: RequireX509, Subject: "/CN=slave1"}}
	})
	login := func(cert *tlsutil.Issued) error {
		t.Helper()
		cfg := &tls.Config{InsecureSkipVerify: true,
			Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Cert.Raw}, PrivateKey: cert.Key}}}
		c, err := client.Connect(rl.addr, "slave1", "pw", "", func(c *client.Conn) error { c.SetTLSConfig(cfg); return nil })
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Execute("SELECT @@GLOBAL.SERVER_ID")
		return err
	}
	refused := func(what string, cert *tlsutil.Issued, n float64) {
		t.Helper()
		err := login(cert)
		if err == nil {
			t.Fatalf("%s: logged in, want the TLS handshake refused", what)
		}
		if me := (*mysql.MyError)(nil); errors.As(err, &me) {
			t.Fatalf("%s: refused with %v, want it cut off in the TLS handshake", what, err)
		}
		// The relay counts and logs the refusal after the client has seen
		// its connection fail; the handshake failure is counted last.
		deadline := time.Now().Add(5 * time.Second)
		for metricValue(t, rl.reg, "replink_tls_handshake_failures_total", "reason", "revoked") < n && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if got := metricValue(t, rl.reg, "replink_tls_handshake_failures_total", "reason", "revoked"); got != n {
			t.Errorf("%s: tls_handshake_failures_total{reason=revoked} = %v, want %v", what, got, n)
		}
		if got := metricValue(t, rl.reg, "replink_relay_connections_rejected_total", "reason", "tls"); got != n {
			t.Errorf("%s: rejected_total{reason=tls} = %v, want %v", what, got, n)
		}
		if got := strings.Count(logs.String(), "reason=revoked"); got != int(n) {
			t.Errorf("%s: %d log lines with reason=revoked, want %v:\n%s", what, got, n, logs)
		}
	}

	if err := login(good); err != nil {
		t.Fatalf("a slave whose certificate the CRL does not list: %v", err)
	}
	refused("revoked certificate", revoked, 1)
	if !strings.Contains(logs.String(), "certificate revoked: /CN=slave1") {
		t.Errorf("the log does not say which certificate was revoked:\n%s", logs)
	}

	// The CA revokes the other certificate too; the reload takes the new CRL.
	writeCRL(now.Add(-time.Minute), good, revoked)
	if err := ts.Reload(); err != nil {
		t.Fatal(err)
	}
	refused("certificate revoked by the reloaded CRL", good, 2)
}
