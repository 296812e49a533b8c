package replica

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/server"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/replink/replink/binlog"
	"github.com/replink/replink/tlsutil"
)

// The stall watchdog's tests run replink's reconnect loop against a fake
// master on loopback (go-mysql's server package for the login, then
// hand-made events) with a short heartbeat period.
const testHeartbeat = 100 * time.Millisecond

// fakeMaster answers just enough to reach a dump, then runs dump.
type fakeMaster struct {
	ln    net.Listener
	dump  func(w *dumpWriter)
	quit  chan struct{}
	dumps atomic.Int32
}

type fakeMasterHandler struct {
	server.EmptyHandler
	m *fakeMaster
	c *server.Conn
}

func (h *fakeMasterHandler) HandleQuery(q string) (*mysql.Result, error) {
	if strings.Contains(strings.ToUpper(q), "BINLOG_CHECKSUM") {
		rs, err := mysql.BuildSimpleTextResultset([]string{"Variable_name", "Value"}, [][]any{{"binlog_checksum", "CRC32"}})
		if err != nil {
			return nil, err
		}
		return mysql.NewResult(rs), nil
	}
	return nil, nil // SET ..., KILL ...
}

func (h *fakeMasterHandler) HandleOtherCommand(cmd byte, data []byte) error {
	switch cmd {
	case mysql.COM_REGISTER_SLAVE:
		return nil
	case mysql.COM_BINLOG_DUMP:
		h.m.dumps.Add(1)
		h.m.dump(&dumpWriter{c: h.c, quit: h.m.quit})
		h.c.Close()
		return nil
	}
	return mysql.NewError(mysql.ER_UNKNOWN_COM_ERROR, "not supported by the fake master")
}

func startFakeMaster(t *testing.T, dump func(w *dumpWriter)) *fakeMaster {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fm := &fakeMaster{ln: ln, dump: dump, quit: make(chan struct{})}
	serveFake(ln, func() (server.Handler, func(*server.Conn)) {
		h := &fakeMasterHandler{m: fm}
		return h, func(c *server.Conn) { h.c = c }
	})
	t.Cleanup(func() { close(fm.quit); ln.Close() })
	return fm
}

// serveFake runs go-mysql's server on ln until it closes: each connection,
// logged in as repl/replpass, is answered by the handler newHandler makes
// (and is given its connection, when it wants it).
func serveFake(ln net.Listener, newHandler func() (server.Handler, func(*server.Conn))) {
	srv := server.NewServer("5.5.5-10.11.0-MariaDB-fake", mysql.DEFAULT_COLLATION_ID, mysql.AUTH_NATIVE_PASSWORD, nil, nil)
	go func() {
		for {
			raw, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				h, bind := newHandler()
				auth := server.NewInMemoryAuthenticationHandler(mysql.AUTH_NATIVE_PASSWORD)
				_ = auth.AddUser("repl", "replpass")
				c, err := srv.NewCustomizedConn(raw, auth, h)
				if err != nil {
					return
				}
				if bind != nil {
					bind(c)
				}
				for !c.Closed() {
					if c.HandleCommand() != nil {
						return
					}
				}
			}()
		}
	}()
}

// dumpWriter writes a MariaDB binlog stream with checksums.
type dumpWriter struct {
	c    *server.Conn
	quit <-chan struct{}
	file string
	pos  uint32
}

func (w *dumpWriter) send(ev binlog.Event) error {
	return w.c.WritePacket(append([]byte{0, 0, 0, 0, 0x00}, ev...))
}

// event frames an event of the current file at the next position.
func (w *dumpWriter) event(typ byte, body []byte) error {
	w.pos += uint32(binlog.HeaderSize + len(body) + 4)
	return w.send(binlog.Frame(typ, 1, uint32(time.Now().Unix()), body, w.pos, 0))
}

