package relay

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/replink/replink/binlog"
	"github.com/replink/replink/packet"
)

const errMasterFatalReadingBinlog = 1236

func errBinlog(msg string) error {
	return mysql.NewError(errMasterFatalReadingBinlog, msg)
}

// dump serves the relay log from req's file and position. It returns
// when the slave goes away, replink stops, or the request cannot be
// served (ERR 1236, in MySQL's words).
func (ss *session) dump(req dumpRequest) error {
	err := ss.dumpFrom(req)
	var me *mysql.MyError
	if errors.As(err, &me) {
		ss.s.log.Warn("slave dump refused", "peer", ss.peer, "server_id", ss.serverID, "file", req.file, "pos", req.pos, "error", me.Message)
	}
	return err
}

func (ss *session) dumpFrom(req dumpRequest) error {
	s := ss.s
	file, pos := req.file, req.pos
	var filter *gtidFilter
	if cs, ok := ss.vars["@slave_connect_state"]; ok {
		state, err := binlog.ParseMariaState(cs)
		if err != nil {
			return errBinlog(fmt.Sprintf("Bad GTID position %q: %v", cs, err))
		}
		if err := ss.checkGTIDStart(state); err != nil {
			return err
		}
		if file, err = ss.gtidStart(state); err != nil {
			return err
		}
		pos = 4
		startList, err := s.rlog.GTIDList(file)
		if err != nil {
			return errBinlog(fmt.Sprintf("Could not read the GTID list of '%s': %v", file, err))
		}
		filter = newGTIDFilter(state, startList)
		ss.mu.Lock()
		ss.gtid = true
		ss.mu.Unlock()
		s.log.Info("slave GTID dump", "peer", ss.peer, "slave_pos", cs, "file", file)
	}
	var mysqlGTIDs *mysqlFilter
	if req.mysqlGTIDs != nil {
		// A MySQL replica's GTID dump: with no file named, from the
		// newest file it has everything before; either way without the
		// transactions it has.
		if file == "" {
			var err error
			if file, err = s.mysqlGTIDStart(req.mysqlGTIDs); err != nil {
				return err
			}
			pos = 4
		}
		mysqlGTIDs = &mysqlFilter{have: req.mysqlGTIDs}
		ss.mu.Lock()
		ss.gtid = true
		ss.mu.Unlock()
		s.log.Info("replica GTID dump", "peer", ss.peer, "executed", req.mysqlGTIDs.String(), "file", file)
	}
	if file == "" {
		files := s.rlog.Files()
		if len(files) == 0 {
			return errBinlog("Could not find first log file name in binary log index file")
		}
		file = files[0]
	}
	if pos < 4 {
		pos = 4
	}
	if filter == nil && mysqlGTIDs == nil || req.file != "" {
		// A name of the master's: the relay file it is (failover.go).
		var err error
		if file, err = ss.resolve(file, req.serverID); err != nil {
			return err
		}
	}
	if files := s.rlog.Files(); !s.rlog.Has(file) && !ahead(binlog.MasterName(last(files)), file) {
		return errBinlog("Could not find first log file name in binary log index file")
	}
	// A client that never set @master_binlog_checksum cannot take events
	// with checksums: a master refuses it a file that has them. Any value,
	// NONE included (what mysqlbinlog and go-mysql send), means it can:
	// events go as stored. Artificial events carry a CRC32 as the client
	// announced (NONE or nothing: none), then as the file's own FDE says.
	cs, set := ss.vars["@master_binlog_checksum"]
	if !set {
		cs, set = ss.vars["@source_binlog_checksum"] // MySQL 8.0.26+ names
	}
	unaware := !set || cs == nullValue
	artificial := byte(binlog.ChecksumOff)
	if !unaware && strings.EqualFold(cs, "CRC32") {
		artificial = binlog.ChecksumCRC32
	}
	// Heartbeats only for a client that asked for them, as on a master.
	var hb time.Duration
	for _, name := range []string{"@master_heartbeat_period", "@source_heartbeat_period"} {
		if v, err := strconv.ParseInt(ss.vars[name], 10, 64); err == nil && v > 0 {
			hb = time.Duration(v)
			break
		}
	}
	if ss.serverID == 0 {
		ss.serverID = req.serverID
	}
	ss.nonBlocking = req.flags&dumpNonBlock != 0
	// The file is held open from before the slave is listed: a purge
	// either sees it open or removed it before (then ERR 1236, as for a
	// file purged on a master), never between the two.
	var r *binlog.Reader
	if s.rlog.Has(file) {
		var err error
		if r, err = s.rlog.Open(file); err != nil {
			return purgedErr(file, err)
		}
		defer func() { r.Close() }()
	}
	ss.mu.Lock()
	ss.from, ss.dumpStart = file, time.Now()
	ss.mu.Unlock()
	ss.progress(file, pos)
	s.addSlave(ss)
	defer s.removeSlave(ss)
	s.log.Info("slave dump", "peer", ss.peer, "user", ss.user, "server_id", ss.serverID, "file", file, "pos", pos)
	d := &dumper{ss: ss, r: r, file: file, pos: pos, hb: hb, filter: filter, mysqlGTIDs: mysqlGTIDs, unaware: unaware, artificial: artificial,
		from: binlog.Pos{File: file, Offset: pos}, nonBlock: req.flags&dumpNonBlock != 0,
		masterClock: ss.vars["@replink_master_clock"] == "1" && s.cfg.CaughtUpTo != nil,
		replink:     ss.vars["@replink_master_clock"] == "1"}
	// Flag 2 is Annotate_rows to a MariaDB master, heartbeats of version 2
	// to a MySQL source (which has no Annotate_rows events to leave out).
	if s.mysqlSource() {
		d.annotate, d.heartbeatV2 = true, req.flags&dumpHeartbeatV2 != 0
	} else {
		d.annotate = req.flags&dumpSendAnnotateRows != 0
	}
	// A client that does not say it knows MariaDB's GTIDs gets what a
	// master sends it: GTIDs as BEGIN, GTID_LIST and the like as dummies.
	d.capability, _ = strconv.Atoi(ss.vars["@mariadb_slave_capability"])
	err := d.run()
	if errors.Is(err, errDumpEnd) {
		// A non-blocking dump ended with EOF at the end of the relay log;
		// the connection goes back to taking commands, as on a master.
		s.log.Info("non-blocking dump ended", "peer", ss.peer, "at", fmt.Sprintf("%s:%d", d.file, d.pos))
		return nil
	}
	var me *mysql.MyError
	if errors.As(err, &me) {
		if d.streaming {
			// A reader goroutine owns the socket's read side now: answer
			// and close here rather than return to the command loop.
			_ = ss.conn.writeErr(err)
			ss.conn.Close()
		}
		return err
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		// As a master after net_write_timeout ("Got an error writing
		// communication packets"): the slave stopped reading.
		s.m.reject("timeout")
		s.log.Warn("slave stopped reading; dropped after the write timeout", "peer", ss.peer, "server_id", ss.serverID,
			"at", fmt.Sprintf("%s:%d", d.file, d.pos), "write_timeout", s.cfg.WriteTimeout)
		ss.conn.wire.Close() // the socket: a TLS close would wait on the same full buffer
		return err
	}
	s.log.Info("slave left", "peer", ss.peer, "server_id", ss.serverID, "at", fmt.Sprintf("%s:%d", d.file, d.pos), "error", err)
	ss.conn.Close()
	return err
}

