package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/replink/replink/status"
	"github.com/replink/replink/test"
	"github.com/replink/replink/tlsutil"
)

func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	badKey := filepath.Join(dir, "bad.toml")
	os.WriteFile(badKey, []byte("[master]\nhost = \"127.0.0.1\"\nuser = \"repl\"\nssl_mode = \"REQUIRED\"\n"), 0o644)
	noDir := filepath.Join(dir, "nodir.toml")
	os.WriteFile(noDir, []byte("[master]\nhost = \"127.0.0.1\"\nuser = \"repl\"\nserver-id = 4001\n"), 0o644)
	noID := filepath.Join(dir, "noid.toml")
	os.WriteFile(noID, []byte("[master]\nhost = \"127.0.0.1\"\nuser = \"repl\"\n"), 0o644)
	set, err := tlsutil.MakeCertSet(filepath.Join(dir, "tls"), []string{"127.0.0.1"}, 1, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	badCRL := filepath.Join(dir, "badcrl.toml")
	os.WriteFile(badCRL, []byte(fmt.Sprintf("[master]\nhost = \"127.0.0.1\"\nuser = \"repl\"\nserver-id = 4001\n[relay]\ndata-dir = %q\n"+
		"ssl-ca = %q\nssl-cert = %q\nssl-key = %q\nssl-crl = %q\n", dir, set.CA, set.ServerCert, set.ServerKey, set.CA)), 0o644)
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{}, 2, "usage"},
		{[]string{"frobnicate"}, 2, "unknown command"},
		{[]string{"run"}, 2, "-c FILE"},
		{[]string{"run", "-c", filepath.Join(dir, "missing.toml")}, 2, "missing.toml"},
		{[]string{"run", "-c", badKey}, 2, "master.ssl_mode"},
		{[]string{"run", "-c", noDir}, 2, "relay.data-dir"},
		{[]string{"run", "-c", noID}, 2, "master.server-id: is required"},
		{[]string{"run", "-c", badCRL}, 2, "relay: ssl-crl " + set.CA},
		{[]string{"diagnose", "--host", "127.0.0.1", "--user", "x", "--ssl-mode", "VERIFY_CA"}, 2, "CA certificate is required"},
		{[]string{"diagnose", "-h", "127.0.0.1", "-P", "4151", "-u", "x", "--ssl-mode", "VERIFY_CA"}, 2, "CA certificate is required"},
		{[]string{"certs"}, 2, "--out"},
		{[]string{"version"}, 0, ""},
	} {
		var out, errb bytes.Buffer
		code := Run(context.Background(), c.args, &out, &errb)
		if code != c.code || !strings.Contains(out.String()+errb.String(), c.msg) {
			t.Errorf("replink %v: exit %d (want %d), output %q (want %q)", c.args, code, c.code, out.String()+errb.String(), c.msg)
		}
	}
}

// TestHelp: -h and --help print the command's usage and flag defaults on
// stdout, nothing on stderr, and exit 0.
func TestHelp(t *testing.T) {
	for _, c := range []struct {
		cmd  string
		flag string // one flag the usage must show
		h    bool   // -h asks for help (for run and diagnose it is the host, as for mysql)
	}{
		{"run", "-c", false},
		{"diagnose", "-json", false},
		{"certs", "-out", true},
		{"status", "-addr", true},
	} {
		for _, h := range []string{"-h", "--help", "-help"} {
			if h == "-h" && !c.h {
				continue
			}
			t.Run(c.cmd+h, func(t *testing.T) {
				var out, errb bytes.Buffer
				code := Run(context.Background(), []string{c.cmd, h}, &out, &errb)
				if code != 0 {
					t.Errorf("exit %d, want 0", code)
				}
				if want := "usage: replink " + c.cmd; !strings.Contains(out.String(), want) || !strings.Contains(out.String(), "  "+c.flag) {
					t.Errorf("stdout %q lacks %q and the flag %s", out.String(), want, c.flag)
				}
				if errb.Len() != 0 {
					t.Errorf("stderr %q, want nothing", errb.String())
				}
			})
		}
	}
}

