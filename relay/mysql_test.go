package relay

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/google/uuid"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/replink/replink/binlog"
	"github.com/replink/replink/packet"
)

// No MySQL server runs here. These tests serve relay logs laid out as a
// MySQL 8 source writes its binlog (FDE, PREVIOUS_GTIDS, GTID, BEGIN,
// statement, XID, ROTATE) and read them with go-mysql's MySQL flavour, a
// client replink did not write, and with the packets a MySQL 8 replica
// sends (../shared/ref/binlog-server.md, "MySQL 8 replica").

const mysqlVersion = "8.0.36"

var mysqlSID = uuid.MustParse("3e11fa47-71ca-11e1-9e33-c80aa9429562")

// mysqlFDEBody is a MySQL 8.0 format description declaring CRC32.
func mysqlFDEBody() []byte {
	b := make([]byte, 2+50+4+1)
	binary.LittleEndian.PutUint16(b, 4)
	copy(b[2:], mysqlVersion)
	b[56] = binlog.HeaderSize
	lengths := make([]byte, 41) // post-header lengths of event types 1..41
	lengths[binlog.TypeQuery-1] = 13
	lengths[binlog.TypeRotate-1] = 8
	lengths[binlog.TypeFormatDescription-1] = 98
	lengths[binlog.TypeGTID-1] = 42
	b = append(b, lengths...)
	return append(b, binlog.ChecksumCRC32)
}

func mysqlGTIDSet(t testing.TB, s string) *mysql.MysqlGTIDSet {
	t.Helper()
	set, err := mysql.ParseMysqlGTIDSet(s)
	if err != nil {
		t.Fatal(err)
	}
	return set.(*mysql.MysqlGTIDSet)
}

// mysqlGTIDBody is a GTID event body: flags, SID, GNO, logical clock.
func mysqlGTIDBody(gno int64) []byte {
	b := append([]byte{1}, mysqlSID[:]...)
	b = binary.LittleEndian.AppendUint64(b, uint64(gno))
	b = append(b, 2) // logical timestamps follow
	b = binary.LittleEndian.AppendUint64(b, uint64(gno-1))
	return binary.LittleEndian.AppendUint64(b, uint64(gno))
}

// queryBody is a Query event body in schema test.
func queryBody(q string) []byte {
	b := make([]byte, 13)
	b[8] = 4 // schema length
	b = append(b, "test"...)
	b = append(b, 0)
	return append(b, q...)
}

// addMySQLTxn appends the transaction SID:gno: GTID, BEGIN, an INSERT, XID.
func (f *relayFile) addMySQLTxn(gno int64) {
	f.add(binlog.TypeGTID, mysqlGTIDBody(gno))
	f.add(binlog.TypeQuery, queryBody("BEGIN"))
	f.add(binlog.TypeQuery, queryBody(fmt.Sprintf("INSERT INTO t VALUES (%d)", gno)))
	f.add(binlog.TypeXID, binary.LittleEndian.AppendUint64(nil, uint64(gno)))
}

// mysqlRelay is a relay server over the binlog of a MySQL source whose
// binlogs before base were purged: binlog.000001 with PREVIOUS_GTIDS
// SID:1-base (empty for 0) and transactions base+1, base+2, then
// binlog.000002 with base+3, base+4.
type mysqlRelay struct {
	srv   *Server
	addr  string
	files [2]relayFile
}

