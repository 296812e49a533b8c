package relay

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/replink/replink/binlog"
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
		if file, err = ss.gtidStart(state); err != nil {
			return err
		}
		pos = 4
		filter = &gtidFilter{state: state}
		ss.mu.Lock()
		ss.gtid = true
		ss.mu.Unlock()
		s.log.Info("slave GTID dump", "peer", ss.peer, "slave_pos", cs, "file", file)
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
	if files := s.rlog.Files(); !s.rlog.Has(file) && !ahead(last(files), file) {
		return errBinlog("Could not find first log file name in binary log index file")
	}
	// A slave that never set @master_binlog_checksum is not checksum-aware:
	// it gets events without their CRC32 trailer. Any value, NONE included
	// (what mysqlbinlog and go-mysql send), means aware: events as stored.
	cs, set := ss.vars["@master_binlog_checksum"]
	strip := !set || cs == nullValue
	hb := 30 * time.Second
	if v, err := strconv.ParseInt(ss.vars["@master_heartbeat_period"], 10, 64); err == nil && v > 0 {
		hb = time.Duration(v)
	}
	if ss.serverID == 0 {
		ss.serverID = req.serverID
	}
	s.addReplica(ss)
	defer s.removeReplica(ss)
	s.log.Info("slave dump", "peer", ss.peer, "user", ss.user, "server_id", ss.serverID, "file", file, "pos", pos)
	ss.mu.Lock()
	ss.curFile = file
	ss.mu.Unlock()
	d := &dumper{ss: ss, file: file, pos: pos, hb: hb, filter: filter, strip: strip}
	err := d.run()
	var me *mysql.MyError
	if errors.As(err, &me) {
		if d.streaming {
			// A reader goroutine owns the socket's read side now: answer
			// and close here rather than return to the command loop.
			_ = ss.conn.WriteValue(err)
			ss.conn.Close()
		}
		return err
	}
	s.log.Info("slave left", "peer", ss.peer, "server_id", ss.serverID, "at", fmt.Sprintf("%s:%d", d.file, d.pos), "error", err)
	ss.conn.Close()
	return err
}

type dumper struct {
	ss   *session
	file string
	pos  uint32 // next offset to send from in file
	hb   time.Duration
	buf  []byte
	// filter, for GTID slaves, drops groups the slave already has.
	filter *gtidFilter
	// rotated: the fake ROTATE was sent while waiting for the position.
	rotated bool
	// strip: the slave is not checksum-aware.
	strip bool
	// streaming: watchPeer reads the socket.
	streaming bool
	// out batches the packets of events already available into few TLS
	// records and writes; wait flushes it before blocking.
	out *bufio.Writer
}

// wait sends what is batched and blocks until the relay log moves,
// sending a heartbeat when hb fires first.
func (d *dumper) wait(changed <-chan struct{}, hb *time.Timer, gone <-chan struct{}) error {
	if err := d.out.Flush(); err != nil {
		return err
	}
	select {
	case <-changed:
		return nil
	case <-hb.C:
		hb.Reset(d.hb)
		return d.heartbeat()
	case <-d.ss.closed():
		return errors.New("replink is stopping")
	case <-gone:
		return errors.New("slave closed the connection")
	}
}

// waitAvailable waits, sending heartbeats, while the slave asks for a
// position replink does not have yet: a slave that moved over from the
// master while replink was behind it. A position past the end of a
// complete file is impossible and answered with 1236.
func (d *dumper) waitAvailable(gone <-chan struct{}) error {
	rl := d.ss.s.rlog
	var hb *time.Timer
	for {
		changed := rl.Changed()
		if rl.Has(d.file) {
			end, complete, err := d.limit()
			if err != nil {
				return err
			}
			if int64(d.pos) <= end {
				return nil
			}
			if complete {
				return errBinlog(fmt.Sprintf("Client requested master to start replication from impossible position; the first event '%s' at %d, the last event read from '%s' at %d", d.file, d.pos, d.file, end))
			}
		}
		if hb == nil {
			d.ss.s.log.Info("slave is ahead of replink; waiting for the relay log to reach it", "peer", d.ss.peer,
				"server_id", d.ss.serverID, "wants", fmt.Sprintf("%s:%d", d.file, d.pos), "have", rl.Durable())
			if err := d.send(d.fakeRotate()); err != nil {
				return err
			}
			d.rotated = true
			hb = time.NewTimer(d.hb)
			defer hb.Stop()
		}
		if err := d.wait(changed, hb, gone); err != nil {
			return err
		}
	}
}

// ahead reports whether name is the file right after the newest one
// replink has (same base name, next sequence number), or any name while
// the relay log is still empty: replink may be behind the master. A name
// further off is an error, as on a master, rather than a silent wait.
func ahead(newest, name string) bool {
	if newest == "" {
		return true
	}
	i, j := strings.LastIndexByte(newest, '.'), strings.LastIndexByte(name, '.')
	if i < 0 || j < 0 || newest[:i] != name[:j] {
		return false
	}
	a, err1 := strconv.ParseUint(newest[i+1:], 10, 64)
	b, err2 := strconv.ParseUint(name[j+1:], 10, 64)
	return err1 == nil && err2 == nil && b == a+1
}