// purgedErr is ERR 1236 for a file that cannot be read because it left
// the relay log (purged) or could not be opened: the master's words
// for a log it cannot open. Any other error is returned as it is.
func purgedErr(file string, err error) error {
	if errors.Is(err, binlog.ErrPurged) || errors.Is(err, fs.ErrNotExist) {
		return errBinlog(fmt.Sprintf("Could not open log file '%s': it is no longer in the relay log (purged)", binlog.MasterName(file)))
	}
	return err
}

// readErr is a master's ERR 1236 text for a failed read of its binlog:
// what went wrong, then where the dump started (first), the last event it
// read and the last byte it read.
func readErr(what, first string, firstPos uint32, file string, lastEvent, lastByte int64) string {
	return fmt.Sprintf("%s; the first event '%s' at %d, the last event read from '%s' at %d, the last byte read from '%s' at %d.",
		what, first, firstPos, file, lastEvent, file, lastByte)
}

// maxDumpPacket is the largest event a master's dump thread reads
// (MAX_MAX_ALLOWED_PACKET, which it sets for itself).
const maxDumpPacket = 1 << 30

// startErr answers a start position that is not the start of an event as
// a master does: it reads an event header there and names what it found
// (too few bytes, a length below a header's, one past max_allowed_packet
// or past the end). Where the bytes happen to look like an event whole,
// a master would send them; replink says they are bogus instead.
func startErr(r *binlog.Reader, file string, pos uint32, seekErr error) error {
	h, err := r.HeaderAt(pos)
	if err != nil {
		return errBinlog(fmt.Sprintf("Client requested master to start replication from impossible position '%s':%d: %v", file, pos, seekErr))
	}
	at := int64(pos)
	if len(h) < binlog.HeaderSize {
		return errBinlog(readErr("binlog truncated in the middle of event; consider out of disk space on master", file, pos, file, at, at))
	}
	switch size := int64(binlog.SizeOf(h)); {
	case size < binlog.HeaderSize:
		return errBinlog(readErr("bogus data in log event", file, pos, file, at, at+binlog.HeaderSize))
	case size > maxDumpPacket:
		return errBinlog(readErr("log event entry exceeded max_allowed_packet; Increase max_allowed_packet on master", file, pos, file, at, at+binlog.HeaderSize))
	case r.End() < at+size:
		return errBinlog(readErr("binlog truncated in the middle of event; consider out of disk space on master", file, pos, file, at, at+binlog.HeaderSize))
	}
	return errBinlog(readErr("bogus data in log event", file, pos, file, at, at+binlog.HeaderSize))
}

