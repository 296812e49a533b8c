package relay

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/replink/replink/binlog"
)

// A slave reading the old master's file when the relay log switched to
// a new master goes on without a word from its operator: at the end of
// the old file it gets what a master sends at a file switch, a ROTATE to
// the new master's file at the first transaction it lacks and that file's
// format description (log_pos 0), then that transaction; what the new
// master's file repeats of the old stream is not served again. The new
// master's file has the old master's first file's name here, as it has
// when both use the same log_bin base name.
func TestDumpCrossesToTheNewMaster(t *testing.T) {
	rl := startRelay(t)
	conn := rl.slave(t)
	exec(t, conn, "SET @master_binlog_checksum = @@global.binlog_checksum")
	r := dump(t, conn, testFile, 4)
	checkRotate(t, mustNext(t, r), testFile, 4)
	for i := range rl.file.events {
		if ev := mustNext(t, r); !bytes.Equal(ev, rl.file.events[i]) {
			t.Fatalf("old master's event %d differs", i)
		}
	}

	// The failover, while the slave waits at the end of the old file.
	if err := rl.rlog.Switch("127.0.0.1:3307", 2); err != nil {
		t.Fatal(err)
	}
	if err := rl.rlog.StartFile(testFile); err != nil {
		t.Fatal(err)
	}
	var nf relayFile
	add := func(server uint32, typ byte, body []byte) binlog.Event { return rl.appendAs(t, &nf, server, typ, body) }
	add(2, binlog.TypeFormatDescription, fdeBody())
	add(2, binlog.TypeMariaGTIDList, gtidListBody(binlog.MariaGTID{Domain: 0, Server: 1, Seq: 1}))
	add(1, binlog.TypeMariaGTID, gtidBody(2)) // replicated from the old master: replink has it
	add(1, typeRows, []byte("rows of transaction 2"))
	add(1, binlog.TypeXID, binary.LittleEndian.AppendUint64(nil, 2))
	cross := nf.off
	first := add(2, binlog.TypeMariaGTID, gtidBody(3))
	add(2, typeRows, []byte("rows of transaction 3"))
	add(2, binlog.TypeXID, binary.LittleEndian.AppendUint64(nil, 3))

	checkRotate(t, mustNext(t, r), testFile, uint64(cross))
	if fde := mustNext(t, r); fde.Type() != binlog.TypeFormatDescription || fde.LogPos() != 0 {
		t.Fatalf("after the crossing ROTATE: type %d log_pos %d, want the new file's FDE at log_pos 0", fde.Type(), fde.LogPos())
	}
	if ev := mustNext(t, r); !bytes.Equal(ev, first) {
		t.Fatalf("after the crossing: type %d at log_pos %d, want the first new transaction's GTID (0-2-3)", ev.Type(), ev.LogPos())
	}
	for range 2 {
		mustNext(t, r)
	}
	conn.Close()
	waitUnlisted(t, rl.srv)

	// Back with the new master's coordinates, which name the old master's
	// first file too: the slave is known, and served the new master's.
	conn = rl.slave(t)
	exec(t, conn, "SET @master_binlog_checksum = @@global.binlog_checksum")
	r = dump(t, conn, testFile, cross)
	checkRotate(t, mustNext(t, r), testFile, uint64(cross))
	mustNext(t, r) // the FDE
	if ev := mustNext(t, r); !bytes.Equal(ev, first) {
		t.Fatalf("back at %s:%d: type %d, want the new master's 0-2-3 there", testFile, cross, ev.Type())
	}
	conn.Close()
	waitUnlisted(t, rl.srv)

	// What replink says of its binlogs names the masters' files.
	ss := &session{s: rl.srv, vars: map[string]string{}}
	for _, q := range []string{"SHOW MASTER STATUS", "SHOW BINARY LOGS"} {
		res, err := ss.HandleQuery(q)
		if err != nil {
			t.Fatal(err)
		}
		for _, row := range res.RowDatas {
			if bytes.Contains(row, []byte("seq-")) {
				t.Fatalf("%s shows a relay path: %q", q, row)
			}
		}
	}

	// A slave replink never served, with the same name: refused.
	conn = rl.slave(t)
	exec(t, conn, "SET @master_binlog_checksum = @@global.binlog_checksum")
	_, err := next(dumpAs(t, conn, testFile, 4, 9999))
	var me *mysql.MyError
	if !errors.As(err, &me) || me.Code != 1236 || !strings.Contains(me.Message, "two masters") {
		t.Fatalf("an unknown slave asking for a name of two masters: %v, want ERR 1236", err)
	}
}

// A transaction the relay log had before the switch that the new master's
// binlog holds again after its first own one (applied late) is not served
// twice to a slave; a replink downstream, which mirrors the bytes, gets it.
func TestRepeatAfterTheCrossingIsNotServed(t *testing.T) {
	rl := startRelay(t) // 0-1-1, 0-1-2
	if err := rl.rlog.Switch("127.0.0.1:3307", 2); err != nil {
		t.Fatal(err)
	}
	if err := rl.rlog.StartFile("mariadb-bin.000009"); err != nil {
		t.Fatal(err)
	}
	var nf relayFile
	add := func(server uint32, typ byte, body []byte) binlog.Event { return rl.appendAs(t, &nf, server, typ, body) }
	group := func(server uint32, seq uint64) binlog.Event {
		g := add(server, binlog.TypeMariaGTID, gtidBody(seq))
		add(server, typeRows, []byte(fmt.Sprintf("rows of %d-%d", server, seq)))
		add(server, binlog.TypeXID, binary.LittleEndian.AppendUint64(nil, seq))
		return g
	}
	add(2, binlog.TypeFormatDescription, fdeBody())
	add(2, binlog.TypeMariaGTIDList, gtidListBody())
	group(1, 1)
	first := group(2, 3) // the crossing point
	group(1, 2)          // applied late: replink had it
	last := group(2, 4)
	for _, c := range []struct {
		name    string
		replink bool
		want    []binlog.Event // the GTIDs served after the crossing
	}{
		{"a slave", false, []binlog.Event{first, last}},
		{"a replink", true, []binlog.Event{first, nf.events[8], last}},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn := rl.slave(t)
			exec(t, conn, "SET @master_binlog_checksum = @@global.binlog_checksum")
			if c.replink {
				exec(t, conn, "SET @replink_master_clock = 1")
			}
			r := dump(t, conn, testFile, 4)
			var got []binlog.Event
			for len(got) < len(c.want) {
				ev := mustNext(t, r)
				if ev.Type() == binlog.TypeMariaGTID && ev.ServerID() == 2 || ev.Type() == binlog.TypeMariaGTID && len(got) > 0 {
					got = append(got, ev)
				}
			}
			for i := range c.want {
				if !bytes.Equal(got[i], c.want[i]) {
					t.Fatalf("GTID %d after the crossing differs: want %d-%d", i, c.want[i].ServerID(), binary.LittleEndian.Uint64(c.want[i][binlog.HeaderSize:]))
				}
			}
		})
	}
}

// appendAs appends an event of server id server to f and the relay log.
func (rl *relay) appendAs(t *testing.T, f *relayFile, server uint32, typ byte, body []byte) binlog.Event {
	t.Helper()
	ev := f.add(typ, body)
	binary.LittleEndian.PutUint32(ev[5:], server) // the header's server id
	ev = binlog.WithTimestamp(ev, ev.Timestamp(), binlog.ChecksumCRC32)
	f.events[len(f.events)-1] = ev
	if _, err := rl.rlog.Append(ev); err != nil {
		t.Fatal(err)
	}
	return ev
}
