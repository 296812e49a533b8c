package relay

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/replink/replink/binlog"
	"github.com/replink/replink/packet"
	"github.com/replink/replink/tlsutil"
)

// These tests run the relay server on loopback over a relay log in a
// temporary directory and look at what a slave sees on the wire.

const (
	testFile     = "mariadb-bin.000001"
	testServerID = 4001 // the relay's
	testSlaveID  = 5001 // the slave's
	typeRows     = 30   // WRITE_ROWS_EVENT v2: opaque to replink
)

// relayFile builds the events of one relay file at consecutive offsets
// from 4, as a master wrote them (server_id 1, CRC32 trailers).
type relayFile struct {
	off    uint32
	events []binlog.Event
	starts []uint32 // offset of each event in the file
}

func (f *relayFile) add(typ byte, body []byte) binlog.Event {
	if f.off == 0 {
		f.off = 4
	}
	end := f.off + uint32(binlog.HeaderSize+len(body)+4)
	ev := binlog.Frame(typ, 1, 1700000000, body, end, 0)
	f.events, f.starts = append(f.events, ev), append(f.starts, f.off)
	f.off = end
	return ev
}

// fdeBody is a MariaDB 10.11 format description declaring CRC32.
func fdeBody() []byte {
	b := make([]byte, 2+50+4+1)
	binary.LittleEndian.PutUint16(b, 4)
	copy(b[2:], "10.11.19-MariaDB")
	b[56] = binlog.HeaderSize
	b = append(b, make([]byte, 10)...) // post-header lengths
	return append(b, binlog.ChecksumCRC32)
}

// gtidBody is a MariaDB GTID event body: seq, domain 0, no flags (a
// transaction, not a standalone statement).
func gtidBody(seq uint64) []byte {
	return append(binary.LittleEndian.AppendUint64(nil, seq), 0, 0, 0, 0, 0)
}

// gtidListBody is a GTID_LIST of the given GTIDs (none: a first binlog).
func gtidListBody(gtids ...binlog.MariaGTID) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(len(gtids)))
	for _, g := range gtids {
		b = binary.LittleEndian.AppendUint32(b, g.Domain)
		b = binary.LittleEndian.AppendUint32(b, g.Server)
		b = binary.LittleEndian.AppendUint64(b, g.Seq)
	}
	return b
}

// addGroup appends the transaction 0-1-seq: GTID, rows, XID.
func (f *relayFile) addGroup(seq uint64) {
	f.add(binlog.TypeMariaGTID, gtidBody(seq))
	f.add(typeRows, []byte(fmt.Sprintf("rows of transaction %d", seq)))
	f.add(binlog.TypeXID, binary.LittleEndian.AppendUint64(nil, seq))
}

// relay is a running server over a relay log holding the FDE, an empty
// GTID_LIST and the transactions 0-1-1 and 0-1-2.
type relay struct {
	srv  *Server
	rlog *binlog.Log
	reg  *prometheus.Registry
	addr string
	file relayFile
}

func startRelay(t testing.TB, edit ...func(*Config)) *relay {
	return startRelayWith(t, hclog.NewNullLogger(), edit...)
}

// startRelayWith serves a relay log of two transactions, logging to log.
// edit changes the configuration before the server starts.
func startRelayWith(t testing.TB, log hclog.Logger, edit ...func(*Config)) *relay {
	t.Helper()
	rlog, err := binlog.OpenLog(t.TempDir(), binlog.SyncEvent, hclog.NewNullLogger(), binlog.NewMetrics(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	if err := rlog.StartFile(testFile); err != nil {
		t.Fatal(err)
	}
	rl := &relay{rlog: rlog, reg: prometheus.NewRegistry()}
	rl.file.add(binlog.TypeFormatDescription, fdeBody())
	rl.file.add(binlog.TypeMariaGTIDList, gtidListBody())
	rl.file.addGroup(1)
	rl.file.addGroup(2)
	rl.appendAll(t, 0)

	cfg := Config{Listen: "127.0.0.1:0", ServerID: testServerID, Users: []User{{Name: "slave1", Password: "pw", Require: RequireNone}},
		KeepForAbsentSlaves: time.Hour}
	for _, e := range edit {
		e(&cfg)
	}
	rl.srv, rl.addr = serve(t, cfg, rlog, log, rl.reg)
	return rl
}

// serve runs a Server over rlog on a loopback port until the test ends,
// then closes rlog.
func serve(t testing.TB, cfg Config, rlog *binlog.Log, log hclog.Logger, reg *prometheus.Registry) (*Server, string) {
	t.Helper()
	srv, err := New(cfg, rlog, log, tlsutil.NewMetrics(reg), NewMetrics(reg))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
		rlog.Close()
	})
	return srv, ln.Addr().String()
}