// COM_BINLOG_DUMP flags.
const (
	// dumpNonBlock (BINLOG_DUMP_NON_BLOCK): at the end of the binlog send
	// EOF and end the dump instead of waiting (mariadb-binlog without
	// --stop-never).
	dumpNonBlock = 1
	// dumpSendAnnotateRows (BINLOG_SEND_ANNOTATE_ROWS_EVENT): without it a
	// MariaDB master leaves Annotate_rows events out.
	dumpSendAnnotateRows = 2
)

// errWaitedTooLong is a wait for the relay log that passed its limit.
var errWaitedTooLong = errors.New("waited too long for the relay log")

// errDumpEnd is a non-blocking dump that reached the end.
var errDumpEnd = errors.New("non-blocking dump reached the end of the relay log")

// eofPacket ends a non-blocking dump: EOF, no warnings, autocommit.
var eofPacket = []byte{0xfe, 0, 0, 2, 0}

type dumper struct {
	ss   *session
	r    *binlog.Reader // reads file; nil until the file exists
	file string
	pos  uint32 // next offset to send from in file
	hb   time.Duration
	// filter, for GTID slaves, drops groups the slave already has;
	// mysqlGTIDs does it for a MySQL replica's GTID dump.
	filter     *gtidFilter
	mysqlGTIDs *mysqlFilter
	// rotated: the fake ROTATE was sent while waiting for the position.
	rotated bool
	// unaware: the client never set @master_binlog_checksum; from is
	// where it asked to start.
	unaware bool
	from    binlog.Pos
	// artificial is the checksum algorithm of the events replink makes up
	// (fake ROTATE, heartbeat); fileCRC says the file's events carry one.
	artificial byte
	fileCRC    bool
	// streaming: watchPeer reads the socket.
	streaming bool
	// nonBlock: end with EOF at the end of the relay log (flag 1);
	// annotate: send Annotate_rows events (flag 2).
	nonBlock, annotate bool
	// heartbeatV2: heartbeats of type 41, for a MySQL replica that asked.
	heartbeatV2 bool
	// masterClock: heartbeats carry the master's clock (a replink
	// downstream set @replink_master_clock; no other client gets it).
	masterClock bool
	// replink: the client is a replink (it set @replink_master_clock).
	replink bool
	// repeats, in a new master's files after a failover, are the
	// transactions the relay log had at the switch: never served twice
	// (a replink downstream mirrors the bytes and skips them itself);
	// repeating skips their groups.
	repeats   *binlog.BinlogState
	repeating groupSkip
	// capability is @mariadb_slave_capability (0 when unset); compat holds
	// an event rewritten for it.
	capability int
	compat     []byte
	// out batches the packets of events already available into few TLS
	// records and writes; wait flushes it before blocking.
	out *bufio.Writer
}