func startMySQLRelay(t *testing.T, base int64) *mysqlRelay {
	t.Helper()
	rlog, err := binlog.OpenLog(t.TempDir(), binlog.SyncEvent, hclog.NewNullLogger(), binlog.NewMetrics(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	rl := &mysqlRelay{}
	first := mysqlGTIDSet(t, "")
	if base > 0 {
		first = mysqlGTIDSet(t, fmt.Sprintf("%s:1-%d", mysqlSID, base))
	}
	f := &rl.files[0]
	f.add(binlog.TypeFormatDescription, mysqlFDEBody())
	f.add(binlog.TypePreviousGTIDs, first.Encode())
	f.addMySQLTxn(base + 1)
	f.addMySQLTxn(base + 2)
	f.add(binlog.TypeRotate, append(binary.LittleEndian.AppendUint64(nil, 4), "binlog.000002"...))
	g := &rl.files[1]
	g.add(binlog.TypeFormatDescription, mysqlFDEBody())
	prev := first.Clone().(*mysql.MysqlGTIDSet)
	prev.AddGTID(mysqlSID, base+1)
	prev.AddGTID(mysqlSID, base+2)
	g.add(binlog.TypePreviousGTIDs, prev.Encode())
	g.addMySQLTxn(base + 3)
	g.addMySQLTxn(base + 4)
	for i, name := range []string{"binlog.000001", "binlog.000002"} {
		if err := rlog.StartFile(name); err != nil {
			t.Fatal(err)
		}
		for _, ev := range rl.files[i].events {
			if _, err := rlog.Append(ev); err != nil {
				t.Fatal(err)
			}
		}
	}
	cfg := Config{ServerID: testServerID, Users: []User{{Name: "repl", Password: "pw", Require: RequireNone}},
		ServerVersion: func() string { return mysqlVersion }, GTIDMode: func() string { return "ON" }}
	rl.srv, rl.addr = serve(t, cfg, rlog, hclog.NewNullLogger(), prometheus.NewRegistry())
	return rl
}

// What a MySQL 8.0.26+ replica asks its source before COM_REGISTER_SLAVE,
// in its order, and what a source with GTID_MODE=ON answers.
func TestMySQLReplicaQueries(t *testing.T) {
	rl := startMySQLRelay(t, 0)
	ss := &session{s: rl.srv, vars: map[string]string{}}
	uuid := rl.srv.rlog.ServerUUID()
	if uuid == "" {
		t.Fatal("the relay log has no server UUID")
	}
	cases := []struct {
		q    string
		want []string // first row; nil: an OK packet; "*": any value
		code uint16   // an error, by its code
	}{
		{"SELECT UNIX_TIMESTAMP()", []string{"*"}, 0},
		{"SELECT @@GLOBAL.SERVER_ID", []string{strconv.Itoa(testServerID)}, 0},
		{"SET @master_heartbeat_period = 30000000000, @source_heartbeat_period = 30000000000", nil, 0},
		{"SET @master_binlog_checksum = @@global.binlog_checksum, @source_binlog_checksum = @@global.binlog_checksum", nil, 0},
		{"SELECT @source_binlog_checksum", []string{"CRC32"}, 0},
		{"SELECT @@GLOBAL.GTID_MODE", []string{"ON"}, 0},
		{"SELECT @@GLOBAL.SERVER_UUID", []string{uuid}, 0},
		{"SET @slave_uuid = 'b1b2c3d4-0000-11ef-8000-000000000001', @replica_uuid = 'b1b2c3d4-0000-11ef-8000-000000000001'", nil, 0},
		// Semi-sync towards replicas is not done: the plugin reads 1193 as
		// "the source has none" and replicates asynchronously.
		{"SELECT @@global.rpl_semi_sync_source_enabled", nil, mysql.ER_UNKNOWN_SYSTEM_VARIABLE},
		// Tools (Vitess, gh-ost, go-mysql's canal).
		{"select @@global.server_uuid", []string{uuid}, 0},
		{"SELECT @@GLOBAL.gtid_executed", []string{mysqlSID.String() + ":1-4"}, 0},
		{"SELECT @@GLOBAL.gtid_purged", []string{""}, 0},
		{"SHOW BINARY LOG STATUS", []string{"binlog.000002", strconv.Itoa(int(rl.files[1].off)), "", "", mysqlSID.String() + ":1-4"}, 0},
		{"SHOW MASTER STATUS", []string{"binlog.000002", strconv.Itoa(int(rl.files[1].off)), "", "", mysqlSID.String() + ":1-4"}, 0},
		// MariaDB's variables are not a MySQL source's.
		{"SELECT @@GLOBAL.gtid_binlog_pos", nil, mysql.ER_UNKNOWN_SYSTEM_VARIABLE},
	}
	for _, c := range cases {
		res, err := ss.HandleQuery(c.q)
		if c.code != 0 {
			var me *mysql.MyError
			if !errors.As(err, &me) || me.Code != c.code {
				t.Errorf("%q: got %v, want error %d", c.q, err, c.code)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.q, err)
			continue
		}
		if c.want == nil {
			if res != nil && res.Resultset != nil {
				t.Errorf("%q: want an OK packet, got a result set", c.q)
			}
			continue
		}
		if res == nil || res.Resultset == nil || len(res.RowDatas) != 1 {
			t.Errorf("%q: want one row", c.q)
			continue
		}
		row := textRow(t, res.RowDatas[0])
		for i, w := range c.want {
			if got := row[i]; w != "*" && got != w {
				t.Errorf("%q: column %d = %q, want %q", c.q, i, got, w)
			}
		}
	}
}

// A MariaDB master has neither GTID_MODE nor MySQL's GTID dump: replink
// answers both as it does.
func TestMariaDBMasterRefusesMySQLGTIDs(t *testing.T) {
	s := queryServer(t, 4001, "5.5.5-10.11.19-MariaDB")
	ss := &session{s: s, vars: map[string]string{}}
	var me *mysql.MyError
	if _, err := ss.HandleQuery("SELECT @@GLOBAL.GTID_MODE"); !errors.As(err, &me) || me.Code != mysql.ER_UNKNOWN_SYSTEM_VARIABLE ||
		me.Message != "Unknown system variable 'GTID_MODE'" {
		t.Errorf("GTID_MODE: got %v, want ERROR 1193 Unknown system variable 'GTID_MODE'", err)
	}
}

// binlogSyncer is go-mysql's BinlogSyncer in its MySQL flavour against the relay.
func (rl *mysqlRelay) binlogSyncer(t *testing.T, flag uint16) *replication.BinlogSyncer {
	host, port, _ := net.SplitHostPort(rl.addr)
	p, _ := strconv.Atoi(port)
	s := replication.NewBinlogSyncer(replication.BinlogSyncerConfig{ServerID: 7001, Flavor: mysql.MySQLFlavor, Host: host, Port: uint16(p),
		User: "repl", Password: "pw", HeartbeatPeriod: 200 * time.Millisecond, DumpCommandFlag: flag, MaxReconnectAttempts: 1})
	t.Cleanup(s.Close)
	return s
}

// seen is an event as a test compares it: type, log_pos, and what
// identifies it (GTID, query, rotate target, heartbeat coordinates).
func seen(e *replication.BinlogEvent) string {
	h := e.Header
	s := fmt.Sprintf("%s@%d", h.EventType, h.LogPos)
	switch ev := e.Event.(type) {
	case *replication.GTIDEvent:
		s += fmt.Sprintf(" %s:%d", uuid.Must(uuid.FromBytes(ev.SID)), ev.GNO)
	case *replication.QueryEvent:
		s += " " + string(ev.Query)
	case *replication.RotateEvent:
		s += fmt.Sprintf(" %s:%d", ev.NextLogName, ev.Position)
	case *replication.HeartbeatEvent:
		s += fmt.Sprintf(" v%d %s:%d", ev.Version, ev.Filename, ev.Offset)
	case *replication.PreviousGTIDsEvent:
		s += " " + ev.GTIDSets
	}
	return s
}

// events reads from st until an event for which stop is true.
func events(t *testing.T, st *replication.BinlogStreamer, stop func(*replication.BinlogEvent) bool) []string {
	t.Helper()
	var got []string
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		e, err := st.GetEvent(ctx)
		cancel()
		if err != nil {
			t.Fatalf("after %q: %v", got, err)
		}
		got = append(got, seen(e))
		if stop(e) {
			return got
		}
	}
}

func isHeartbeat(e *replication.BinlogEvent) bool {
	_, ok := e.Event.(*replication.HeartbeatEvent)
	return ok
}

// go-mysql's MySQL GTID dump with the replica at SID:1-3 starts at the
// second file (the newest whose PREVIOUS_GTIDS it has) and is sent only
// transaction 4; a file/position dump with USE_HEARTBEAT_EVENT_V2 gets
// heartbeats of version 2 that name the file and the position.
func TestMySQLFlavourDumps(t *testing.T) {
	rl := startMySQLRelay(t, 0)
	g := rl.files[1]
	sid := mysqlSID.String()
	end := func(i int) uint32 { return g.events[i].LogPos() }
	t.Run("gtid", func(t *testing.T) {
		st, err := rl.binlogSyncer(t, 0).StartSyncGTID(mysqlGTIDSet(t, sid+":1-3"))
		if err != nil {
			t.Fatal(err)
		}
		got := events(t, st, isHeartbeat)
		want := []string{
			"RotateEvent@0 binlog.000002:4",
			fmt.Sprintf("FormatDescriptionEvent@%d", end(0)),
			fmt.Sprintf("PreviousGTIDsEvent@%d %s:1-2", end(1), sid),
			fmt.Sprintf("GTIDEvent@%d %s:4", end(6), sid),
			fmt.Sprintf("QueryEvent@%d BEGIN", end(7)),
			fmt.Sprintf("QueryEvent@%d INSERT INTO t VALUES (4)", end(8)),
			fmt.Sprintf("XIDEvent@%d", end(9)),
			fmt.Sprintf("HeartbeatEvent@%d v1 binlog.000002:0", g.off), // go-mysql reads no offset from v1
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
		}
	})
	t.Run("heartbeat v2", func(t *testing.T) {
		st, err := rl.binlogSyncer(t, replication.USE_HEARTBEAT_EVENT_V2).StartSync(mysql.Position{Name: "binlog.000002", Pos: end(5)})
		if err != nil {
			t.Fatal(err)
		}
		got := events(t, st, isHeartbeat)
		if last, want := got[len(got)-1], fmt.Sprintf("HeartbeatLogEventV2@%d v2 binlog.000002:%d", g.off, g.off); last != want {
			t.Fatalf("got %q, want the stream to end in %q", got, want)
		}
	})
}

// dumpGTIDPacket is the COM_BINLOG_DUMP_GTID of a MySQL 8 replica with
// SOURCE_AUTO_POSITION=1: heartbeats v2, through GTID, no file, pos 4.
func dumpGTIDPacket(set *mysql.MysqlGTIDSet, flags uint16) []byte {
	p := []byte{mysql.COM_BINLOG_DUMP_GTID}
	p = binary.LittleEndian.AppendUint16(p, flags)
	p = binary.LittleEndian.AppendUint32(p, testSlaveID)
	p = binary.LittleEndian.AppendUint32(p, 0)
	p = binary.LittleEndian.AppendUint64(p, 4)
	data := set.Encode()
	p = binary.LittleEndian.AppendUint32(p, uint32(len(data)))
	return append(p, data...)
}

// The packets of a MySQL 8 replica: its GTID dump with
// USE_HEARTBEAT_EVENT_V2 gets what it lacks, then v2 heartbeats; one whose
// GTIDs the relay log's oldest file begins after is refused with 1236.
func TestMySQLReplicaGTIDDump(t *testing.T) {
	rl := startMySQLRelay(t, 100)
	sid := mysqlSID.String()
	// dumpWith sends the dump and returns the first event (the fake
	// ROTATE, which comes before any FDE says there are checksums) and a
	// reader of the rest, parsed by go-mysql.
	dumpWith := func(t *testing.T, have string) (first binlog.Event, next func() (*replication.BinlogEvent, error), err error) {
		c := (&relay{addr: rl.addr}).connect
		conn, err := c(t, "repl", "pw")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		exec(t, conn, "SET @master_heartbeat_period = 100000000, @source_heartbeat_period = 100000000",
			"SET @master_binlog_checksum = @@global.binlog_checksum, @source_binlog_checksum = @@global.binlog_checksum")
		conn.ResetSequence()
		if err := conn.WritePacket(append(make([]byte, 4), dumpGTIDPacket(mysqlGTIDSet(t, have), dumpHeartbeatV2|dumpThroughGTID)...)); err != nil {
			t.Fatal(err)
		}
		raw := conn.Conn.Conn
		_ = raw.SetReadDeadline(time.Now().Add(10 * time.Second))
		r := packet.NewReader(raw, 64<<10, 1<<20)
		r.SetSequence(1)
		p := replication.NewBinlogParser()
		p.SetVerifyChecksum(true)
		first, err = relayNext(r)
		return first, func() (*replication.BinlogEvent, error) {
			ev, err := relayNext(r)
			if err != nil {
				return nil, err
			}
			return p.Parse(ev)
		}, err
	}
	t.Run("served", func(t *testing.T) {
		first, next, err := dumpWith(t, sid+":1-102")
		if err != nil {
			t.Fatal(err)
		}
		checkRotate(t, first, "binlog.000002", 4)
		got := []string{"RotateEvent@0 binlog.000002:4"}
		for len(got) < 20 {
			e, err := next()
			if err != nil {
				t.Fatalf("after %q: %v", got, err)
			}
			got = append(got, seen(e))
			if isHeartbeat(e) {
				break
			}
		}
		g := rl.files[1]
		want := []string{
			"RotateEvent@0 binlog.000002:4",
			fmt.Sprintf("FormatDescriptionEvent@%d", g.events[0].LogPos()),
			fmt.Sprintf("PreviousGTIDsEvent@%d %s:1-102", g.events[1].LogPos(), sid),
			fmt.Sprintf("GTIDEvent@%d %s:103", g.events[2].LogPos(), sid),
		}
		if len(got) < len(want) || strings.Join(got[:len(want)], "\n") != strings.Join(want, "\n") {
			t.Fatalf("got\n  %s\nwant it to begin with\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
		}
		if last, wantHB := got[len(got)-1], fmt.Sprintf("HeartbeatLogEventV2@%d v2 binlog.000002:%d", g.off, g.off); last != wantHB {
			t.Fatalf("got %q, want the stream to end in %q", got, wantHB)
		}
	})
	t.Run("purged", func(t *testing.T) {
		_, _, err := dumpWith(t, sid+":1-50")
		var me *mysql.MyError
		if !errors.As(err, &me) || me.Code != 1236 || !strings.Contains(me.Message, "purged required binary logs") {
			t.Fatalf("got %v, want ERR 1236 naming the purged binary logs", err)
		}
	})
}

// relayNext is next (server_test.go), named for this file's readers.
func relayNext(r *packet.Reader) (binlog.Event, error) { return next(r) }

// textRow reads a text result row as the wire has it, NULL as "NULL"
// (go-mysql's ParseText makes an empty string nil too).
func textRow(t *testing.T, data []byte) []string {
	t.Helper()
	var row []string
	for len(data) > 0 {
		v, isNull, n, err := mysql.LengthEncodedString(data)
		if err != nil {
			t.Fatal(err)
		}
		if isNull {
			row = append(row, "NULL")
		} else {
			row = append(row, string(v))
		}
		data = data[n:]
	}
	return row
}

// A MySQL 8.4 replica logs in with caching_sha2_password, its default:
// replink asks it to switch to mysql_native_password, with the
// connection's scramble as a master sends it, and takes the answer.
func TestCachingSHA2LoginIsSwitchedToNative(t *testing.T) {
	rl := startMySQLRelay(t, 0)
	c, err := net.Dial("tcp", rl.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	r := packet.NewReader(c, 16<<10, 1<<20)
	greeting, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	seq := r.Sequence()
	caps := uint32(mysql.CLIENT_PROTOCOL_41 | mysql.CLIENT_SECURE_CONNECTION | mysql.CLIENT_PLUGIN_AUTH | mysql.CLIENT_LONG_PASSWORD)
	login := binary.LittleEndian.AppendUint32(nil, caps)
	login = binary.LittleEndian.AppendUint32(login, 1<<24)
	login = append(login, 255)
	login = append(login, make([]byte, 23)...)
	login = append(login, "repl\x00"...)
	login = append(login, 32)
	login = append(login, make([]byte, 32)...) // a SHA-256 scramble, which replink does not check
	login = append(login, "caching_sha2_password\x00"...)
	w := bufio.NewWriter(c)
	if err := packet.WriteMessage(w, &seq, login); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	r.SetSequence(seq)
	sw, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	plugin, salt, ok := strings.Cut(string(sw[1:]), "\x00")
	if !ok || sw[0] != 0xfe || plugin != "mysql_native_password" || len(salt) != 21 || !strings.Contains(string(greeting), salt[:20]) {
		t.Fatalf("got % x, want an auth switch to mysql_native_password with the connection's scramble", sw)
	}
	seq = r.Sequence()
	if err := packet.WriteMessage(w, &seq, mysql.CalcNativePassword([]byte(salt[:20]), []byte("pw"))); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	r.SetSequence(seq)
	ok2, err := r.Next()
	if err != nil || len(ok2) == 0 || ok2[0] != 0x00 {
		t.Fatalf("got % x (%v), want OK", ok2, err)
	}
}
