package binlog

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Encryption at rest (docs/encryption-at-rest.md). The relay log itself
// knows no cipher: an AtRest (binlog/atrest's) makes a record for each
// file it encrypts, and the cipher of a record. The log keeps each record
// beside its file (<file>.replink-key), written durably before any byte
// it covers, and runs every byte that goes to or comes from a relay file
// through the file's cipher, at its offset. Everything above (the
// writer's callers, Reader, the relay) sees plaintext at the master's
// offsets.
//
// A file's format is chosen at the first event after its FDE, which stays
// in clear: a MariaDB master that encrypts its own binlog sends its
// Start_encryption event there, and with the master's key the file is
// written as the master wrote it (each event encrypted whole, the sizes in
// clear); otherwise replink's own format encrypts every byte from there
// on by its position.

// SideSuffix ends the name of a relay file's record.
const SideSuffix = ".replink-key"

// ErrNotMasterKey: the keys cannot read what the master encrypts (its
// key is not among them); replink's own format is used instead.
var ErrNotMasterKey = errors.New("the key file has not the master's binlog key")

// AtRest makes and reads the records of encrypted relay files.
type AtRest interface {
	// New is the record of a file encrypted in replink's own format from
	// offset from on.
	New(from int64) ([]byte, error)
	// Cut is a record of replink's own format with what follows offset
	// at encrypted afresh: the file was cut back to at and is written
	// again from there.
	Cut(record []byte, at int64) ([]byte, error)
	// Master is the record of a file the master encrypts: start is its
	// Start_encryption event as the file holds it, at offset at; checksum
	// is the file's algorithm and alg the master's
	// file_key_management_encryption_algorithm. ErrNotMasterKey when the
	// keys cannot read it.
	Master(start Event, at int64, checksum byte, alg string) ([]byte, error)
	// Cipher is the cipher of a record; name (the relay file) is for
	// errors, which name the key id a missing or changed key has.
	Cipher(name string, record []byte) (FileCipher, error)
}

// Cipher encrypts or decrypts (one operation) bytes of a relay file in
// place at their offset: replink's own format.
type Cipher interface {
	XORAt(p []byte, off int64)
}

// EventCipher encrypts and decrypts whole events in place at their
// offset, keeping their size in clear: the master's own format.
type EventCipher interface {
	Encrypt(ev []byte, off uint64) error
	Decrypt(ev []byte, off uint64) error
}

// FileCipher is how one relay file is encrypted: by byte (Bytes,
// replink's format), by event (Events, the master's: every event from
// From on, after the Start_encryption event at StartAt), or not at all.
type FileCipher struct {
	Bytes    Cipher
	Events   EventCipher
	StartAt  int64
	From     int64
	Checksum byte
}

// Decrypt decrypts p, the bytes of the file at offset off, in place. By
// event, off must be where an event starts, and only the events p holds
// whole are decrypted (a reader reads a cut event again from its start;
// its size, all it uses of the cut copy, is in clear); the
// Start_encryption event is given back as the master sends it in a dump
// (LOG_EVENT_IGNORABLE_F set).
func (c FileCipher) Decrypt(p []byte, off int64) {
	switch {
	case c.Bytes != nil:
		c.Bytes.XORAt(p, off)
	case c.Events != nil:
		for e := int64(0); e+HeaderSize <= int64(len(p)); {
			size := int64(SizeOf(p[e:]))
			if size < HeaderSize || e+size > int64(len(p)) {
				return
			}
			ev := Event(p[e : e+size])
			switch at := off + e; {
			case at == c.StartAt:
				copy(ev, WithFlags(ev, ev.Flags()|FlagIgnorable, c.Checksum))
			case at >= c.From:
				_ = c.Events.Decrypt(ev, uint64(at)) // a wrong result fails the event's checks
			}
			e += size
		}
	}
}

// plain reports a file in plaintext.
func (c FileCipher) plain() bool { return c.Bytes == nil && c.Events == nil }

// sealed is a relay file's cipher and the record it came from (nil for
// a file in plaintext).
type sealed struct {
	c      FileCipher
	record []byte
}

// sidePath is where name's record lives.
func (l *Log) sidePath(name string) string { return l.path(name) + SideSuffix }