// wait sends what is batched and blocks until the relay log moves,
// sending a heartbeat when hb fires first.
func (d *dumper) wait(changed <-chan struct{}, hb *beat, gone <-chan struct{}, limit <-chan time.Time) error {
	if err := d.out.Flush(); err != nil {
		return err
	}
	select {
	case <-changed:
		return nil
	case <-hb.C():
		hb.t.Reset(hb.every)
		return d.heartbeat()
	case <-d.ss.closed():
		return errors.New("replink is stopping")
	case <-gone:
		return errors.New("slave closed the connection")
	case <-limit:
		return errWaitedTooLong
	}
}

// waitAvailable waits, sending heartbeats, while the slave asks for a
// position replink does not have yet: a slave that moved over from the
// master while replink was behind it. A position past the end of a
// complete file is impossible and answered with 1236.
func (d *dumper) waitAvailable(gone <-chan struct{}) error {
	rl := d.ss.s.rlog
	var hb *beat
	var limit <-chan time.Time // nil: for ever
	if w := d.ss.s.cfg.WaitWhenBehind; w > 0 {
		t := time.NewTimer(w)
		defer t.Stop()
		limit = t.C
	}
	for {
		changed := rl.Changed()
		if !rl.Has(d.file) {
			// A new master's file arrives under its sequence's path.
			if p := rl.Resolve(binlog.MasterName(d.file)); len(p) == 1 {
				d.file = p[0]
			}
		}
		if rl.Has(d.file) {
			end, complete, err := rl.Readable(d.file)
			if err != nil {
				return purgedErr(d.file, err)
			}
			if int64(d.pos) <= end {
				return nil
			}
			if complete {
				// The master's words, with its coordinates: it checks the
				// position against the file's length before reading.
				name := binlog.MasterName(d.file)
				return errBinlog(readErr("Client requested master to start replication from impossible position", name, d.pos, name, 4, 4))
			}
		}
		if d.nonBlock {
			return d.end()
		}
		if hb == nil {
			d.ss.s.log.Info("slave is ahead of replink; waiting for the relay log to reach it", "peer", d.ss.peer,
				"server_id", d.ss.serverID, "wants", fmt.Sprintf("%s:%d", d.file, d.pos), "have", rl.Durable())
			if err := d.send(d.fakeRotate()); err != nil {
				return err
			}
			d.rotated = true
			hb = newBeat(d.hb)
			defer hb.stop()
		}
		err := d.wait(changed, hb, gone, limit)
		if errors.Is(err, errWaitedTooLong) {
			want := binlog.Pos{File: d.file, Offset: d.pos}
			return errBinlog(fmt.Sprintf("replink is behind the master: the slave asked for '%s':%d and replink is %s after waiting %s "+
				"(relay.wait-when-behind); point the slave at the master or at a replink that has the position",
				d.file, d.pos, behindBy(rl.Durable(), want), d.ss.s.cfg.WaitWhenBehind))
		}
		if err != nil {
			return err
		}
	}
}

