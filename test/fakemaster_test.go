package test

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/server"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/replink/replink/binlog"
	"github.com/replink/replink/replica"
	"github.com/replink/replink/tlsutil"
)

// fakeMaster speaks just enough of the protocol to get to a dump, then
// sends what its dump function writes: hostile input for replink.
type fakeMaster struct {
	ln   net.Listener
	dump func(c *server.Conn)
	// sha2: authenticate with caching_sha2_password and no RSA key, which
	// drives go-mysql's client into a nil dereference over plaintext.
	sha2  bool
	mu    sync.Mutex
	dumps int
}

type fakeHandler struct {
	server.EmptyHandler
	m *fakeMaster
	c *server.Conn
}

func (h *fakeHandler) HandleQuery(q string) (*mysql.Result, error) {
	up := strings.ToUpper(q)
	var rs *mysql.Resultset
	var err error
	switch {
	case strings.Contains(up, "SHOW MASTER STATUS"):
		rs, err = mysql.BuildSimpleTextResultset([]string{"File", "Position"}, [][]any{{"mariadb-bin.000001", "4"}})
	case strings.Contains(up, "BINLOG_CHECKSUM"):
		rs, err = mysql.BuildSimpleTextResultset([]string{"Variable_name", "Value"}, [][]any{{"binlog_checksum", "CRC32"}})
	default:
		return nil, nil // SET ...
	}
	if err != nil {
		return nil, err
	}
	return mysql.NewResult(rs), nil
}

func (h *fakeHandler) HandleOtherCommand(cmd byte, data []byte) error {
	switch cmd {
	case mysql.COM_REGISTER_SLAVE:
		return nil
	case mysql.COM_BINLOG_DUMP:
		h.m.mu.Lock()
		h.m.dumps++
		h.m.mu.Unlock()
		h.m.dump(h.c)
		h.c.Close()
		return nil
	}
	return mysql.NewError(mysql.ER_UNKNOWN_COM_ERROR, "no")
}

