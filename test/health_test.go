package test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
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

// TestSystemdNotify: run as a Type=notify service (NOTIFY_SOCKET set),
// replink says READY=1 once its listeners are bound and its relay log is
// open, with no master to connect to (an outage must not fail the unit's
// start), a STATUS= line naming the link's state, and STOPPING=1 on
// SIGTERM.
func TestSystemdNotify(t *testing.T) {
	p := NewPKI(t)
	sock := filepath.Join(t.TempDir(), "notify.sock")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	msgs := make(chan string, 32)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := ln.Read(buf)
			if err != nil {
				close(msgs)
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	metricsPort := FreePort(t)
	conf := WriteReplinkConfig(t, p, FreePort(t), FreePort(t), metricsPort, t.TempDir()) // nothing listens on the master's port
	var logs lockedBuffer
	cmd := exec.Command(ReplinkBinary(t), "run", "-c", conf)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var exitErr error
	go func() { exitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("replink log:\n%s", logs.String())
		}
	})
	next := func(what string) string {
		t.Helper()
		select {
		case m := <-msgs:
			return m
		case <-time.After(15 * time.Second):
			t.Fatalf("no %s from replink in 15s", what)
		}
		return ""
	}
	ready := next("READY=1")
	if !strings.Contains(ready, "READY=1") || !strings.Contains(ready, "STATUS=") {
		t.Fatalf("first notification %q, want READY=1 and a STATUS= line", ready)
	}
	// Ready means the listeners answer.
	if code, _, errs := replinkStatus(t, "--addr", fmt.Sprintf("127.0.0.1:%d", metricsPort)); code != 1 || !strings.Contains(errs, "not ready") {
		t.Fatalf("after READY=1, replink status: exit %d, %q; want 1, not ready (no master)", code, errs)
	}
	t.Logf("first notification: %q", ready)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	for {
		m := next("STOPPING=1")
		if strings.Contains(m, "STOPPING=1") {
			break
		}
		if !strings.HasPrefix(m, "STATUS=") {
			t.Fatalf("notification %q", m)
		}
		t.Logf("notification: %q", m)
	}
	select {
	case <-exited:
		if exitErr != nil {
			t.Fatalf("replink exited with %v after SIGTERM", exitErr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("replink did not exit 30s after SIGTERM")
	}
}

// TestOneWarningPerLostLink: a master down for a few seconds is one
// warning in replink's log, a debug line per retry, and one info line when
// the link is back, saying how long it was down and after how many
// attempts (it was a warning per retry).
func TestOneWarningPerLostLink(t *testing.T) {
	p, m := newMaster(t)
	r := StartReplink(t, p, m.Port, ReplinkOptions{MaxBackoff: 400 * time.Millisecond})
	m.Exec("CREATE DATABASE d", "CREATE TABLE d.t (id INT PRIMARY KEY)", "INSERT INTO d.t VALUES (1)")
	waitCaughtUp(t, m, r, 20*time.Second)
	before := len(r.Logs())

	m.Kill()
	time.Sleep(4 * time.Second) // retries every 100-400ms
	m.Start()
	waitUntil(t, 30*time.Second, func() bool { return r.Replica.Status().State == "streaming" })
	time.Sleep(200 * time.Millisecond) // the line after the state

	var warns, retries, back []string
	for _, line := range splitLines(r.Logs()[before:]) {
		switch {
		case strings.Contains(line, "[WARN]") && strings.Contains(line, ".replica:"):
			warns = append(warns, line)
		case strings.Contains(line, "[DEBUG]") && strings.Contains(line, "master link still down"):
			retries = append(retries, line)
		case strings.Contains(line, "[INFO]") && strings.Contains(line, "master link back"):
			back = append(back, line)
		}
	}
	if len(warns) != 1 || !strings.Contains(warns[0], "master link lost") {
		t.Errorf("%d warnings from the replica while the master was down, want 1 (master link lost):\n%s", len(warns), strings.Join(warns, "\n"))
	}
	if len(retries) < 5 {
		t.Errorf("%d debug lines for the retries, want one per retry (at least 5)", len(retries))
	}
	if len(back) != 1 || !strings.Contains(back[0], "down_for=") || !strings.Contains(back[0], fmt.Sprintf("attempts=%d", len(retries)+1)) {
		t.Errorf("info lines when the link came back: %q, want one with down_for= and attempts=%d", back, len(retries)+1)
	}
	t.Logf("%d warning, %d retries at debug level, back: %s", len(warns), len(retries), strings.Join(back, ""))
}
