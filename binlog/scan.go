package binlog

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/replink/replink/packet"
)

// ScanComplete reads a binlog file from its start and returns the offset
// just after the last complete transaction, with the group tracker's
// state at that point. A torn or corrupt event ends the scan there. A
// file that is empty or holds only part of the magic (a file whose
// creation was cut short) is 0; any other start that is not the magic is
// an error.
func ScanComplete(r io.Reader) (int64, GroupTracker, error) {
	sc, err := scanFile(r)
	return sc.end, sc.tracker, err
}

// scan is what scanFile found.
type scan struct {
	end     int64 // after the last complete transaction; 0 for an empty file or part of the magic
	tracker GroupTracker
	// bad is where the first event that does not parse, fit or verify
	// starts (-1 when every event is whole): a torn tail, or corruption
	// when corrupt is set.
	bad int64
	// corrupt: whole events follow the bad one, so the damage is inside
	// the file, not a write cut short at its end.
	corrupt bool
	// fdeEnd is where the file's format description event ends (0
	// before it is whole).
	fdeEnd int64
}

// scanFile reads a binlog file from its start, checking each event's
// size, log_pos and checksum, and tells a torn tail (the file ends inside
// the first bad event, or nothing whole follows it) from corruption in
// the middle (whole events follow).
func scanFile(r io.Reader) (scan, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	sc := scan{bad: -1}
	magic, err := br.Peek(len(Magic))
	if !bytes.Equal(magic, Magic[:len(magic)]) {
		return sc, fmt.Errorf("not a binlog file (magic %x)", magic)
	}
	if len(magic) < len(Magic) {
		if errors.Is(err, io.EOF) {
			return sc, nil // empty, or the magic was being written
		}
		return sc, err
	}
	_, _ = br.Discard(len(Magic))
	off := int64(len(Magic))
	sc.end = off
	var g GroupTracker
	sawFDE := false
	var big []byte // for events larger than br's buffer
	for {
		hdr, err := br.Peek(HeaderSize)
		if len(hdr) == 0 && errors.Is(err, io.EOF) {
			return sc, nil // the file ends on an event boundary
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return sc, err
		}
		size := 0
		if err == nil {
			size = SizeOf(hdr)
		}
		var raw []byte
		ok := size >= HeaderSize && size <= MaxEventSize
		if ok {
			// Events are read in place; a larger one is gathered as its
			// bytes arrive, so a torn header claiming a huge size costs
			// nothing.
			if size <= br.Size() {
				raw, err = br.Peek(size)
			} else {
				big, err = packet.AppendRead(big[:0], br, size)
				raw = big
			}
			if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				return sc, err
			}
			ok = err == nil && wholeEvent(raw, off, &g)
		}
		if !ok {
			sc.bad = off
			crcOff := sawFDE && g.Checksum() != ChecksumCRC32
			if size > br.Size() && len(raw) > 0 {
				// raw was read out of br: look in it, then after it.
				found := findEventIn(raw[1:], off+1, crcOff)
				if !found {
					found, err = findEvent(br, off+int64(len(raw)), crcOff)
				}
				sc.corrupt = found
				return sc, err
			}
			_, _ = br.Discard(1)
			sc.corrupt, err = findEvent(br, off+1, crcOff)
			return sc, err
		}
		ev := Event(raw)
		if size <= br.Size() {
			_, _ = br.Discard(size)
		}
		off += int64(size)
		if ev.Type() == TypeFormatDescription {
			if !sawFDE {
				sc.fdeEnd = off
			}
			sawFDE = true
		}
		if g.Add(ev) {
			sc.end, sc.tracker = off, g
		}
	}
}

// wholeEvent checks an event read at off: it parses, its log_pos (when
// set) is its own end, and its checksum verifies when the file has them.
func wholeEvent(raw []byte, off int64, g *GroupTracker) bool {
	ev, err := ParseEvent(raw)
	if err != nil || g.Verify(ev) != nil {
		return false
	}
	lp := ev.LogPos()
	return lp == 0 || int64(lp) == off+int64(len(raw))
}

// eventStartsAt reports whether b (the bytes at file offset off) starts
// with a whole event: a size in range, a log_pos that is its own end, and
// a checksum that verifies unless the file has none; the event must lie
// whole in b.
func eventStartsAt(b []byte, off int64, crcOff bool) bool {
	if len(b) < HeaderSize {
		return false
	}
	size := SizeOf(b)
	if size < HeaderSize || size > len(b) || int64(Event(b).LogPos()) != off+int64(size) {
		return false
	}
	return crcOff || VerifyChecksum(Event(b[:size])) == nil
}

// findEventIn looks for a whole event starting anywhere in b, which is at
// file offset off.
func findEventIn(b []byte, off int64, crcOff bool) bool {
	for i := range b {
		if eventStartsAt(b[i:], off+int64(i), crcOff) {
			return true
		}
	}
	return false
}

// findEvent looks for a whole event starting anywhere in the rest of br,
// which is at file offset off: evidence that what came before it is
// damage inside the file rather than its torn end.
func findEvent(br *bufio.Reader, off int64, crcOff bool) (bool, error) {
	for ; ; off++ {
		hdr, err := br.Peek(HeaderSize)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return false, nil
			}
			return false, err
		}
		if size := SizeOf(hdr); size >= HeaderSize && size <= MaxEventSize && int64(Event(hdr).LogPos()) == off+int64(size) {
			if size > br.Size() {
				return true, nil // too large to check here; its header is evidence enough
			}
			if ev, err := br.Peek(size); err == nil && eventStartsAt(ev, off, crcOff) {
				return true, nil
			}
		}
		_, _ = br.Discard(1)
	}
}
