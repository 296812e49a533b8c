package test

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"

	"github.com/replink/replink/binlog"
	"github.com/replink/replink/replica"
)

// dumpErr reads a dump's packets until its ERR packet and returns
// "code message"; "" when the dump went on streaming (heartbeats or
// events for 3 s) with no error.
func dumpErr(t *testing.T, c *client.Conn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	for i := 0; i < 10000; i++ {
		p, err := c.ReadPacket()
		if err != nil {
			return fmt.Sprintf("read: %v", err)
		}
		if len(p) > 9 && p[0] == 0xff {
			return fmt.Sprintf("%d %s", binary.LittleEndian.Uint16(p[1:]), p[9:])
		}
	}
	return ""
}

// TestRefusalsAnswerAsTheMaster: an impossible dump request gets, from
// replink, the ERR 1236 a 10.11 master gives for the same binlog.
func TestRefusalsAnswerAsTheMaster(t *testing.T) {
	p, m := newMaster(t)
	// From the first file: it is complete (the master rotated), so a
	// position past its end is impossible, not one replink waits for.
	r := StartReplink(t, p, m.Port, ReplinkOptions{Users: slaveUsers(), Start: replica.Start{Kind: "file", Pos: binlog.Pos{File: "mariadb-bin.000001", Offset: 4}}})
	m.Exec("CREATE DATABASE app", "CREATE TABLE app.t (id INT PRIMARY KEY)", "INSERT INTO app.t VALUES (1)", "FLUSH BINARY LOGS", "INSERT INTO app.t VALUES (2)")
	waitCaughtUp(t, m, r, 20*time.Second)
	first := r.Log.Files()[0]
	if first != "mariadb-bin.000001" || len(r.Log.Files()) < 2 {
		t.Fatalf("relay log %v, want mariadb-bin.000001 complete", r.Log.Files())
	}
	size := fileSize(t, r, first)
	// Positions inside events where the bytes, read as a header, give a
	// length below a header's and one that runs past the end of the file.
	data, err := os.ReadFile(filepath.Join(r.Dir, first))
	if err != nil {
		t.Fatal(err)
	}
	starts := map[uint32]bool{}
	for off := uint32(4); off < size; off += binary.LittleEndian.Uint32(data[off+9:]) {
		starts[off] = true
	}
	var short, long uint32
	for off := uint32(5); off+19 < size; off++ {
		n := binary.LittleEndian.Uint32(data[off+9:])
		switch {
		case starts[off]:
		case short == 0 && n < 19:
			short = off
		case long == 0 && n >= 19 && n < 1<<30 && off+n > size:
			long = off
		}
	}
	if short == 0 || long == 0 {
		t.Fatalf("no position inside an event gives a short length (%d) or one past the end (%d)", short, long)
	}
	for _, c := range []struct {
		name string
		file string
		pos  uint32
	}{
		{"inside an event", first, 4 + 19 + 3},
		{"inside an event, a length below a header's", first, short},
		{"inside an event, a length past the end", first, long},
		{"past the end of a complete file", first, size + 100},
		{"inside the last event of a complete file", first, size - 5},
	} {
		t.Run(c.name, func(t *testing.T) {
			sets := []string{"SET @master_binlog_checksum='CRC32'", "SET @mariadb_slave_capability=4"}
			want := dumpErr(t, openDumpWith(t, m.Port, p, "repl", "replpass", false, c.file, c.pos, 77, sets...))
			got := dumpErr(t, openDumpWith(t, r.Port, p, "plainslave", "slavepass", false, c.file, c.pos, 77, sets...))
			if got != want {
				t.Fatalf("dump %s:%d\nmaster:  %s\nreplink: %s", c.file, c.pos, want, got)
			}
			t.Logf("both: %s", got)
		})
	}
}

func fileSize(t *testing.T, r *Replink, name string) uint32 {
	t.Helper()
	st, err := os.Stat(filepath.Join(r.Dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return uint32(st.Size())
}

// loginAnswer greets port raw, sends login as the client's first packet
// and returns the server's answer: "seq N: ERR code [#state] message",
// or how the connection ended.
func loginAnswer(t *testing.T, port int, login []byte) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	read := func() ([]byte, byte, error) {
		var h [4]byte
		if _, err := io.ReadFull(c, h[:]); err != nil {
			return nil, 0, err
		}
		p := make([]byte, int(h[0])|int(h[1])<<8|int(h[2])<<16)
		_, err := io.ReadFull(c, p)
		return p, h[3], err
	}
	if _, _, err := read(); err != nil {
		t.Fatalf("greeting: %v", err)
	}
	n := len(login)
	if _, err := c.Write(append([]byte{byte(n), byte(n >> 8), byte(n >> 16), 1}, login...)); err != nil {
		t.Fatal(err)
	}
	p, seq, err := read()
	if err != nil {
		return fmt.Sprintf("no answer: %v", err)
	}
	if len(p) < 3 || p[0] != 0xff {
		return fmt.Sprintf("seq %d: % x", seq, p)
	}
	return fmt.Sprintf("seq %d: ERR %d %q", seq, binary.LittleEndian.Uint16(p[1:]), p[3:])
}

// TestBadLoginAnswersAsTheMaster: a login packet a master cannot read
// gets the master's answer from replink.
func TestBadLoginAnswersAsTheMaster(t *testing.T) {
	p, m := newMaster(t)
	r := StartReplink(t, p, m.Port, ReplinkOptions{Users: slaveUsers()})
	protocol41 := binary.LittleEndian.AppendUint32(nil, 0x200|0x8000|0x80000) // PROTOCOL_41, SECURE_CONNECTION, PLUGIN_AUTH
	fixed := append(append(protocol41, 0, 0, 0, 1, 33), make([]byte, 23)...)
	for _, c := range []struct {
		name  string
		login []byte
	}{
		{"shorter than the fixed part", []byte{1, 2, 3, 4, 5}},
		{"user name not terminated", append(append([]byte(nil), fixed...), "slave1"...)},
		{"auth data past the end", append(append(append([]byte(nil), fixed...), "slave1\x00"...), 20, 1, 2)},
	} {
		t.Run(c.name, func(t *testing.T) {
			want, got := loginAnswer(t, m.Port, c.login), loginAnswer(t, r.Port, c.login)
			if got != want {
				t.Fatalf("master:  %s\nreplink: %s", want, got)
			}
			t.Logf("both: %s", got)
		})
	}
}
