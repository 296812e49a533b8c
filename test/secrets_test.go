package test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSecretsNeverShown runs replink (debug logging) through logins that
// fail and succeed, a failed and a good certificate reload, and
// diagnose, then looks for the passwords and the private keys in
// everything it printed and served.
func TestSecretsNeverShown(t *testing.T) {
	p, m := newMaster(t)
	relayPort, metricsPort := FreePort(t), FreePort(t)
	conf := WriteReplinkConfig(t, p, m.Port, relayPort, metricsPort, t.TempDir())
	logFile := filepath.Join(t.TempDir(), "replink.log")
	proc := StartProcess(t, conf, logFile)
	slave := StartServer(t, "slave", ServerOptions{ServerID: 3})
	m.Exec("CREATE DATABASE d", "CREATE TABLE d.t (id INT PRIMARY KEY)", "INSERT INTO d.t VALUES (1)")

	// A slave with a wrong password, then the right one.
	slave.Exec(fmt.Sprintf(`CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='slave1', MASTER_PASSWORD='wrong-guess-pw',
		MASTER_SSL=1, MASTER_SSL_CA='%s', MASTER_SSL_CERT='%s', MASTER_SSL_KEY='%s', MASTER_CONNECT_RETRY=1, MASTER_USE_GTID=no,
		MASTER_LOG_FILE='mariadb-bin.000001', MASTER_LOG_POS=4`, relayPort, p.CAFile, p.ClientCert, p.ClientKey), "START SLAVE")
	waitUntil(t, 20*time.Second, func() bool { return slave.SlaveStatus()["Last_IO_Errno"] == "1045" })
	slave.Exec("STOP SLAVE", "RESET SLAVE ALL")
	changeMaster(t, slave, p, relayPort, "slave1", "mariadb-bin.000001", "")
	slave.Exec("START SLAVE")
	waitSlaveCaughtUp(t, m, slave, 30*time.Second)

	// A reload that fails on a broken key, then one that succeeds.
	good, _ := os.ReadFile(p.ServerKey)
	os.WriteFile(p.ServerKey, []byte("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n"), 0o600)
	proc.Signal(syscall.SIGHUP)
	waitLogged(t, logFile, "certificate reload failed", 1)
	os.WriteFile(p.ServerKey, good, 0o600)
	proc.Signal(syscall.SIGHUP)
	waitLogged(t, logFile, "certificates reloaded", 1)

	var seen strings.Builder
	for _, path := range []string{"/", "/status", "/metrics", "/readyz"} {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d%s", metricsPort, path))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		seen.Write(b)
	}
	for _, args := range [][]string{{"diagnose", "-c", conf}, {"diagnose", "--json", "-c", conf},
		{"diagnose", "-c", conf, "--user", "repl", "--password-file", writeSecret(t, "a-wrong-master-pw")}} {
		out, _ := exec.Command(ReplinkBinary(t), args...).CombinedOutput()
		seen.Write(out)
	}
	proc.Signal(syscall.SIGTERM)
	proc.Wait(20 * time.Second)
	log, _ := os.ReadFile(logFile)
	seen.Write(log)
	if !strings.Contains(string(log), "certificate reload failed") || !strings.Contains(string(log), "slave refused") {
		t.Fatal("the run did not go through the failures it should have")
	}

	secrets := []string{"replpass", "slavepass", "wrong-guess-pw", "a-wrong-master-pw", "bm90IGEga2V5"}
	for _, keyFile := range []string{p.ServerKey, p.ClientKey} {
		key, _ := os.ReadFile(keyFile)
		lines := strings.Split(string(key), "\n")
		secrets = append(secrets, lines[1], lines[len(lines)/2]) // lines of the key's base64 body
	}
	all := seen.String()
	for _, s := range secrets {
		if s != "" && strings.Contains(all, s) {
			t.Errorf("replink showed a secret (%q...) in its logs, pages or output", s[:min(len(s), 12)])
		}
	}
	if strings.Contains(all, "PRIVATE KEY") {
		t.Error("replink printed a PEM private key header")
	}
	t.Logf("looked through %d bytes of logs, pages and output", len(all))
}

func writeSecret(t *testing.T, s string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(f, []byte(s), 0o600)
	return f
}

// waitLogged waits until the log file holds what n times.
func waitLogged(t *testing.T, logFile, what string, n int) {
	t.Helper()
	waitUntil(t, 10*time.Second, func() bool {
		b, _ := os.ReadFile(logFile)
		return strings.Count(string(b), what) >= n
	})
}
