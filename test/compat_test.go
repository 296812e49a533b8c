package test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/replink/replink/binlog"
	"github.com/replink/replink/replica"
)

// nonBlockingDump logs in to port as user, sets sets, asks for a
// non-blocking dump of file from 4 with flags, and returns every event
// packet until the EOF that ends it.
func nonBlockingDump(t *testing.T, p *PKI, port int, user, password, file string, flags uint16, sets ...string) [][]byte {
	t.Helper()
	c := dumpClient(t, port, p, user, password, sets...)
	defer c.Close()
	sendDump(t, c, file, 4, flags|1, 77) // BINLOG_DUMP_NON_BLOCK
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var out [][]byte
	for {
		data, err := c.ReadPacket()
		if err != nil {
			t.Fatalf("dump from port %d: %v", port, err)
		}
		switch data[0] {
		case 0x00:
			out = append(out, append([]byte(nil), data[1:]...))
		case 0xfe:
			return out
		default:
			t.Fatalf("dump from port %d: %q", port, data[:min(len(data), 120)])
		}
	}
}

// TestOlderClientsGetWhatTheMasterSends: a client that does not announce
// MariaDB's GTID capability (mysqlbinlog of MySQL, old slaves, CDC
// libraries) gets MariaDB's own events rewritten as the master rewrites
// them (GTIDs as BEGIN, GTID_LIST and checkpoints as dummies or left out),
// Annotate_rows only when asked, and a non-blocking dump ends with EOF at
// the end of the binlog; for every capability and both flags the events
// are those of the master but for artificial events' server id.
func TestOlderClientsGetWhatTheMasterSends(t *testing.T) {
	p, m := newMaster(t)
	m.Exec("CREATE DATABASE d", "CREATE TABLE d.t (id INT PRIMARY KEY, v VARCHAR(20))",
		"INSERT INTO d.t VALUES (1, 'a')", "BEGIN", "INSERT INTO d.t VALUES (2, 'b')", "UPDATE d.t SET v = 'c' WHERE id = 1", "COMMIT",
		"FLUSH BINARY LOGS", "INSERT INTO d.t VALUES (3, 'd')")
	r := StartReplink(t, p, m.Port, ReplinkOptions{Users: slaveUsers(), Start: replica.Start{Kind: "file", Pos: mustPos(t, "mariadb-bin.000001:4")}})
	waitCaughtUp(t, m, r, 20*time.Second)
	for _, capability := range []string{"", "0", "1", "2", "3", "4"} {
		for _, flags := range []uint16{0, 2} {
			t.Run(fmt.Sprintf("capability %q flags %d", capability, flags), func(t *testing.T) {
				sets := []string{"SET @master_binlog_checksum='NONE'"}
				if capability != "" {
					sets = append(sets, "SET @mariadb_slave_capability="+capability)
				}
				want := nonBlockingDump(t, p, m.Port, "repl", "replpass", "mariadb-bin.000001", flags, sets...)
				got := nonBlockingDump(t, p, r.Port, "plainslave", "slavepass", "mariadb-bin.000001", flags, sets...)
				if len(got) != len(want) {
					t.Fatalf("replink sent %d events, the master %d", len(got), len(want))
				}
				for i := range want {
					w, g := want[i], got[i]
					if binlog.Event(w).Artificial() {
						w, g = bytes.Clone(w), bytes.Clone(g)
						copy(w[5:9], "\x00\x00\x00\x00")
						copy(g[5:9], "\x00\x00\x00\x00")
						if len(w) == len(g) && len(w) > 23 {
							copy(w[len(w)-4:], "\x00\x00\x00\x00")
							copy(g[len(g)-4:], "\x00\x00\x00\x00")
						}
					}
					if !bytes.Equal(w, g) {
						t.Fatalf("event %d (type %d): replink %x\nmaster %x", i, w[4], g[:min(len(g), 80)], w[:min(len(w), 80)])
					}
				}
			})
		}
	}
}