// start opens file as a dump does: the artificial ROTATE, then the FDE.
func (w *dumpWriter) start(file string) error {
	w.file, w.pos = file, 4
	if err := w.send(binlog.FakeRotate(1, binlog.Pos{File: file, Offset: 4}, binlog.ChecksumCRC32)); err != nil {
		return err
	}
	fde := make([]byte, 2+50+4+1)
	binary.LittleEndian.PutUint16(fde, 4)
	copy(fde[2:], "10.11.0-MariaDB-fake")
	fde[56] = binlog.HeaderSize
	fde = append(append(fde, make([]byte, 10)...), binlog.ChecksumCRC32)
	return w.event(binlog.TypeFormatDescription, fde)
}

// rotate ends the file with a real ROTATE and starts next.
func (w *dumpWriter) rotate(next string) error {
	if err := w.event(binlog.TypeRotate, append(binary.LittleEndian.AppendUint64(nil, 4), next...)); err != nil {
		return err
	}
	return w.start(next)
}

// transaction writes one MariaDB transaction: GTID, rows, XID.
func (w *dumpWriter) transaction() error {
	if err := w.event(binlog.TypeMariaGTID, make([]byte, 19)); err != nil {
		return err
	}
	if err := w.event(30, []byte("rows")); err != nil {
		return err
	}
	return w.event(binlog.TypeXID, make([]byte, 8))
}

func (w *dumpWriter) heartbeat() error {
	return w.send(binlog.Heartbeat(1, binlog.Pos{File: w.file, Offset: w.pos}, binlog.ChecksumCRC32))
}

// pauseSink is a Sink that stores nothing and, once, takes pause to
// store an XID (like a slow fsync) or to start the file pauseFile (like a
// slow rotation).
type pauseSink struct {
	pause     time.Duration
	onXID     bool
	pauseFile string

	once   sync.Once
	paused chan struct{} // closed when the pause is over
	after  atomic.Int32  // events stored after the pause
}

func newPauseSink(pause time.Duration) *pauseSink {
	return &pauseSink{pause: pause, paused: make(chan struct{})}
}

func (s *pauseSink) ResumePoint() binlog.Pos {
	return binlog.Pos{File: "mariadb-bin.000001", Offset: 4}
}

func (s *pauseSink) Rollback() error { return nil }

// WaitDurable has nothing to wait for: the sink stores nothing.
func (s *pauseSink) WaitDurable(<-chan struct{}) error { return nil }

// State, Sequences and Switch: one master, nothing stored.
func (s *pauseSink) State() (binlog.State, error) {
	return binlog.State{Maria: binlog.NewBinlogState(nil)}, nil
}
func (s *pauseSink) Sequences() []binlog.Sequence { return []binlog.Sequence{{}} }
func (s *pauseSink) Switch(master string, id uint32) error {
	return errors.New("pauseSink: no failover")
}

func (s *pauseSink) StartFile(name string) error {
	if name == s.pauseFile {
		s.stall()
	}
	return nil
}

func (s *pauseSink) Append(ev binlog.Event) (bool, error) {
	select {
	case <-s.paused:
		s.after.Add(1)
	default:
		if s.onXID && ev.Type() == binlog.TypeXID {
			s.stall()
		}
	}
	return true, nil
}

func (s *pauseSink) stall() {
	s.once.Do(func() {
		time.Sleep(s.pause)
		close(s.paused)
	})
}

// runReplica runs Run against the fake master until the test ends.
func runReplica(t *testing.T, fm *fakeMaster, sink Sink) *Replica {
	t.Helper()
	tc, err := tlsutil.NewClient(tlsutil.ClientOptions{Mode: "DISABLED"})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	r := New(Config{
		Endpoint:        Endpoint{Host: "127.0.0.1", Port: fm.ln.Addr().(*net.TCPAddr).Port, User: "repl", Password: "replpass", TLS: tc, ConnectTimeout: 2 * time.Second},
		ServerID:        4242,
		HeartbeatPeriod: testHeartbeat,
		MaxBackoff:      200 * time.Millisecond,
	}, sink, hclog.NewNullLogger(), NewMetrics(reg), tlsutil.NewMetrics(reg))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return r
}

