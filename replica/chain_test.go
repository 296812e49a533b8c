package replica

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/server"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/replink/replink/binlog"
	"github.com/replink/replink/tlsutil"
)

// TestLagFromHeartbeats: a master's heartbeat (timestamp 0) says the
// stream is complete as of now; one with a timestamp (from a replink
// upstream) carries the master time its sender is complete up to, so a
// replink behind a lagging one shows that lag rather than none.
func TestLagFromHeartbeats(t *testing.T) {
	reg := prometheus.NewRegistry()
	r := New(Config{}, newPauseSink(0), hclog.NewNullLogger(), NewMetrics(reg), tlsutil.NewMetrics(reg))
	h := &handler{r: r, file: "mariadb-bin.000001"}
	heartbeat := func(ts uint32) {
		t.Helper()
		if _, err := h.handle(binlog.Frame(binlog.TypeHeartbeat, 1, ts, []byte(h.file), 1234, 0)); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	for _, c := range []struct {
		name     string
		event    uint32 // timestamp of a real event before the heartbeat; 0 for none
		ts       uint32
		min, max float64
	}{
		{"master heartbeat", 0, 0, 0, 0.5},
		{"master heartbeat after an old event", uint32(now.Add(-time.Hour).Unix()), 0, 0, 0.5},
		{"upstream 30s behind the master", 0, uint32(now.Add(-30 * time.Second).Unix()), 29.5, 31.5},
		{"upstream caught up", uint32(now.Add(-time.Hour).Unix()), uint32(now.Unix()), 0, 1.5},
		{"upstream clock ahead", 0, uint32(now.Add(time.Minute).Unix()), 0, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.event != 0 {
				if _, err := h.handle(binlog.Frame(binlog.TypeXID, 1, c.event, make([]byte, 8), 1000, 0)); err != nil {
					t.Fatal(err)
				}
			}
			heartbeat(c.ts)
			if lag := r.Lag(); lag < c.min || lag > c.max {
				t.Fatalf("lag %.2fs after a heartbeat with timestamp %d, want %.1f to %.1f", lag, c.ts, c.min, c.max)
			}
		})
	}
}

// emptyStatus answers every query with an empty SHOW MASTER STATUS, as a
// master without log_bin does, and as a replink whose relay log is still
// empty does.
type emptyStatus struct{ server.EmptyHandler }

func (emptyStatus) HandleQuery(string) (*mysql.Result, error) {
	rs, err := mysql.BuildSimpleTextResultset([]string{"File", "Position", "Binlog_Do_DB", "Binlog_Ignore_DB"}, nil)
	if err != nil {
		return nil, err
	}
	return mysql.NewResult(rs), nil
}

// TestEmptyMasterStatusNamed: starting at "current" against a master with
// no binlog says both things it may mean: log_bin off, or an upstream
// replink that has stored nothing yet (a chain starting up).
func TestEmptyMasterStatusNamed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	serveFake(ln, func() (server.Handler, func(*server.Conn)) { return emptyStatus{}, nil })
	tc, err := tlsutil.NewClient(tlsutil.ClientOptions{Mode: "DISABLED"})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	r := New(Config{Endpoint: Endpoint{Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, User: "repl", Password: "replpass", TLS: tc, ConnectTimeout: 2 * time.Second},
		ServerID: 4242, Start: Start{Kind: "current"}}, newPauseSink(0), hclog.NewNullLogger(), NewMetrics(reg), tlsutil.NewMetrics(reg))
	_, err = r.prepare(context.Background(), binlog.Pos{})
	if err == nil || !strings.Contains(err.Error(), "log_bin") || !strings.Contains(err.Error(), "replink that has stored nothing yet") {
		t.Fatalf("prepare against an empty SHOW MASTER STATUS: %v", err)
	}
}
