package daemon

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/replink/replink/binlog"
)

func TestRunGivesUpAfterTheShutdownTimeout(t *testing.T) {
	boom := errors.New("boom")
	for _, c := range []struct {
		name   string
		cancel bool // SIGTERM; otherwise a part fails
	}{
		{"told to stop", true},
		{"a part failed", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := testConfig(t, nil, nil)
			cfg.ShutdownTimeout = 300 * time.Millisecond
			logs := &logBuffer{}
			d, err := New(cfg, hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Info}), prometheus.NewRegistry())
			if err != nil {
				t.Fatal(err)
			}
			// A slave connection stuck in a write, say: it never returns.
			hung := make(chan struct{})
			t.Cleanup(func() { close(hung) })
			d.parts = append(d.parts, part{"stuck", func(context.Context) error { <-hung; return nil }})
			if !c.cancel {
				d.parts = append(d.parts, part{"broken", func(context.Context) error { return boom }})
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- d.Run(ctx) }()
			if c.cancel {
				cancel()
			}
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("Run went on for 10s with a part that does not stop (shutdown timeout 300ms)")
			}
			if err == nil || !strings.Contains(err.Error(), "stuck still running 300ms") {
				t.Errorf("Run returned %v, want an error naming the part still running", err)
			}
			if !c.cancel && !errors.Is(err, boom) {
				t.Errorf("Run returned %v, want the part's failure too", err)
			}
			if l := logs.String(); !strings.Contains(l, "[ERROR] replink did not stop in time; exiting with parts still running: still_running=stuck") {
				t.Errorf("no error naming the stuck part in the log:\n%s", l)
			}
			// The replica, the relay log's writer, stopped: the log was
			// closed, and can be opened again.
			l, err := binlog.OpenLog(cfg.DataDir, binlog.SyncNone, hclog.NewNullLogger(), binlog.NewMetrics(prometheus.NewRegistry()))
			if err != nil {
				t.Fatalf("the relay log was left open: %v", err)
			}
			l.Close()
		})
	}
}
