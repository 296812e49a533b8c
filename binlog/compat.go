package binlog

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"strings"
)

// The values of @mariadb_slave_capability: what a MariaDB client can take.
// Below CapabilityGTID a master rewrites or leaves out the events a client
// of that age does not know.
const (
	CapabilityAnnotate         = 1 // Annotate_rows events
	CapabilityTolerateHoles    = 2 // events may be left out (gaps in log_pos)
	CapabilityBinlogCheckpoint = 3 // BINLOG_CHECKPOINT events
	CapabilityGTID             = 4 // MariaDB GTID and GTID_LIST events
)

// Header flags a master sets on an event it rewrites.
const (
	flagThreadSpecific = 0x0004 // LOG_EVENT_THREAD_SPECIFIC_F
	flagSuppressUse    = 0x0008 // LOG_EVENT_SUPPRESS_USE_F
)

// ForCapability is what a MariaDB master sends a client of capability in
// place of ev (annotate: the dump asked for Annotate_rows), following
// sql_repl.cc as captured from 10.11 (test/testdata/capture): ok false
// leaves the event out; a rewritten event is made in dst, keeps ev's size,
// timestamp, server id and log_pos (so positions stay those of the file),
// and gets a fresh CRC32 when checksum says the file has them:
//   - Annotate_rows without the flag: left out from capability 2, as is at
//     1, a dummy at 0;
//   - a GTID below 4: a standalone one (DDL) a dummy below 2, else left
//     out; one that opens a transaction a BEGIN query;
//   - BINLOG_CHECKPOINT below 3 and GTID_LIST below 4: left out from 2,
//     else a dummy.
//
// A dummy is a USER_VAR event for 25 to 33 bytes and a Query whose text
// says what it replaces from 34 on; the event's size without checksum must
// be at least 25, and a GTID to become a BEGIN 38 or 40 bytes.
func ForCapability(dst []byte, ev Event, capability int, annotate bool, checksum byte) (out Event, ok bool, err error) {
	switch t := ev.Type(); {
	case t == TypeAnnotateRows && !annotate:
		switch {
		case capability >= CapabilityTolerateHoles:
			return nil, false, nil
		case capability == CapabilityAnnotate:
			return ev, true, nil
		}
		out, err = dummy(dst, ev, checksum)
	case t == TypeMariaGTID && capability < CapabilityGTID:
		body := ev.Body(checksum)
		if len(body) >= 13 && body[12]&0x01 != 0 { // FL_STANDALONE
			if capability >= CapabilityTolerateHoles {
				return nil, false, nil
			}
			out, err = dummy(dst, ev, checksum)
		} else {
			out, err = begin(dst, ev, checksum)
		}
	case t == TypeBinlogCheckpoint && capability < CapabilityBinlogCheckpoint,
		t == TypeMariaGTIDList && capability < CapabilityGTID:
		if capability >= CapabilityTolerateHoles {
			return nil, false, nil
		}
		out, err = dummy(dst, ev, checksum)
	default:
		return ev, true, nil
	}
	return out, err == nil, err
}

// rewritten starts an event replacing ev: ev's header with typ and the
// master's rewrite flags, length bodyLen without checksum.
func rewritten(dst []byte, ev Event, typ byte) []byte {
	b := append(dst[:0], ev[:HeaderSize]...)
	b[offType] = typ
	binary.LittleEndian.PutUint16(b[offFlags:], ev.Flags()&^flagThreadSpecific|flagSuppressUse)
	return b
}

// finish adds the checksum of the rewritten event when the file has them.
func finish(b []byte, checksum byte) Event {
	if checksum == ChecksumCRC32 {
		b = binary.LittleEndian.AppendUint32(b, crc32.ChecksumIEEE(b))
	}
	return b
}

// withoutTrailer is ev's length without its checksum.
func withoutTrailer(ev Event, checksum byte) int {
	if checksum == ChecksumCRC32 {
		return len(ev) - 4
	}
	return len(ev)
}

// dummy replaces ev by an event of the same size a client ignores.
func dummy(dst []byte, ev Event, checksum byte) (Event, error) {
	n := withoutTrailer(ev, checksum)
	switch {
	case n < 25:
		return nil, fmt.Errorf("binlog: event type %d of %d bytes is too small to replace for an older client", ev.Type(), n)
	case n < 34: // USER_VAR: name length, a prefix of "!dummyvar", is NULL
		b := rewritten(dst, ev, 14)
		b = binary.LittleEndian.AppendUint32(b, uint32(n-24))
		b = append(b, "!dummyvar"[:n-24]...)
		return finish(append(b, 1), checksum), nil
	}
	// A Query with no database and a comment for text.
	text := fmt.Sprintf("# Dummy event replacing event type %d that slave cannot handle.", ev.Type())
	if w := n - 33; len(text) >= w {
		text = text[:w]
	} else {
		text += strings.Repeat(" ", w-len(text))
	}
	b := rewritten(dst, ev, TypeQuery)
	b = append(b, make([]byte, 13)...) // thread id, exec time, db length, error code, status vars length
	b = append(b, 0)                   // the empty database's terminator
	return finish(append(b, text...), checksum), nil
}

// begin replaces a GTID that opens a transaction by a BEGIN query of the
// same size.
func begin(dst []byte, ev Event, checksum byte) (Event, error) {
	b := rewritten(dst, ev, TypeQuery)
	b = append(b, make([]byte, 11)...) // thread id, exec time, db length, error code
	switch n := withoutTrailer(ev, checksum); n {
	case 38:
		b = append(b, 0, 0)
	case 40: // a commit id: status vars Q_TIME_ZONE_CODE with an empty zone
		b = append(b, 2, 0, 5, 0)
	default:
		return nil, fmt.Errorf("binlog: GTID event of %d bytes cannot be replaced by BEGIN for an older client (corrupt, or XA)", n)
	}
	b = append(b, 0)
	return finish(append(b, "BEGIN"...), checksum), nil
}