// ahead reports whether name is a file of the master's sequence past the
// newest one replink has (or any name while the relay log is still
// empty): a slave that moved from the master, or from a replink further
// on, to one that is behind. It waits for replink to get there. A name of
// another sequence, or no binlog file name at all ("../x"), is an error,
// as on a master.
func ahead(newest, name string) bool {
	b, _, ok := binlog.SplitFile(name)
	if !ok || binlog.CheckName(name) != nil {
		return false // not a binlog file name: never waited for
	}
	if newest == "" {
		return true
	}
	nb, _, nok := binlog.SplitFile(newest)
	return nok && nb == b && binlog.CompareFiles(name, newest) > 0
}

// behindBy says how far the relay log is from the slave's position.
func behindBy(have binlog.Pos, want binlog.Pos) string {
	_, h, _ := binlog.SplitFile(have.File)
	_, w, _ := binlog.SplitFile(want.File)
	switch {
	case have.File == "":
		return "replink has no binlog file yet"
	case have.File == want.File:
		return fmt.Sprintf("%d bytes behind in '%s'", int64(want.Offset)-int64(have.Offset), have.File)
	}
	return fmt.Sprintf("%d files behind, at '%s':%d", w-h, have.File, have.Offset)
}

// send batches one event packet: 0x00 then the event, split into
// packets of 16 MB as the protocol wants, numbered on from the session's
// sequence (go-mysql writes any error packet after the dump with it).
func (d *dumper) send(ev binlog.Event) error {
	if ev.Type() == binlog.TypeFormatDescription && ev.InFile() {
		// From here the file's algorithm rules, for its events and for
		// the ones replink makes up, as on a master.
		alg := binlog.FDEChecksum(ev)
		d.fileCRC, d.artificial = alg == binlog.ChecksumCRC32, alg
		if d.unaware && d.fileCRC {
			return errBinlog(fmt.Sprintf("Slave can not handle replication events with the checksum that master is configured to log; "+
				"the first event '%s' at %d, the last event read from '%s' at 4, the last byte read from '%s' at %d.",
				d.from.File, d.from.Offset, d.file, d.file, 4+len(ev)))
		}
	}
	return packet.WriteMessage(d.out, &d.ss.conn.seq, eventPrefix, ev)
}

// eventPrefix is the OK byte ahead of each event of a dump (a package
// variable: a literal in the call would allocate per event).
var eventPrefix = []byte{0x00}

// beat is a dump's heartbeat timer; without a period it never fires.
type beat struct {
	t     *time.Timer
	every time.Duration
}

func newBeat(every time.Duration) *beat {
	if every <= 0 {
		return &beat{}
	}
	return &beat{t: time.NewTimer(every), every: every}
}

// C fires when a heartbeat is due; nil (never) without a period.
func (b *beat) C() <-chan time.Time {
	if b.t == nil {
		return nil
	}
	return b.t.C
}

// reset starts the period again after something was sent.
func (b *beat) reset() {
	if b.t == nil {
		return
	}
	if !b.t.Stop() {
		select {
		case <-b.t.C:
		default:
		}
	}
	b.t.Reset(b.every)
}

func (b *beat) stop() {
	if b.t != nil {
		b.t.Stop()
	}
}

// heartbeat tells an idle slave the link is alive and where it stands.
func (d *dumper) heartbeat() error {
	at := binlog.Pos{File: binlog.MasterName(d.file), Offset: d.pos}
	hb := binlog.Heartbeat(d.ss.s.cfg.ServerID, at, d.artificial)
	if d.heartbeatV2 {
		hb = binlog.HeartbeatV2(d.ss.s.cfg.ServerID, at, d.artificial)
	}
	if d.masterClock {
		// A replink downstream measures its lag against the master, not
		// against this replink: the heartbeat carries the master time this
		// relay log is complete up to (a master sends timestamp 0).
		if t := d.ss.s.cfg.CaughtUpTo(); !t.IsZero() {
			hb = binlog.WithTimestamp(hb, uint32(t.Unix()), d.artificial)
		}
	}
	if err := d.send(hb); err != nil {
		return err
	}
	return d.out.Flush()
}

