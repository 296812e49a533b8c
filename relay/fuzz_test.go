package relay

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/hashicorp/go-hclog"

	"github.com/replink/replink/packet"
)

// checkAnswer fails unless out is one well-formed answer to a command:
// packets numbered on from 1, and either an OK, an ERR, or a text result
// set (column count, that many column definitions, EOF, rows of that many
// values, EOF) with nothing after it.
func checkAnswer(t *testing.T, out []byte) {
	t.Helper()
	r := bytes.NewReader(out)
	seq := uint8(1)
	next := func() []byte {
		t.Helper()
		p, s, err := packet.ReadOne(r, seq, 1<<24)
		if err != nil {
			t.Fatalf("answer cut short or misnumbered: %v (answer %q)", err, out)
		}
		seq = s
		return p
	}
	isEOF := func(p []byte) bool { return len(p) == 5 && p[0] == mysql.EOF_HEADER }
	first := next()
	switch {
	case len(first) == 0:
		t.Fatal("empty answer packet")
	case first[0] == mysql.OK_HEADER:
	case first[0] == mysql.ERR_HEADER:
		if len(first) < 9 || first[3] != '#' {
			t.Fatalf("malformed ERR packet %q", first)
		}
	default:
		cols, _, n := mysql.LengthEncodedInt(first)
		if n != len(first) || cols == 0 || cols > 4096 {
			t.Fatalf("malformed column count %q", first)
		}
		for i := uint64(0); i < cols; i++ {
			if f := next(); len(f) < 4 || string(f[1:4]) != "def" {
				t.Fatalf("column %d: malformed definition %q", i, f)
			}
		}
		if !isEOF(next()) {
			t.Fatal("no EOF after the column definitions")
		}
		for {
			row := next()
			if isEOF(row) {
				break
			}
			for i, pos := uint64(0), 0; i < cols; i++ {
				if pos >= len(row) {
					t.Fatalf("row %q has fewer than %d values", row, cols)
				}
				if row[pos] == 0xfb { // NULL
					pos++
					continue
				}
				_, _, k, err := mysql.LengthEncodedString(row[pos:])
				if err != nil {
					t.Fatalf("row %q: value %d: %v", row, i, err)
				}
				pos += k
				if i == cols-1 && pos != len(row) {
					t.Fatalf("row %q has more than %d values", row, cols)
				}
			}
		}
	}
	if r.Len() != 0 {
		t.Fatalf("%d bytes after the answer", r.Len())
	}
}

// FuzzHandleQuery: every query a client may send gets one well-formed
// answer packet sequence.
func FuzzHandleQuery(f *testing.F) {
	for _, q := range []string{
		"SELECT UNIX_TIMESTAMP()", "SHOW VARIABLES LIKE 'SERVER_ID'", "SET @master_binlog_checksum= @@global.binlog_checksum",
		"SET @master_heartbeat_period = 1, @source_heartbeat_period = 1", "SELECT @@GLOBAL.SERVER_UUID",
		"SET @slave_connect_state='0-1-5,1-2-3'", "SELECT binlog_gtid_pos('a',4)", "SELECT 'x', \"y\", 1.5", "SET NAMES utf8",
		"SET @a = (1,(2", "SELECT ((((", "'", "SET @x='\\'", "", "SHOW VARIABLES \xff\xff\xff\xff LIKE x", "SELECT @nothing",
	} {
		f.Add(q)
	}
	s := queryServer(f, 1, "5.5.5-10.11")
	f.Fuzz(func(t *testing.T, q string) {
		var out bytes.Buffer
		c := &conn{w: bufio.NewWriter(&out), seq: 1}
		ss := &session{s: s, conn: c, vars: map[string]string{}}
		if quit := ss.command(append([]byte{mysql.COM_QUERY}, q...)); quit {
			t.Fatalf("query %q ended the connection", q)
		}
		checkAnswer(t, out.Bytes())
	})
}

