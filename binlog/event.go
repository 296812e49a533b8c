package binlog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Event types replink looks at; everything else passes through untouched.
const (
	TypeQuery             = 2
	TypeStop              = 3
	TypeRotate            = 4
	TypeFormatDescription = 15
	TypeXID               = 16
	TypeIncident          = 26 // always ends a group
	TypeHeartbeat         = 27
	TypeGTID              = 33 // MySQL
	TypeAnonymousGTID     = 34 // MySQL
	TypePreviousGTIDs     = 35 // MySQL
	TypeXAPrepare         = 38
	// TypeTransactionPayload is MySQL 8.0.20+'s compressed transaction
	// (binlog_transaction_compression): after its GTID, one event holds
	// the whole group, BEGIN to XID.
	TypeTransactionPayload = 40
	TypeHeartbeatV2        = 41 // MySQL 8.0.26+
	TypeGTIDTagged         = 42 // MySQL 8.3+: a GTID with a tag
	TypeAnnotateRows       = 160
	TypeBinlogCheckpoint   = 161
	TypeMariaGTID          = 162
	TypeMariaGTIDList      = 163
	// TypeStartEncryption follows the FDE in the files of a MariaDB
	// master with encrypt_binlog: every event after it is encrypted.
	TypeStartEncryption = 164
)

// Header flags.
const (
	FlagInUse      = 0x0001 // LOG_EVENT_BINLOG_IN_USE_F, on the FDE of an open binlog
	FlagArtificial = 0x0020 // LOG_EVENT_ARTIFICIAL_F, made up by the sender, not in the file
	FlagIgnorable  = 0x0080 // LOG_EVENT_IGNORABLE_F: a slave that does not know the type skips it
)

// Event is one binlog event, exactly as it is in the file and on the
// wire: the v4 header, the body and, when the file's format description
// says CRC32, a checksum trailer. This is the only place that knows the
// header's layout (all integers little-endian):
//
//	offset  size  field
//	     0     4  timestamp   seconds since the epoch, on the master
//	     4     1  type        TypeQuery, TypeRotate, ...
//	     5     4  server_id   of the server that wrote the event
//	     9     4  size        of the whole event, header and trailer included
//	    13     4  log_pos     where the next event starts in the file (0 for some artificial events)
//	    17     2  flags       FlagInUse, FlagArtificial, ...
//	    19        body ...    then the 4-byte CRC32 when the file has checksums
//
// An Event is a view of bytes it does not own (a read buffer, a relay
// file chunk): copy it to keep it.
type Event []byte

// HeaderSize is the v4 event header.
const HeaderSize = 19

const (
	offTimestamp = 0
	offType      = 4
	offServerID  = 5
	offSize      = 9
	offLogPos    = 13
	offFlags     = 17
)

// MaxEventSize bounds an event's declared size before anything is
// allocated for it (MySQL's max_allowed_packet ceiling).
const MaxEventSize = 1 << 30

// Magic starts every binlog file.
var Magic = []byte{0xfe, 0x62, 0x69, 0x6e}

// ErrShort is returned for data too short to hold what its header claims.
var ErrShort = errors.New("binlog: event truncated")

// Timestamp is the master's time when the event was written.
func (e Event) Timestamp() uint32 { return binary.LittleEndian.Uint32(e[offTimestamp:]) }

// Type is the event type.
func (e Event) Type() byte { return e[offType] }

// ServerID is the id of the server that wrote the event.
func (e Event) ServerID() uint32 { return binary.LittleEndian.Uint32(e[offServerID:]) }

// Size is the event's size as its header declares it.
func (e Event) Size() uint32 { return binary.LittleEndian.Uint32(e[offSize:]) }

// LogPos is where the next event starts in the file.
func (e Event) LogPos() uint32 { return binary.LittleEndian.Uint32(e[offLogPos:]) }

// Flags are the header flags.
func (e Event) Flags() uint16 { return binary.LittleEndian.Uint16(e[offFlags:]) }

// SizeOf reads the declared size from an event header (at least
// HeaderSize bytes), for readers that must know it before they have the
// rest of the event.
func SizeOf(header []byte) int { return int(binary.LittleEndian.Uint32(header[offSize:])) }

