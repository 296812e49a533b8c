package binlog

import (
	"encoding/binary"
	"encoding/hex"
	"testing"
)

// groupStep is one event fed to a GroupTracker and whether a group ends
// with it (or it stands outside any group).
type groupStep struct {
	typ      byte
	body     []byte
	boundary bool
}

// Event types the tests name that the tracker need not.
const (
	typeIntvar    = 5
	typeTableMap  = 19
	typeWriteRows = 30
	typeRowsQuery = 29
)

// mysqlGTIDBody is a MySQL 8.0 GTID event body: commit flag, server UUID,
// gno, logical-clock type, last_committed and sequence_number.
func mysqlGTIDBody(gno uint64) []byte {
	b := []byte{1}
	b = append(b, 0x3e, 0x11, 0xfa, 0x47, 0x71, 0xca, 0x11, 0xe1, 0x9e, 0x33, 0xc8, 0x0a, 0xa9, 0x42, 0x95, 0x61)
	b = binary.LittleEndian.AppendUint64(b, gno)
	b = append(b, 2) // LOGICAL_TIMESTAMP_TYPECODE
	b = binary.LittleEndian.AppendUint64(b, gno-1)
	return binary.LittleEndian.AppendUint64(b, gno)
}

// mysqlQueryBody is a Query event body as MySQL writes it: status
// variables and a current database before the statement.
func mysqlQueryBody(q string) []byte {
	vars := []byte{0x00, 0, 0, 0, 0} // Q_FLAGS2_CODE
	vars = append(vars, 0x01)        // Q_SQL_MODE_CODE
	vars = binary.LittleEndian.AppendUint64(vars, 1168113696)
	vars = append(vars, 0x0c, 1, 0, 0, 0, 0, 0, 0, 0) // Q_DDL_LOGGED_WITH_XID
	const db = "test"
	b := make([]byte, 13)
	binary.LittleEndian.PutUint32(b, 42) // thread id
	b[8] = byte(len(db))
	binary.LittleEndian.PutUint16(b[11:], uint16(len(vars)))
	b = append(b, vars...)
	b = append(b, db...)
	b = append(b, 0)
	return append(b, q...)
}

// xaPrepareBody is an XA_PREPARE_LOG_EVENT body for xid 'x' (format 1).
func xaPrepareBody(onePhase bool) []byte {
	b := []byte{0}
	if onePhase {
		b[0] = 1
	}
	b = binary.LittleEndian.AppendUint32(b, 1) // format id
	b = binary.LittleEndian.AppendUint32(b, 1) // gtrid length
	b = binary.LittleEndian.AppendUint32(b, 0) // bqual length
	return append(b, 'x')
}

// payloadBody stands for a TRANSACTION_PAYLOAD body: its fields (sizes,
// compression type) then the zstd frame of the whole transaction.
func payloadBody() []byte {
	return append([]byte{1, 40, 2, 1, 0, 3, 60, 0}, 0x28, 0xb5, 0x2f, 0xfd, 'z', 's', 't', 'd')
}

