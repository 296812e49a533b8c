package test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// replinkStatus runs `replink status args...` and returns its exit
// status, stdout and stderr.
func replinkStatus(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, ReplinkBinary(t), append([]string{"status"}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String(), errb.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String(), errb.String()
	}
	t.Fatalf("replink status: %v", err)
	return 0, "", ""
}

// TestStatusIsTheHealthCheck: `replink status -c FILE` exits 0 while
// replink streams from the master, saying so in one line on stderr, and
// 1 once the master is down, naming why; it exited 0 with the master down.
func TestStatusIsTheHealthCheck(t *testing.T) {
	p, m := newMaster(t)
	metricsPort := FreePort(t)
	conf := WriteReplinkConfig(t, p, m.Port, FreePort(t), metricsPort, t.TempDir())
	StartProcess(t, conf, filepath.Join(t.TempDir(), "replink.log"))
	waitReady(t, metricsPort)

	code, out, errs := replinkStatus(t, "-c", conf)
	if code != 0 || !strings.Contains(out, "master:     streaming") || !strings.Contains(errs, "ok: streaming from 127.0.0.1:") {
		t.Fatalf("master up: exit %d (want 0), stdout %q, stderr %q", code, out, errs)
	}

	m.Kill()
	var last string
	waitUntil(t, 20*time.Second, func() bool {
		code, out, errs = replinkStatus(t, "-c", conf)
		last = fmt.Sprintf("exit %d, stdout %q, stderr %q", code, out, errs)
		return code != 0
	})
	if code != 1 || !strings.Contains(errs, "replink status: not ready: not streaming from 127.0.0.1:") ||
		strings.Count(strings.TrimSpace(errs), "\n") != 0 || !strings.Contains(out, "master:     ") {
		t.Fatalf("master down: %s; want exit 1, the text on stdout and one line on stderr naming why", last)
	}
	t.Logf("master down: %s", strings.TrimSpace(errs))
}

// TestStatusOverHTTPS: with a web-config-file that serves the metrics
// listener over TLS and wants a client certificate, `replink status -c`
// reads the web config, trusts the certificate it names and presents the
// client certificate it is given; a plain HTTP client gets a message that
// says the listener speaks HTTPS (it was "invalid character 'C'").
func TestStatusOverHTTPS(t *testing.T) {
	p, m := newMaster(t)
	metricsPort := FreePort(t)
	conf := WriteReplinkConfig(t, p, m.Port, FreePort(t), metricsPort, t.TempDir())
	webConfig := filepath.Join(t.TempDir(), "web.yml")
	os.WriteFile(webConfig, []byte(fmt.Sprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: %s\n",
		p.ServerCert, p.ServerKey, p.CAFile)), 0o600)
	body, _ := os.ReadFile(conf)
	os.WriteFile(conf, []byte(strings.Replace(string(body), "[metrics]\n", fmt.Sprintf("[metrics]\nweb-config-file = %q\n", webConfig), 1)), 0o644)
	StartProcess(t, conf, filepath.Join(t.TempDir(), "replink.log"))

	var code int
	var out, errs string
	waitUntil(t, 20*time.Second, func() bool {
		code, out, errs = replinkStatus(t, "-c", conf, "--ssl-cert", p.ClientCert, "--ssl-key", p.ClientKey)
		return code == 0
	})
	if !strings.Contains(out, "master:     streaming") || !strings.Contains(errs, "ok: streaming") {
		t.Fatalf("over HTTPS: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	// The same with the CA instead of the web config.
	addr := fmt.Sprintf("127.0.0.1:%d", metricsPort)
	if code, out, errs = replinkStatus(t, "--addr", addr, "--ssl-ca", p.CAFile, "--ssl-mode", "VERIFY_IDENTITY",
		"--ssl-cert", p.ClientCert, "--ssl-key", p.ClientKey); code != 0 {
		t.Fatalf("--ssl-ca: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	// No client certificate: said before asking.
	if code, _, errs = replinkStatus(t, "-c", conf); code != 1 || !strings.Contains(errs, "--ssl-cert and --ssl-key") {
		t.Fatalf("no client certificate: exit %d, stderr %q", code, errs)
	}
	// Plain HTTP to the HTTPS listener.
	if code, _, errs = replinkStatus(t, "--addr", addr); code != 1 || !strings.Contains(errs, "the listener speaks HTTPS") || strings.Contains(errs, "invalid character") {
		t.Fatalf("HTTP to HTTPS: exit %d, stderr %q", code, errs)
	}
}