// ParseEvent checks that raw is one whole event (its declared size in
// range and equal to len(raw)) and returns it as an Event.
func ParseEvent(raw []byte) (Event, error) {
	if len(raw) < HeaderSize {
		return nil, fmt.Errorf("%w: %d bytes, header needs %d", ErrShort, len(raw), HeaderSize)
	}
	e := Event(raw)
	if size := e.Size(); size < HeaderSize || size > MaxEventSize {
		return nil, fmt.Errorf("binlog: event size %d out of range", size)
	}
	if int(e.Size()) != len(raw) {
		return nil, fmt.Errorf("%w: header says %d bytes, have %d", ErrShort, e.Size(), len(raw))
	}
	return e, nil
}

// Artificial reports an event the sender made up (fake ROTATE, GTID list)
// which is not part of the file.
func (e Event) Artificial() bool { return e.Flags()&FlagArtificial != 0 }

// InFile reports whether the event belongs in the binlog file, as opposed
// to what a master sends only on the wire: artificial events (the fake
// ROTATE that starts a dump, a GTID_LIST made up for a GTID dump) and
// heartbeats. This is the one rule for what the relay log stores.
func (e Event) InFile() bool {
	t := e.Type()
	return !e.Artificial() && t != TypeHeartbeat && t != TypeHeartbeatV2
}

// Checksum algorithms, as in the FDE.
const (
	ChecksumOff   = 0
	ChecksumCRC32 = 1
)

// FDEChecksum returns the checksum algorithm a format description event
// declares (the byte before its own 4-byte CRC), ChecksumOff for a
// server too old to say.
func FDEChecksum(fde Event) byte {
	// 2 version + 50 server version + 4 timestamp + 1 header length + post-header lengths.
	if len(fde) < HeaderSize+57+5 {
		return ChecksumOff
	}
	return fde[len(fde)-5]
}

// VerifyChecksum checks the CRC32 trailer of an event.
func VerifyChecksum(e Event) error {
	if len(e) < HeaderSize+4 {
		return ErrShort
	}
	n := len(e) - 4
	want := binary.LittleEndian.Uint32(e[n:])
	// The FDE's in-use flag is cleared when the checksum is computed.
	body := []byte(e[:n])
	if e.Type() == TypeFormatDescription && e.Flags()&FlagInUse != 0 {
		body = bytes.Clone(body)
		body[offFlags] &^= FlagInUse
	}
	if got := crc32.ChecksumIEEE(body); got != want {
		return fmt.Errorf("binlog: checksum mismatch: event says %08x, computed %08x", want, got)
	}
	return nil
}

// WithFlags returns a copy of e with its header flags set to flags and,
// when checksum says the file has them, its CRC32 trailer recomputed.
func WithFlags(e Event, flags uint16, checksum byte) Event {
	c := bytes.Clone(e)
	binary.LittleEndian.PutUint16(c[offFlags:], flags)
	if checksum == ChecksumCRC32 && len(c) >= HeaderSize+4 {
		n := len(c) - 4
		binary.LittleEndian.PutUint32(c[n:], crc32.ChecksumIEEE(c[:n]))
	}
	return c
}

// RotateTarget returns the next file and position a ROTATE event names.
// The trailer is stripped when it is a valid CRC32: the artificial ROTATE
// that starts a dump may come with or without one.
func RotateTarget(e Event) (string, uint64, error) {
	body := e[HeaderSize:]
	if len(body) >= 12 && VerifyChecksum(e) == nil {
		body = body[:len(body)-4]
	}
	if len(body) < 8 {
		return "", 0, fmt.Errorf("binlog: rotate event too short (%d bytes)", len(body))
	}
	return string(body[8:]), binary.LittleEndian.Uint64(body), nil
}

// Body returns the event's body without header and checksum trailer.
func (e Event) Body(checksum byte) []byte {
	b := e[HeaderSize:]
	if checksum == ChecksumCRC32 && len(b) >= 4 {
		b = b[:len(b)-4]
	}
	return b
}

// FakeRotate is the artificial ROTATE a master sends to name the file
// and position a dump continues from: timestamp 0, log_pos 0, the
// artificial flag, and a CRC32 trailer when checksum says so.
func FakeRotate(serverID uint32, at Pos, checksum byte) Event {
	body := binary.LittleEndian.AppendUint64(nil, uint64(at.Offset))
	return frame(TypeRotate, serverID, 0, append(body, at.File...), 0, FlagArtificial, checksum)
}

// Heartbeat tells an idle reader the link is alive and where it stands:
// log_pos is the offset in the file its body names. A master does not
// flag it artificial.
func Heartbeat(serverID uint32, at Pos, checksum byte) Event {
	return frame(TypeHeartbeat, serverID, 0, []byte(at.File), at.Offset, 0, checksum)
}

