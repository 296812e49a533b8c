package binlog

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/google/uuid"
)

// What a MySQL source's files hold and a MySQL replica is sent, beside
// MariaDB's: PREVIOUS_GTIDS (the GTID set executed before the file), GTID
// events with a UUID and a number (tagged ones from 8.3), and heartbeats
// of version 2. The GTID set encoding is go-mysql's.

// FDEServerVersion is the server version an FDE names ("8.0.36",
// "10.11.6-MariaDB-log").
func FDEServerVersion(fde Event) string {
	const at = HeaderSize + 2
	if len(fde) < at+50 {
		return ""
	}
	v := fde[at : at+50]
	if i := bytes.IndexByte(v, 0); i >= 0 {
		v = v[:i]
	}
	return string(v)
}

// IsMariaDB reports whether a server version string is MariaDB's.
func IsMariaDB(version string) bool {
	return strings.Contains(strings.ToLower(version), "mariadb")
}

// PreviousGTIDs decodes a PREVIOUS_GTIDS event: the GTID set the source
// had executed when the file began.
func PreviousGTIDs(e Event, checksum byte) (*mysql.MysqlGTIDSet, error) {
	if e.Type() != TypePreviousGTIDs {
		return nil, fmt.Errorf("event of type %d is not PREVIOUS_GTIDS", e.Type())
	}
	set, err := mysql.DecodeMysqlGTIDSet(e.Body(checksum))
	if err != nil {
		return nil, fmt.Errorf("PREVIOUS_GTIDS: %w", err)
	}
	return set, nil
}

// MySQLGTID is one MySQL GTID: source UUID, tag (empty when untagged) and
// transaction number.
type MySQLGTID struct {
	SID uuid.UUID
	Tag mysql.Tag
	GNO int64
}

func (g MySQLGTID) String() string {
	if g.Tag.String() != "" {
		return fmt.Sprintf("%s:%s:%d", g.SID, g.Tag, g.GNO)
	}
	return fmt.Sprintf("%s:%d", g.SID, g.GNO)
}

// MySQLGTIDOf decodes a MySQL GTID event (33) or tagged GTID event (42).
func MySQLGTIDOf(e Event, checksum byte) (MySQLGTID, error) {
	body := e.Body(checksum)
	var ev replication.GTIDEvent
	switch e.Type() {
	case TypeGTID:
		if len(body) < 1+16+8 {
			return MySQLGTID{}, fmt.Errorf("GTID event of %d bytes", len(body))
		}
		if err := ev.Decode(body); err != nil {
			return MySQLGTID{}, fmt.Errorf("GTID event: %w", err)
		}
	case TypeGTIDTagged:
		var tagged replication.GtidTaggedLogEvent
		if err := decodeSafely(func() error { return tagged.Decode(body) }); err != nil {
			return MySQLGTID{}, fmt.Errorf("tagged GTID event: %w", err)
		}
		ev = tagged.GTIDEvent
	default:
		return MySQLGTID{}, fmt.Errorf("event of type %d is not a MySQL GTID", e.Type())
	}
	sid, err := uuid.FromBytes(ev.SID)
	if err != nil {
		return MySQLGTID{}, fmt.Errorf("GTID event: %w", err)
	}
	return MySQLGTID{SID: sid, Tag: ev.Tag, GNO: ev.GNO}, nil
}

// decodeSafely runs a decoder of bytes from the relay log; a third-party
// decoder that indexes past a short body must not take the daemon down.
func decodeSafely(decode func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed event: %v", r)
		}
	}()
	return decode()
}

// ContainsGTID reports whether set holds g.
func ContainsGTID(set *mysql.MysqlGTIDSet, g MySQLGTID) bool {
	if set == nil {
		return false
	}
	tags, ok := (*set)[g.SID]
	if !ok {
		return false
	}
	return tags[g.Tag].Contain(mysql.IntervalSlice{{Start: g.GNO, Stop: g.GNO + 1}})
}

// PreviousGTIDs reads the PREVIOUS_GTIDS event near the start of a relay
// file of a MySQL source (nil when the file has none: a MariaDB file, or
// one just started).
func (l *Log) PreviousGTIDs(name string) (*mysql.MysqlGTIDSet, error) {
	ev, checksum, err := l.headerEvent(name, TypePreviousGTIDs, 3)
	if ev == nil || err != nil {
		return nil, err
	}
	return PreviousGTIDs(ev, checksum)
}

// Fields of a version 2 heartbeat (MySQL 8.0.26+), each a type, a length
// and a value.
const (
	hbV2End      = 0
	hbV2Filename = 1
	hbV2Position = 2
)

// HeartbeatV2 is the heartbeat a MySQL source sends a replica that set
// USE_HEARTBEAT_EVENT_V2 in its dump flags: the file name and the
// position (a length-encoded integer, so past 4 GB too) as fields, the
// position in the header's log_pos as well.
func HeartbeatV2(serverID uint32, at Pos, checksum byte) Event {
	pos := mysql.PutLengthEncodedInt(uint64(at.Offset))
	body := make([]byte, 0, 5+len(at.File)+len(pos))
	body = append(body, hbV2Filename, byte(len(at.File)))
	body = append(body, at.File...)
	body = append(body, hbV2Position, byte(len(pos)))
	body = append(body, pos...)
	body = append(body, hbV2End)
	return frame(TypeHeartbeatV2, serverID, 0, body, at.Offset, 0, checksum)
}
