package binlog

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// Readable is how far a relay file may be read by slaves: the durable end
// of the file being written, the whole of a file the log has moved past
// (complete: no more will come), and nothing past the magic of a file
// that was only just created.
func (l *Log) Readable(name string) (end int64, complete bool, err error) {
	dur := l.Durable()
	if dur.File == name {
		return int64(dur.Offset), false, nil
	}
	if i, _ := l.place(name); i < 0 {
		return 0, false, fmt.Errorf("relay log %s: %w", name, ErrPurged)
	}
	if _, _, ok := l.NextStart(name); !ok {
		// The newest file, just created; or the last of a sequence
		// whose successor's crossing point has not arrived yet.
		st, err := os.Stat(l.path(name))
		if err != nil || dur.File != "" && seqOf(dur.File) == seqOf(name) {
			return 4, false, nil
		}
		return st.Size(), false, nil
	}
	st, err := os.Stat(l.path(name))
	if err != nil {
		return 0, false, fmt.Errorf("relay log %s: %w", name, err)
	}
	return st.Size(), true, nil
}

// BytesAfter is how much durable relay log lies beyond p, across files:
// what a slave at p has yet to receive.
func (l *Log) BytesAfter(p Pos) int64 {
	dur := l.Durable()
	if p.File == "" {
		return 0
	}
	if p.File == dur.File {
		return max(int64(dur.Offset)-int64(p.Offset), 0)
	}
	var n int64
	from := int64(p.Offset)
	for f := p.File; f != "" && f != dur.File; {
		st, err := os.Stat(l.path(f))
		if err != nil {
			return n
		}
		n += max(st.Size()-from, 0)
		next, start, ok := l.NextStart(f)
		if !ok {
			return n
		}
		f, from = next, int64(start)
	}
	return n + max(int64(dur.Offset)-from, 0)
}

// GTIDList reads the GTID_LIST event near the start of a relay file: the
// MariaDB binlog state when the file began (nil when the file has none
// yet, a file just started).
func (l *Log) GTIDList(name string) (MariaState, error) {
	ev, checksum, err := l.headerEvent(name, TypeMariaGTIDList, 4)
	if ev == nil || err != nil {
		return nil, err
	}
	return GTIDList(ev, checksum)
}

// headerEvent finds the event of type typ among the first n events of a
// relay file, with the checksum algorithm its FDE declares; nil when it
// is not there (yet).
func (l *Log) headerEvent(name string, typ byte, n int) (Event, byte, error) {
	r, err := l.Open(name)
	if err != nil {
		return nil, 0, err
	}
	defer r.Close()
	var checksum byte
	for i := 0; i < n; i++ {
		ev, err := r.Next()
		if errors.Is(err, ErrNoMore) || errors.Is(err, io.EOF) {
			return nil, 0, nil
		}
		if err != nil {
			return nil, 0, err
		}
		switch ev.Type() {
		case TypeFormatDescription:
			checksum = FDEChecksum(ev)
		case typ:
			return ev, checksum, nil
		}
	}
	return nil, 0, nil
}

const (
	readerChunk = 256 << 10 // what a Reader reads at once
	readerKeep  = 1 << 20   // the most it keeps between large events
)

// ErrNoMore says a Reader has read all that is readable of its file for
// now; more may come once the log's durable end moves (Log.Changed).
var ErrNoMore = errors.New("relay log: nothing more is durable yet")

// CorruptError is a relay file that cannot be read on at Pos: a size
// that passes the durable end, a checksum that does not match. Nothing
// past it is ever served.
type CorruptError struct {
	Pos Pos
	Err error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("corrupt relay log %s at %d: %v", e.Pos.File, e.Pos.Offset, e.Err)
}

func (e *CorruptError) Unwrap() error { return e.Err }

// Reader reads the events of one relay file, which may still be growing,
// up to its readable end only (Log.Readable): what is not durable is never
// returned. It reads with ReadAt in chunks of 256 KiB, so nothing stale
// (an EOF seen when the file was shorter) is ever cached, and checks each
// event's size and checksum. Events are views of its buffer, valid until
// the next call.
type Reader struct {
	l        *Log
	name     string
	f        *os.File
	pos      int64 // next event's offset
	end      int64 // readable end, as last asked
	complete bool
	checksum byte // the file's algorithm, from its FDE; checksumUnknown before
	sealed   bool // the file is encrypted at rest (as last read)

	buf   []byte
	start int64 // file offset of buf[0]
	n     int   // valid bytes in buf
}

