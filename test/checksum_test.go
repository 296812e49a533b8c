package test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/replink/replink/binlog"
	"github.com/replink/replink/replica"
	"github.com/replink/replink/tlsutil"
)

// openDump logs in to replink's relay as plainslave, optionally announces
// checksums and asks for file from pos, leaving the stream to the caller.
func openDump(t *testing.T, port int, p *PKI, announce bool, file string, pos, serverID uint32) *client.Conn {
	t.Helper()
	return openDumpWith(t, port, p, "plainslave", "slavepass", announce, file, pos, serverID, "SET @mariadb_slave_capability=4")
}

// openDumpAs opens a checksum-aware dump as user, from the master or replink.
func openDumpAs(t *testing.T, port int, p *PKI, user, password, file string, pos uint32) *client.Conn {
	t.Helper()
	return openDumpWith(t, port, p, user, password, true, file, pos, 99, "SET @mariadb_slave_capability=4")
}

func openDumpWith(t *testing.T, port int, p *PKI, user, password string, announce bool, file string, pos, serverID uint32, sets ...string) *client.Conn {
	t.Helper()
	if announce {
		sets = append(sets, "SET @master_binlog_checksum='NONE'")
	}
	c := dumpClient(t, port, p, user, password, sets...)
	sendDump(t, c, file, pos, 0, serverID)
	return c
}