// send batches one event packet: 0x00 then the event, split into
// packets of 16 MB as the protocol wants, numbered on from the session's
// sequence (go-mysql writes any error packet after the dump with it).
func (d *dumper) send(ev []byte) error {
	if d.strip && len(ev) >= binlog.HeaderSize+4 {
		// A copy: ev may be the relay file's read buffer.
		d.buf = append(d.buf[:0], ev[:len(ev)-4]...)
		ev = d.buf
		binary.LittleEndian.PutUint32(ev[9:], uint32(len(ev)))
		if ev[4] == binlog.TypeFormatDescription {
			ev[len(ev)-1] = binlog.ChecksumOff // the FDE says NONE
		}
	}
	seq := &d.ss.conn.Sequence
	left, lead := len(ev)+1, true
	for {
		n := min(left, mysql.MaxPayloadLen)
		hdr := [5]byte{byte(n), byte(n >> 8), byte(n >> 16), *seq, 0x00}
		*seq++
		h, body := hdr[:4], n
		if lead { // the first packet carries the 0x00 ahead of the event
			h, body, lead = hdr[:5], n-1, false
		}
		if _, err := d.out.Write(h); err != nil {
			return err
		}
		if _, err := d.out.Write(ev[:body]); err != nil {
			return err
		}
		ev, left = ev[body:], left-n
		if n < mysql.MaxPayloadLen {
			return nil
		}
	}
}

// artificial makes an event replink invents (fake ROTATE, heartbeat):
// timestamp 0, the artificial flag, a CRC32 trailer.
func (d *dumper) artificial(typ byte, logPos uint32, body []byte) []byte {
	return binlog.Frame(typ, d.ss.s.cfg.ServerID, 0, body, logPos, binlog.FlagArtificial)
}

// heartbeat tells an idle slave the link is alive and where it stands.
func (d *dumper) heartbeat() error {
	if err := d.send(d.artificial(binlog.TypeHeartbeat, d.pos, []byte(d.file))); err != nil {
		return err
	}
	return d.out.Flush()
}

func (d *dumper) fakeRotate() []byte {
	body := binary.LittleEndian.AppendUint64(nil, uint64(d.pos))
	return d.artificial(binlog.TypeRotate, 0, append(body, d.file...))
}

// limit is how far d.file may be read; complete says no more will come.
func (d *dumper) limit() (end int64, complete bool, err error) {
	return d.ss.s.readable(d.file)
}

func (d *dumper) run() error {
	ss, rl := d.ss, d.ss.s.rlog
	gone := ss.watchPeer()
	d.streaming = true
	d.out = bufio.NewWriterSize(ss.conn.Conn.Conn, 64<<10)
	defer d.out.Flush() // what was batched goes out before any error packet
	if err := d.waitAvailable(gone); err != nil {
		return err
	}
	f, err := os.Open(filepath.Join(rl.Dir(), d.file))
	if err != nil {
		return errBinlog("Could not open log file")
	}
	defer func() { f.Close() }()
	end, _, err := d.limit()
	if err != nil {
		return err
	}
	r := &chunkReader{f: f}
	var fde []byte
	if d.pos > 4 { // then the FDE at 4 is durable too
		if fde, err = r.event(4, end); err != nil {
			return errBinlog(fmt.Sprintf("Could not read the format description event of '%s': %v", d.file, err))
		}
		fde = resendFDE(fde)
		if err := r.boundary(d.pos, end); err != nil {
			return errBinlog(fmt.Sprintf("Client requested master to start replication from impossible position '%s':%d: %v", d.file, d.pos, err))
		}
	}
	if !d.rotated {
		if err := d.send(d.fakeRotate()); err != nil {
			return err
		}
	}
	if fde != nil {
		// The FDE first, with log_pos 0 so the slave does not move its position.
		if err := d.send(fde); err != nil {
			return err
		}
	}
	lastWasRotate := false
	hbTimer := time.NewTimer(d.hb)
	defer hbTimer.Stop()
	for {
		changed := rl.Changed()
		end, complete, err := d.limit()
		if err != nil {
			return err
		}
		sent := false
		for int64(d.pos) < end {
			ev, err := r.event(int64(d.pos), end)
			if err != nil {
				// Never serve past a corrupt event; tell the slave why.
				ss.s.log.Error("corrupt relay log: not serving past it", "file", d.file, "pos", d.pos, "error", err,
					"peer", ss.peer, "server_id", ss.serverID)
				return errBinlog(fmt.Sprintf("replink: corrupt relay log '%s' at %d: %v", d.file, d.pos, err))
			}
			if d.filter == nil || !d.filter.skip(ev) {
				if err := d.send(ev); err != nil {
					return err
				}
			}
			d.pos += uint32(len(ev))
			ss.progress(d.file, d.pos)
			lastWasRotate = ev[4] == binlog.TypeRotate
			sent = true
		}
		if sent {
			if !hbTimer.Stop() {
				select {
				case <-hbTimer.C:
				default:
				}
			}
			hbTimer.Reset(d.hb)
		}
		if complete {
			next := rl.Next(d.file)
			f.Close()
			d.file, d.pos = next, 4
			if f, err = os.Open(filepath.Join(rl.Dir(), d.file)); err != nil {
				return err
			}
			r = &chunkReader{f: f, buf: r.buf}
			ss.mu.Lock()
			ss.curFile = d.file
			ss.mu.Unlock()
			if !lastWasRotate {
				// The master restarted without a ROTATE: tell the slave.
				if err := d.send(d.fakeRotate()); err != nil {
					return err
				}
			}
			lastWasRotate = false
			continue
		}
		if err := d.wait(changed, hbTimer, gone); err != nil {
			return err
		}
	}
}