func startFakeMaster(t *testing.T, dump func(c *server.Conn), sha2 bool) *fakeMaster {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fm := &fakeMaster{ln: ln, dump: dump, sha2: sha2}
	srv := server.NewServer("5.5.5-10.11.0-MariaDB-fake", mysql.DEFAULT_COLLATION_ID, mysql.AUTH_NATIVE_PASSWORD, nil, nil)
	go func() {
		for {
			raw, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				h := &fakeHandler{m: fm}
				method := mysql.AUTH_NATIVE_PASSWORD
				if fm.sha2 {
					method = mysql.AUTH_CACHING_SHA2_PASSWORD
				}
				auth := server.NewInMemoryAuthenticationHandler(method)
				_ = auth.AddUser("repl", "replpass")
				c, err := srv.NewCustomizedConn(raw, auth, h)
				if err != nil {
					return
				}
				h.c = c
				for !c.Closed() {
					if c.HandleCommand() != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return fm
}

func (fm *fakeMaster) port() int { return fm.ln.Addr().(*net.TCPAddr).Port }

func (fm *fakeMaster) dumpCount() int {
	fm.mu.Lock()
	defer fm.mu.Unlock()
	return fm.dumps
}

// event frames an event with a correct CRC32 trailer.
func event(typ byte, body []byte, logPos uint32, flags uint16) []byte {
	return binlog.Frame(typ, 1, 1700000000, body, logPos, flags)
}

func writeEvent(c *server.Conn, ev []byte) {
	_ = c.WritePacket(append([]byte{0, 0, 0, 0, 0}, ev...))
}

// goodStart sends the artificial ROTATE and a proper FDE.
func goodStart(c *server.Conn) uint32 {
	rot := append(binary.LittleEndian.AppendUint64(nil, 4), "mariadb-bin.000001"...)
	writeEvent(c, event(binlog.TypeRotate, rot, 0, binlog.FlagArtificial))
	fde := make([]byte, 2+50+4+1)
	binary.LittleEndian.PutUint16(fde, 4)
	copy(fde[2:], "10.11.0-MariaDB-fake")
	fde[56] = binlog.HeaderSize
	fde = append(append(fde, make([]byte, 10)...), binlog.ChecksumCRC32)
	size := uint32(binlog.HeaderSize + len(fde) + 4)
	writeEvent(c, event(binlog.TypeFormatDescription, fde, 4+size, 0))
	return 4 + size
}

func TestHostileMaster(t *testing.T) {
	cases := []struct {
		name string
		dump func(c *server.Conn)
	}{
		{"bad checksum", func(c *server.Conn) {
			pos := goodStart(c)
			ev := event(binlog.TypeQuery, append(make([]byte, 14), "BEGIN"...), 0, 0)
			binary.LittleEndian.PutUint32(ev[13:], pos+uint32(len(ev)))
			ev[25] ^= 0xff // corrupt the body after the CRC was computed
			writeEvent(c, ev)
		}},
		{"absurd event length", func(c *server.Conn) {
			goodStart(c)
			ev := event(binlog.TypeQuery, make([]byte, 20), 0, 0)
			binary.LittleEndian.PutUint32(ev[9:], 0x7fffffff)
			writeEvent(c, ev)
		}},
		{"truncated packet", func(c *server.Conn) {
			goodStart(c)
			c.Conn.Conn.Write([]byte{0xe8, 0x03, 0x00, 0x05, 0x00, 1, 2, 3}) // says 1000 bytes, sends 4, closes
		}},
		{"event shorter than a header", func(c *server.Conn) {
			goodStart(c)
			_ = c.WritePacket([]byte{0, 0, 0, 0, 0, 1, 2, 3})
		}},
		{"garbage", func(c *server.Conn) {
			g := make([]byte, 5000)
			rand.Read(g)
			g[4] = 0 // looks like an OK packet
			_ = c.WritePacket(g)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fm := startFakeMaster(t, tc.dump, false)
			r, logs := runAgainst(t, fm.port(), "DISABLED")
			waitUntil(t, 20*time.Second, func() bool { return fm.dumpCount() >= 3 })
			st := r.Status()
			if st.Reconnects < 2 || len(st.Failures) == 0 || st.Failures[0].Error == "" {
				t.Fatalf("replink did not fail and reconnect: %+v", st)
			}
			f := st.Failures[len(st.Failures)-1]
			t.Logf("replink says: %s (reason %s)", f.Error, f.Reason)
			if strings.Contains(logs.String(), "panic") {
				t.Fatal("panic in the log")
			}
		})
	}

	t.Run("authentication that makes go-mysql panic", func(t *testing.T) {
		fm := startFakeMaster(t, goodStartOnly, true)
		r, _ := runAgainst(t, fm.port(), "DISABLED")
		waitUntil(t, 20*time.Second, func() bool { return r.Status().Reconnects >= 2 })
		f := r.Status().Failures[0]
		if !strings.Contains(f.Error, "go-mysql panicked") {
			t.Fatalf("want the recovered panic as the error, got %q", f.Error)
		}
		t.Logf("replink says: %s", f.Error)
	})

	t.Run("TLS server that answers with garbage", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		var mu sync.Mutex
		accepted := 0
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				mu.Lock()
				accepted++
				mu.Unlock()
				go func() {
					defer c.Close()
					// A greeting that offers SSL (protocol 10, version, id, scramble, caps incl. CLIENT_SSL).
					g := []byte{10}
					g = append(g, "5.5.5-10.11.0-MariaDB\x00"...)
					g = append(g, 1, 0, 0, 0, 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 0, 0xff, 0xff, 33, 2, 0, 0xff, 0xc1, 21)
					g = append(g, make([]byte, 10)...)
					g = append(g, "ijklmnopqrst\x00mysql_native_password\x00"...)
					c.Write(append([]byte{byte(len(g)), 0, 0, 0}, g...))
					buf := make([]byte, 1024)
					c.Read(buf) // the SSL request
					junk := make([]byte, 2000)
					rand.Read(junk)
					c.Write(junk)
					time.Sleep(100 * time.Millisecond)
				}()
			}
		}()
		r, _ := runAgainst(t, ln.Addr().(*net.TCPAddr).Port, "REQUIRED")
		waitUntil(t, 20*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return accepted >= 3 })
		f := r.Status().Failures[0]
		if f.Reason != tlsutil.ReasonOther || !strings.Contains(f.Error, "tls") {
			t.Fatalf("want a TLS error with reason other, got %q (%s)", f.Error, f.Reason)
		}
		t.Logf("replink says: %s (reason %s)", f.Error, f.Reason)
	})
}

func goodStartOnly(c *server.Conn) { goodStart(c) }

// runAgainst runs a replica against 127.0.0.1:port into a fresh relay log.
func runAgainst(t *testing.T, port int, mode string) (*replica.Replica, *lockedBuffer) {
	t.Helper()
	tc, err := tlsutil.NewClient(tlsutil.ClientOptions{Mode: mode})
	if err != nil {
		t.Fatal(err)
	}
	r, _, logs := runReplica(t, replica.Config{
		Endpoint: replica.Endpoint{Host: "127.0.0.1", Port: port, User: "repl", Password: "replpass", TLS: tc, ConnectTimeout: 2 * time.Second},
		ServerID: 4001, Start: replica.Start{Kind: "current"}, HeartbeatPeriod: 500 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
	}, nil)
	return r, logs
}

// runReplica runs a replica with cfg into a fresh relay log (behind the
// sink wrap makes of it, when wrap is set) until the test ends; the
// replica's log is shown when the test failed.
func runReplica(t *testing.T, cfg replica.Config, wrap func(*binlog.Log) replica.Sink) (*replica.Replica, replica.Sink, *lockedBuffer) {
	t.Helper()
	logs := &lockedBuffer{}
	logger := hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: logs})
	reg := prometheus.NewRegistry()
	l, err := binlog.OpenLog(t.TempDir(), binlog.SyncTransaction, logger, binlog.NewMetrics(reg))
	if err != nil {
		t.Fatal(err)
	}
	var sink replica.Sink = l
	if wrap != nil {
		sink = wrap(l)
	}
	r := replica.New(cfg, sink, logger, replica.NewMetrics(reg), tlsutil.NewMetrics(reg))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		l.Close()
		if t.Failed() {
			t.Logf("replica log:\n%s", logs.String())
		}
	})
	return r, sink, logs
}
