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
	TypeHeartbeat         = 27
	TypeGTID              = 33 // MySQL
	TypeAnonymousGTID     = 34 // MySQL
	TypePreviousGTIDs     = 35 // MySQL
	TypeXAPrepare         = 38
	TypeHeartbeatV2       = 41 // MySQL 8.0.26+
	TypeAnnotateRows      = 160
	TypeBinlogCheckpoint  = 161
	TypeMariaGTID         = 162
	TypeMariaGTIDList     = 163
)

// Header flags.
const (
	FlagInUse      = 0x0001 // LOG_EVENT_BINLOG_IN_USE_F, on the FDE of an open binlog
	FlagArtificial = 0x0020 // LOG_EVENT_ARTIFICIAL_F, made up by the sender, not in the file
)

// HeaderSize is the v4 event header: timestamp, type, server_id, size, log_pos, flags.
const HeaderSize = 19

// MaxEventSize bounds an event's declared size before anything is
// allocated for it (MySQL's max_allowed_packet ceiling).
const MaxEventSize = 1 << 30

// Magic starts every binlog file.
var Magic = []byte{0xfe, 0x62, 0x69, 0x6e}

// Header is the common event header.
type Header struct {
	Timestamp uint32
	Type      byte
	ServerID  uint32
	Size      uint32
	LogPos    uint32 // end position of the event in its file (0 for some artificial events)
	Flags     uint16
}

// ErrShort is returned for data too short to hold what its header claims.
var ErrShort = errors.New("binlog: event truncated")

// ParseHeader reads an event header and checks its size against data.
func ParseHeader(data []byte) (Header, error) {
	if len(data) < HeaderSize {
		return Header{}, fmt.Errorf("%w: %d bytes, header needs %d", ErrShort, len(data), HeaderSize)
	}
	h := Header{
		Timestamp: binary.LittleEndian.Uint32(data[0:]),
		Type:      data[4],
		ServerID:  binary.LittleEndian.Uint32(data[5:]),
		Size:      binary.LittleEndian.Uint32(data[9:]),
		LogPos:    binary.LittleEndian.Uint32(data[13:]),
		Flags:     binary.LittleEndian.Uint16(data[17:]),
	}
	if h.Size < HeaderSize || h.Size > MaxEventSize {
		return h, fmt.Errorf("binlog: event size %d out of range", h.Size)
	}
	if int(h.Size) != len(data) {
		return h, fmt.Errorf("%w: header says %d bytes, have %d", ErrShort, h.Size, len(data))
	}
	return h, nil
}

// Event is one raw event as the master sent it (checksum included).
type Event struct {
	Header
	Raw []byte
}

// ParseEvent wraps raw event bytes.
func ParseEvent(raw []byte) (Event, error) {
	h, err := ParseHeader(raw)
	if err != nil {
		return Event{}, err
	}
	return Event{Header: h, Raw: raw}, nil
}

// Artificial reports an event the sender made up (fake ROTATE, GTID list)
// which is not part of the file.
func (e Event) Artificial() bool { return e.Flags&FlagArtificial != 0 }

// Checksum algorithms, as in the FDE.
const (
	ChecksumOff   = 0
	ChecksumCRC32 = 1
)

// FDEChecksum returns the checksum algorithm a format description event
// declares (the byte before its own 4-byte CRC), ChecksumOff for a
// server too old to say.
func FDEChecksum(fde []byte) byte {
	// 2 version + 50 server version + 4 timestamp + 1 header length + post-header lengths.
	if len(fde) < HeaderSize+57+5 {
		return ChecksumOff
	}
	return fde[len(fde)-5]
}

// VerifyChecksum checks the CRC32 trailer of an event.
func VerifyChecksum(raw []byte) error {
	if len(raw) < HeaderSize+4 {
		return ErrShort
	}
	n := len(raw) - 4
	want := binary.LittleEndian.Uint32(raw[n:])
	// The FDE's in-use flag is cleared when the checksum is computed.
	body := raw[:n]
	if raw[4] == TypeFormatDescription && raw[17]&FlagInUse != 0 {
		body = bytes.Clone(body)
		body[17] &^= FlagInUse
	}
	if got := crc32.ChecksumIEEE(body); got != want {
		return fmt.Errorf("binlog: checksum mismatch: event says %08x, computed %08x", want, got)
	}
	return nil
}

// RotateTarget returns the next file and position a ROTATE event names.
// The trailer is stripped when it is a valid CRC32: the artificial ROTATE
// that starts a dump may come with or without one.
func RotateTarget(e Event) (string, uint64, error) {
	body := e.Raw[HeaderSize:]
	if len(body) >= 12 && VerifyChecksum(e.Raw) == nil {
		body = body[:len(body)-4]
	}
	if len(body) < 8 {
		return "", 0, fmt.Errorf("binlog: rotate event too short (%d bytes)", len(body))
	}
	return string(body[8:]), binary.LittleEndian.Uint64(body), nil
}

// Body returns the event's body without header and checksum trailer.
func (e Event) Body(checksum byte) []byte {
	b := e.Raw[HeaderSize:]
	if checksum == ChecksumCRC32 && len(b) >= 4 {
		b = b[:len(b)-4]
	}
	return b
}

var typeNames = map[byte]string{
	TypeQuery: "query", TypeStop: "stop", TypeRotate: "rotate", TypeFormatDescription: "format_description",
	TypeXID: "xid", 19: "table_map", 23: "write_rows_v1", 24: "update_rows_v1", 25: "delete_rows_v1",
	30: "write_rows", 31: "update_rows", 32: "delete_rows", TypeGTID: "gtid", TypeAnonymousGTID: "anonymous_gtid",
	TypePreviousGTIDs: "previous_gtids", TypeXAPrepare: "xa_prepare", 5: "intvar", 13: "rand", 14: "user_var",
	29: "rows_query", 40: "transaction_payload", TypeAnnotateRows: "annotate_rows",
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
func Frame(typ byte, serverID, timestamp uint32, body []byte, logPos uint32, flags uint16) []byte {
	size := HeaderSize + len(body) + 4
	b := make([]byte, HeaderSize, size)
	binary.LittleEndian.PutUint32(b[0:], timestamp)
	b[4] = typ
	binary.LittleEndian.PutUint32(b[5:], serverID)
	binary.LittleEndian.PutUint32(b[9:], uint32(size))
	binary.LittleEndian.PutUint32(b[13:], logPos)
	binary.LittleEndian.PutUint16(b[17:], flags)
	b = append(b, body...)
	return binary.LittleEndian.AppendUint32(b, crc32.ChecksumIEEE(b))
}