// Open opens a relay file for reading from its first event (offset 4).
// While the Reader is open (until Close, or Reopen to another file) the
// file is not purged; a file that is not in the index, or is being
// purged, is ErrPurged.
func (l *Log) Open(name string) (*Reader, error) {
	if err := l.pin(name); err != nil {
		return nil, err
	}
	f, err := os.Open(l.path(name))
	if err != nil {
		l.unpin(name)
		return nil, fmt.Errorf("relay log %s: %w", name, err)
	}
	return &Reader{l: l, name: name, f: f, pos: 4, end: 4, checksum: checksumUnknown}, nil
}

// checksumUnknown: the file's FDE has not been read yet.
const checksumUnknown = 0xff

// Checksum is the file's checksum algorithm as its format description
// event declares it (ChecksumCRC32 or ChecksumOff), known once the FDE
// was read (Next at offset 4, or FDE); ChecksumCRC32 before.
func (r *Reader) Checksum() byte {
	if r.checksum == checksumUnknown {
		return ChecksumCRC32
	}
	return r.checksum
}

// Name is the file being read.
func (r *Reader) Name() string { return r.name }

// End is the readable end of the file, as last asked.
func (r *Reader) End() int64 { return r.end }

// Pos is the offset of the next event.
func (r *Reader) Pos() uint32 { return uint32(r.pos) }

// Close closes the file; it may be purged from then on.
func (r *Reader) Close() error {
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	r.l.unpin(r.name)
	return err
}

// Reopen makes r read another file from offset 4, keeping its buffer.
// The new file is held before the old one is let go.
func (r *Reader) Reopen(name string) error {
	if r.f == nil {
		return fmt.Errorf("relay log %s: reader closed", r.name)
	}
	if err := r.l.pin(name); err != nil {
		return err
	}
	f, err := os.Open(r.l.path(name))
	if err != nil {
		r.l.unpin(name)
		return fmt.Errorf("relay log %s: %w", name, err)
	}
	r.f.Close()
	r.l.unpin(r.name)
	r.f, r.name, r.pos, r.end, r.complete, r.start, r.n = f, name, 4, 4, false, 0, 0
	r.checksum = checksumUnknown
	return nil
}

// refresh asks the log how far the file is readable now.
func (r *Reader) refresh() error {
	end, complete, err := r.l.Readable(r.name)
	if err != nil {
		return err
	}
	r.end, r.complete = end, complete
	return nil
}

// Next returns the next event. At the readable end it returns io.EOF
// when the file is complete (the log moved on to Log.Next), ErrNoMore
// when more may come. A damaged event is a *CorruptError.
func (r *Reader) Next() (Event, error) {
	if r.pos >= r.end {
		if err := r.refresh(); err != nil {
			return nil, err
		}
		if r.pos >= r.end {
			if r.complete {
				return nil, io.EOF
			}
			return nil, ErrNoMore
		}
	}
	ev, err := r.eventAt(r.pos)
	if err != nil {
		return nil, err
	}
	r.pos += int64(len(ev))
	return ev, nil
}

// FDE returns the format description event at offset 4, once it is
// readable, without moving r.
func (r *Reader) FDE() (Event, error) {
	if err := r.refresh(); err != nil {
		return nil, err
	}
	if r.end <= 4 {
		return nil, ErrNoMore
	}
	return r.eventAt(4)
}

// Resume moves r to pos without checking it: pos must be an event
// boundary this file was read to before, and checksum the algorithm its
// FDE declared (Checksum then), so a reader of the file's tail does not
// walk it from the start again.
func (r *Reader) Resume(pos uint32, checksum byte) {
	r.pos, r.checksum = int64(pos), checksum
}