// closed fires when replink stops.
func (ss *session) closed() <-chan struct{} { return ss.done }

// progress records the slave's position after each event it was sent.
func (ss *session) progress(file string, pos uint32) {
	ss.mu.Lock()
	ss.curFile, ss.curPos = file, pos
	ss.mu.Unlock()
}

// chunkReader reads events from a relay file that may still be growing.
// It reads with ReadAt in chunks, so nothing stale (such as an EOF seen
// when the file was shorter) is ever cached.
type chunkReader struct {
	f     *os.File
	buf   []byte
	start int64 // file offset of buf[0]
	n     int   // valid bytes in buf
}

func (c *chunkReader) fill(pos, length, end int64) error {
	if pos >= c.start && pos+length <= c.start+int64(c.n) {
		return nil
	}
	size := max(length, 256<<10)
	if pos+size > end {
		size = end - pos
	}
	if size < length {
		return fmt.Errorf("event of %d bytes at %d passes the durable end %d: corrupt relay log", length, pos, end)
	}
	if int64(cap(c.buf)) < size {
		c.buf = make([]byte, size)
	}
	n, err := c.f.ReadAt(c.buf[:size], pos)
	if int64(n) < length {
		return fmt.Errorf("short read at %d: %w", pos, err)
	}
	c.start, c.n = pos, n
	return nil
}

// event returns the event at pos (valid until the next call), checking
// its size against end and its checksum: a corrupt relay log is never served.
func (c *chunkReader) event(pos, end int64) ([]byte, error) {
	if err := c.fill(pos, binlog.HeaderSize, end); err != nil {
		return nil, err
	}
	off := pos - c.start
	size := int64(binary.LittleEndian.Uint32(c.buf[off+9:]))
	if size < binlog.HeaderSize || size > binlog.MaxEventSize || pos+size > end {
		return nil, fmt.Errorf("event size %d at %d with the durable end at %d: corrupt relay log", size, pos, end)
	}
	if err := c.fill(pos, size, end); err != nil {
		return nil, err
	}
	off = pos - c.start
	ev := c.buf[off : off+size]
	if err := binlog.VerifyChecksum(ev); err != nil {
		return nil, fmt.Errorf("corrupt relay log at %d: %w", pos, err)
	}
	return ev, nil
}

// watchPeer returns a channel closed when the slave closes its side. A
// dumping slave sends nothing, so a read returns only at close or error.
func (ss *session) watchPeer() <-chan struct{} {
	gone := make(chan struct{})
	c := ss.conn.Conn.Conn
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

// boundary walks event headers from the first event to pos, through the
// reader's chunks, and fails when pos is not the start of an event.
func (c *chunkReader) boundary(pos uint32, end int64) error {
	off := int64(4)
	for off < int64(pos) {
		if err := c.fill(off, binlog.HeaderSize, end); err != nil {
			return err
		}
		size := int64(binary.LittleEndian.Uint32(c.buf[off-c.start+9:]))
		if size < binlog.HeaderSize || off+size > end {
			return fmt.Errorf("bad event at %d", off)
		}
		off += size
	}
	if off != int64(pos) {
		return fmt.Errorf("position is inside the event that starts before it")
	}
	return nil
}

// resendFDE copies an FDE for a dump that starts mid-file, as a master
// does: log_pos 0 (the slave must not move its position), the "created"
// timestamp 0 (non-zero tells the slave the master restarted, and it would
// roll back the transaction it was receiving when the link broke), the
// in-use flag cleared, and a fresh checksum.
func resendFDE(fde []byte) []byte {
	b := append([]byte(nil), fde...)
	binary.LittleEndian.PutUint32(b[13:], 0)
	const createdOffset = binlog.HeaderSize + 2 + 50 // binlog version, server version
	if len(b) >= createdOffset+4+4 {
		binary.LittleEndian.PutUint32(b[createdOffset:], 0)
	}
	flags := binary.LittleEndian.Uint16(b[17:]) &^ binlog.FlagInUse
	binary.LittleEndian.PutUint16(b[17:], flags)
	n := len(b) - 4
	binary.LittleEndian.PutUint32(b[n:], crc32.ChecksumIEEE(b[:n]))
	return b
}

func last(files []string) string {
	if len(files) == 0 {
		return ""
	}
	return files[len(files)-1]
}
