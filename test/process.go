package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// ReplinkBinary builds cmd/replink once per test binary.
func ReplinkBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		_, here, _, _ := runtime.Caller(0)
		root := filepath.Dir(filepath.Dir(here))
		dir, err := os.MkdirTemp("", "replink-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "replink")
		cmd := exec.Command("go", "build", "-o", buildPath, "./cmd/replink")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// Process is replink running as its own process.
type Process struct {
	t       testing.TB
	Config  string
	LogFile string
	cmd     *exec.Cmd
	done    chan struct{}
	Exit    error
}

// StartProcess runs `replink run -c config`, logging to logFile (appended).
func StartProcess(t testing.TB, config, logFile string) *Process {
	t.Helper()
	p := &Process{t: t, Config: config, LogFile: logFile}
	p.start()
	t.Cleanup(func() { p.Signal(syscall.SIGKILL); p.Wait(10 * time.Second) })
	return p
}

func (p *Process) start() {
	p.t.Helper()
	lf, err := os.OpenFile(p.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		p.t.Fatal(err)
	}
	p.cmd = exec.Command(ReplinkBinary(p.t), "run", "-c", p.Config)
	p.cmd.Stdout, p.cmd.Stderr = lf, lf
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.done = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { p.Exit = c.Wait(); lf.Close(); close(done) }(p.cmd, p.done)
}

// Signal sends sig to the process.
func (p *Process) Signal(sig syscall.Signal) { _ = p.cmd.Process.Signal(sig) }

// Wait waits for the process to exit and reports whether it did.
func (p *Process) Wait(d time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		return false
	}
}

// Restart starts the process again after it exited.
func (p *Process) Restart() {
	p.t.Helper()
	if !p.Wait(10 * time.Second) {
		p.t.Fatal("replink still running")
	}
	p.start()
}

// WriteReplinkConfig writes a replink.toml for a master on masterPort:
// VERIFY_IDENTITY upstream, TLS and the X509 account slave1 on the relay.
func WriteReplinkConfig(t testing.TB, p *PKI, masterPort, relayPort, metricsPort int, dataDir string) string {
	t.Helper()
	return WriteReplinkConfigWith(t, p, masterPort, relayPort, metricsPort, dataDir, ConfigOptions{})
}

// ConfigOptions change WriteReplinkConfig's defaults.
type ConfigOptions struct {
	SSLMode  string // [master] ssl-mode; VERIFY_IDENTITY when empty
	Start    string // [master] start; replink's default ("current") when empty
	ServerID uint32 // [master] server-id; 4001 when zero
	Sync     string // [relay] sync; "transaction" when empty
	LogLevel string // [log] level; "debug" when empty
	// Candidates are the ports of [master] candidates on 127.0.0.1, with
	// failover-wait 1s.
	Candidates []int
	// KeyFile is [relay] key-file: the relay log encrypted at rest.
	KeyFile string
}

// WriteReplinkConfigWith is WriteReplinkConfig with other settings.
func WriteReplinkConfigWith(t testing.TB, p *PKI, masterPort, relayPort, metricsPort int, dataDir string, o ConfigOptions) string {
	t.Helper()
	def := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	def(&o.SSLMode, "VERIFY_IDENTITY")
	def(&o.Sync, "transaction")
	def(&o.LogLevel, "debug")
	var extra string
	if o.Start != "" {
		extra += fmt.Sprintf("start = %q\n", o.Start)
	}
	if o.ServerID == 0 {
		o.ServerID = 4001
	}
	extra += fmt.Sprintf("server-id = %d\n", o.ServerID)
	if len(o.Candidates) > 0 {
		var c []string
		for _, port := range o.Candidates {
			c = append(c, fmt.Sprintf("%q", fmt.Sprintf("127.0.0.1:%d", port)))
		}
		extra += fmt.Sprintf("candidates = [%s]\nfailover-wait = \"1s\"\n", strings.Join(c, ", "))
	}
	var relayExtra string
	if o.KeyFile != "" {
		relayExtra = fmt.Sprintf("key-file = %q\n", o.KeyFile)
	}
	dir := t.TempDir()
	pw := filepath.Join(dir, "repl.pass")
	spw := filepath.Join(dir, "slave.pass")
	os.WriteFile(pw, []byte("replpass"), 0o600)
	os.WriteFile(spw, []byte("slavepass"), 0o600)
	conf := filepath.Join(dir, "replink.toml")
	os.WriteFile(conf, []byte(fmt.Sprintf(`[master]
host = "127.0.0.1"
port = %d
user = "repl"
password-file = %q
ssl-mode = %q
ssl-ca = %q
heartbeat-period = "500ms"
connect-timeout = "5s"
%s
[relay]
listen = "127.0.0.1:%d"
data-dir = %q
sync = %q
ssl-ca = %q
ssl-cert = %q
ssl-key = %q
%s
[[relay.users]]
name = "slave1"
password-file = %q
require = "X509"
subject = %q

[metrics]
listen = "127.0.0.1:%d"

[log]
level = %q
`, masterPort, pw, o.SSLMode, p.CAFile, extra, relayPort, dataDir, o.Sync, p.CAFile, p.ServerCert, p.ServerKey, relayExtra, spw, ClientSubject, metricsPort, o.LogLevel)), 0o644)
	return conf
}
