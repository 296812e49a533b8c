//go:build linux

package daemon

import (
	"strings"
	"syscall"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
)

// With a low open files limit, HTTP gets an eighth of it, and the start
// says so and warns that the slaves may run short.
func TestHTTPCapFollowsTheOpenFilesLimit(t *testing.T) {
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	low := old
	low.Cur = 256
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Skipf("cannot lower the open files limit: %v", err)
	}
	t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })

	logs := &logBuffer{}
	d, err := New(testConfig(t, nil, nil), hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Info}), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	if n := d.cfg.HTTP.Limits.MaxConns; n != 32 {
		t.Errorf("HTTP may hold %d connections with 256 open files, want 32", n)
	}
	d.checkOpenFiles()
	for _, want := range []string{"open files: limit=256 http_max_conns=32", "[WARN]  the open files limit is low"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("no %q in the log:\n%s", want, logs.String())
		}
	}
}
