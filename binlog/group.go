package binlog

import (
	"bytes"
	"encoding/binary"
)

// GroupTracker follows transaction boundaries in an event stream so that a
// reader can tell whether the stream so far ends on a complete transaction
// (an event group). It understands MariaDB GTID groups (standalone or
// ended by XID / COMMIT / ROLLBACK / XA PREPARE) and MySQL ones (GTID,
// BEGIN ... XID or COMMIT, or GTID + one DDL statement).
type GroupTracker struct {
	checksum byte
	inGroup  bool
	// standalone: the group is the GTID event plus exactly one statement.
	standalone bool
	// mysqlGTID: after a MySQL GTID, before its first statement.
	mysqlGTID bool
}

// Reset forgets any open group (a new connection, a new file).
func (g *GroupTracker) Reset() { g.inGroup, g.standalone, g.mysqlGTID = false, false, false }

// InGroup reports whether the events seen so far end inside a transaction.
func (g *GroupTracker) InGroup() bool { return g.inGroup }

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
		body := e.Body(g.checksum)
		g.inGroup, g.mysqlGTID = true, false
		g.standalone = len(body) >= 13 && body[12]&0x01 != 0 // FL_STANDALONE
		return false
	case TypeGTID, TypeAnonymousGTID:
		g.inGroup, g.standalone, g.mysqlGTID = true, false, true
		return false
	}
	if !g.inGroup {
		return true
	}
	switch e.Type() {
	case TypeXID, TypeXAPrepare:
		g.Reset()
		return true
	case TypeQuery:
		q := queryText(e.Body(g.checksum))
		if g.standalone {
			g.Reset()
			return true
		}
		if g.mysqlGTID {
			g.mysqlGTID = false
			if !bytes.EqualFold(q, []byte("BEGIN")) {
				g.Reset() // DDL: GTID + one statement
				return true
			}
			return false
		}
		if bytes.EqualFold(q, []byte("COMMIT")) || bytes.EqualFold(q, []byte("ROLLBACK")) ||
			bytes.HasPrefix(bytes.ToUpper(q), []byte("XA COMMIT")) || bytes.HasPrefix(bytes.ToUpper(q), []byte("XA ROLLBACK")) {
			g.Reset()
			return true
		}
	}
	return false
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