// FuzzParseCommands: the replication commands a slave sends are decoded
// as their layout says. COM_BINLOG_DUMP re-encodes to its bytes (the
// file's trailing NULs aside); COM_BINLOG_DUMP_GTID and
// COM_REGISTER_SLAVE agree with a field-by-field reading of the bytes.
func FuzzParseCommands(f *testing.F) {
	f.Add([]byte{4, 0, 0, 0, 0, 0, 1, 0, 0, 0, 'm', 'a', 'r', 'i', 'a', 'd', 'b', '-', 'b', 'i', 'n', '.', '0', '0', '0', '0', '0', '1'})
	f.Add([]byte{1, 2, 3})
	f.Add([]byte{})
	// A MySQL 8 replica's COM_BINLOG_DUMP_GTID body: flags 6, server id,
	// no file, position 4, an empty GTID set.
	f.Add([]byte{6, 0, 1, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add(registerSlave(7, "db7.example", 3307))
	f.Add(registerSlave(7, "db7", 3307)[:12]) // cut inside the user
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDump(t, data)
		checkDumpGTID(t, data)
		checkRegister(t, data)
	})
}

// cursor reads a command's fields in order; a field past the end marks it
// short and reads as nothing.
type cursor struct {
	b     []byte
	short bool
}

func (c *cursor) take(n int) []byte {
	if c.short || n > len(c.b) {
		c.short = true
		return nil
	}
	p := c.b[:n]
	c.b = c.b[n:]
	return p
}

// uint is an n-byte little-endian integer; 0 when short.
func (c *cursor) uint(n int) uint64 {
	var v uint64
	p := c.take(n)
	for i := len(p) - 1; i >= 0; i-- {
		v = v<<8 | uint64(p[i])
	}
	return v
}

// lenStr is a string after its one-byte length.
func (c *cursor) lenStr() []byte {
	n := c.take(1)
	if c.short {
		return nil
	}
	return c.take(int(n[0]))
}

// checkDump: COM_BINLOG_DUMP is pos (4), flags (2), server id (4), file.
func checkDump(t *testing.T, data []byte) {
	t.Helper()
	req, err := parseDump(data)
	if (err != nil) != (len(data) < 10) {
		t.Fatalf("COM_BINLOG_DUMP of %d bytes: error %v", len(data), err)
	}
	if err != nil {
		return
	}
	enc := binary.LittleEndian.AppendUint32(nil, req.pos)
	enc = binary.LittleEndian.AppendUint16(enc, req.flags)
	enc = binary.LittleEndian.AppendUint32(enc, req.serverID)
	enc = append(enc, req.file...)
	if !bytes.HasPrefix(data, enc) || strings.TrimLeft(string(data[len(enc):]), "\x00") != "" || strings.HasSuffix(req.file, "\x00") {
		t.Fatalf("COM_BINLOG_DUMP %q parsed as %+v, which is %q", data, req, enc)
	}
}

// checkDumpGTID: COM_BINLOG_DUMP_GTID is flags (2), server id (4), file
// length (4), file, pos (8), then, when present, the GTID set's size (4)
// and the set.
func checkDumpGTID(t *testing.T, data []byte) {
	t.Helper()
	req, err := parseDumpGTID(data)
	c := &cursor{b: data}
	flags, serverID := uint16(c.uint(2)), uint32(c.uint(4))
	file := c.take(int(c.uint(4)))
	pos := c.uint(8)
	empty := mysql.NewMysqlGTIDSet()
	want := &empty
	wantErr := c.short || pos > 1<<32-1
	if !wantErr && len(c.b) >= 4 {
		size := c.uint(4)
		set := c.take(int(size))
		switch {
		case c.short || len(c.b) != 0:
			wantErr = true
		case size > 0:
			s, derr := mysql.DecodeMysqlGTIDSet(set)
			if derr != nil {
				wantErr = true
			} else {
				want = s
			}
		}
	}
	if (err != nil) != wantErr {
		t.Fatalf("COM_BINLOG_DUMP_GTID %q: error %v, want an error: %v", data, err, wantErr)
	}
	if err != nil {
		return
	}
	if req.flags != flags || req.serverID != serverID || req.file != string(file) || uint64(req.pos) != pos ||
		req.mysqlGTIDs == nil || !req.mysqlGTIDs.Equal(want) {
		t.Fatalf("COM_BINLOG_DUMP_GTID %q parsed as %+v (set %v), want flags %d server id %d file %q pos %d set %v",
			data, req, req.mysqlGTIDs, flags, serverID, file, pos, want)
	}
}