// TestBadFlag: an unknown flag is still bad usage, told on stderr.
func TestBadFlag(t *testing.T) {
	for _, cmd := range []string{"run", "diagnose", "certs", "status"} {
		var out, errb bytes.Buffer
		code := Run(context.Background(), []string{cmd, "--frobnicate"}, &out, &errb)
		if code != 2 || out.Len() != 0 || !strings.Contains(errb.String(), "flag provided but not defined: -frobnicate") ||
			!strings.Contains(errb.String(), "usage: replink "+cmd) {
			t.Errorf("replink %s --frobnicate: exit %d (want 2), stdout %q (want nothing), stderr %q", cmd, code, out.String(), errb.String())
		}
	}
}

func TestCertsCommand(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	if code := Run(context.Background(), []string{"certs", "--out", dir, "--hosts", "db1.example.com,10.0.0.5", "--days", "10"}, &out, io.Discard); code != 0 {
		t.Fatalf("exit %d: %s", code, out.String())
	}
	for _, f := range []string{"ca.pem", "server-cert.pem", "server-key.pem", "client-cert.pem", "client-key.pem"} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(f, "key.pem") && st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %o", f, st.Mode().Perm())
		}
	}
}

// TestRunStreamsAndStopsCleanly runs the daemon against a real master,
// checks /status, /readyz and /metrics, and stops it as SIGTERM would.
func TestRunStreamsAndStopsCleanly(t *testing.T) {
	p := test.NewPKI(t)
	m := test.StartSSLServer(t, "cli", p, 1)
	m.SetupReplUsers()
	metricsPort := test.FreePort(t)
	metrics := fmt.Sprintf("127.0.0.1:%d", metricsPort)
	conf := test.WriteReplinkConfig(t, p, m.Port, test.FreePort(t), metricsPort, t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	var logs bytes.Buffer
	done := make(chan int, 1)
	go func() { done <- Run(ctx, []string{"run", "-c", conf}, io.Discard, &syncWriter{w: &logs}) }()
	m.Exec("CREATE DATABASE d", "CREATE TABLE d.t (id INT PRIMARY KEY)", "INSERT INTO d.t VALUES (1),(2),(3)")

	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + metrics + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, _ := get("/readyz")
		file, pos := m.MasterStatus()
		_, body := get("/status")
		var st status.Doc
		_ = json.Unmarshal([]byte(body), &st)
		if code == 200 && st.Relay.Position == fmt.Sprintf("%s:%d", file, pos) {
			if st.Master.TLSVersion == "" || len(st.Master.PeerChain) == 0 {
				t.Fatalf("/status lacks TLS details: %s", body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not caught up: readyz %d, status %s", code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	_, metricsText := get("/metrics")
	for _, want := range []string{"replink_master_up 1", `replink_tls_handshakes_total{link="master",result="ok"}`,
		`replink_tls_handshake_failures_total{link="master",reason="cn_only_cert"} 0`, "replink_build_info", "go_goroutines"} {
		if !strings.Contains(metricsText, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("run exited %d:\n%s", code, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not stop")
	}
	if strings.Contains(logs.String(), "replpass") || strings.Contains(logs.String(), "slavepass") {
		t.Fatal("the password appears in the log")
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// TestSeriesExistFromStartup: with the master unreachable, the series
// alerts depend on are there, master_up is 0, every reason is initialised,
// and /readyz says why it is not ready.
func TestSeriesExistFromStartup(t *testing.T) {
	p := test.NewPKI(t)
	metricsPort := test.FreePort(t)
	conf := test.WriteReplinkConfig(t, p, test.FreePort(t) /* nothing listens */, test.FreePort(t), metricsPort, t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- Run(ctx, []string{"run", "-c", conf}, io.Discard, io.Discard) }()
	defer func() { cancel(); <-done }()
	base := fmt.Sprintf("http://127.0.0.1:%d", metricsPort)
	var body string
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(base + "/metrics")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			if strings.Contains(body, `reason="connection_refused"} 1`) || strings.Contains(body, `reason="connection_refused"} 2`) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no connection_refused failure counted:\n%s", body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	want := []string{"replink_master_up 0", "replink_replication_lag_seconds ", "replink_last_event_timestamp_seconds ",
		"replink_link_stalls_total 0", "replink_replicas_connected 0", "replink_relay_log_fsync_duration_seconds_count ",
		`replink_cert_reloads_total{result="failed"} 0`, "replink_config_last_reload_successful 1", "replink_binlog_bytes_total 0",
		`replink_master_reconnects_total{reason="stall"} 0`, `replink_tls_connection_info{cipher="none",link="master",version="none"} 1`,
		`replink_tls_local_cert_not_after_timestamp_seconds{role="server"}`, `replink_tls_handshakes_total{link="replica",result="ok"} 0`,
		`replink_link_wire_bytes_total{direction="in",link="replica"} 0`, `replink_build_info{`}
	for _, r := range []string{"server_no_ssl", "unknown_ca", "cert_expired", "cert_not_yet_valid", "hostname_mismatch", "cn_only_cert",
		"revoked", "protocol_version", "no_shared_cipher", "client_cert_rejected", "access_denied", "bad_local_keypair", "timeout", "other"} {
		want = append(want, fmt.Sprintf(`replink_tls_handshake_failures_total{link="master",reason="%s"} 0`, r))
	}
	for _, w := range want {
		if !strings.Contains(body, w) {
			t.Errorf("/metrics lacks %s", w)
		}
	}
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || !strings.Contains(string(b), "connection refused") {
		t.Fatalf("/readyz %d %q", resp.StatusCode, b)
	}
}

// TestMetricsEndpointTLSAndBasicAuth: with an exporter-toolkit web config,
// /metrics is served over TLS and wants a user and password.
func TestMetricsEndpointTLSAndBasicAuth(t *testing.T) {
	p := test.NewPKI(t)
	hash, err := bcrypt.GenerateFromPassword([]byte("scrape-secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	webConfig := filepath.Join(dir, "web.yml")
	os.WriteFile(webConfig, []byte(fmt.Sprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\nbasic_auth_users:\n  prometheus: %s\n",
		p.ServerCert, p.ServerKey, hash)), 0o600)
	metricsPort := test.FreePort(t)
	conf := test.WriteReplinkConfig(t, p, test.FreePort(t), test.FreePort(t), metricsPort, t.TempDir())
	body, _ := os.ReadFile(conf)
	os.WriteFile(conf, []byte(strings.Replace(string(body), "[metrics]\n", fmt.Sprintf("[metrics]\nweb-config-file = %q\n", webConfig), 1)), 0o644)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- Run(ctx, []string{"run", "-c", conf}, io.Discard, io.Discard) }()
	defer func() { cancel(); <-done }()

	pool := x509.NewCertPool()
	ca, _ := os.ReadFile(p.CAFile)
	pool.AppendCertsFromPEM(ca)
	cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	url := fmt.Sprintf("https://127.0.0.1:%d/metrics", metricsPort)
	var resp *http.Response
	deadline := time.Now().Add(10 * time.Second)
	for {
		if resp, err = cl.Get(url); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("without credentials: %d, want 401", resp.StatusCode)
	}
	req, _ := http.NewRequest("GET", url, nil)
	req.SetBasicAuth("prometheus", "scrape-secret")
	resp, err = cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "replink_master_up") {
		t.Fatalf("with credentials: %d", resp.StatusCode)
	}
	if plain, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort)); err == nil {
		plain.Body.Close()
		if plain.StatusCode == 200 {
			t.Fatal("plain HTTP served the metrics")
		}
	}

	// A broken web config is a configuration error that names the key.
	os.WriteFile(webConfig, []byte("tls_server_config:\n  cert_file: /nonexistent\n"), 0o600)
	var errb bytes.Buffer
	if code := Run(context.Background(), []string{"run", "-c", conf}, io.Discard, &errb); code != 2 || !strings.Contains(errb.String(), "metrics.web-config-file") {
		t.Fatalf("broken web config: exit %d, %q", code, errb.String())
	}
}
