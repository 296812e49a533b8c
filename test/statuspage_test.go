package test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// chromium runs headless Chromium with the flags this machine needs
// (no sandbox as root, no background network) and returns its output.
func chromium(t *testing.T, args ...string) []byte {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium not found: run scripts/setup.sh (make test does)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
		"--user-data-dir=" + t.TempDir()}
	out, err := exec.CommandContext(ctx, bin, append(base, args...)...).Output()
	if err != nil {
		t.Fatalf("chromium %v: %v", args, err)
	}
	return out
}

// TestStatusPageInBrowser loads the status page of a running replink, with
// a slave attached, in a real headless browser.
func TestStatusPageInBrowser(t *testing.T) {
	stack := StartProcessStack(t)
	proc, metricsPort := stack.Proc, stack.MetricsPort

	url := fmt.Sprintf("http://127.0.0.1:%d/", metricsPort)
	dom := string(chromium(t, "--dump-dom", url))
	for _, want := range []string{"streaming", "TLSv1.3", "TLS_AES_", "master chain [0]", "/O=replink-test/CN=localhost",
		"Slaves (1)", "slave1", "mariadb-bin.000001", "None since start."} {
		if !strings.Contains(dom, want) {
			t.Errorf("the status page does not show %q", want)
		}
	}
	shot := filepath.Join(t.TempDir(), "status.png")
	if dst := os.Getenv("REPLINK_SCREENSHOT"); dst != "" {
		shot = dst
	}
	chromium(t, "--screenshot="+shot, "--window-size=1200,1000", url)
	st, err := os.Stat(shot)
	if err != nil || st.Size() < 10_000 {
		t.Fatalf("screenshot %s: %v (%d bytes)", shot, err, st.Size())
	}
	t.Logf("screenshot of the status page: %s (%d bytes)", shot, st.Size())
	proc.Signal(syscall.SIGTERM)
	proc.Wait(20 * time.Second)
}