// checkRegister: COM_REGISTER_SLAVE is server id (4), report host, user,
// password (each after its length byte), port (2), then rank and master
// id. What is cut short is left out, and what follows it too.
func checkRegister(t *testing.T, data []byte) {
	t.Helper()
	ss := &session{vars: map[string]string{}}
	err := ss.HandleOtherCommand(mysql.COM_REGISTER_SLAVE, data)
	c := &cursor{b: data}
	serverID := uint32(c.uint(4))
	if (err != nil) != c.short {
		t.Fatalf("COM_REGISTER_SLAVE %q: error %v", data, err)
	}
	if err != nil {
		return
	}
	var host string
	var port uint16
	if h := c.lenStr(); !c.short {
		host = string(h)
		c.lenStr() // user
		c.lenStr() // password
		if p := c.uint(2); !c.short {
			port = uint16(p)
		}
	}
	if ss.serverID != serverID || ss.reportHost != host || ss.reportPort != port {
		t.Fatalf("COM_REGISTER_SLAVE %q: server id %d host %q port %d, want %d %q %d",
			data, ss.serverID, ss.reportHost, ss.reportPort, serverID, host, port)
	}
}

// FuzzParseHandshakeResponse: a login packet is parsed or refused; what
// it yields lies within the packet.
func FuzzParseHandshakeResponse(f *testing.F) {
	login := []byte{0x05, 0xa2, 0x2a, 0x00, 0, 0, 0, 1, 33}
	login = append(login, make([]byte, 23)...)
	login = append(append(login, "slave1\x00"...), 20)
	login = append(append(login, make([]byte, 20)...), "mysql_native_password\x00"...)
	f.Add(login)
	f.Add(append(login, 0xfc))
	f.Add(login[:33])
	f.Fuzz(func(t *testing.T, p []byte) {
		hr, err := parseHandshakeResponse(p)
		if err != nil {
			return
		}
		if len(hr.user)+len(hr.auth)+len(hr.plugin) > len(p) {
			t.Fatalf("parsed more than the packet holds: %+v from %d bytes", hr, len(p))
		}
	})
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// FuzzRelayServer drives a real relay server over a socket with arbitrary
// bytes, before login or after it, and requires that no connection fails
// inside replink and that a slave still logs in and is answered after.
func FuzzRelayServer(f *testing.F) {
	logs := &syncBuffer{}
	rl := startRelayWith(f, hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Error}))
	f.Add(false, []byte{0xff, 0xff, 0xff, 0x01})
	f.Add(false, []byte{0x20, 0, 0, 1, 0, 0, 0, 0})
	f.Add(true, []byte{0, 0, 0, 0})
	f.Add(true, []byte{0x10, 0, 0, 0, 0x03, 'S', 'H', 'O', 'W', ' ', 0xff, 0xff, 0xff, 0xff, ' ', 'L', 'I', 'K', 'E', ' ', 'x'})
	f.Add(true, []byte{0x0b, 0, 0, 0, 0x12, 4, 0, 0, 0, 0, 0, 9, 0, 0, 0})
	f.Fuzz(func(t *testing.T, login bool, data []byte) {
		var raw net.Conn
		if login {
			c, err := client.Connect(rl.addr, "slave1", "pw", "")
			if err != nil {
				t.Fatalf("login before the input: %v", err)
			}
			raw = c.Conn.Conn
		} else {
			c, err := net.Dial("tcp", rl.addr)
			if err != nil {
				t.Fatal(err)
			}
			raw = c
		}
		defer raw.Close()
		_ = raw.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = raw.Write(data)
		if tc, ok := raw.(*net.TCPConn); ok {
			_ = tc.CloseWrite() // the server reads EOF after the input
		}
		_, _ = io.Copy(io.Discard, raw) // until the server closes
		if l := logs.String(); strings.Contains(l, "failed inside replink") {
			t.Fatalf("a connection failed inside replink on %q (login %v):\n%s", data, login, l)
		}
		c, err := client.Connect(rl.addr, "slave1", "pw", "")
		if err != nil {
			t.Fatalf("a slave cannot log in after %q: %v", data, err)
		}
		defer c.Close()
		if err := c.Ping(); err != nil {
			t.Fatalf("a slave is not answered after %q: %v", data, err)
		}
	})
}
