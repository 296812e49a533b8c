package binlog

import (
	"bytes"
	"encoding/binary"
)

// mariaStandalone is FL_STANDALONE in a MariaDB GTID event's flags2:
// the group is the GTID and one statement, with no terminating event.
const mariaStandalone = 0x01

// groupState is where a GroupTracker stands.
type groupState uint8

const (
	// outside any group: every event is a boundary.
	outside groupState = iota
	// afterGTID: a MySQL GTID, before its first statement. BEGIN or
	// XA START opens a transaction; a TRANSACTION_PAYLOAD is the whole
	// group; any other statement (DDL, XA COMMIT, XA ROLLBACK) is the
	// group on its own.
	afterGTID
	// oneStatement: a standalone MariaDB GTID, ended by its statement.
	oneStatement
	// inTransaction: after BEGIN, XA START or a MariaDB GTID; ended by
	// XID, XA_PREPARE, or a COMMIT / ROLLBACK / XA COMMIT / XA ROLLBACK
	// query.
	inTransaction
)

// GroupTracker follows transaction boundaries in an event stream so that a
// reader can tell whether the stream so far ends on a complete transaction
// (an event group). It reads the stream as MySQL's
// Transaction_boundary_parser and MariaDB's GTID flags do:
//
//	MySQL    GTID, BEGIN ... XID | COMMIT | ROLLBACK
//	         GTID, XA START ... XA END, XA_PREPARE
//	         GTID, TRANSACTION_PAYLOAD (a compressed transaction)
//	         GTID, one statement (DDL, XA COMMIT, XA ROLLBACK)
//	MariaDB  GTID ... XID | COMMIT | ROLLBACK | XA_PREPARE
//	         GTID (FL_STANDALONE), one statement (DDL, XA COMMIT, XA ROLLBACK)
//
// Anonymous and tagged GTIDs count as GTIDs. Events outside a group (FDE,
// PREVIOUS_GTIDS, GTID_LIST, ROTATE, INCIDENT...) are boundaries.
type GroupTracker struct {
	checksum byte
	state    groupState
}

// Reset forgets any open group (a new connection, a new file).
func (g *GroupTracker) Reset() { g.state = outside }

// InGroup reports whether the events seen so far end inside a transaction.
func (g *GroupTracker) InGroup() bool { return g.state != outside }

// Checksum is the algorithm the last FDE declared.
func (g *GroupTracker) Checksum() byte { return g.checksum }

// Verify checks ev's CRC32 trailer when it has one: an FDE that declares
// CRC32, or any event after such an FDE. Call it before Add.
func (g *GroupTracker) Verify(ev Event) error {
	crc := g.checksum == ChecksumCRC32
	if ev.Type() == TypeFormatDescription {
		crc = FDEChecksum(ev) == ChecksumCRC32
	}
	if !crc {
		return nil
	}
	return VerifyChecksum(ev)
}

// Add feeds one event and reports whether a group ends with it (or the
// event stands outside any group, which is a boundary too).
func (g *GroupTracker) Add(e Event) (boundary bool) {
	switch e.Type() {
	case TypeFormatDescription:
		g.checksum = FDEChecksum(e)
		g.Reset()
		return true
	case TypeMariaGTID:
		g.state = inTransaction
		if body := e.Body(g.checksum); len(body) >= 13 && body[12]&mariaStandalone != 0 {
			g.state = oneStatement
		}
		return false
	case TypeGTID, TypeAnonymousGTID, TypeGTIDTagged:
		g.state = afterGTID
		return false
	}
	if g.state == outside {
		return true
	}
	switch e.Type() {
	case TypeXID, TypeXAPrepare, TypeTransactionPayload, TypeIncident:
		g.Reset()
		return true
	case TypeQuery:
		return g.query(queryText(e.Body(g.checksum)))
	}
	return false
}

// query moves on a Query event inside a group and reports whether the
// group ends with it.
func (g *GroupTracker) query(q []byte) (boundary bool) {
	switch g.state {
	case oneStatement:
		g.Reset()
		return true
	case afterGTID:
		if bytes.EqualFold(q, []byte("BEGIN")) || hasPrefixFold(q, "XA START") {
			g.state = inTransaction
			return false
		}
		g.Reset() // DDL, XA COMMIT, XA ROLLBACK: GTID + one statement
		return true
	}
	if bytes.EqualFold(q, []byte("COMMIT")) || bytes.EqualFold(q, []byte("ROLLBACK")) ||
		hasPrefixFold(q, "XA COMMIT") || hasPrefixFold(q, "XA ROLLBACK") {
		g.Reset()
		return true
	}
	return false // a statement of the transaction, XA END, SAVEPOINT, ROLLBACK TO
}

// hasPrefixFold reports whether q begins with prefix, ignoring case.
func hasPrefixFold(q []byte, prefix string) bool {
	return len(q) >= len(prefix) && bytes.EqualFold(q[:len(prefix)], []byte(prefix))
}

// queryText extracts the statement of a QUERY event body (without checksum).
func queryText(body []byte) []byte {
	// thread_id 4, exec_time 4, db_len 1, error_code 2, status_vars_len 2
	if len(body) < 13 {
		return nil
	}
	dbLen := int(body[8])
	varsLen := int(binary.LittleEndian.Uint16(body[11:]))
	start := 13 + varsLen + dbLen + 1
	if start > len(body) {
		return nil
	}
	return bytes.TrimSpace(body[start:])
}