// HeaderAt returns the event header at pos as the file has it, without
// checking it: up to HeaderSize bytes, fewer where the readable end is
// closer (none past it). A master reads a dump's start position so, and
// says what it found there.
func (r *Reader) HeaderAt(pos uint32) ([]byte, error) {
	if err := r.refresh(); err != nil {
		return nil, err
	}
	n := min(int64(HeaderSize), r.end-int64(pos))
	if n <= 0 {
		return nil, nil
	}
	b := make([]byte, n)
	if _, err := r.f.ReadAt(b, int64(pos)); err != nil {
		return nil, fmt.Errorf("relay log %s: read at %d: %w", r.name, pos, err)
	}
	if _, err := r.l.decryptAt(r.name, b, int64(pos)); err != nil {
		return nil, err
	}
	return b, nil
}

// Seek moves r to pos, which must be the start of an event within the
// readable end: the headers are walked from the first event to check it.
func (r *Reader) Seek(pos uint32) error {
	if err := r.refresh(); err != nil {
		return err
	}
	off := int64(4)
	for off < int64(pos) {
		if err := r.fill(off, HeaderSize); err != nil {
			return err
		}
		size := int64(SizeOf(r.buf[off-r.start:]))
		if size < HeaderSize || off+size > r.end {
			return fmt.Errorf("bad event at %d", off)
		}
		off += size
	}
	if off != int64(pos) {
		return errors.New("position is inside the event that starts before it")
	}
	r.pos = off
	return nil
}

// eventAt returns the event at pos, checking its size against the
// readable end and, when the file has them, its checksum: a file whose
// FDE says NONE (a master with binlog_checksum=NONE) has no trailers to
// check, and 4 bytes of its events' data would be taken for one.
func (r *Reader) eventAt(pos int64) (Event, error) {
	corrupt := func(err error) error { return &CorruptError{Pos: Pos{File: r.name, Offset: uint32(pos)}, Err: err} }
	if err := r.fill(pos, HeaderSize); err != nil {
		return nil, corrupt(err)
	}
	size := int64(SizeOf(r.buf[pos-r.start:]))
	if size < HeaderSize || size > MaxEventSize || pos+size > r.end {
		return nil, corrupt(fmt.Errorf("event size %d with the durable end at %d", size, r.end))
	}
	if err := r.fill(pos, size); err != nil {
		return nil, corrupt(err)
	}
	off := pos - r.start
	ev := Event(r.buf[off : off+size])
	crc := r.checksum != ChecksumOff
	if ev.Type() == TypeFormatDescription {
		r.checksum = FDEChecksum(ev)
		crc = r.checksum == ChecksumCRC32
	}
	if crc {
		if err := VerifyChecksum(ev); err != nil {
			return nil, corrupt(err)
		}
	}
	if r.sealed && ev.LogPos() != 0 && int64(ev.LogPos()) != pos+size {
		// Decrypted with the wrong keystream or damaged: a file without
		// checksums has this check only.
		return nil, corrupt(fmt.Errorf("decrypted event ends at %d by its log_pos, at %d by its size", ev.LogPos(), pos+size))
	}
	return ev, nil
}

// fill makes buf hold length bytes from pos, reading up to 256 KiB ahead
// but never past the readable end.
func (r *Reader) fill(pos, length int64) error {
	if pos >= r.start && pos+length <= r.start+int64(r.n) {
		return nil
	}
	size := min(max(length, readerChunk), r.end-pos)
	if size < length {
		return fmt.Errorf("event of %d bytes at %d passes the durable end %d", length, pos, r.end)
	}
	if int64(cap(r.buf)) < size || cap(r.buf) > readerKeep && size <= readerChunk {
		// Grown for one large event, the buffer is given back at the next
		// ordinary read: a slave that once received 1 GB keeps no 1 GB.
		r.buf = make([]byte, size)
	}
	n, err := r.f.ReadAt(r.buf[:size], pos)
	if int64(n) < length {
		return fmt.Errorf("short read at %d: %w", pos, err)
	}
	sealed, err := r.l.decryptAt(r.name, r.buf[:n], pos)
	if err != nil {
		return err
	}
	r.sealed = sealed
	r.start, r.n = pos, n
	return nil
}
