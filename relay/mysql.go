package relay

import (
	"encoding/binary"
	"fmt"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/replink/replink/binlog"
)

// When the master is a MySQL source, replink answers as one: a MySQL 8
// replica asks for @@GLOBAL.GTID_MODE and the source's UUID, dumps with
// COM_BINLOG_DUMP_GTID and its executed GTID set, and reads dump flag 2 as
// USE_HEARTBEAT_EVENT_V2 (to a MariaDB master the same bit asks for
// Annotate_rows events). No MySQL server runs where replink is tested: what
// is written here follows MySQL's sql/rpl_source.cc and rpl_binlog_sender.cc
// as documented, and is tested with go-mysql's MySQL flavour against relay
// logs made in the tests (README, "Clients").

// mysqlSource reports whether the master is MySQL: by the version it
// greets with, or, before replink has reached it, by the newest relay
// file's FDE.
func (s *Server) mysqlSource() bool {
	if v := s.cfg.ServerVersion(); v != "" {
		return !binlog.IsMariaDB(v)
	}
	files := s.rlog.Files()
	if len(files) == 0 {
		return false
	}
	r, err := s.rlog.Open(files[len(files)-1])
	if err != nil {
		return false
	}
	defer r.Close()
	fde, err := r.FDE()
	if err != nil {
		return false
	}
	return !binlog.IsMariaDB(binlog.FDEServerVersion(fde))
}

// COM_BINLOG_DUMP_GTID flags of a MySQL replica.
const (
	// dumpHeartbeatV2 (USE_HEARTBEAT_EVENT_V2, MySQL 8.0.26+): heartbeats
	// of type 41, which carry positions past 4 GB.
	dumpHeartbeatV2 = 2
	// dumpThroughGTID (BINLOG_THROUGH_GTID): the GTID set follows.
	dumpThroughGTID = 4
)

// parseDumpGTID reads a COM_BINLOG_DUMP_GTID: flags, server id, file name
// (empty for a GTID start), position, then the replica's executed GTID
// set in MySQL's binary encoding.
func parseDumpGTID(data []byte) (dumpRequest, error) {
	if len(data) < 2+4+4 {
		return dumpRequest{}, mysql.ErrMalformPacket
	}
	req := dumpRequest{flags: binary.LittleEndian.Uint16(data), serverID: binary.LittleEndian.Uint32(data[2:])}
	n := binary.LittleEndian.Uint32(data[6:])
	rest := data[10:]
	if uint64(n)+8 > uint64(len(rest)) {
		return dumpRequest{}, mysql.ErrMalformPacket
	}
	req.file, rest = string(rest[:n]), rest[n:]
	pos := binary.LittleEndian.Uint64(rest)
	rest = rest[8:]
	if pos > 1<<32-1 {
		return dumpRequest{}, errBinlog(fmt.Sprintf("Client requested master to start replication from impossible position %d", pos))
	}
	req.pos = uint32(pos)
	set := mysql.NewMysqlGTIDSet()
	req.mysqlGTIDs = &set
	if len(rest) >= 4 {
		size := binary.LittleEndian.Uint32(rest)
		if uint64(size) != uint64(len(rest)-4) {
			return dumpRequest{}, mysql.ErrMalformPacket
		}
		if size > 0 {
			s, err := mysql.DecodeMysqlGTIDSet(rest[4:])
			if err != nil {
				return dumpRequest{}, errBinlog(fmt.Sprintf("Malformed GTID set sent by the replica: %v", err))
			}
			req.mysqlGTIDs = s
		}
	}
	return req, nil
}

// mysqlGTIDStart finds where a MySQL replica with the executed set has
// starts, as a source does: the newest relay file whose PREVIOUS_GTIDS
// the replica has all of. When even the oldest file begins after GTIDs
// the replica lacks, they are purged here: ERR 1236, in MySQL's words.
func (s *Server) mysqlGTIDStart(have *mysql.MysqlGTIDSet) (string, error) {
	files := s.rlog.Files()
	oldest := ""
	var oldestPrev *mysql.MysqlGTIDSet
	for i := len(files) - 1; i >= 0; i-- {
		prev, err := s.rlog.PreviousGTIDs(files[i])
		if err != nil {
			return "", errBinlog(fmt.Sprintf("Could not read the PREVIOUS_GTIDS of '%s': %v", files[i], err))
		}
		if prev == nil {
			continue // a file just started, or not a MySQL source's
		}
		if have.Contain(prev) {
			return files[i], nil
		}
		oldest, oldestPrev = files[i], prev
	}
	if oldest == "" {
		return "", errBinlog("Could not find first log file name in binary log index file")
	}
	return "", errBinlog(fmt.Sprintf("Cannot replicate because the source purged required binary logs. Replicate the missing transactions from elsewhere, "+
		"or provision a new replica from backup. The GTID set sent by the replica is '%s', and the oldest binary log replink has, '%s', begins after '%s'",
		have, oldest, oldestPrev))
}

// mysqlFilter drops the transactions a MySQL replica has executed, from
// the GTID event to the end of its group, as a source's dump does.
type mysqlFilter struct {
	have     *mysql.MysqlGTIDSet
	groups   binlog.GroupTracker
	skipping bool
}

func (f *mysqlFilter) skip(e binlog.Event) (bool, error) {
	switch e.Type() {
	case binlog.TypeGTID, binlog.TypeGTIDTagged:
		g, err := binlog.MySQLGTIDOf(e, f.groups.Checksum())
		if err != nil {
			return false, err
		}
		f.skipping = binlog.ContainsGTID(f.have, g)
		f.groups.Add(e)
		return f.skipping, nil
	case binlog.TypeAnonymousGTID:
		f.skipping = false
	case binlog.TypeFormatDescription, binlog.TypeRotate, binlog.TypePreviousGTIDs:
		// Never skipped: they describe the file, not a transaction.
		f.skipping = false
		f.groups.Add(e)
		return false, nil
	}
	if f.skipping {
		if f.groups.Add(e) {
			f.skipping = false
		}
		return true, nil
	}
	f.groups.Add(e)
	return false, nil
}

// mysqlExecuted is @@gtid_executed of a MySQL source: the newest relay
// file's PREVIOUS_GTIDS and every GTID logged in it since; purged is
// @@gtid_purged, the oldest file's PREVIOUS_GTIDS (what replink cannot
// serve); sawGTID says whether the newest file holds any GTID at all.
func (s *Server) mysqlExecuted() (executed, purged *mysql.MysqlGTIDSet, sawGTID bool, err error) {
	empty := mysql.NewMysqlGTIDSet()
	purged = &empty
	files := s.rlog.Files()
	if len(files) == 0 {
		set := mysql.NewMysqlGTIDSet()
		return &set, purged, false, nil
	}
	if p, err := s.rlog.PreviousGTIDs(files[0]); err != nil {
		return nil, nil, false, err
	} else if p != nil {
		purged = p
	}
	st, err := s.rlog.State()
	if err != nil {
		return nil, nil, false, err
	}
	return st.Executed, purged, st.SawGTID, nil
}

// gtidMode is a MySQL source's @@GLOBAL.GTID_MODE: as the master said,
// or, before replink has asked it, ON when its binlog holds GTIDs.
func (s *Server) gtidMode() string {
	if s.cfg.GTIDMode != nil {
		if m := s.cfg.GTIDMode(); m != "" {
			return m
		}
	}
	if _, _, saw, err := s.mysqlExecuted(); err == nil && saw {
		return "ON"
	}
	return "OFF"
}
