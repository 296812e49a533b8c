package daemon

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/replink/replink/binlog"
	"github.com/replink/replink/config"
	"github.com/replink/replink/relay"
	"github.com/replink/replink/replica"
	"github.com/replink/replink/tlsutil"
)

// logBuffer collects a daemon's log while its parts write to it.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// closedPort is a loopback port nothing listens on: the replica keeps
// retrying it, which is all these tests need of a master.
func closedPort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

func testConfig(t *testing.T, masterTLS *tlsutil.Client, relayTLS *tlsutil.Server) Config {
	cfg := Config{
		Master: replica.Config{
			Endpoint: replica.Endpoint{Host: "127.0.0.1", Port: closedPort(t), User: "repl", Password: "x",
				TLS: masterTLS, ConnectTimeout: time.Second},
			ServerID: 4001, Start: replica.Start{Kind: "current"}, HeartbeatPeriod: time.Second, MaxBackoff: 200 * time.Millisecond,
		},
		Relay: relay.Config{Listen: "127.0.0.1:0", ServerID: 4001, TLS: relayTLS, Retain: 7 * 24 * time.Hour,
			Users: []relay.User{{Name: "slave1", Password: "pw", Require: relay.RequireNone}}},
		DataDir: t.TempDir(),
		Sync:    binlog.SyncTransaction,
		Version: "test",
	}
	cfg.HTTP.Listen = "127.0.0.1:0"
	return cfg
}

