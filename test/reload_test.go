package test

import (
	"context"
	"crypto/x509/pkix"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/replink/replink/replica"
	"github.com/replink/replink/tlsutil"
)

// scrape reads a replink /metrics page.
type scrape map[string]*dto.MetricFamily

func scrapeMetrics(t *testing.T, port int) scrape {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

func (s scrape) Gather() ([]*dto.MetricFamily, error) {
	out := make([]*dto.MetricFamily, 0, len(s))
	for _, f := range s {
		out = append(out, f)
	}
	return out, nil
}

// relayServerSerial logs in to the relay over TLS and returns the serial
// of the certificate it presents.
func relayServerSerial(t *testing.T, p *PKI, port int) string {
	t.Helper()
	tc, err := tlsutil.NewClient(tlsutil.ClientOptions{Mode: "VERIFY_IDENTITY", CA: p.CAFile, Cert: p.ClientCert, Key: p.ClientKey})
	if err != nil {
		t.Fatal(err)
	}
	ep := replica.Endpoint{Host: "127.0.0.1", Port: port, User: "slave1", Password: "slavepass", TLS: tc, ConnectTimeout: 5 * time.Second}
	c, a, err := ep.Connect(context.Background(), "replica", unmetered())
	if err != nil {
		t.Fatalf("probe relay: %v", err)
	}
	c.Close()
	return a.State().PeerCertificates[0].SerialNumber.String()
}

func TestSIGHUPReloadsCertificates(t *testing.T) {
	p, m := newMaster(t)
	relayPort, metricsPort := FreePort(t), FreePort(t)
	proc := StartProcess(t, WriteReplinkConfig(t, p, m.Port, relayPort, metricsPort, t.TempDir()), filepath.Join(t.TempDir(), "replink.log"))
	waitReady(t, metricsPort)
	serverExpiry := func() float64 {
		return counterValue(t, scrapeMetrics(t, metricsPort), "replink_tls_local_cert_not_after_timestamp_seconds", map[string]string{"role": "server"})
	}
	oldSerial, oldExpiry := relayServerSerial(t, p, relayPort), serverExpiry()

	// Renew the relay's server certificate in place, then SIGHUP.
	now := time.Now()
	renewed, err := p.CA.Issue(tlsutil.CertSpec{Subject: pkix.Name{CommonName: "localhost"}, Hosts: []string{"localhost", "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(30 * 24 * time.Hour).Truncate(time.Second), Server: true})
	if err != nil {
		t.Fatal(err)
	}
	// (replink also sees changed files by itself, every few seconds, and
	// may reload before the signal: hence ">= 1" below.)
	replaceFile(t, p.ServerCert, renewed.CertPEM, 0o644)
	replaceFile(t, p.ServerKey, renewed.KeyPEM, 0o600)
	proc.Signal(syscall.SIGHUP)
	waitUntil(t, 10*time.Second, func() bool {
		return counterValue(t, scrapeMetrics(t, metricsPort), "replink_cert_reloads_total", map[string]string{"result": "ok"}) >= 1
	})
	if got, want := serverExpiry(), float64(renewed.Cert.NotAfter.Unix()); got != want || got == oldExpiry {
		t.Fatalf("server cert expiry metric %v, want %v (was %v)", got, want, oldExpiry)
	}
	if newSerial := relayServerSerial(t, p, relayPort); newSerial != renewed.Cert.SerialNumber.String() || newSerial == oldSerial {
		t.Fatalf("after SIGHUP the relay presents serial %s, want the renewed %s (old %s)", newSerial, renewed.Cert.SerialNumber, oldSerial)
	}
	s := scrapeMetrics(t, metricsPort)
	if counterValue(t, s, "replink_master_up", nil) != 1 || counterValue(t, s, "replink_master_reconnects_total", nil) != 0 {
		t.Fatalf("the master link did not stay up through the reload: up %v, reconnects %v",
			counterValue(t, s, "replink_master_up", nil), counterValue(t, s, "replink_master_reconnects_total", nil))
	}

	// A broken key: the reload fails, the old (renewed) material stays.
	replaceFile(t, p.ServerKey, []byte("not a key"), 0o600)
	proc.Signal(syscall.SIGHUP)
	waitUntil(t, 10*time.Second, func() bool {
		return counterValue(t, scrapeMetrics(t, metricsPort), "replink_cert_reloads_total", map[string]string{"result": "failed"}) >= 1
	})
	s = scrapeMetrics(t, metricsPort)
	if counterValue(t, s, "replink_config_last_reload_successful", nil) != 0 {
		t.Fatal("config_last_reload_successful should be 0 after a failed reload")
	}
	if serial := relayServerSerial(t, p, relayPort); serial != renewed.Cert.SerialNumber.String() {
		t.Fatalf("after a failed reload the relay presents %s, want the kept %s", serial, renewed.Cert.SerialNumber)
	}
	proc.Signal(syscall.SIGTERM)
	proc.Wait(20 * time.Second)
	log, _ := os.ReadFile(proc.LogFile)
	if !strings.Contains(string(log), "certificate reload failed") || !strings.Contains(string(log), "ssl-key") {
		t.Fatalf("the log does not say which file failed:\n%s", tail(log, 3000))
	}
}

// TestMasterCertReplacedThenSIGHUP: the master moves to a certificate
// from a new CA. replink's next handshakes fail with unknown_ca (metrics
// and log); once its ssl-ca holds the new CA, SIGHUP recovers the link
// without a restart.
func TestMasterCertReplacedThenSIGHUP(t *testing.T) {
	p, m := newMaster(t)
	relayPort, metricsPort := FreePort(t), FreePort(t)
	conf := WriteReplinkConfig(t, p, m.Port, relayPort, metricsPort, t.TempDir())
	proc := StartProcess(t, conf, filepath.Join(t.TempDir(), "replink.log"))
	up := func() float64 { return counterValue(t, scrapeMetrics(t, metricsPort), "replink_master_up", nil) }
	waitReady(t, metricsPort)

	// A new CA and a master certificate from it.
	newCA, cert, certFile, keyFile := newCAMasterCert(t)
	m.InstallCert(certFile, keyFile)
	// Drop replink's dump connection so it must shake hands again.
	for _, row := range m.Query("SELECT id FROM information_schema.processlist WHERE command = 'Binlog Dump'") {
		m.Exec("KILL CONNECTION " + row[0])
	}
	unknownCA := map[string]string{"link": "master", "reason": "unknown_ca"}
	waitUntil(t, 20*time.Second, func() bool {
		return counterValue(t, scrapeMetrics(t, metricsPort), "replink_tls_handshake_failures_total", unknownCA) >= 1
	})
	if up() != 0 {
		t.Fatal("master_up is 1 with an untrusted master certificate")
	}

	// The operator adds the new CA to replink's ssl-ca and sends SIGHUP.
	old, _ := os.ReadFile(p.CAFile)
	replaceFile(t, p.CAFile, append(old, newCA.CertPEM...), 0o644)
	proc.Signal(syscall.SIGHUP)
	waitUntil(t, 30*time.Second, func() bool { return up() == 1 })
	st := scrapeMetrics(t, metricsPort)
	if counterValue(t, st, "replink_cert_reloads_total", map[string]string{"result": "ok"}) < 1 { // the signal's, or the file watch's before it
		t.Fatal("the reload was not counted")
	}
	if v := counterValue(t, st, "replink_tls_peer_cert_not_after_timestamp_seconds", map[string]string{"link": "master", "subject": "/CN=localhost"}); v != float64(cert.Cert.NotAfter.Unix()) {
		t.Fatalf("peer expiry metric %v, want the new certificate's %d", v, cert.Cert.NotAfter.Unix())
	}
	proc.Signal(syscall.SIGTERM)
	proc.Wait(20 * time.Second)
	log, _ := os.ReadFile(proc.LogFile)
	if !strings.Contains(string(log), "reason=unknown_ca") {
		t.Fatalf("the log does not name unknown_ca:\n%s", tail(log, 2000))
	}
}

// replaceFile writes data beside name and renames it over name, so
// replink, which reads its files every few seconds by itself, never sees
// one half-written.
func replaceFile(t *testing.T, name string, data []byte, mode os.FileMode) {
	t.Helper()
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, name); err != nil {
		t.Fatal(err)
	}
}

// newCAMasterCert makes a CA other than the PKI's and a master (server)
// certificate for localhost and 127.0.0.1 from it, written to files.
func newCAMasterCert(t *testing.T) (ca, cert *tlsutil.Issued, certFile, keyFile string) {
	t.Helper()
	now := time.Now()
	ca, err := tlsutil.NewCA(pkix.Name{CommonName: "replink test CA 2"}, now.Add(-time.Hour), now.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	cert, err = ca.Issue(tlsutil.CertSpec{Subject: pkix.Name{CommonName: "localhost"}, Hosts: []string{"localhost", "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), Server: true})
	if err != nil {
		t.Fatal(err)
	}
	if certFile, keyFile, err = cert.Write(t.TempDir(), "master2"); err != nil {
		t.Fatal(err)
	}
	return ca, cert, certFile, keyFile
}