// fakeRotate names the file and position the slave is served from.
func (d *dumper) fakeRotate() binlog.Event {
	return binlog.FakeRotate(d.ss.s.cfg.ServerID, binlog.Pos{File: binlog.MasterName(d.file), Offset: d.pos}, d.artificial)
}

// sendEvent sends one event of the file at offset at, as a master sends
// it: a GTID slave's FDE without "created" while it has groups to skip,
// nothing of the groups it has, and an artificial GTID_LIST with its
// position where it is reached; MariaDB's own events (GTID, GTID_LIST,
// BINLOG_CHECKPOINT, Annotate_rows) as the client's capability and dump
// flags take them.
func (d *dumper) sendEvent(ev binlog.Event, at uint32) error {
	if d.repeats != nil && d.repeat(ev) {
		return nil
	}
	if d.mysqlGTIDs != nil {
		skip, err := d.mysqlGTIDs.skip(ev)
		if err != nil {
			return errBinlog(fmt.Sprintf("replink: event at '%s':%d: %v", d.file, at, err))
		}
		if skip {
			return nil
		}
	}
	if ev.Type() == binlog.TypeFormatDescription && d.filter.pending() {
		return d.send(binlog.FDEWithoutCreated(ev))
	}
	if d.filter != nil {
		pending := d.filter.pending()
		if d.filter.skip(ev) {
			return nil
		}
		if pending && !d.filter.pending() {
			if err := d.send(binlog.GTIDListEvent(d.ss.s.cfg.ServerID, d.filter.from, at, d.artificial)); err != nil {
				return err
			}
		}
	}
	if t := ev.Type(); t >= binlog.TypeAnnotateRows && t <= binlog.TypeMariaGTIDList {
		checksum := byte(binlog.ChecksumOff)
		if d.fileCRC {
			checksum = binlog.ChecksumCRC32
		}
		out, ok, err := binlog.ForCapability(d.compat[:0], ev, d.capability, d.annotate, checksum)
		if err != nil {
			return errBinlog(fmt.Sprintf("Failed to replace event at '%s':%d for the slave's capability %d: %v", d.file, at, d.capability, err))
		}
		if !ok {
			return nil
		}
		if len(out) > 0 && len(ev) > 0 && &out[0] != &ev[0] {
			d.compat = out // a rewrite: keep its buffer for the next
		}
		ev = out
	}
	return d.send(ev)
}

// end finishes a non-blocking dump: EOF, then errDumpEnd.
func (d *dumper) end() error {
	if err := packet.WriteMessage(d.out, &d.ss.conn.seq, eofPacket); err != nil {
		return err
	}
	if err := d.out.Flush(); err != nil {
		return err
	}
	return errDumpEnd
}