// WithTimestamp copies an artificial event with timestamp ts, its CRC32
// recomputed when checksum says it has one.
func WithTimestamp(e Event, ts uint32, checksum byte) Event {
	b := Event(bytes.Clone(e))
	binary.LittleEndian.PutUint32(b[offTimestamp:], ts)
	if n := len(b); checksum == ChecksumCRC32 && n >= HeaderSize+4 {
		binary.LittleEndian.PutUint32(b[n-4:], crc32.ChecksumIEEE(b[:n-4]))
	}
	return b
}

// ResentFDE copies an FDE for a dump that starts mid-file, as a master
// does: log_pos 0 (the slave must not move its position) and what
// FDEWithoutCreated does.
func ResentFDE(fde Event) Event {
	b := FDEWithoutCreated(fde)
	binary.LittleEndian.PutUint32(b[offLogPos:], 0)
	return b.withChecksum()
}

// FDEWithoutCreated copies an FDE with its "created" timestamp 0 (non-zero
// tells a slave the master restarted, and it would roll back the
// transaction it was receiving when the link broke, and drop its
// temporary tables), the in-use flag cleared, and a fresh checksum when
// the file has them: what a master sends a slave that resumes mid-file or
// has not yet reached its GTID.
func FDEWithoutCreated(fde Event) Event {
	b := Event(bytes.Clone(fde))
	const createdOffset = HeaderSize + 2 + 50 // binlog version, server version
	if len(b) >= createdOffset+4+4 {
		binary.LittleEndian.PutUint32(b[createdOffset:], 0)
	}
	binary.LittleEndian.PutUint16(b[offFlags:], b.Flags()&^FlagInUse)
	return b.withChecksum()
}

// withChecksum recomputes an FDE's CRC32 in place when it declares one.
func (e Event) withChecksum() Event {
	if FDEChecksum(e) == ChecksumCRC32 {
		n := len(e) - 4
		binary.LittleEndian.PutUint32(e[n:], crc32.ChecksumIEEE(e[:n]))
	}
	return e
}

var typeNames = map[byte]string{
	TypeQuery: "query", TypeStop: "stop", TypeRotate: "rotate", TypeFormatDescription: "format_description",
	TypeXID: "xid", 19: "table_map", 23: "write_rows_v1", 24: "update_rows_v1", 25: "delete_rows_v1",
	30: "write_rows", 31: "update_rows", 32: "delete_rows", TypeGTID: "gtid", TypeAnonymousGTID: "anonymous_gtid",
	TypePreviousGTIDs: "previous_gtids", TypeXAPrepare: "xa_prepare", 5: "intvar", 13: "rand", 14: "user_var",
	29: "rows_query", TypeTransactionPayload: "transaction_payload", TypeIncident: "incident", TypeGTIDTagged: "gtid_tagged",
	TypeAnnotateRows:     "annotate_rows",
	TypeBinlogCheckpoint: "binlog_checkpoint", TypeMariaGTID: "gtid", TypeMariaGTIDList: "gtid_list",
	164: "start_encryption", 165: "query_compressed", 166: "write_rows_compressed_v1", 167: "update_rows_compressed_v1",
	168: "delete_rows_compressed_v1", 169: "write_rows_compressed", 170: "update_rows_compressed", 171: "delete_rows_compressed",
}

// TypeName is a short, bounded label for an event type.
func TypeName(t byte) string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return "other"
}

// Frame builds an event: the v4 header with the given fields, body, and a
// CRC32 trailer.
func Frame(typ byte, serverID, timestamp uint32, body []byte, logPos uint32, flags uint16) Event {
	return frame(typ, serverID, timestamp, body, logPos, flags, ChecksumCRC32)
}

// frame is Frame with a CRC32 trailer only when checksum is ChecksumCRC32.
func frame(typ byte, serverID, timestamp uint32, body []byte, logPos uint32, flags uint16, checksum byte) Event {
	size := HeaderSize + len(body)
	if checksum == ChecksumCRC32 {
		size += 4
	}
	b := make([]byte, HeaderSize, size)
	binary.LittleEndian.PutUint32(b[offTimestamp:], timestamp)
	b[offType] = typ
	binary.LittleEndian.PutUint32(b[offServerID:], serverID)
	binary.LittleEndian.PutUint32(b[offSize:], uint32(size))
	binary.LittleEndian.PutUint32(b[offLogPos:], logPos)
	binary.LittleEndian.PutUint16(b[offFlags:], flags)
	b = append(b, body...)
	if checksum != ChecksumCRC32 {
		return b
	}
	return binary.LittleEndian.AppendUint32(b, crc32.ChecksumIEEE(b))
}
