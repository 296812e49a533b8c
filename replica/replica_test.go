package replica

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/replink/replink/binlog"
	"github.com/replink/replink/tlsutil"
)

func TestBackoff(t *testing.T) {
	const ms = time.Millisecond
	for _, c := range []struct {
		name       string
		max        time.Duration
		progressed []bool // one per failed session
		want       []time.Duration
	}{
		{"doubles up to the 30s default", 0,
			[]bool{false, false, false, false, false, false, false, false, false, false},
			[]time.Duration{200 * ms, 400 * ms, 800 * ms, 1600 * ms, 3200 * ms, 6400 * ms, 12800 * ms, 25600 * ms, 30 * time.Second, 30 * time.Second}},
		{"capped at max", time.Second,
			[]bool{false, false, false, false, false},
			[]time.Duration{200 * ms, 400 * ms, 800 * ms, time.Second, time.Second}},
		{"progress starts over", time.Second,
			[]bool{false, false, false, true, false, false},
			[]time.Duration{200 * ms, 400 * ms, 800 * ms, 200 * ms, 200 * ms, 400 * ms}},
		{"steady progress never grows", 0,
			[]bool{true, true, true},
			[]time.Duration{200 * ms, 200 * ms, 200 * ms}},
		// The first wait is 200ms even when max is below it.
		{"max below the first wait", 50 * ms,
			[]bool{false, false, false},
			[]time.Duration{200 * ms, 50 * ms, 50 * ms}},
	} {
		// want are the ceilings: a draw of 1 waits the ceiling, a draw of
		// 0 the floor (100ms, or the ceiling when it is lower).
		for _, draw := range []float64{0, 0.5, 1} {
			t.Run(fmt.Sprintf("%s, draw %v", c.name, draw), func(t *testing.T) {
				b := newBackoff(c.max)
				b.rand = func() float64 { return draw }
				for i, p := range c.progressed {
					floor := min(100*ms, c.want[i])
					want := floor + time.Duration(draw*float64(c.want[i]-floor))
					if got := b.next(p); got != want {
						t.Fatalf("failure %d (progressed %v): wait %v, want %v (ceiling %v)", i+1, p, got, want, c.want[i])
					}
				}
			})
		}
	}
}

// TestBackoffJitter: with the real random source, every wait lies between
// the floor and the ceiling, and the waits spread over that range
// (uniformly: a mean near its middle, each quarter of it used).
func TestBackoffJitter(t *testing.T) {
	const n = 20000
	for _, c := range []struct {
		failures int // sessions without progress before the one measured
		ceil     time.Duration
	}{
		{0, 200 * time.Millisecond},
		{3, 1600 * time.Millisecond},
		{20, 30 * time.Second},
	} {
		floor := minBackoff / 2
		var sum float64
		var quarters [4]int
		for range n {
			b := newBackoff(0)
			for range c.failures {
				b.next(false)
			}
			w := b.next(false)
			if w < floor || w > c.ceil {
				t.Fatalf("after %d failures: wait %v outside [%v, %v]", c.failures, w, floor, c.ceil)
			}
			x := float64(w-floor) / float64(c.ceil-floor)
			sum += x
			quarters[min(int(x*4), 3)]++
		}
		if mean := sum / n; mean < 0.47 || mean > 0.53 {
			t.Errorf("after %d failures: mean position %.3f in [floor, ceiling], want about 0.5", c.failures, mean)
		}
		for i, q := range quarters {
			if q < n/4*9/10 || q > n/4*11/10 {
				t.Errorf("after %d failures: quarter %d of the range drew %d of %d waits, want about a quarter", c.failures, i, q, n)
			}
		}
	}
}

// TestBackoffNotInLockstep: replicas that lose the master at the same
// moment retry at different times. Over 1000 pairs and ten failed retries
// each, fewer than 10% of the retries fall within 10ms of the other
// replica's same retry (about 4% by chance; without jitter, all of them).
func TestBackoffNotInLockstep(t *testing.T) {
	const pairs, retries = 1000, 10
	near := 0
	for range pairs {
		a, b := newBackoff(0), newBackoff(0)
		var ta, tb time.Duration
		for range retries {
			ta += a.next(false)
			tb += b.next(false)
			if d := ta - tb; d < 10*time.Millisecond && d > -10*time.Millisecond {
				near++
			}
		}
	}
	if frac := float64(near) / (pairs * retries); frac > 0.10 {
		t.Fatalf("%.1f%% of retries within 10ms of the other replica's: in lockstep", 100*frac)
	} else {
		t.Logf("%.1f%% of retries within 10ms of the other replica's", 100*frac)
	}
}