func (d *dumper) run() error {
	ss, rl := d.ss, d.ss.s.rlog
	var gone <-chan struct{}
	if !d.nonBlock {
		// A blocking dump ends the connection; a goroutine watches for
		// the slave closing its side while the dump waits. A
		// non-blocking one never waits and returns to the command loop.
		gone = ss.watchPeer()
		d.streaming, ss.streamed = true, true
	}
	d.out = bufio.NewWriterSize(ss.conn, 64<<10)
	defer d.out.Flush() // what was batched goes out before any error packet
	if err := d.waitAvailable(gone); err != nil {
		return err
	}
	if d.r == nil {
		r, err := rl.Open(d.file)
		if err != nil {
			return purgedErr(d.file, err)
		}
		d.r = r
		defer func() { r.Close() }()
	}
	r := d.r
	if err := d.enter(r, !d.rotated); err != nil {
		return err
	}
	hbTimer := newBeat(d.hb)
	defer hbTimer.stop()
	for {
		changed := rl.Changed()
		sent := false
		var err error
		for {
			var ev binlog.Event
			if ev, err = r.Next(); err != nil {
				break
			}
			if err := d.sendEvent(ev, r.Pos()-uint32(len(ev))); err != nil {
				return err
			}
			d.pos = r.Pos()
			ss.progress(d.file, d.pos)
			sent = true
		}
		if sent {
			hbTimer.reset()
		}
		var corrupt *binlog.CorruptError
		switch {
		case errors.As(err, &corrupt):
			// Never serve past a corrupt event; tell the slave why.
			ss.s.log.Error("corrupt relay log: not serving past it", "file", d.file, "pos", d.pos, "error", err,
				"peer", ss.peer, "server_id", ss.serverID)
			return errBinlog(fmt.Sprintf("replink: %v", err))
		case errors.Is(err, io.EOF): // the file is complete: on to the next
			// The next file from its start, or, past a master failover, the
			// new master's file at the first transaction the old one's
			// stream did not have (binlog.Log.NextStart).
			next, start, ok := rl.NextStart(d.file)
			if !ok {
				return purgedErr(d.file, binlog.ErrPurged)
			}
			if err := r.Reopen(next); err != nil {
				return purgedErr(next, err)
			}
			d.file, d.pos = next, start
			ss.progress(d.file, d.pos)
			// As a master does at every file switch: after the file's own
			// ROTATE (if it has one: a master that restarted has none), an
			// artificial ROTATE to the new file, then the new file's FDE.
			if err := d.enter(r, true); err != nil {
				return err
			}
			continue
		case errors.Is(err, binlog.ErrPurged):
			return purgedErr(d.file, err)
		case !errors.Is(err, binlog.ErrNoMore):
			return err
		case d.nonBlock:
			return d.end()
		}
		if err := d.wait(changed, hbTimer, gone, nil); err != nil {
			return err
		}
	}
}

// repeat reports whether ev belongs to a transaction the relay log had
// before switching to the master of the file served (d.repeats).
func (d *dumper) repeat(ev binlog.Event) bool {
	return d.repeating.skip(ev, func(g binlog.MariaGTID) bool { return binlog.Repeated(d.repeats, g) })
}

// enter starts serving r's file at d.pos, as a master starts a dump
// there: an artificial ROTATE naming it (when rotate), and past the
// start of the file its FDE first, with log_pos 0 so the slave does not
// move its position, then the events from d.pos.
func (d *dumper) enter(r *binlog.Reader, rotate bool) error {
	d.repeats, d.repeating = nil, groupSkip{}
	if !d.replink {
		d.repeats = d.ss.s.rlog.Repeats(d.file)
	}
	var fde binlog.Event
	if d.pos > 4 { // then the FDE at 4 is durable too
		var err error
		if fde, err = r.FDE(); err != nil {
			return errBinlog(fmt.Sprintf("Could not read the format description event of '%s': %v", binlog.MasterName(d.file), err))
		}
		d.repeating.groups.Add(fde) // the file's checksum algorithm, for repeat
		fde = binlog.ResentFDE(fde)
		if err := r.Seek(d.pos); err != nil {
			return startErr(r, binlog.MasterName(d.file), d.pos, err)
		}
	}
	if rotate {
		if err := d.send(d.fakeRotate()); err != nil {
			return err
		}
	}
	if fde != nil {
		if err := d.send(fde); err != nil {
			return err
		}
	}
	return nil
}

// closed fires when replink stops.
func (ss *session) closed() <-chan struct{} { return ss.done }

// progress records the slave's position after each event it was sent.
func (ss *session) progress(file string, pos uint32) {
	ss.mu.Lock()
	ss.curFile, ss.curPos = file, pos
	ss.mu.Unlock()
}

// watchPeer returns a channel closed when the slave closes its side. A
// dumping slave sends nothing, so a read returns only at close or error.
func (ss *session) watchPeer() <-chan struct{} {
	gone := make(chan struct{})
	c := ss.conn.Conn
	go func() {
		defer close(gone)
		buf := make([]byte, 512)
		for {
			if _, err := c.Read(buf); err != nil {
				return
			}
		}
	}()
	return gone
}

func last(files []string) string {
	if len(files) == 0 {
		return ""
	}
	return files[len(files)-1]
}
