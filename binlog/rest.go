package binlog

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// Encryption at rest (docs/encryption-at-rest.md). The relay log itself
// knows no cipher: an AtRest (binlog/atrest's) makes a record for each
// file it encrypts, and the ciphers from those records. The log keeps
// each record beside its file (<file>.replink-key), written durably
// before any byte it covers, and runs every byte that goes to or comes
// from a relay file through the file's cipher, at its offset. Everything
// above (the writer's callers, Reader, the relay) sees plaintext at the
// master's offsets.

// SideSuffix ends the name of a relay file's record.
const SideSuffix = ".replink-key"

// AtRest makes and reads the records of encrypted relay files.
type AtRest interface {
	// New is the record of a file encrypted from offset from on: 4 for a
	// new file, the end of one written in plaintext so far.
	New(from int64) ([]byte, error)
	// Cut is record with what follows offset at encrypted afresh: the
	// file was cut back to at and is written again from there.
	Cut(record []byte, at int64) ([]byte, error)
	// Cipher is the cipher of a record; name (the relay file) is for
	// errors, which name the key id a missing or changed key has.
	Cipher(name string, record []byte) (Cipher, error)
}

// Cipher encrypts or decrypts (one operation) bytes of a relay file in
// place at their offset.
type Cipher interface {
	XORAt(p []byte, off int64)
}

// sealed is a relay file's cipher and the record it came from; c is nil
// for a file in plaintext.
type sealed struct {
	c      Cipher
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
	l.seals[name] = s
	l.mu.Unlock()
	return s, nil
}

// setRecord writes name's record durably, then uses it.
func (l *Log) setRecord(name string, rec []byte) (Cipher, error) {
	l.mu.Lock()
	rest := l.rest
	l.mu.Unlock()
	c, err := rest.Cipher(name, rec)
	if err != nil {
		return nil, fmt.Errorf("relay log %s: %w", name, err)
	}
	if err := l.writeFile(l.sidePath(name), rec, 0o640); err != nil {
		return nil, fmt.Errorf("relay log %s: record %s: %w", name, l.sidePath(name), err)
	}
	l.mu.Lock()
	l.seals[name] = sealed{c: c, record: rec}
	l.mu.Unlock()
	return c, nil
}

// startSealed is called before name is written from offset from: a file
// without a record gets one when encryption is on (a new file, or one
// written in plaintext so far), and a file cut back (cut) gets fresh
// keystream from there. It returns the cipher to write with (nil:
// plaintext).
func (l *Log) startSealed(name string, from int64, cut bool) (Cipher, error) {
	s, err := l.sealOf(name)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	rest := l.rest
	l.mu.Unlock()
	switch {
	case rest == nil:
		return s.c, nil
	case s.c == nil:
		rec, err := rest.New(from)
		if err != nil {
			return nil, fmt.Errorf("relay log %s: %w", name, err)
		}
		if from > 4 {
			l.log.Warn("relay file written before encryption at rest was on: its first bytes stay in plaintext until it is purged; what follows is encrypted",
				"file", name, "plaintext_bytes", from)
		}
		return l.setRecord(name, rec)
	case cut:
		rec, err := rest.Cut(s.record, from)
		if err != nil {
			return nil, fmt.Errorf("relay log %s: %w", name, err)
		}
		return l.setRecord(name, rec)
	}
	return s.c, nil
}

// decryptAt decrypts p, read from name at off, in place.
func (l *Log) decryptAt(name string, p []byte, off int64) error {
	s, err := l.sealOf(name)
	if err != nil || s.c == nil {
		return err
	}
	start := time.Now()
	s.c.XORAt(p, off)
	l.m.crypt("decrypt", start)
	return nil
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
	l.mu.Unlock()
	return nil
}

// sealedFile is a relay file being written through its cipher: bytes are
// encrypted before they reach the file (and the page cache), and
// decrypted as read (recovery's scan).
type sealedFile struct {
	file
	c   Cipher
	m   *Metrics
	pos int64
	buf []byte
}

// seal wraps f, positioned at pos, in c; f itself when c is nil.
func seal(f file, c Cipher, m *Metrics, pos int64) file {
	if c == nil {
		return f
	}
	return &sealedFile{file: f, c: c, m: m, pos: pos}
}

// raw is the file under f's cipher.
func raw(f file) file {
	if s, ok := f.(*sealedFile); ok {
		return s.file
	}
	return f
}

func (s *sealedFile) Write(p []byte) (int, error) {
	if cap(s.buf) < len(p) {
		s.buf = make([]byte, len(p))
	}
	b := s.buf[:len(p)]
	copy(b, p)
	start := time.Now()
	s.c.XORAt(b, s.pos)
	s.m.crypt("encrypt", start)
	n, err := s.file.Write(b)
	s.pos += int64(n)
	return n, err
}

func (s *sealedFile) Read(p []byte) (int, error) {
	n, err := s.file.Read(p)
	start := time.Now()
	s.c.XORAt(p[:n], s.pos)
	s.m.crypt("decrypt", start)
	s.pos += int64(n)
	return n, err
}

func (s *sealedFile) Seek(off int64, whence int) (int64, error) {
	p, err := s.file.Seek(off, whence)
	if err == nil {
		s.pos = p
	}
	return p, err
}

var _ io.ReadWriteSeeker = (*sealedFile)(nil)