func TestReconnectReason(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
		want string
	}{
		{"stall", errStall, "stall"},
		{"stall, wrapped", fmt.Errorf("master 127.0.0.1:3306: %w", errStall), "stall"},
		{"relay log", &sinkError{errors.New("relay log mariadb-bin.000001: write at 4: no space left on device")}, "relay_log"},
		{"ERR packet in the stream", &streamError{&mysql.MyError{Code: 1236, State: "HY000", Message: "Could not find first log file name in binary log index file"}}, "master_error"},
		{"ERR packet as text", &streamError{errors.New("ERROR 1236 (HY000): binlog purged")}, "master_error"},
		{"stream cut", &streamError{io.ErrUnexpectedEOF}, "disconnected"},
		{"master ended the dump", &streamError{errEndOfDump}, "disconnected"},
		{"TLS", &tlsutil.Error{Reason: tlsutil.ReasonUnknownCA, Err: errors.New("x509: certificate signed by unknown authority")}, "unknown_ca"},
		{"TLS, wrapped", fmt.Errorf("connect: %w", &tlsutil.Error{Reason: tlsutil.ReasonCertExpired, Err: errors.New("expired")}), "cert_expired"},
		{"access denied at login", &mysql.MyError{Code: mysql.ER_ACCESS_DENIED_ERROR, Message: "Access denied"}, "access_denied"},
		{"MariaDB ended the dump for a same-id replica", &streamError{&mysql.MyError{Code: errSameServerID, Message: "A slave with the same server_uuid/server_id is already connected"}}, "duplicate_server_id"},
		{"MySQL ended the dump for a same-id replica", &streamError{&mysql.MyError{Code: 1236, Message: "A slave with the same server_uuid/server_id as this slave has connected to the master; the first event '' at 4"}}, "duplicate_server_id"},
		{"id held, seen before the dump", &duplicateServerIDError{id: 4001, holder: "db2:3307"}, "duplicate_server_id"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := reconnectReason(c.err); got != c.want {
				t.Fatalf("reconnectReason(%v) = %q, want %q", c.err, got, c.want)
			}
		})
	}
}

func TestHintFor(t *testing.T) {
	r := &Replica{cfg: Config{ServerID: 4242}}
	sameID := &streamError{&mysql.MyError{Code: errSameServerID, Message: "A slave with the same server_uuid/server_id as this slave has connected to the master"}}
	if h := r.hintFor(reconnectReason(sameID), sameID); !strings.Contains(h, "server-id 4242") {
		t.Errorf("hint for ERR 4052 = %q, want it to name server-id 4242", h)
	}
	purged := &streamError{&mysql.MyError{Code: 1236, Message: "purged"}}
	if h := r.hintFor("master_error", purged); h != hint("master_error") || !strings.Contains(h, "1236") {
		t.Errorf("hint for ERR 1236 = %q, want the master_error hint", h)
	}
	for _, reason := range ReconnectReasons() {
		if hint(reason) == "" {
			t.Errorf("reason %q has no hint", reason)
		}
	}
}

// TestRunBacksOffAgainstAMasterThatHangsUp runs the reconnect loop
// against a listener that closes every connection at once.
func TestRunBacksOffAgainstAMasterThatHangsUp(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	sink, err := binlog.OpenLog(t.TempDir(), binlog.SyncEvent, hclog.NewNullLogger(), binlog.NewMetrics(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	tc, err := tlsutil.NewClient(tlsutil.ClientOptions{Mode: "DISABLED"})
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	cfg := Config{
		Endpoint:   Endpoint{Host: "127.0.0.1", Port: port, User: "repl", Password: "pw", TLS: tc, ConnectTimeout: time.Second},
		ServerID:   4242,
		MaxBackoff: 50 * time.Millisecond,
	}
	reg := prometheus.NewRegistry()
	r := New(cfg, sink, hclog.NewNullLogger(), NewMetrics(reg), tlsutil.NewMetrics(reg))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	// 200ms, then 50ms a failure: more than 10 failures in well under 2s.
	deadline := time.Now().Add(5 * time.Second)
	for r.Status().Reconnects <= 10 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}

	st := r.Status()
	if st.State != "backoff" || st.Reconnects <= 10 {
		t.Fatalf("state %q after %d reconnects, want backoff after more than 10", st.State, st.Reconnects)
	}
	if len(st.Failures) != 10 {
		t.Fatalf("%d recent failures kept, want the last 10", len(st.Failures))
	}
	if st.LastReason == "" || st.LastError == "" || !strings.Contains(st.LastError, ln.Addr().String()) {
		t.Fatalf("last reason %q, error %q: want a reason and an error naming the master", st.LastReason, st.LastError)
	}
	for i, f := range st.Failures {
		if f.Reason != st.LastReason || f.Hint == "" || f.Error == "" {
			t.Fatalf("failure %d: %+v, want reason %q with an error and a hint", i, f, st.LastReason)
		}
	}
	var byReason strings.Builder
	byReason.WriteString("# HELP replink_master_reconnects_total Reconnections to the master, by reason.\n# TYPE replink_master_reconnects_total counter\n")
	for _, reason := range ReconnectReasons() {
		n := 0
		if reason == string(st.LastReason) {
			n = st.Reconnects
		}
		fmt.Fprintf(&byReason, "replink_master_reconnects_total{reason=%q} %d\n", reason, n)
	}
	byReason.WriteString("# HELP replink_master_up 1 while streaming from the master.\n# TYPE replink_master_up gauge\nreplink_master_up 0\n")
	if err := testutil.GatherAndCompare(reg, strings.NewReader(byReason.String()), "replink_master_reconnects_total", "replink_master_up"); err != nil {
		t.Fatal(err)
	}
}

// TestSetRelayEncrypted: turning encryption at rest on by a reload clears
// the "plaintext copy of an encrypted binlog" state at once.
func TestSetRelayEncrypted(t *testing.T) {
	r := &Replica{masterEncrypts: true, log: hclog.NewNullLogger()}
	r.SetRelayEncrypted(false)
	if !r.Status().PlaintextCopyOfEncrypted {
		t.Fatal("an encrypting master and a plaintext relay log: not flagged")
	}
	r.SetRelayEncrypted(true)
	if r.Status().PlaintextCopyOfEncrypted {
		t.Fatal("still flagged after encryption at rest was turned on")
	}
}