// appendAll stores the built events from index i on.
func (rl *relay) appendAll(t testing.TB, i int) {
	t.Helper()
	for _, ev := range rl.file.events[i:] {
		if _, err := rl.rlog.Append(ev); err != nil {
			t.Fatal(err)
		}
	}
}

func (rl *relay) connect(t *testing.T, user, password string) (*client.Conn, error) {
	t.Helper()
	c, err := client.Connect(rl.addr, user, password, "")
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

func (rl *relay) slave(t *testing.T) *client.Conn {
	t.Helper()
	c, err := rl.connect(t, "slave1", "pw")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func exec(t *testing.T, c *client.Conn, queries ...string) {
	t.Helper()
	for _, q := range queries {
		if _, err := c.Execute(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// dump registers c as slave testSlaveID, sends COM_BINLOG_DUMP and
// returns a reader of the stream: replink's own, below go-mysql's
// buffers, as replica.startDump does (the answer starts at sequence 1).
func dump(t *testing.T, c *client.Conn, file string, pos uint32) *packet.Reader {
	t.Helper()
	return dumpAs(t, c, file, pos, testSlaveID)
}

// dumpAs is dump as the slave with server_id id.
func dumpAs(t *testing.T, c *client.Conn, file string, pos uint32, id uint32) *packet.Reader {
	t.Helper()
	// As a MariaDB slave does: the relay file's events are made up for the
	// test and too small for the rewrites an older client would get.
	exec(t, c, "SET @mariadb_slave_capability = 4")
	reg := make([]byte, 4, 32) // go-mysql fills the 4-byte header
	reg = append(reg, mysql.COM_REGISTER_SLAVE)
	reg = binary.LittleEndian.AppendUint32(reg, id)
	reg = append(reg, 0, 0, 0)                     // host, user, password: empty
	reg = binary.LittleEndian.AppendUint16(reg, 0) // port
	reg = binary.LittleEndian.AppendUint64(reg, 0) // rank, master id
	c.ResetSequence()
	if err := c.WritePacket(reg); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReadOKPacket(); err != nil {
		t.Fatalf("COM_REGISTER_SLAVE: %v", err)
	}
	cmd := make([]byte, 4, 32)
	cmd = append(cmd, mysql.COM_BINLOG_DUMP)
	cmd = binary.LittleEndian.AppendUint32(cmd, pos)
	cmd = binary.LittleEndian.AppendUint16(cmd, 0) // flags
	cmd = binary.LittleEndian.AppendUint32(cmd, id)
	cmd = append(cmd, file...)
	c.ResetSequence()
	if err := c.WritePacket(cmd); err != nil {
		t.Fatal(err)
	}
	raw := c.Conn.Conn
	_ = raw.SetReadDeadline(time.Now().Add(10 * time.Second))
	r := packet.NewReader(raw, 64<<10, 1<<20)
	r.SetSequence(1)
	return r
}

// next reads one message of the dump: an event (a copy), or the ERR
// packet that ended the dump as a *mysql.MyError.
func next(r *packet.Reader) (binlog.Event, error) {
	p, err := r.Next()
	switch {
	case err != nil:
		return nil, err
	case len(p) >= 3 && p[0] == 0xff:
		e := &mysql.MyError{Code: binary.LittleEndian.Uint16(p[1:3]), Message: string(p[3:])}
		if len(p) >= 9 && p[3] == '#' {
			e.State, e.Message = string(p[4:9]), string(p[9:])
		}
		return nil, e
	case len(p) == 0 || p[0] != 0x00:
		return nil, fmt.Errorf("not an event packet: % x", p[:min(len(p), 8)])
	}
	return binlog.Event(bytes.Clone(p[1:])), nil
}

func mustNext(t *testing.T, r *packet.Reader) binlog.Event {
	t.Helper()
	ev, err := next(r)
	if err != nil {
		t.Fatalf("reading the dump: %v", err)
	}
	return ev
}

// checkRotate checks the fake ROTATE that starts a dump: artificial,
// timestamp and log_pos 0, naming file and pos.
func checkRotate(t *testing.T, ev binlog.Event, file string, pos uint64) {
	t.Helper()
	if ev.Type() != binlog.TypeRotate || ev.Flags()&binlog.FlagArtificial == 0 || ev.LogPos() != 0 || ev.Timestamp() != 0 {
		t.Fatalf("first event: type %d flags %#x log_pos %d timestamp %d, want an artificial ROTATE with log_pos and timestamp 0",
			ev.Type(), ev.Flags(), ev.LogPos(), ev.Timestamp())
	}
	if name, p, err := binlog.RotateTarget(ev); err != nil || name != file || p != pos {
		t.Fatalf("fake ROTATE names %q:%d (%v), want %s:%d", name, p, err, file, pos)
	}
}

// checkHeartbeat checks a heartbeat naming file at pos; crc says whether
// it carries a CRC32 trailer.
func checkHeartbeat(t *testing.T, ev binlog.Event, file string, pos uint32, crc bool) {
	t.Helper()
	if ev.Type() != binlog.TypeHeartbeat {
		t.Fatalf("got event type %d, want a heartbeat (%d)", ev.Type(), binlog.TypeHeartbeat)
	}
	body := ev[binlog.HeaderSize:]
	if crc {
		if err := binlog.VerifyChecksum(ev); err != nil {
			t.Fatalf("heartbeat: %v", err)
		}
		body = body[:len(body)-4]
	}
	if string(body) != file || ev.LogPos() != pos {
		t.Fatalf("heartbeat names %q at %d, want %s at %d", body, ev.LogPos(), file, pos)
	}
}

func TestSlaveQueries(t *testing.T) {
	rl := startRelay(t)
	c := rl.slave(t)
	now := time.Now().Unix()
	// In order, on one connection: what a MariaDB or MySQL slave's I/O
	// thread asks before it dumps, and what it gets.
	for _, q := range []struct {
		query string
		want  []string // the first row; nil: an OK packet; "~now": the current time
		err   bool
	}{
		{query: "SELECT UNIX_TIMESTAMP()", want: []string{"~now"}},
		{query: "SELECT @@GLOBAL.SERVER_ID", want: []string{"4001"}},
		{query: "SHOW VARIABLES LIKE 'SERVER_ID'", want: []string{"server_id", "4001"}},
		{query: "SELECT @master_binlog_checksum", want: []string{"NULL"}},
		{query: "SET @master_binlog_checksum = @@global.binlog_checksum"},
		{query: "SELECT @master_binlog_checksum", want: []string{"CRC32"}},
		{query: "SET @master_heartbeat_period = 100000000"},
		{query: "SELECT @@GLOBAL.gtid_domain_id", want: []string{"0"}},
		{query: "SET @mariadb_slave_capability = 4"},
		{query: "DROP TABLE mysql.user", err: true},
		{query: "SELECT @@GLOBAL.SERVER_ID", want: []string{"4001"}}, // still usable
		{query: "SELECT * FROM mysql.user", err: true},
		{query: "SHOW VARIABLES LIKE 'no_such_variable'", want: []string{}},
	} {
		res, err := c.Execute(q.query)
		if q.err {
			var me *mysql.MyError
			if !errors.As(err, &me) {
				t.Fatalf("%s: got %v, want an ERR packet", q.query, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", q.query, err)
		}
		switch {
		case q.want == nil:
			if res.ColumnNumber() != 0 {
				t.Fatalf("%s: got a result set, want OK", q.query)
			}
			continue
		case len(q.want) == 0:
			if res.Resultset == nil || res.RowNumber() != 0 {
				t.Fatalf("%s: want an empty result set", q.query)
			}
			continue
		}
		if res.Resultset == nil || res.RowNumber() != 1 || res.ColumnNumber() != len(q.want) {
			t.Fatalf("%s: want one row of %d columns", q.query, len(q.want))
		}
		for i, w := range q.want {
			if w == "NULL" {
				if v, _ := res.GetValue(0, i); v != nil {
					t.Errorf("%s: column %d = %v, want NULL", q.query, i, v)
				}
				continue
			}
			got, err := res.GetString(0, i)
			if err != nil {
				t.Fatal(err)
			}
			if w == "~now" {
				if ts, err := strconv.ParseInt(got, 10, 64); err != nil || ts < now-5 || ts > now+5 {
					t.Errorf("%s = %q, want about %d", q.query, got, now)
				}
				continue
			}
			if got != w {
				t.Errorf("%s: column %d = %q, want %q", q.query, i, got, w)
			}
		}
	}
}

func TestSlaveLogin(t *testing.T) {
	rl := startRelay(t)
	for _, c := range []struct {
		name, user, password string
		code                 uint16 // 0: logged in; 1: refused, any code
	}{
		{"right password", "slave1", "pw", 0},
		{"wrong password", "slave1", "nope", mysql.ER_ACCESS_DENIED_ERROR},
		{"no password", "slave1", "", mysql.ER_ACCESS_DENIED_ERROR},
		{"unknown user", "intruder", "pw", 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn, err := rl.connect(t, c.user, c.password)
			if c.code == 0 {
				if err != nil {
					t.Fatal(err)
				}
				exec(t, conn, "SELECT @@GLOBAL.SERVER_ID")
				return
			}
			var me *mysql.MyError
			if !errors.As(err, &me) {
				t.Fatalf("got %v, want the login refused with an ERR packet", err)
			}
			if c.code != 1 && me.Code != c.code {
				t.Fatalf("got ERR %d %q, want %d", me.Code, me.Message, c.code)
			}
		})
	}
	// Each refusal is counted once as a rejected login, and not as a TLS
	// handshake failure.
	if got := metricValue(t, rl.reg, "replink_relay_connections_rejected_total", "reason", "auth"); got != 3 {
		t.Errorf("rejected{reason=auth} = %v, want 3", got)
	}
	if got := metricValue(t, rl.reg, "replink_tls_handshake_failures_total", "reason", "access_denied"); got != 0 {
		t.Errorf("tls_handshake_failures_total{reason=access_denied} = %v, want 0", got)
	}
	if got := rl.srv.Refusals(); len(got) != 3 || got[0].User != "intruder" || got[0].Reason != "auth" || got[0].Peer == "" {
		t.Errorf("Refusals() = %+v, want 3, the newest first (intruder, auth)", got)
	}
}

// metricValue sums the counters and gauges of name whose label has value.
func metricValue(t *testing.T, reg prometheus.Gatherer, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
				}
			}
		}
	}
	return sum
}

func TestDumpFromFileAndPosition(t *testing.T) {
	for _, c := range []struct {
		name     string
		checksum string // the SET the slave sends
		crc32    bool   // it asked for CRC32: the fake ROTATE has one, as MariaDB sends it
		file     string // requested; "" for the first file
		from     int    // index of the first stored event expected
	}{
		{"mariadb slave from 4", "SET @master_binlog_checksum = @@global.binlog_checksum", true, testFile, 0},
		{"go-mysql slave from 4", "SET @master_binlog_checksum = 'NONE', @source_binlog_checksum = 'NONE'", false, testFile, 0},
		{"empty file name means the first file", "SET @master_binlog_checksum = @@global.binlog_checksum", true, "", 0},
		{"mid-file, at the second transaction", "SET @master_binlog_checksum = @@global.binlog_checksum", true, testFile, 5},
	} {
		t.Run(c.name, func(t *testing.T) {
			rl := startRelay(t)
			conn := rl.slave(t)
			exec(t, conn, c.checksum, "SET @master_heartbeat_period = 100000000")
			pos := rl.file.starts[c.from]
			r := dump(t, conn, c.file, pos)

			rotate := mustNext(t, r)
			checkRotate(t, rotate, testFile, uint64(pos))
			if c.crc32 {
				if err := binlog.VerifyChecksum(rotate); err != nil {
					t.Fatalf("fake ROTATE: %v", err)
				}
			}
			if c.from > 0 {
				// A dump from mid-file first gets the FDE again, with
				// log_pos 0 so the slave does not move, created 0 so it
				// keeps its temporary tables, and a valid checksum.
				fde := mustNext(t, r)
				if fde.Type() != binlog.TypeFormatDescription || fde.LogPos() != 0 || fde.Flags()&binlog.FlagInUse != 0 {
					t.Fatalf("second event: type %d log_pos %d flags %#x, want the FDE with log_pos 0", fde.Type(), fde.LogPos(), fde.Flags())
				}
				if created := binary.LittleEndian.Uint32(fde[binlog.HeaderSize+2+50:]); created != 0 {
					t.Fatalf("resent FDE: created %d, want 0", created)
				}
				if err := binlog.VerifyChecksum(fde); err != nil {
					t.Fatalf("resent FDE: %v", err)
				}
			}
			for i, want := range rl.file.events[c.from:] {
				if got := mustNext(t, r); !bytes.Equal(got, want) {
					t.Fatalf("event %d: got % x, want the stored % x", c.from+i, got, want)
				}
			}
			checkHeartbeat(t, mustNext(t, r), testFile, rl.file.off, true)

			// A transaction stored while the slave waits reaches it.
			n := len(rl.file.events)
			rl.file.addGroup(3)
			rl.appendAll(t, n)
			for i, want := range rl.file.events[n:] {
				got, err := next(r)
				for err == nil && got.Type() == binlog.TypeHeartbeat {
					got, err = next(r)
				}
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("new event %d: got % x, %v; want the stored % x", i, got, err, want)
				}
			}
		})
	}
}

// A slave that never set @master_binlog_checksum is not checksum-aware:
// replink sends it the events without their CRC32 trailer and an FDE
// that says so.
// A client that never set @master_binlog_checksum is refused a file with
// checksums after the fake ROTATE (without a CRC32), as a 10.11 master
// refuses it (test/testdata/capture/no_checksum_var.hex).
func TestDumpToSlaveNotChecksumAware(t *testing.T) {
	rl := startRelay(t)
	conn := rl.slave(t)
	exec(t, conn, "SET @master_heartbeat_period = 100000000")
	r := dump(t, conn, testFile, 4)

	rotate := mustNext(t, r)
	checkRotate(t, rotate, testFile, 4)
	if want := binlog.HeaderSize + 8 + len(testFile); len(rotate) != want {
		t.Fatalf("fake ROTATE of %d bytes, want %d (no CRC32)", len(rotate), want)
	}
	_, err := next(r)
	var me *mysql.MyError
	fdeEnd := 4 + len(rl.file.events[0])
	want := fmt.Sprintf("Slave can not handle replication events with the checksum that master is configured to log; "+
		"the first event '%s' at 4, the last event read from '%s' at 4, the last byte read from '%s' at %d.", testFile, testFile, testFile, fdeEnd)
	if !errors.As(err, &me) || me.Code != 1236 || me.Message != want {
		t.Fatalf("got %v, want ERR 1236 %q", err, want)
	}
}

func TestDumpRefused(t *testing.T) {
	for _, c := range []struct {
		name string
		file string
		pos  func(f *relayFile) uint32
		msg  string // in the ERR 1236
	}{
		{"position inside an event", testFile, func(f *relayFile) uint32 { return f.starts[3] + 3 }, "the last event read from '" + testFile + "' at"},
		{"file of another binlog", "other-bin.000007", func(*relayFile) uint32 { return 4 }, "Could not find first log file name in binary log index file"},
		{"file before the first", "mariadb-bin.000000", func(*relayFile) uint32 { return 4 }, "Could not find first log file name in binary log index file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			rl := startRelay(t)
			conn := rl.slave(t)
			exec(t, conn, "SET @master_binlog_checksum = @@global.binlog_checksum")
			_, err := next(dump(t, conn, c.file, c.pos(&rl.file)))
			var me *mysql.MyError
			if !errors.As(err, &me) || me.Code != 1236 || !strings.Contains(me.Message, c.msg) {
				t.Fatalf("got %v, want ERR 1236 with %q", err, c.msg)
			}
			// A dump refused once it started is unlisted as it ends.
			for deadline := time.Now().Add(5 * time.Second); len(rl.srv.Slaves()) != 0 && time.Now().Before(deadline); {
				time.Sleep(10 * time.Millisecond)
			}
			if s := rl.srv.Slaves(); len(s) != 0 {
				t.Fatalf("a refused dump is listed: %+v", s)
			}
		})
	}
}