// readRecord reads name's record; nil without error when it has none.
func (l *Log) readRecord(name string) ([]byte, error) {
	b, err := os.ReadFile(l.sidePath(name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// sealOf is name's cipher, read from its record the first time.
func (l *Log) sealOf(name string) (sealed, error) {
	l.mu.Lock()
	s, ok := l.seals[name]
	rest := l.rest
	l.mu.Unlock()
	if ok {
		return s, nil
	}
	rec, err := l.readRecord(name)
	if err != nil {
		return sealed{}, fmt.Errorf("relay log %s: record %s: %w", name, l.sidePath(name), err)
	}
	if rec != nil {
		if rest == nil {
			return sealed{}, fmt.Errorf("relay log %s is encrypted at rest (%s), and [relay] key-file is not set", name, l.sidePath(name))
		}
		c, err := rest.Cipher(name, rec)
		if err != nil {
			return sealed{}, fmt.Errorf("relay log %s: %w", name, err)
		}
		s = sealed{c: c, record: rec}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if newer, ok := l.seals[name]; ok {
		// The writer made the file's record meanwhile (setRecord): this
		// read of the disk is older than it.
		return newer, nil
	}
	l.seals[name] = s
	return s, nil
}

// setRecord writes name's record durably, then uses it.
func (l *Log) setRecord(name string, rec []byte) (FileCipher, error) {
	l.mu.Lock()
	rest := l.rest
	l.mu.Unlock()
	if rest == nil {
		return FileCipher{}, fmt.Errorf("relay log %s is encrypted at rest, and [relay] key-file is not set", name)
	}
	c, err := rest.Cipher(name, rec)
	if err != nil {
		return FileCipher{}, fmt.Errorf("relay log %s: %w", name, err)
	}
	if err := l.writeFile(l.sidePath(name), rec, 0o640); err != nil {
		return FileCipher{}, fmt.Errorf("relay log %s: record %s: %w", name, l.sidePath(name), err)
	}
	l.mu.Lock()
	l.seals[name] = sealed{c: c, record: rec}
	l.mu.Unlock()
	if name == l.cur.File {
		l.wrecord = rec
	}
	return c, nil
}

// MasterAlgorithm is the master's file_key_management_encryption_algorithm
// (AES_CBC, AES_CTR; "" when it does not say), which its Start_encryption
// event does not name: the replica tells it at each connect.
func (l *Log) MasterAlgorithm(alg string) {
	l.mu.Lock()
	l.masterAlg = alg
	l.mu.Unlock()
}

// seal chooses the format of the file being written, at ev, its first
// event after the FDE, and writes its record: the master's format when ev
// is a Start_encryption event and the keys read it, replink's own from
// here otherwise. Bytes already in the file (a file written before
// encryption was on) stay as they are, with a warning. It returns ev as
// it goes to the file. Callers are the writer.
func (l *Log) seal(ev Event) (Event, error) {
	l.restMu.Lock()
	defer l.restMu.Unlock()
	l.mu.Lock()
	rest, alg := l.rest, l.masterAlg
	l.mu.Unlock()
	l.wsealed = true
	if rest == nil || !l.wseal.plain() {
		return ev, nil
	}
	at := int64(l.cur.Offset)
	name := l.cur.File
	if ev.Type() == TypeStartEncryption {
		inFile := l.startEncryptionInFile(ev)
		rec, err := rest.Master(inFile, at, l.groups.Checksum(), alg)
		if err == nil {
			c, err := l.setRecord(name, rec)
			if err != nil {
				return nil, err
			}
			l.wseal = c
			return inFile, nil
		}
		if !errors.Is(err, ErrNotMasterKey) {
			return nil, fmt.Errorf("relay log %s: the master's Start_encryption event at %d: %w", name, at, err)
		}
		l.log.Warn("the master encrypts its binlog, and this relay file cannot be written as the master's (see the error); it is encrypted in replink's own format instead",
			"file", name, "algorithm", alg, "error", err)
	}
	if at > l.wfdeEnd {
		l.log.Warn("relay file written before encryption at rest was on: its first bytes stay in plaintext until it is purged; what follows is encrypted",
			"file", name, "plaintext_bytes", at)
	}
	rec, err := rest.New(at)
	if err != nil {
		return nil, fmt.Errorf("relay log %s: %w", name, err)
	}
	c, err := l.setRecord(name, rec)
	if err != nil {
		return nil, err
	}
	// What the buffer holds is written through the new cipher: it is
	// before the record's first segment, so it stays as it is. The
	// syncer fsyncs l.f under syncMu.
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	if err := l.w.Flush(); err != nil {
		return nil, fmt.Errorf("relay log %s: write: %w", name, err)
	}
	l.wseal = c
	l.f = sealFile(raw(l.f), c, l.m, at)
	l.w.Reset(l.f)
	return ev, nil
}

// startEncryptionInFile is a Start_encryption event as the master's
// file holds it: the dump sends it flagged ignorable.
func (l *Log) startEncryptionInFile(ev Event) Event {
	return WithFlags(ev, ev.Flags()&^FlagIgnorable, l.groups.Checksum())
}

// encryptEvent is ev as the file holds it, at offset at.
func (l *Log) encryptEvent(ev Event, at int64) (Event, error) {
	if l.wseal.Events == nil || at < l.wseal.From {
		return ev, nil
	}
	l.wbuf = append(l.wbuf[:0], ev...) // bufio copies it on
	out := Event(l.wbuf)
	start := time.Now()
	err := l.wseal.Events.Encrypt(out, uint64(at))
	crypt(l.m.encrypt, start)
	return out, err
}

// recutSeal gives the current file fresh keystream from offset at,
// before anything is written there again (replink's own format; the
// master's writes the same events at the same offsets again). Callers
// hold syncMu.
func (l *Log) recutSeal(at int64) error {
	if l.wseal.Bytes == nil {
		return nil
	}
	l.restMu.Lock()
	defer l.restMu.Unlock()
	l.mu.Lock()
	rest := l.rest
	l.mu.Unlock()
	if rest == nil {
		return fmt.Errorf("relay log %s is encrypted at rest, and [relay] key-file is not set", l.cur.File)
	}
	rec, err := rest.Cut(l.wrecord, at)
	if err != nil {
		return fmt.Errorf("relay log %s: %w", l.cur.File, err)
	}
	c, err := l.setRecord(l.cur.File, rec)
	if err != nil {
		return err
	}
	l.wseal = c
	l.f = sealFile(raw(l.f), c, l.m, at)
	return nil
}

// decryptAt decrypts p, read from name at off, in place, and reports
// whether the file is encrypted.
func (l *Log) decryptAt(name string, p []byte, off int64) (bool, error) {
	if !l.restOn.Load() {
		// No keys: no file is encrypted (an encrypted one stops OpenLog
		// and SetAtRest), so readers take no lock here.
		return false, nil
	}
	s, err := l.sealOf(name)
	if err != nil || s.c.plain() {
		return false, err
	}
	start := time.Now()
	s.c.Decrypt(p, off)
	crypt(l.m.decrypt, start)
	return true, nil
}

// removeOrphanRecords removes the records of files the index does not
// list: a purge or a create that a crash cut short left them.
func (l *Log) removeOrphanRecords() {
	listed := map[string]bool{}
	for _, f := range l.files {
		listed[f] = true
	}
	for _, pattern := range []string{"*" + SideSuffix, "*/*" + SideSuffix} {
		found, _ := filepath.Glob(filepath.Join(l.dir, pattern))
		for _, path := range found {
			rel, err := filepath.Rel(l.dir, strings.TrimSuffix(path, SideSuffix))
			if err != nil || listed[filepath.ToSlash(rel)] {
				continue
			}
			if err := os.Remove(path); err == nil {
				l.log.Info("removed the record of a relay file that is not in the relay log", "record", path)
			}
		}
	}
}

// checkSealed reads the record of every file in the index: a file whose
// key is missing or changed is an error at start, naming the file and
// the key id, and an encrypted file without a key file too.
func (l *Log) checkSealed() error {
	for _, name := range l.files {
		if _, err := l.sealOf(name); err != nil {
			return err
		}
	}
	return nil
}

// SetAtRest replaces the keys (SIGHUP): files made from now on use the
// new AtRest; every file in the relay log must still be readable with it,
// or nothing changes.
func (l *Log) SetAtRest(rest AtRest) error {
	l.restMu.Lock()
	defer l.restMu.Unlock()
	l.mu.Lock()
	files := append([]string(nil), l.files...)
	l.mu.Unlock()
	for _, name := range files {
		rec, err := l.readRecord(name)
		if err != nil {
			return fmt.Errorf("relay log %s: %w", name, err)
		}
		if rec == nil {
			continue
		}
		if rest == nil {
			return fmt.Errorf("relay log %s is encrypted at rest and the new configuration has no key-file", name)
		}
		if _, err := rest.Cipher(name, rec); err != nil {
			return fmt.Errorf("relay log %s: %w", name, err)
		}
	}
	l.mu.Lock()
	l.rest = rest
	l.restOn.Store(rest != nil)
	l.mu.Unlock()
	return nil
}

// sealedFile is a relay file being written through its cipher. By byte,
// bytes are encrypted before they reach the file (and the page cache);
// by event, Append encrypts each event and writes go through as they
// are. Reads (recovery's scan) are decrypted, by event one whole event at
// a time.
type sealedFile struct {
	file
	c       FileCipher
	m       *Metrics
	pos     int64
	high    int64 // the end of what was ever written through it
	buf     []byte
	pending []byte // by event: decrypted bytes not read yet
}

// sealFile wraps f, positioned at pos, in c; f itself for plaintext.
func sealFile(f file, c FileCipher, m *Metrics, pos int64) file {
	if c.Bytes == nil && c.Events == nil {
		return f
	}
	return &sealedFile{file: f, c: c, m: m, pos: pos, high: pos}
}

// raw is the file under f's cipher.
func raw(f file) file {
	if s, ok := f.(*sealedFile); ok {
		return s.file
	}
	return f
}

func (s *sealedFile) Write(p []byte) (int, error) {
	if s.c.Bytes == nil {
		n, err := s.file.Write(p)
		s.pos += int64(n)
		return n, err
	}
	if cap(s.buf) < len(p) {
		s.buf = make([]byte, len(p))
	}
	b := s.buf[:len(p)]
	copy(b, p)
	start := time.Now()
	s.c.Bytes.XORAt(b, s.pos)
	crypt(s.m.encrypt, start)
	n, err := s.file.Write(b)
	s.pos += int64(n)
	s.high = max(s.high, s.pos)
	return n, err
}

// writtenHigh is the end of what was ever written through f's cipher
// (replink's format): 0 for a file in plaintext or the master's format.
func writtenHigh(f file) int64 {
	if s, ok := f.(*sealedFile); ok && s.c.Bytes != nil {
		return s.high
	}
	return 0
}

func (s *sealedFile) Read(p []byte) (int, error) {
	if s.c.Bytes != nil {
		n, err := s.file.Read(p)
		start := time.Now()
		s.c.Bytes.XORAt(p[:n], s.pos)
		crypt(s.m.decrypt, start)
		s.pos += int64(n)
		return n, err
	}
	if len(s.pending) == 0 {
		if err := s.readEvent(); len(s.pending) == 0 {
			return 0, err
		}
	}
	n := copy(p, s.pending)
	s.pending = s.pending[n:]
	s.pos += int64(n)
	return n, nil
}

// readEvent reads the next event whole into pending, decrypted: the
// magic before the first event as it is, and a cut or damaged event as it
// is too (the scan finds it torn or corrupt). At the end pending is empty
// and the error io.EOF.
func (s *sealedFile) readEvent() error {
	if s.pos < int64(len(Magic)) {
		s.pending = make([]byte, int64(len(Magic))-s.pos)
		n, err := io.ReadFull(s.file, s.pending)
		s.pending = s.pending[:n]
		return eof(err)
	}
	hdr := make([]byte, HeaderSize)
	n, err := io.ReadFull(s.file, hdr)
	if n < HeaderSize {
		s.pending = hdr[:n]
		return eof(err)
	}
	size := SizeOf(hdr)
	if size < HeaderSize || size > MaxEventSize {
		s.pending = hdr
		return nil
	}
	ev := make([]byte, size)
	copy(ev, hdr)
	m, err := io.ReadFull(s.file, ev[HeaderSize:])
	if HeaderSize+m < size {
		s.pending = ev[:HeaderSize+m]
		return eof(err)
	}
	if s.pos >= s.c.From {
		start := time.Now()
		_ = s.c.Events.Decrypt(ev, uint64(s.pos))
		crypt(s.m.decrypt, start)
	}
	s.pending = ev
	return nil
}

func eof(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return io.EOF
	}
	return err
}

func (s *sealedFile) Seek(off int64, whence int) (int64, error) {
	p, err := s.file.Seek(off, whence)
	if err == nil {
		s.pos, s.pending = p, nil
	}
	return p, err
}

var _ io.ReadWriteSeeker = (*sealedFile)(nil)

// VerifyFile checks a relay file's bytes as plaintext (after decryption)
// with recovery's rule for a whole event (wholeEvent): each event whole,
// ending where its log_pos says, with a right CRC32 when its FDE declares
// them. The error names the offset of the first event that is not so.
func VerifyFile(data []byte) error {
	if len(data) < len(Magic) || string(data[:len(Magic)]) != string(Magic) {
		return errors.New("not a binlog file: no magic")
	}
	var g GroupTracker
	for off := int64(len(Magic)); off < int64(len(data)); {
		rest := data[off:]
		if len(rest) < HeaderSize || SizeOf(rest) < HeaderSize || SizeOf(rest) > len(rest) {
			return fmt.Errorf("event at %d is cut short (%d bytes left)", off, len(rest))
		}
		raw := rest[:SizeOf(rest)]
		if !wholeEvent(raw, off, &g) {
			return fmt.Errorf("event at %d: its size, log_pos or checksum is wrong (a wrong key, or damage)", off)
		}
		g.Add(Event(raw))
		off += int64(len(raw))
	}
	return nil
}