// dumpClient logs in to port over verified TLS as user and runs sets.
func dumpClient(t *testing.T, port int, p *PKI, user, password string, sets ...string) *client.Conn {
	t.Helper()
	tc, err := tlsutil.NewClient(tlsutil.ClientOptions{Mode: "VERIFY_IDENTITY", CA: p.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	ep := replica.Endpoint{Host: "127.0.0.1", Port: port, User: user, Password: password, TLS: tc, ConnectTimeout: 5 * time.Second}
	c, _, err := ep.Connect(context.Background(), "replica", unmetered())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	for _, q := range sets {
		if _, err := c.Execute(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return c
}

// sendDump sends COM_BINLOG_DUMP of file from pos with flags.
func sendDump(t *testing.T, c *client.Conn, file string, pos uint32, flags uint16, serverID uint32) {
	t.Helper()
	pkt := []byte{0, 0, 0, 0, 0x12} // the header, filled by go-mysql; COM_BINLOG_DUMP
	pkt = binary.LittleEndian.AppendUint32(pkt, pos)
	pkt = binary.LittleEndian.AppendUint16(pkt, flags)
	pkt = binary.LittleEndian.AppendUint32(pkt, serverID)
	pkt = append(pkt, file...)
	c.ResetSequence()
	if err := c.WritePacket(pkt); err != nil {
		t.Fatal(err)
	}
}

// rawDump opens a dump (openDump) and returns the first n events as sent.
func rawDump(t *testing.T, port int, p *PKI, announce bool, file string, n int) [][]byte {
	t.Helper()
	c := openDump(t, port, p, announce, file, 4, 99)
	defer c.Close()
	var out [][]byte
	for len(out) < n {
		data, err := c.ReadPacket()
		if err != nil {
			t.Fatal(err)
		}
		if data[0] != 0 {
			t.Fatalf("not an event packet: %x", data[:min(len(data), 40)])
		}
		out = append(out, append([]byte(nil), data[1:]...))
	}
	return out
}

func TestChecksumChoiceOfTheSlave(t *testing.T) {
	p, m := newMaster(t)
	r := StartReplink(t, p, m.Port, ReplinkOptions{Users: slaveUsers()})
	m.Exec("CREATE DATABASE app", "CREATE TABLE app.t (id INT PRIMARY KEY)", "INSERT INTO app.t VALUES (1)")
	waitCaughtUp(t, m, r, 20*time.Second)
	stored, err := os.ReadFile(filepath.Join(r.Dir, "mariadb-bin.000001"))
	if err != nil {
		t.Fatal(err)
	}
	// Events 2..5 as the file holds them (after the fake ROTATE).
	var want [][]byte
	for off := 4; len(want) < 4; {
		size := int(binary.LittleEndian.Uint32(stored[off+9:]))
		want = append(want, stored[off:off+size])
		off += size
	}

	aware := rawDump(t, r.Port, p, true, "mariadb-bin.000001", 5)
	for i, ev := range aware[1:] {
		if !bytes.Equal(ev[:17], want[i][:17]) || !bytes.Equal(ev[19:], want[i][19:]) {
			t.Fatalf("aware slave: event %d differs from the stored one", i)
		}
		if err := binlog.VerifyChecksum(ev); err != nil {
			t.Fatalf("aware slave: event %d: %v", i, err)
		}
	}
	// A client that never announced a checksum is refused a file with
	// checksums, after the fake ROTATE, in the master's words.
	unaware := func(port int, user, password string) (rotate []byte, refusal string) {
		c := openDumpWith(t, port, p, user, password, false, "mariadb-bin.000001", 4, 99, "SET @mariadb_slave_capability=4")
		defer c.Close()
		first, err := c.ReadPacket()
		if err != nil || first[0] != 0 {
			t.Fatalf("port %d: first packet %q, %v", port, first, err)
		}
		data, err := c.ReadPacket()
		var me *mysql.MyError
		if err == nil && data[0] == 0xff && errors.As(c.HandleErrorPacket(data), &me) {
			return first[1:], fmt.Sprintf("%d %s", me.Code, me.Message)
		}
		t.Fatalf("port %d: after the ROTATE %q, %v; want an error", port, data[:min(len(data), 60)], err)
		return nil, ""
	}
	mRotate, mErr := unaware(m.Port, "repl", "replpass")
	rRotate, rErr := unaware(r.Port, "plainslave", "slavepass")
	if mErr != rErr || len(mRotate) != len(rRotate) {
		t.Fatalf("unaware client: master sent a %d-byte ROTATE and %q,\nreplink a %d-byte ROTATE and %q", len(mRotate), mErr, len(rRotate), rErr)
	}
}

func waitUntil(t *testing.T, d time.Duration, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met in %s", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDumpFromMidFile: a dump from the start of an event in the middle of
// a file gets the fake ROTATE, the FDE with log_pos 0 and that event; a
// position inside an event gets 1236.
func TestDumpFromMidFile(t *testing.T) {
	p, m := newMaster(t)
	r := StartReplink(t, p, m.Port, ReplinkOptions{Users: slaveUsers()})
	m.Exec("CREATE DATABASE app", "CREATE TABLE app.t (id INT PRIMARY KEY)")
	for i := 0; i < 200; i++ {
		m.Exec(fmt.Sprintf("INSERT INTO app.t VALUES (%d)", i))
	}
	waitCaughtUp(t, m, r, 20*time.Second)
	stored, err := os.ReadFile(filepath.Join(r.Dir, "mariadb-bin.000001"))
	if err != nil {
		t.Fatal(err)
	}
	// The start of an event well into the file.
	off := 4
	for n := 0; n < 500; n++ {
		off += int(binary.LittleEndian.Uint32(stored[off+9:]))
	}
	size := int(binary.LittleEndian.Uint32(stored[off+9:]))

	c := openDump(t, r.Port, p, true, "mariadb-bin.000001", uint32(off), 98)
	var got [][]byte
	for len(got) < 3 {
		data, err := c.ReadPacket()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, append([]byte(nil), data[1:]...))
	}
	if got[0][4] != binlog.TypeRotate || got[1][4] != binlog.TypeFormatDescription || binary.LittleEndian.Uint32(got[1][13:]) != 0 {
		t.Fatalf("dump from %d did not begin with ROTATE and an FDE at log_pos 0: types %d, %d", off, got[0][4], got[1][4])
	}
	if !bytes.Equal(got[2], stored[off:off+size]) {
		t.Fatalf("the first event from %d differs from the stored one", off)
	}

	c = openDump(t, r.Port, p, true, "mariadb-bin.000001", uint32(off+1), 97)
	data, err := c.ReadPacket()
	if err != nil {
		t.Fatal(err)
	}
	var me *mysql.MyError
	// What a master says depends on the bytes there (TestRefusalsAnswerAsTheMaster
	// compares the words); its coordinates always name the position asked for.
	at := fmt.Sprintf("the first event 'mariadb-bin.000001' at %d, the last event read from 'mariadb-bin.000001' at %d", off+1, off+1)
	if data[0] != 0xff || !errors.As(c.HandleErrorPacket(data), &me) || me.Code != 1236 || !strings.Contains(me.Message, at) {
		t.Fatalf("dump from inside an event: %q, want ERR 1236 with %q", data, at)
	}
}

// TestMasterWithoutChecksums: a master with binlog_checksum=NONE is
// mirrored and served. Its events have no CRC32 trailer; replink checked
// one on every event it served, so a slave got ERR 1236 "corrupt relay
// log" at the first event after the FDE, and stripping for unaware slaves
// cut 4 bytes of real data (MaxScale shipped this as MXS-4697).
func TestMasterWithoutChecksums(t *testing.T) {
	p, m := newMaster(t, "binlog_checksum=NONE")
	r := StartReplink(t, p, m.Port, ReplinkOptions{Users: slaveUsers()})
	m.Exec("CREATE DATABASE app", "CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(64))")
	for i := 0; i < 20; i++ {
		m.Exec(fmt.Sprintf("INSERT INTO app.t VALUES (%d, 'row %d')", i, i))
	}
	waitCaughtUp(t, m, r, 20*time.Second)

	// A native slave asks @@global.binlog_checksum and replicates.
	slave := startSlave(t, p, r.Port)
	waitSlaveCaughtUp(t, m, slave, 30*time.Second)
	if a, b := m.Checksum("app.t"), slave.Checksum("app.t"); a != b {
		t.Fatalf("CHECKSUM TABLE: master %s, slave %s", a, b)
	}
	if v := m.Query("SELECT @@global.binlog_checksum")[0][0]; v != "NONE" {
		t.Fatalf("master's binlog_checksum is %s", v)
	}

	// A client that announced NONE (and MariaDB's GTID capability) gets the
	// same events from replink as from the master, artificial ones
	// included (but their server id).
	from := func(port int, user, pw string) [][]byte {
		c := openDumpAs(t, port, p, user, pw, "mariadb-bin.000001", 4)
		defer c.Close()
		var out [][]byte
		for len(out) < 8 {
			data, err := c.ReadPacket()
			if err != nil {
				t.Fatalf("dump from port %d: %v", port, err)
			}
			if data[0] != 0 {
				t.Fatalf("dump from port %d: not an event: %q", port, data[:min(len(data), 80)])
			}
			out = append(out, append([]byte(nil), data[1:]...))
		}
		return out
	}
	want, got := from(m.Port, "repl", "replpass"), from(r.Port, "plainslave", "slavepass")
	for i := range want {
		w, g := want[i], got[i]
		if binlog.Event(w).Artificial() {
			w, g = append([]byte(nil), w...), append([]byte(nil), g...)
			copy(w[5:9], []byte{0, 0, 0, 0})
			copy(g[5:9], []byte{0, 0, 0, 0})
		}
		if !bytes.Equal(w, g) {
			t.Fatalf("event %d: master sent %x,\nreplink sent %x", i, w[:min(len(w), 64)], g[:min(len(g), 64)])
		}
	}

	// A slave that is not checksum-aware gets the events whole: there is
	// no trailer to take off.
	plain := rawDump(t, r.Port, p, false, "mariadb-bin.000001", 8)
	for i, ev := range plain[1:] {
		if !bytes.Equal(ev[19:], want[i+1][19:]) {
			t.Fatalf("unaware slave: event %d lost bytes (%d, master's %d)", i+1, len(ev), len(want[i+1]))
		}
	}
}
