package relay

import (
	"errors"
	"io"
	"sync"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/replink/replink/binlog"
)

// headState is the binlog state of the durable relay log, as the GTID
// variables and a GTID slave's check need it: a MariaDB master's
// GTID_LIST of the newest file and every GTID since, with the master's
// server id; a MySQL source's PREVIOUS_GTIDS and every GTID since. It is
// kept as the relay log grows: each look reads only the events made
// durable since the last one (none, most of the time), where reading the
// newest file whole per reference cost 12.5 ms at 82 MB.
type headState struct {
	mu       sync.Mutex
	file     string // the newest file, read up to off
	off      uint32
	checksum byte // file's algorithm, once its FDE was read

	maria    *binlog.BinlogState
	masterID uint32
	executed *mysql.MysqlGTIDSet
	sawGTID  bool
	// events counts the events taken in (tests: the work done).
	events int
}

// snapshot is a copy of the state, read up to the durable end.
type snapshot struct {
	maria    *binlog.BinlogState
	masterID uint32
	executed *mysql.MysqlGTIDSet
	sawGTID  bool
}

// look brings the state up to the durable end of rl's newest file and
// returns a copy of it.
func (h *headState) look(rl *binlog.Log) (snapshot, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	files := rl.Files()
	newest := last(files)
	if dur := rl.Durable(); newest != h.file || h.maria == nil || dur.File == newest && dur.Offset < h.off {
		h.reset(newest)
	}
	if newest != "" {
		if dur := rl.Durable(); dur.File != newest || dur.Offset != h.off {
			if err := h.read(rl); err != nil {
				h.reset("") // read again from the start next time
				return snapshot{}, err
			}
		}
	}
	return snapshot{maria: h.maria.Clone(), masterID: h.masterID, executed: h.executed.Clone().(*mysql.MysqlGTIDSet), sawGTID: h.sawGTID}, nil
}

func (h *headState) reset(file string) {
	set := mysql.NewMysqlGTIDSet()
	h.file, h.off, h.checksum = file, 4, 0
	h.maria, h.masterID, h.executed, h.sawGTID = binlog.NewBinlogState(nil), 0, &set, false
}

// read takes in the events of h.file from h.off to its durable end.
func (h *headState) read(rl *binlog.Log) error {
	r, err := rl.Open(h.file)
	if err != nil {
		return err
	}
	defer r.Close()
	if h.off > 4 {
		r.Resume(h.off, h.checksum)
	}
	for {
		ev, err := r.Next()
		if errors.Is(err, binlog.ErrNoMore) || errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := h.add(ev); err != nil {
			return err
		}
		h.off = r.Pos()
		h.events++
	}
}

// add takes in one event of the newest file.
func (h *headState) add(ev binlog.Event) error {
	switch ev.Type() {
	case binlog.TypeFormatDescription:
		h.checksum, h.masterID = binlog.FDEChecksum(ev), ev.ServerID()
	case binlog.TypeMariaGTIDList:
		list, err := binlog.GTIDListEntries(ev, h.checksum)
		if err != nil {
			return err
		}
		for _, g := range list {
			h.maria.Add(g)
		}
	case binlog.TypeMariaGTID:
		if g, ok := binlog.GTIDOf(ev, h.checksum); ok {
			h.maria.Add(g)
		}
	case binlog.TypePreviousGTIDs:
		prev, err := binlog.PreviousGTIDs(ev, h.checksum)
		if err != nil {
			return err
		}
		h.executed = prev
		h.sawGTID = h.sawGTID || !prev.IsEmpty()
	case binlog.TypeGTID, binlog.TypeGTIDTagged:
		g, err := binlog.MySQLGTIDOf(ev, h.checksum)
		if err != nil {
			return err
		}
		h.executed.AddGTIDWithTag(g.SID, g.Tag, g.GNO)
		h.sawGTID = true
	}
	return nil
}