func TestRunEndsWhenTheRelayListenerDies(t *testing.T) {
	d, err := New(testConfig(t, nil, nil), hclog.NewNullLogger(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	// A slave is logged in, and the retention loop runs (retain 7d): both
	// must end with the listener, not wait for replink to stop.
	c, err := client.Connect(d.RelayAddr().String(), "slave1", "pw", "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	d.relayLn.Close() // slaves can no longer connect
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "relay accept") {
			t.Fatalf("Run returned %v, want the relay listener's error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run went on for 10s with a dead relay listener")
	}
	// The relay log was closed on the way out: it can be opened again.
	l, err := binlog.OpenLog(d.cfg.DataDir, binlog.SyncNone, hclog.NewNullLogger(), binlog.NewMetrics(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
}

func TestRunStopsCleanlyWithItsContext(t *testing.T) {
	d, err := New(testConfig(t, nil, nil), hclog.NewNullLogger(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v after its context ended, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s of its context ending")
	}
}

func TestNewNamesTheKeyOfABusyListenAddress(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg := testConfig(t, nil, nil)
	cfg.Relay.Listen = busy.Addr().String()
	cfg.File = "replink.toml"
	_, err = New(cfg, hclog.NewNullLogger(), prometheus.NewRegistry())
	var ce *config.Error
	if err == nil || !strings.Contains(err.Error(), "replink.toml: relay.listen") || errors.As(err, &ce) {
		t.Fatalf("New with a busy relay port: %v, want a runtime error (exit 1, systemd retries) naming replink.toml and relay.listen", err)
	}
	cfg = testConfig(t, nil, nil)
	cfg.Relay.Listen, cfg.File = "127.0.0.1", "replink.toml"
	if _, err = New(cfg, hclog.NewNullLogger(), prometheus.NewRegistry()); !errors.As(err, &ce) || ce.Key != "relay.listen" {
		t.Fatalf("New with relay.listen %q: %v, want a configuration error (exit 2) naming relay.listen", cfg.Relay.Listen, err)
	}
}

// copyFile copies src over dst, as an operator replacing a file would.
func copyFile(t *testing.T, src, dst string) {
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func clientCert(t *testing.T, d *Daemon) string {
	for _, c := range d.localCerts() {
		if c.Role == "client" {
			return c.SHA256
		}
	}
	t.Fatal("no client certificate loaded")
	return ""
}

func TestReloadSwapsBothSidesOrNeither(t *testing.T) {
	now := time.Now()
	old, err := tlsutil.MakeCertSet(t.TempDir(), []string{"127.0.0.1"}, 30, now)
	if err != nil {
		t.Fatal(err)
	}
	renewed, err := tlsutil.MakeCertSet(t.TempDir(), []string{"127.0.0.1"}, 60, now)
	if err != nil {
		t.Fatal(err)
	}
	// The daemon reads its files from a directory of its own, which the
	// test then changes under it.
	dir := t.TempDir()
	files := map[string]string{"ca.pem": old.CA, "client-cert.pem": old.ClientCert, "client-key.pem": old.ClientKey,
		"server-cert.pem": old.ServerCert, "server-key.pem": old.ServerKey}
	for name, src := range files {
		copyFile(t, src, filepath.Join(dir, name))
	}
	in := func(name string) string { return filepath.Join(dir, name) }
	mtls, err := tlsutil.NewClient(tlsutil.ClientOptions{Mode: "VERIFY_CA", CA: in("ca.pem"), Cert: in("client-cert.pem"), Key: in("client-key.pem")})
	if err != nil {
		t.Fatal(err)
	}
	rtls, err := tlsutil.NewServer(tlsutil.ServerOptions{CA: in("ca.pem"), Cert: in("server-cert.pem"), Key: in("server-key.pem")})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	d, err := New(testConfig(t, mtls, rtls), hclog.NewNullLogger(), reg)
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	before := clientCert(t, d)

	// A renewed client certificate for the master side, and a relay key
	// that is broken (a half-copied file).
	copyFile(t, renewed.ClientCert, in("client-cert.pem"))
	copyFile(t, renewed.ClientKey, in("client-key.pem"))
	if err := os.WriteFile(in("server-key.pem"), []byte("-----BEGIN PRIVATE KEY-----\ntorn"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := d.Reload(); err == nil || !strings.Contains(err.Error(), "relay") {
		t.Fatalf("Reload with a broken relay key: %v, want an error naming the relay side", err)
	}
	if got := clientCert(t, d); got != before {
		t.Fatalf("the master side swapped to the renewed certificate although the relay side failed (the log says the old ones are kept)")
	}
	if v := testutil.ToFloat64(d.m.lastReload); v != 0 {
		t.Fatalf("replink_config_last_reload_successful = %v after a failed reload, want 0", v)
	}
	if v := testutil.ToFloat64(d.m.reloads.WithLabelValues("failed")); v != 1 {
		t.Fatalf("replink_cert_reloads_total{result=failed} = %v, want 1", v)
	}

	// Mended, the next reload takes both.
	copyFile(t, renewed.ServerKey, in("server-key.pem"))
	copyFile(t, renewed.ServerCert, in("server-cert.pem"))
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := clientCert(t, d); got == before {
		t.Fatal("the renewed client certificate was not taken by a successful reload")
	}
	if v := testutil.ToFloat64(d.m.lastReload); v != 1 {
		t.Fatalf("replink_config_last_reload_successful = %v after a good reload, want 1", v)
	}
	expiry := `
# HELP replink_tls_local_cert_not_after_timestamp_seconds Expiry of the certificates replink loaded (earliest per role).
# TYPE replink_tls_local_cert_not_after_timestamp_seconds gauge
replink_tls_local_cert_not_after_timestamp_seconds{role="ca"} ` + unix(t, d, "ca") + `
replink_tls_local_cert_not_after_timestamp_seconds{role="client"} ` + unix(t, d, "client") + `
replink_tls_local_cert_not_after_timestamp_seconds{role="server"} ` + unix(t, d, "server") + `
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(expiry), "replink_tls_local_cert_not_after_timestamp_seconds"); err != nil {
		t.Fatal(err)
	}
}

// unix is the earliest expiry of role among the loaded certificates.
func unix(t *testing.T, d *Daemon, role string) string {
	var earliest time.Time
	for _, c := range d.localCerts() {
		if c.Role == role && (earliest.IsZero() || c.NotAfter.Before(earliest)) {
			earliest = c.NotAfter
		}
	}
	if earliest.IsZero() {
		t.Fatalf("no %s certificate loaded", role)
	}
	return strconv.FormatInt(earliest.Unix(), 10)
}

// TestReloadTakesRelayCRL: SIGHUP's reload reads the relay's ssl-crl with
// the certificates of both sides and swaps all or nothing: a new CRL is
// not taken while a master-side file is broken, and is once it is mended.
func TestReloadTakesRelayCRL(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	nb, na := now.Add(-time.Hour), now.Add(24*time.Hour)
	ca, err := tlsutil.NewCA(pkix.Name{CommonName: "daemon CRL test CA"}, nb, na)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(name string, spec tlsutil.CertSpec) (*tlsutil.Issued, string, string) {
		spec.Subject, spec.NotBefore, spec.NotAfter = pkix.Name{CommonName: name}, nb, na
		is, err := ca.Issue(spec)
		if err != nil {
			t.Fatal(err)
		}
		cert, key, err := is.Write(dir, name)
		if err != nil {
			t.Fatal(err)
		}
		return is, cert, key
	}
	_, serverCert, serverKey := issue("server", tlsutil.CertSpec{Hosts: []string{"127.0.0.1"}, Server: true})
	_, clientCert, clientKey := issue("client", tlsutil.CertSpec{Client: true})
	slave, _, _ := issue("slave1", tlsutil.CertSpec{Client: true})
	caFile, _, err := ca.Write(dir, "ca")
	if err != nil {
		t.Fatal(err)
	}
	crlFile := filepath.Join(dir, "crl.pem")
	writeCRL := func(thisUpdate time.Time, revoked ...*x509.Certificate) {
		b, err := ca.CRL(revoked, thisUpdate, na)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(crlFile, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeCRL(nb)
	mtls, err := tlsutil.NewClient(tlsutil.ClientOptions{Mode: "VERIFY_CA", CA: caFile, Cert: clientCert, Key: clientKey})
	if err != nil {
		t.Fatal(err)
	}
	rtls, err := tlsutil.NewServer(tlsutil.ServerOptions{CA: caFile, Cert: serverCert, Key: serverKey, CRL: crlFile})
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(testConfig(t, mtls, rtls), hclog.NewNullLogger(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() { cancel(); <-done }()
	login := func() error {
		cfg := &tls.Config{InsecureSkipVerify: true,
			Certificates: []tls.Certificate{{Certificate: [][]byte{slave.Cert.Raw}, PrivateKey: slave.Key}}}
		c, err := client.Connect(d.RelayAddr().String(), "slave1", "pw", "", func(c *client.Conn) error { c.SetTLSConfig(cfg); return nil })
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Execute("SELECT 1")
		return err
	}
	if err := login(); err != nil {
		t.Fatal(err)
	}

	// The CA revokes the slave's certificate, but the master-side key is
	// torn: nothing is swapped, the slave still gets in.
	writeCRL(now.Add(-time.Minute), slave.Cert)
	copyFile(t, clientKey, clientKey+".good")
	if err := os.WriteFile(clientKey, []byte("-----BEGIN PRIVATE KEY-----\ntorn"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := d.Reload(); err == nil || !strings.Contains(err.Error(), "master") {
		t.Fatalf("Reload with a torn master key: %v, want an error naming the master side", err)
	}
	if err := login(); err != nil {
		t.Fatalf("after a failed reload the old CRL should stay in force: %v", err)
	}
	copyFile(t, clientKey+".good", clientKey)
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := login(); err == nil {
		t.Fatal("a slave whose certificate the reloaded CRL revokes logged in")
	}
}