// A slave that asks for the file after the newest one is ahead of
// replink, not wrong: it is told where it is and waits, with heartbeats.
func TestDumpOfNextFileWaits(t *testing.T) {
	rl := startRelay(t)
	conn := rl.slave(t)
	exec(t, conn, "SET @master_binlog_checksum = @@global.binlog_checksum", "SET @master_heartbeat_period = 100000000")
	r := dump(t, conn, "mariadb-bin.000002", 4)
	checkRotate(t, mustNext(t, r), "mariadb-bin.000002", 4)
	checkHeartbeat(t, mustNext(t, r), "mariadb-bin.000002", 4, true)
}

// A slave that moves to a replink several files behind waits, with
// heartbeats, for relay.wait-when-behind; then ERR 1236 says replink is
// behind and by how much, instead of "Could not find first log file".
func TestSlaveOnAReplinkFilesBehindWaitsThenIsTold(t *testing.T) {
	rl := startRelay(t, func(c *Config) { c.WaitWhenBehind = 500 * time.Millisecond })
	conn := rl.slave(t)
	exec(t, conn, "SET @master_binlog_checksum = @@global.binlog_checksum", "SET @master_heartbeat_period = 100000000")
	start := time.Now()
	r := dump(t, conn, "mariadb-bin.000007", 1234)
	checkRotate(t, mustNext(t, r), "mariadb-bin.000007", 1234)
	beats := 0
	for {
		ev, err := next(r)
		var me *mysql.MyError
		if errors.As(err, &me) {
			if me.Code != 1236 || !strings.Contains(me.Message, "replink is behind the master") || !strings.Contains(me.Message, "6 files behind") {
				t.Fatalf("got %v, want ERR 1236 saying replink is 6 files behind", me)
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		checkHeartbeat(t, ev, "mariadb-bin.000007", 1234, true)
		beats++
	}
	if waited := time.Since(start); beats < 2 || waited < 500*time.Millisecond {
		t.Fatalf("told after %v and %d heartbeats; want a wait of 500ms with heartbeats", waited, beats)
	}
}

func TestDumpingSlaveIsListedAndMetered(t *testing.T) {
	rl := startRelay(t)
	conn := rl.slave(t)
	exec(t, conn, "SET @master_binlog_checksum = @@global.binlog_checksum", "SET @master_heartbeat_period = 100000000")
	if err := testutil.GatherAndCompare(rl.reg, strings.NewReader(connectedMetric(0)), "replink_replicas_connected", "replink_replica_lag_bytes"); err != nil {
		t.Fatalf("before the dump: %v", err)
	}
	r := dump(t, conn, testFile, 4)
	for range len(rl.file.events) + 1 {
		mustNext(t, r)
	}
	// The heartbeat came after everything was sent: the slave is at the end.
	checkHeartbeat(t, mustNext(t, r), testFile, rl.file.off, true)
	slaves := rl.srv.Slaves()
	want := fmt.Sprintf("%s:%d", testFile, rl.file.off)
	if len(slaves) != 1 || slaves[0].ServerID != testSlaveID || slaves[0].Position != want || slaves[0].User != "slave1" ||
		slaves[0].LagBytes != 0 || slaves[0].GTID || slaves[0].TLS != "" {
		t.Fatalf("Slaves() = %+v, want server_id %d at %s, user slave1, no lag, no GTID, no TLS", slaves, testSlaveID, want)
	}
	lag := fmt.Sprintf(`
# HELP replink_replica_lag_bytes Bytes of durable relay log a slave has yet to receive; for a remembered slave while away, from where it stopped.
# TYPE replink_replica_lag_bytes gauge
replink_replica_lag_bytes{server_id="%d"} 0
`, testSlaveID)
	if err := testutil.GatherAndCompare(rl.reg, strings.NewReader(connectedMetric(1)+lag), "replink_replicas_connected", "replink_replica_lag_bytes"); err != nil {
		t.Fatalf("while dumping: %v", err)
	}
	if seen := metricValue(t, rl.reg, "replink_replica_last_seen_timestamp_seconds", "server_id", strconv.Itoa(testSlaveID)); time.Since(time.Unix(int64(seen), 0)) > time.Minute {
		t.Fatalf("last seen %v while connected, want now", seen)
	}

	// Once it left it is remembered: its lag stays exported.
	conn.Close()
	var err error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if err = testutil.GatherAndCompare(rl.reg, strings.NewReader(connectedMetric(0)+lag), "replink_replicas_connected", "replink_replica_lag_bytes"); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("after the slave left: %v", err)
	}
	if s := rl.srv.Slaves(); len(s) != 0 {
		t.Fatalf("Slaves() after the slave left = %+v", s)
	}
}

func connectedMetric(n int) string {
	return fmt.Sprintf(`
# HELP replink_replicas_connected Slaves currently dumping from replink.
# TYPE replink_replicas_connected gauge
replink_replicas_connected %d
`, n)
}

// A MariaDB GTID slave at 0-1-1 starts at the file whose GTID_LIST is not
// ahead of it and is not sent the transaction it has.
func TestGTIDDumpSkipsWhatTheSlaveHas(t *testing.T) {
	rl := startRelay(t)
	conn := rl.slave(t)
	exec(t, conn, "SET @master_binlog_checksum = @@global.binlog_checksum", "SET @master_heartbeat_period = 100000000",
		"SET @mariadb_slave_capability = 4", "SET @slave_connect_state = '0-1-1'", "SET @slave_gtid_strict_mode = 1")
	r := dump(t, conn, "", 4)
	checkRotate(t, mustNext(t, r), testFile, 4)
	// FDE, GTID_LIST, then, where the slave's position is reached, an
	// artificial GTID_LIST naming it (as a master sends it), then the
	// transaction 0-1-2 (events 5..7), as stored.
	expect := func(i int) {
		t.Helper()
		if got, want := mustNext(t, r), rl.file.events[i]; !bytes.Equal(got, want) {
			g, _ := binlog.GTIDOf(got, binlog.ChecksumCRC32)
			t.Fatalf("got event type %d (gtid %v), want stored event %d of type %d", got.Type(), g, i, want.Type())
		}
	}
	expect(0)
	expect(1)
	list := mustNext(t, r)
	at := rl.file.events[5].LogPos() - uint32(len(rl.file.events[5]))
	if got, err := binlog.GTIDListEntries(list, binlog.ChecksumCRC32); err != nil || !list.Artificial() || list.LogPos() != at ||
		list.Timestamp() != 0 || len(got) != 1 || got[0] != (binlog.MariaGTID{Domain: 0, Server: 1, Seq: 1}) {
		t.Fatalf("want an artificial GTID_LIST [0-1-1] at %d, got type %d log_pos %d flags %#x entries %v (%v)",
			at, list.Type(), list.LogPos(), list.Flags(), got, err)
	}
	for _, i := range []int{5, 6, 7} {
		expect(i)
	}
	checkHeartbeat(t, mustNext(t, r), testFile, rl.file.off, true)
	if s := rl.srv.Slaves(); len(s) != 1 || !s[0].GTID {
		t.Fatalf("Slaves() = %+v, want one GTID slave", s)
	}
}

func TestGTIDDumpRefusesABadPosition(t *testing.T) {
	rl := startRelay(t)
	conn := rl.slave(t)
	exec(t, conn, "SET @master_binlog_checksum = @@global.binlog_checksum", "SET @slave_connect_state = '0-1'")
	_, err := next(dump(t, conn, "", 4))
	var me *mysql.MyError
	if !errors.As(err, &me) || me.Code != 1236 {
		t.Fatalf("got %v, want ERR 1236", err)
	}
}

// While the relay log is still empty every file of the master's sequence
// is ahead of replink and waited for, but a name that is no binlog file
// name (a path, a name replink keeps for itself) is refused at once: it
// never reaches the slave list, /status or a stat of the data-dir.
func TestDumpOfBadNameWhileEmpty(t *testing.T) {
	rlog, err := binlog.OpenLog(t.TempDir(), binlog.SyncEvent, hclog.NewNullLogger(), binlog.NewMetrics(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Listen: "127.0.0.1:0", ServerID: testServerID, Users: []User{{Name: "slave1", Password: "pw", Require: RequireNone}}}
	srv, addr := serve(t, cfg, rlog, hclog.NewNullLogger(), prometheus.NewRegistry())
	rl := &relay{rlog: rlog, srv: srv, addr: addr}
	for _, name := range []string{"../../x", "/etc/passwd", "replink.slaves", "mariadb-bin"} {
		conn := rl.slave(t)
		exec(t, conn, "SET @master_binlog_checksum = @@global.binlog_checksum")
		_, err := next(dump(t, conn, name, 4))
		var me *mysql.MyError
		if !errors.As(err, &me) || me.Code != 1236 || !strings.Contains(me.Message, "Could not find first log file name") {
			t.Fatalf("dump of %q from an empty relay log: got %v, want ERR 1236 at once", name, err)
		}
	}
}

// A dump client that stops reading is dropped after the write timeout,
// as a master drops it after net_write_timeout, counted as "timeout";
// its file is no longer held, so retention goes on.
func TestDumpClientThatStopsReadingIsDropped(t *testing.T) {
	rl := startRelay(t, func(cfg *Config) { cfg.WriteTimeout = 300 * time.Millisecond })
	n := len(rl.file.events)
	for seq := uint64(3); seq < 3+48; seq++ { // 48 groups of 256 KiB: more than the socket buffers hold
		rl.file.add(binlog.TypeMariaGTID, gtidBody(seq))
		rl.file.add(typeRows, bytes.Repeat([]byte{byte(seq)}, 256<<10))
		rl.file.add(binlog.TypeXID, binary.LittleEndian.AppendUint64(nil, seq))
	}
	rl.appendAll(t, n)
	rl.rotateTo(t, "mariadb-bin.000002", 100)
	conn := rl.slave(t)
	exec(t, conn, "SET @master_binlog_checksum = @@global.binlog_checksum")
	dump(t, conn, testFile, 4) // and never read
	deadline := time.Now().Add(10 * time.Second)
	for len(rl.srv.Slaves()) > 0 || metricValue(t, rl.reg, "replink_relay_connections_rejected_total", "reason", "timeout") != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("a client that stopped reading is still served after 10 s (write timeout 300 ms): %+v", rl.srv.Slaves())
		}
		time.Sleep(20 * time.Millisecond)
	}
	removed, err := rl.rlog.Purge(time.Now().Add(time.Hour), func(string) bool { return false })
	if err != nil || !slices.Equal(removed, []string{testFile}) {
		t.Fatalf("purge after the client was dropped: %v, %v; want %s purged", removed, err, testFile)
	}
}

// A client refused for want of room hears why, as from a master:
// ERROR 1040 Too many connections, not a silent close.
func TestTooManyConnectionsIsSaid(t *testing.T) {
	rl := startRelay(t, func(cfg *Config) { cfg.MaxConnections = 2 }) // one of them logging in at a time
	held, err := net.Dial("tcp", rl.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	var greeting [4]byte
	if _, err := io.ReadFull(held, greeting[:]); err != nil { // it holds the one handshake slot now
		t.Fatal(err)
	}
	_, err = client.Connect(rl.addr, "slave1", "pw", "")
	var me *mysql.MyError
	if !errors.As(err, &me) || me.Code != mysql.ER_CON_COUNT_ERROR || me.Message != "Too many connections" {
		t.Fatalf("a login past the limit: %v, want ERROR 1040: Too many connections", err)
	}
	if n := metricValue(t, rl.reg, "replink_relay_connections_rejected_total", "reason", "limit"); n != 1 {
		t.Fatalf("rejected{limit} = %v, want 1", n)
	}
}