// TestNoStallWhileTheSinkIsSlow: replink pausing in its own sink (an
// fsync, a rotation) for 5 heartbeat periods while the master keeps
// sending is not a stalled link: no stall is counted and the link stays
// up.
func TestNoStallWhileTheSinkIsSlow(t *testing.T) {
	for _, c := range []struct {
		name string
		sink func(s *pauseSink)
	}{
		{"slow Append", func(s *pauseSink) { s.onXID = true }},
		{"slow StartFile", func(s *pauseSink) { s.pauseFile = "mariadb-bin.000002" }},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			fm := startFakeMaster(t, func(w *dumpWriter) {
				if w.start("mariadb-bin.000001") != nil {
					return
				}
				tick := time.NewTicker(testHeartbeat / 2)
				defer tick.Stop()
				for n := 1; ; n++ {
					select {
					case <-w.quit:
						return
					case <-tick.C:
					}
					var err error
					switch {
					case n == 6:
						err = w.rotate("mariadb-bin.000002")
					case n%4 == 0:
						err = w.transaction()
					default:
						err = w.heartbeat()
					}
					if err != nil {
						return
					}
				}
			})
			sink := newPauseSink(5 * testHeartbeat)
			c.sink(sink)
			r := runReplica(t, fm, sink)

			select {
			case <-sink.paused:
			case <-time.After(5 * time.Second):
				t.Fatal("the sink was never made to pause")
			}
			// Past the pause, the link carries on: events keep coming for
			// longer than the watchdog's limit.
			deadline := time.Now().Add(5 * time.Second)
			for sink.after.Load() < 6 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			time.Sleep(3*testHeartbeat + testHeartbeat/2)

			if n := testutil.ToFloat64(r.m.stalls); n != 0 {
				t.Errorf("replink_link_stalls_total = %v after a %v pause in the sink, want 0", n, 5*testHeartbeat)
			}
			if st := r.Status(); st.Reconnects != 0 || st.State != "streaming" {
				t.Errorf("state %q after %d reconnects (last reason %q), want streaming on the first connection", st.State, st.Reconnects, st.LastReason)
			}
			if d := fm.dumps.Load(); d != 1 {
				t.Errorf("the master saw %d dumps, want 1", d)
			}
			if sink.after.Load() < 6 {
				t.Errorf("%d events stored after the pause, want the stream to go on", sink.after.Load())
			}
		})
	}
}

// TestStallWhenTheMasterGoesSilent: a master that sends nothing while
// replink waits to read is found within 3 heartbeat periods and a tick of
// the watchdog, and the link is closed with reason stall.
func TestStallWhenTheMasterGoesSilent(t *testing.T) {
	var silentSince atomic.Int64
	fm := startFakeMaster(t, func(w *dumpWriter) {
		if w.start("mariadb-bin.000001") != nil || w.transaction() != nil {
			return
		}
		silentSince.CompareAndSwap(0, time.Now().UnixNano())
		// Silent, with the connection open, until replink closes it.
		buf := make([]byte, 64)
		for {
			if _, err := w.c.Conn.Conn.Read(buf); err != nil {
				return
			}
		}
	})
	r := runReplica(t, fm, newPauseSink(0))

	const limit, tick = 3 * testHeartbeat, testHeartbeat / 4
	deadline := time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(r.m.stalls) == 0 && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	found := time.Now()
	if testutil.ToFloat64(r.m.stalls) == 0 {
		t.Fatal("no stall declared against a silent master")
	}
	silent := found.Sub(time.Unix(0, silentSince.Load()))
	t.Logf("stall declared after %v of silence (limit %v, tick %v)", silent.Round(time.Millisecond), limit, tick)
	// Slack for scheduling under -race.
	if slack := 200 * time.Millisecond; silent < limit || silent > limit+tick+slack {
		t.Fatalf("stall declared after %v of silence, want %v to %v", silent.Round(time.Millisecond), limit, limit+tick+slack)
	}
	deadline = time.Now().Add(5 * time.Second)
	for r.Status().Reconnects == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if st := r.Status(); len(st.Failures) == 0 || st.Failures[0].Reason != "stall" {
		t.Fatalf("failures %+v, want the first for reason stall", st.Failures)
	}
}
