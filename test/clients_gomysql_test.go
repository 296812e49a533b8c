package test

import (
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
)

// TestClientsGoMySQL: go-mysql's BinlogSyncer, in-process, parses from
// replink the same events it parses from the master on the same binlog
// (SPEC "replink is a master to its clients"): each event's header (type,
// log_pos, flags, timestamp, size; the server id but for artificial
// events) and decoded content (rotate target, GTID, query, table, row
// values, XID, GTID list, format description), then the same heartbeat
// once caught up. A MySQL-flavour GTID dump, which a MariaDB master
// cannot serve, ends in an error from both.
func TestClientsGoMySQL(t *testing.T) {
	m, master, relay, _ := clientsStack(t)
	endFile, endPos := m.MasterStatus()
	end := mysql.Position{Name: endFile, Pos: endPos}

	// GTIDs and event boundaries: the third transaction's GTID, and the
	// GTID events opening the second transaction of the first file and
	// the big insert's in the second.
	const file1, file2 = "mariadb-bin.000001", "mariadb-bin.000002"
	var gtids []string
	var gtidPos1 []uint32
	for _, ev := range showBinlogEvents(t, m, file1) {
		if ev.Type == "Gtid" {
			gtidPos1 = append(gtidPos1, ev.Pos)
			f := strings.Fields(ev.Info) // "BEGIN GTID 0-1-5" or "GTID 0-1-1"
			gtids = append(gtids, f[len(f)-1])
		}
	}
	if len(gtids) < 3 {
		t.Fatalf("%s has %d transactions, want at least 3", file1, len(gtids))
	}
	var bigPos uint32
	var lastGtid uint32
	for _, ev := range showBinlogEvents(t, m, file2) {
		switch {
		case ev.Type == "Gtid":
			lastGtid = ev.Pos
		case ev.Type == "Table_map" && strings.Contains(strings.ReplaceAll(ev.Info, "`", ""), "app.big") && bigPos == 0:
			bigPos = lastGtid
		}
	}
	if bigPos == 0 {
		t.Fatalf("no transaction on app.big in %s", file2)
	}
	t.Logf("end %s:%d; GTID start %s; mid-file starts %s:%d, %s:%d", end.Name, end.Pos, gtids[2], file1, gtidPos1[1], file2, bigPos)

	id := uint32(7100) // a distinct server id per run
	both := func(t *testing.T, run GoMySQLRun) (GoMySQLOutput, GoMySQLOutput) {
		t.Helper()
		id += 2
		return RunGoMySQL(t, run, master, id), RunGoMySQL(t, run, relay, id+1)
	}
	compare := func(t *testing.T, run GoMySQLRun) {
		t.Helper()
		mo, ro := both(t, run)
		t.Logf("master starts:  %s", goEventList(mo.Events))
		t.Logf("replink starts: %s", goEventList(ro.Events))
		if !strings.HasPrefix(mo.Ended, "reached") {
			t.Fatalf("the master's own run did not reach the end: %s", mo.Ended)
		}
		if diffs := DiffGoMySQL(mo, ro); len(diffs) > 0 {
			t.Errorf("replink differs from the master in %d way(s):\n- %s", len(diffs), strings.Join(diffs, "\n- "))
		}
	}

	t.Run("file position start", func(t *testing.T) {
		compare(t, GoMySQLRun{Flavor: mysql.MariaDBFlavor, Pos: mysql.Position{Name: file1, Pos: 4}, Until: end})
	})
	t.Run("gtid start", func(t *testing.T) {
		compare(t, GoMySQLRun{Flavor: mysql.MariaDBFlavor, GTID: gtids[2], Until: end})
	})
	t.Run("mid-file position", func(t *testing.T) {
		compare(t, GoMySQLRun{Flavor: mysql.MariaDBFlavor, Pos: mysql.Position{Name: file1, Pos: gtidPos1[1]}, Until: end})
	})
	t.Run("mid-file position second file", func(t *testing.T) {
		compare(t, GoMySQLRun{Flavor: mysql.MariaDBFlavor, Pos: mysql.Position{Name: file2, Pos: bigPos}, Until: end})
	})
	t.Run("mysql flavour gtid dump errors", func(t *testing.T) {
		// A MySQL GTID set: COM_BINLOG_DUMP_GTID, which MariaDB does not
		// serve. Both must say so in the same words, not hang.
		mo, ro := both(t, GoMySQLRun{Flavor: mysql.MySQLFlavor, GTID: "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5",
			Timeout: 15 * time.Second})
		t.Logf("master:  %s (events %s)", mo.Ended, goEventList(mo.Events))
		t.Logf("replink: %s (events %s)", ro.Ended, goEventList(ro.Events))
		if mo.Err == nil {
			t.Fatalf("the master did not refuse a MySQL GTID dump: %s", mo.Ended)
		}
		if ro.Err == nil || ro.Err.Error() != mo.Err.Error() {
			t.Errorf("replink did not refuse a MySQL GTID dump as the master does: %s; the master: %s", ro.Ended, mo.Ended)
		}
		if len(mo.Events) != len(ro.Events) {
			t.Errorf("events before the error: master %s, replink %s", goEventList(mo.Events), goEventList(ro.Events))
		}
	})
}