// mariaGTID decodes a MariaDB GTID event body as mariadbd 10.11 wrote it
// (seq_no, domain, flags2, then a commit id or an XID).
func mariaGTID(t *testing.T, h string) []byte {
	t.Helper()
	b, err := hex.DecodeString(h)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestGroupBoundaries feeds the event sequences MySQL and MariaDB write
// to a GroupTracker, after an FDE, with and without checksums, and checks
// the boundary after each event. The relay log is made durable and
// served only at these boundaries.
func TestGroupBoundaries(t *testing.T) {
	// MariaDB GTID bodies from a mariadbd 10.11.19 binlog (flags2 in the
	// 13th byte): 0x0c transactional, 0x08 not, 0x29 standalone DDL, 0x28
	// CREATE ... SELECT, 0x4c/0x48 FL_PREPARED_XA (XID 'x1'), 0x8d/0x89
	// FL_COMPLETED_XA|FL_STANDALONE.
	var (
		mariaTrx          = mariaGTID(t, "0800000000000000000000000c000000000000")
		mariaNonTrx       = mariaGTID(t, "09000000000000000000000008000000000000")
		mariaDDL          = mariaGTID(t, "02000000000000000000000029000000000000")
		mariaCTAS         = mariaGTID(t, "0c000000000000000000000028000000000000")
		mariaXAPrepare    = mariaGTID(t, "0400000000000000000000004c010000000200783101ff")
		mariaXAPrepEmpty  = mariaGTID(t, "0e000000000000000000000048010000000200783401ff")
		mariaXACommit     = mariaGTID(t, "0500000000000000000000008d0100000002007831")
		mariaXACommitNoTx = mariaGTID(t, "0f000000000000000000000089010000000200783401ff")
		// the same, as a server that does not mark it standalone would
		mariaXACommitNotStandalone = mariaGTID(t, "0500000000000000000000008c0100000002007831")
	)
	q := queryBody
	mq := mysqlQueryBody
	rows := []byte("rows")
	xid := make([]byte, 8)

	cases := []struct {
		name  string
		steps []groupStep
	}{
		// MySQL
		{"MySQL file start", []groupStep{
			{TypePreviousGTIDs, make([]byte, 8), true},
		}},
		{"MySQL BEGIN rows XID", []groupStep{
			{TypeGTID, mysqlGTIDBody(1), false},
			{TypeQuery, mq("BEGIN"), false},
			{typeTableMap, rows, false},
			{typeWriteRows, rows, false},
			{TypeXID, xid, true},
		}},
		{"MySQL ROWS_QUERY inside a group", []groupStep{
			{TypeGTID, mysqlGTIDBody(2), false},
			{TypeQuery, mq("BEGIN"), false},
			{typeRowsQuery, []byte("\x1binsert into t values (1)"), false},
			{typeTableMap, rows, false},
			{typeWriteRows, rows, false},
			{TypeXID, xid, true},
		}},
		{"MySQL non-transactional engine ends with COMMIT", []groupStep{
			{TypeGTID, mysqlGTIDBody(3), false},
			{TypeQuery, mq("BEGIN"), false},
			{typeTableMap, rows, false},
			{typeWriteRows, rows, false},
			{TypeQuery, mq("COMMIT"), true},
		}},
		{"MySQL statement-based with INTVAR", []groupStep{
			{TypeGTID, mysqlGTIDBody(4), false},
			{TypeQuery, mq("BEGIN"), false},
			{typeIntvar, []byte{2, 1, 0, 0, 0, 0, 0, 0, 0}, false},
			{TypeQuery, mq("INSERT INTO m (v) VALUES (1)"), false},
			{TypeQuery, mq("COMMIT"), true},
		}},
		{"MySQL ROLLBACK TO a savepoint does not end the group", []groupStep{
			{TypeGTID, mysqlGTIDBody(5), false},
			{TypeQuery, mq("BEGIN"), false},
			{TypeQuery, mq("SAVEPOINT `a`"), false},
			{typeTableMap, rows, false},
			{typeWriteRows, rows, false},
			{TypeQuery, mq("ROLLBACK TO `a`"), false},
			{TypeQuery, mq("ROLLBACK"), true},
		}},
		{"MySQL DDL", []groupStep{
			{TypeGTID, mysqlGTIDBody(6), false},
			{TypeQuery, mq("CREATE TABLE t (id INT PRIMARY KEY)"), true},
		}},
		{"MySQL CREATE ... SELECT (8.0.21+, one transaction)", []groupStep{
			{TypeGTID, mysqlGTIDBody(7), false},
			{TypeQuery, mq("BEGIN"), false},
			{TypeQuery, mq("CREATE TABLE `c` (\n  `id` int NOT NULL\n) START TRANSACTION ENGINE=InnoDB"), false},
			{typeTableMap, rows, false},
			{typeWriteRows, rows, false},
			{TypeXID, xid, true},
		}},
		{"MySQL anonymous GTID, DML then DDL", []groupStep{
			{TypeAnonymousGTID, mysqlGTIDBody(0), false},
			{TypeQuery, mq("BEGIN"), false},
			{typeTableMap, rows, false},
			{typeWriteRows, rows, false},
			{TypeXID, xid, true},
			{TypeAnonymousGTID, mysqlGTIDBody(0), false},
			{TypeQuery, mq("DROP TABLE t"), true},
		}},
		{"MySQL XA PREPARE", []groupStep{
			{TypeGTID, mysqlGTIDBody(8), false},
			{TypeQuery, mq("XA START X'78',X'',1"), false},
			{typeTableMap, rows, false},
			{typeWriteRows, rows, false},
			{TypeQuery, mq("XA END X'78',X'',1"), false},
			{TypeXAPrepare, xaPrepareBody(false), true},
		}},
		{"MySQL XA COMMIT of a prepared transaction", []groupStep{
			{TypeGTID, mysqlGTIDBody(9), false},
			{TypeQuery, mq("XA COMMIT X'78',X'',1"), true},
		}},
		{"MySQL XA ROLLBACK of a prepared transaction", []groupStep{
			{TypeGTID, mysqlGTIDBody(10), false},
			{TypeQuery, mq("XA ROLLBACK X'78',X'',1"), true},
		}},
		{"MySQL XA COMMIT ONE PHASE", []groupStep{
			{TypeGTID, mysqlGTIDBody(11), false},
			{TypeQuery, mq("XA START X'78',X'',1"), false},
			{typeTableMap, rows, false},
			{typeWriteRows, rows, false},
			{TypeQuery, mq("XA END X'78',X'',1"), false},
			{TypeXAPrepare, xaPrepareBody(true), true},
		}},
		{"MySQL empty XA transaction, anonymous", []groupStep{
			{TypeAnonymousGTID, mysqlGTIDBody(0), false},
			{TypeQuery, mq("XA START X'78',X'',1"), false},
			{TypeQuery, mq("XA END X'78',X'',1"), false},
			{TypeXAPrepare, xaPrepareBody(false), true},
			{TypeAnonymousGTID, mysqlGTIDBody(0), false},
			{TypeQuery, mq("XA COMMIT X'78',X'',1"), true},
		}},
		{"MySQL compressed transactions", []groupStep{
			{TypeGTID, mysqlGTIDBody(12), false},
			{TypeTransactionPayload, payloadBody(), true},
			{TypeGTID, mysqlGTIDBody(13), false},
			{TypeTransactionPayload, payloadBody(), true},
			{TypeAnonymousGTID, mysqlGTIDBody(0), false},
			{TypeTransactionPayload, payloadBody(), true},
			{TypeGTID, mysqlGTIDBody(14), false}, // DDL is never compressed
			{TypeQuery, mq("ALTER TABLE t ADD c INT"), true},
		}},
		{"MySQL tagged GTID (8.3+)", []groupStep{
			{TypeGTIDTagged, []byte("tagged gtid: serialized fields"), false},
			{TypeQuery, mq("BEGIN"), false},
			{typeWriteRows, rows, false},
			{TypeXID, xid, true},
			{TypeGTIDTagged, []byte("tagged gtid: serialized fields"), false},
			{TypeQuery, mq("CREATE DATABASE d"), true},
		}},
		{"MySQL incident, with and without a GTID", []groupStep{
			{TypeGTID, mysqlGTIDBody(15), false},
			{TypeIncident, []byte{1, 0, 0}, true},
			{TypeIncident, []byte{1, 0, 0}, true},
		}},
		{"ROTATE at the end of a file", []groupStep{
			{TypeGTID, mysqlGTIDBody(16), false},
			{TypeQuery, mq("BEGIN"), false},
			{TypeXID, xid, true},
			{TypeRotate, append(binary.LittleEndian.AppendUint64(nil, 4), "binlog.000002"...), true},
		}},

		// MariaDB
		{"MariaDB file start", []groupStep{
			{TypeMariaGTIDList, make([]byte, 4), true},
			{TypeBinlogCheckpoint, append([]byte{9, 0, 0, 0}, "mb.000001"...), true},
		}},
		{"MariaDB transaction ends with XID", []groupStep{
			{TypeMariaGTID, mariaTrx, false},
			{TypeAnnotateRows, []byte("insert into d.t values(3)"), false},
			{typeTableMap, rows, false},
			{typeWriteRows, rows, false},
			{TypeXID, xid, true},
		}},
		{"MariaDB standalone DDL", []groupStep{
			{TypeMariaGTID, mariaDDL, false},
			{TypeQuery, q("create table d.t(id int primary key) engine=innodb"), true},
		}},
		{"MariaDB non-transactional ends with COMMIT", []groupStep{
			{TypeMariaGTID, mariaNonTrx, false},
			{TypeAnnotateRows, []byte("insert into d.m values(1)"), false},
			{typeTableMap, rows, false},
			{typeWriteRows, rows, false},
			{TypeQuery, q("COMMIT"), true},
		}},
		{"MariaDB statement-based with INTVAR", []groupStep{
			{TypeMariaGTID, mariaNonTrx, false},
			{typeIntvar, []byte{2, 1, 0, 0, 0, 0, 0, 0, 0}, false},
			{TypeQuery, q("INSERT INTO m (v) VALUES (1)"), false},
			{TypeQuery, q("COMMIT"), true},
		}},
		{"MariaDB ROLLBACK", []groupStep{
			{TypeMariaGTID, mariaNonTrx, false},
			{typeWriteRows, rows, false},
			{TypeQuery, q("ROLLBACK"), true},
		}},
		{"MariaDB CREATE ... SELECT", []groupStep{
			{TypeMariaGTID, mariaCTAS, false},
			{TypeQuery, q("CREATE TABLE `d`.`c` (\n  `id` int(11) NOT NULL\n) ENGINE=InnoDB"), false},
			{TypeAnnotateRows, []byte("create table d.c engine=innodb select * from d.t"), false},
			{typeTableMap, rows, false},
			{typeWriteRows, rows, false},
			{TypeXID, xid, true},
		}},
		{"MariaDB XA PREPARE then XA COMMIT", []groupStep{
			{TypeMariaGTID, mariaXAPrepare, false},
			{TypeAnnotateRows, []byte("insert into d.t values(1)"), false},
			{typeTableMap, rows, false},
			{typeWriteRows, rows, false},
			{TypeQuery, q("XA END X'7831',X'',1"), false},
			{TypeXAPrepare, xaPrepareBody(false), true},
			{TypeMariaGTID, mariaXACommit, false},
			{TypeQuery, q("XA COMMIT X'7831',X'',1"), true},
		}},
		{"MariaDB XA ROLLBACK", []groupStep{
			{TypeMariaGTID, mariaXACommit, false},
			{TypeQuery, q("XA ROLLBACK X'7832',X'',1"), true},
		}},
		{"MariaDB empty XA transaction", []groupStep{
			{TypeMariaGTID, mariaXAPrepEmpty, false},
			{TypeQuery, q("XA END X'7834',X'',1"), false},
			{TypeXAPrepare, xaPrepareBody(false), true},
			{TypeMariaGTID, mariaXACommitNoTx, false},
			{TypeQuery, q("XA COMMIT X'7834',X'',1"), true},
		}},
		{"MariaDB XA COMMIT not marked standalone", []groupStep{
			{TypeMariaGTID, mariaXACommitNotStandalone, false},
			{TypeQuery, q("XA COMMIT X'7831',X'',1"), true},
		}},
	}
	for _, c := range cases {
		for _, crc := range []bool{true, false} {
			name := c.name
			if !crc {
				name += ", no checksums"
			}
			t.Run(name, func(t *testing.T) {
				fde := fdeBody()
				if !crc {
					fde[len(fde)-1] = ChecksumOff
				}
				var s stream
				var g GroupTracker
				steps := append([]groupStep{{TypeFormatDescription, fde, true}}, c.steps...)
				for i, st := range steps {
					ev, err := ParseEvent(s.add(st.typ, st.body))
					if err != nil {
						t.Fatal(err)
					}
					if !crc && st.typ != TypeFormatDescription {
						ev = withoutChecksum(nil, ev) // the FDE keeps its trailer, as on a master
					}
					if got := g.Add(ev); got != st.boundary {
						t.Fatalf("event %d (%s): boundary %v, want %v", i, TypeName(st.typ), got, st.boundary)
					}
					if g.InGroup() == st.boundary {
						t.Fatalf("event %d (%s): InGroup %v after boundary %v", i, TypeName(st.typ), g.InGroup(), st.boundary)
					}
				}
			})
		}
	}
}

// TestResumePointAtMySQLGroupEnds: the relay log's resume point (where a
// restart resumes, what slaves may read) moves at the end of a compressed
// transaction and of an XA PREPARE group, and never inside one.
func TestResumePointAtMySQLGroupEnds(t *testing.T) {
	l, _ := testLog(t, SyncTransaction)
	var s stream
	at := func() Pos { return Pos{File: "mariadb-bin.000001", Offset: s.off} }

	appendTo(t, l, &s, typedBody{TypeFormatDescription, fdeBody()}, typedBody{TypePreviousGTIDs, make([]byte, 8)})
	appendTo(t, l, &s, typedBody{TypeGTID, mysqlGTIDBody(1)}, typedBody{TypeTransactionPayload, payloadBody()})
	if got := l.ResumePoint(); got != at() {
		t.Fatalf("after GTID + TRANSACTION_PAYLOAD: resume point %v, want %v", got, at())
	}
	complete := at()
	appendTo(t, l, &s, typedBody{TypeGTID, mysqlGTIDBody(2)}, typedBody{TypeQuery, mysqlQueryBody("XA START X'78',X'',1")},
		typedBody{typeWriteRows, []byte("rows")}, typedBody{TypeQuery, mysqlQueryBody("XA END X'78',X'',1")})
	if got := l.ResumePoint(); got != complete {
		t.Fatalf("inside an XA transaction: resume point %v, want %v", got, complete)
	}
	appendTo(t, l, &s, typedBody{TypeXAPrepare, xaPrepareBody(false)})
	if got := l.ResumePoint(); got != at() {
		t.Fatalf("after XA_PREPARE: resume point %v, want %v", got, at())
	}
}

// withoutChecksum appends e to dst without its CRC32 trailer, its size
// corrected (and, for an FDE, its checksum algorithm set to off): the
// form of an event in a file without checksums.
func withoutChecksum(dst []byte, e Event) Event {
	if len(e) < HeaderSize+4 {
		return append(dst[:0], e...) // no room for a trailer: a copy as it is
	}
	out := Event(append(dst[:0], e[:len(e)-4]...))
	binary.LittleEndian.PutUint32(out[offSize:], uint32(len(out)))
	if out.Type() == TypeFormatDescription {
		out[len(out)-1] = ChecksumOff
	}
	return out
}