// TestClientsGoMySQLHarness: the comparison masks only the server id of
// artificial events, and names the event, the field and both values of
// every other difference.
func TestClientsGoMySQLHarness(t *testing.T) {
	ev := func(first bool, h replication.EventHeader, e replication.Event) GoMySQLEvent {
		return describeGoMySQLEvent(&replication.BinlogEvent{Header: &h, Event: e}, first)
	}
	rotate := func(id uint32, name string) GoMySQLEvent {
		return ev(true, replication.EventHeader{EventType: replication.ROTATE_EVENT, ServerID: id, Flags: replication.LOG_EVENT_ARTIFICIAL_F},
			&replication.RotateEvent{Position: 4, NextLogName: []byte(name)})
	}
	gtid := func(id uint32) GoMySQLEvent {
		return ev(false, replication.EventHeader{EventType: replication.MARIADB_GTID_EVENT, ServerID: id, LogPos: 372, Timestamp: 1700000000},
			&replication.MariadbGTIDEvent{GTID: mysql.MariadbGTID{DomainID: 0, ServerID: 1, SequenceNumber: 1}})
	}
	annotate := ev(false, replication.EventHeader{EventType: replication.MARIADB_ANNOTATE_ROWS_EVENT, ServerID: 1, LogPos: 420},
		&replication.MariadbAnnotateRowsEvent{Query: []byte("INSERT ...")})
	run := func(evs ...GoMySQLEvent) GoMySQLOutput { return GoMySQLOutput{Ended: "reached", Events: evs} }
	for _, c := range []struct {
		name     string
		m, r     GoMySQLOutput
		wantDiff string // "" for none
	}{
		{"artificial server id", run(rotate(1, "mariadb-bin.000001"), gtid(1)), run(rotate(4001, "mariadb-bin.000001"), gtid(1)), ""},
		{"server id of a binlog event", run(rotate(1, "mariadb-bin.000001"), gtid(1)), run(rotate(1, "mariadb-bin.000001"), gtid(4001)),
			`event #1 (MariadbGTIDEvent at master log_pos 372): server id: master "1", replink "4001"`},
		{"rotate name", run(rotate(1, "mariadb-bin.000001")), run(rotate(1, "mariadb-bin.000001\x00\x00\x00\x00")),
			`event #0 (RotateEvent at master log_pos 0): next name: master "mariadb-bin.000001", replink "mariadb-bin.000001\x00\x00\x00\x00"`},
		{"an extra event", run(rotate(1, "f"), gtid(1)), run(rotate(1, "f"), annotate, gtid(1)),
			"event #1: type: master MariadbGTIDEvent@372, replink MariadbAnnotateRowsEvent@420"},
	} {
		t.Run(c.name, func(t *testing.T) {
			diffs := strings.Join(DiffGoMySQL(c.m, c.r), "\n")
			if c.wantDiff == "" && diffs != "" || !strings.Contains(diffs, c.wantDiff) {
				t.Fatalf("differences:\n%s\nwant %q", diffs, c.wantDiff)
			}
		})
	}
}
