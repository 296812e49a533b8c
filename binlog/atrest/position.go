package atrest

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/replink/replink/binlog"
)

// replink's own format, for a master that does not encrypt its binlog
// (docs/encryption-at-rest.md, "Format 2"): every byte of a relay file
// from offset 4 on is XORed with AES-CTR keystream addressed by its file
// position, so sizes and offsets stay the master's and any range of
// bytes decrypts on its own. The counter block of position p is
// nonce (8 bytes) ‖ big-endian p/16; a file position never shares
// keystream with another. The nonce and the key id are in a record kept
// beside the relay file (SideSuffix), written before the bytes it covers.

// SideSuffix ends the name of a relay file's record: <file>.replink-key.
const SideSuffix = binlog.SideSuffix

// NonceLen is the length of a segment's nonce.
const NonceLen = 8

// recordMagic is the first line of a record, with its version.
const recordMagic = "replink-atrest 1"

// The formats a record names: replink's own, and the master's with its
// two algorithms.
const (
	cipherPositions = "aes-ctr-pos"
	cipherMasterCBC = "mariadb-aes-cbc"
	cipherMasterCTR = "mariadb-aes-ctr"
)

// Segment: from offset From on, bytes are encrypted with Nonce, up to
// the next segment's From. A file cut back and written again from c gets
// a new segment at c, so no position is ever encrypted twice with one
// keystream. Bytes before the first segment are plaintext: a file written
// before encryption was turned on, continued encrypted.
type Segment struct {
	From  int64
	Nonce [NonceLen]byte
}

// Record is what a relay file's side file holds: the key's id, a check
// value that tells a changed key from the one the file was written with,
// and the segments (replink's own format), or where the master's
// encryption starts, with its nonce and algorithm (the master's format).
type Record struct {
	Format   string // cipherPositions (the default), cipherMasterCBC, cipherMasterCTR
	KeyID    uint32
	Check    [8]byte
	Segments []Segment
	// The master's format: the Start_encryption event at Start, encrypted
	// events from From, the file's checksum algorithm and the nonce.
	Start, From int64
	Checksum    byte
	Nonce       [NonceSize]byte
}

// master reports a record of the master's own format.
func (r Record) master() bool { return r.Format == cipherMasterCBC || r.Format == cipherMasterCTR }

// KeyCheck is the check value of key: the first 8 bytes of
// HMAC-SHA256(key, "replink key check"). It says whether a key is the one
// a file was written with, and nothing about the key.
func KeyCheck(key []byte) [8]byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("replink key check"))
	var c [8]byte
	copy(c[:], m.Sum(nil))
	return c
}

// NewRecord starts a record for a new file (or for the rest of a file
// written in plaintext so far) encrypted with key id from offset from.
func NewRecord(keys Keys, id uint32, from int64) (Record, error) {
	key, err := keys.Key(id)
	if err != nil {
		return Record{}, err
	}
	r := Record{KeyID: id, Check: KeyCheck(key)}
	return r.Cut(from)
}

// Cut returns the record with a new segment from offset at, for a file
// cut back to at and written again from there; segments past at are
// dropped.
func (r Record) Cut(at int64) (Record, error) {
	var s Segment
	if _, err := rand.Read(s.Nonce[:]); err != nil {
		return Record{}, fmt.Errorf("a nonce for offset %d: %w", at, err)
	}
	s.From = at
	out := Record{Format: r.Format, KeyID: r.KeyID, Check: r.Check}
	for _, old := range r.Segments {
		if old.From < at {
			out.Segments = append(out.Segments, old)
		}
	}
	out.Segments = append(out.Segments, s)
	return out, nil
}

// Marshal writes the record as its side file holds it.
func (r Record) Marshal() []byte {
	var b bytes.Buffer
	c := r.Format
	if c == "" {
		c = cipherPositions
	}
	fmt.Fprintf(&b, "%s\ncipher %s\nkey-id %d\nkey-check %s\n", recordMagic, c, r.KeyID, hex.EncodeToString(r.Check[:]))
	if r.master() {
		fmt.Fprintf(&b, "start %d\nfrom %d\nchecksum %s\nnonce %s\n", r.Start, r.From, checksumName(r.Checksum), hex.EncodeToString(r.Nonce[:]))
	}
	for _, s := range r.Segments {
		fmt.Fprintf(&b, "segment %d %s\n", s.From, hex.EncodeToString(s.Nonce[:]))
	}
	return b.Bytes()
}

// ParseRecord reads a side file; name is for errors.
func ParseRecord(name string, data []byte) (Record, error) {
	var r Record
	bad := func(line int, format string, args ...any) (Record, error) {
		return Record{}, fmt.Errorf("relay file record %s: line %d: %s", name, line, fmt.Sprintf(format, args...))
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	line, seen := 0, map[string]bool{}
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if line == 1 {
			if text != recordMagic {
				return bad(1, "%q, want %q", text, recordMagic)
			}
			continue
		}
		f := strings.Fields(text)
		if len(f) == 0 {
			continue
		}
		switch {
		case f[0] == "cipher" && len(f) == 2:
			if f[1] != cipherPositions && f[1] != cipherMasterCBC && f[1] != cipherMasterCTR {
				return bad(line, "cipher %q is not one this replink reads (%s, %s, %s)", f[1], cipherPositions, cipherMasterCBC, cipherMasterCTR)
			}
			r.Format = f[1]
		case (f[0] == "start" || f[0] == "from") && len(f) == 2:
			n, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil || n < 4 {
				return bad(line, "%q", text)
			}
			if f[0] == "start" {
				r.Start = n
			} else {
				r.From = n
			}
		case f[0] == "checksum" && len(f) == 2:
			switch f[1] {
			case "crc32":
				r.Checksum = binlog.ChecksumCRC32
			case "none":
				r.Checksum = binlog.ChecksumOff
			default:
				return bad(line, "checksum %q", f[1])
			}
		case f[0] == "nonce" && len(f) == 2:
			n, err := hex.DecodeString(f[1])
			if err != nil || len(n) != NonceSize {
				return bad(line, "nonce %q", f[1])
			}
			copy(r.Nonce[:], n)
		case f[0] == "key-id" && len(f) == 2:
			id, err := strconv.ParseUint(f[1], 10, 32)
			if err != nil || id == 0 {
				return bad(line, "key-id %q", f[1])
			}
			r.KeyID = uint32(id)
		case f[0] == "key-check" && len(f) == 2:
			c, err := hex.DecodeString(f[1])
			if err != nil || len(c) != len(r.Check) {
				return bad(line, "key-check %q", f[1])
			}
			copy(r.Check[:], c)
		case f[0] == "segment" && len(f) == 3:
			from, err := strconv.ParseInt(f[1], 10, 64)
			n, err2 := hex.DecodeString(f[2])
			if err != nil || err2 != nil || len(n) != NonceLen || from < 4 {
				return bad(line, "segment %q", text)
			}
			if k := len(r.Segments); k > 0 && r.Segments[k-1].From >= from {
				return bad(line, "segment at %d does not follow the one at %d", from, r.Segments[k-1].From)
			}
			s := Segment{From: from}
			copy(s.Nonce[:], n)
			r.Segments = append(r.Segments, s)
		default:
			return bad(line, "%q", text)
		}
		seen[f[0]] = true
	}
	need := []string{"cipher", "key-id", "key-check", "segment"}
	if r.master() {
		need = []string{"cipher", "key-id", "key-check", "start", "from", "checksum", "nonce"}
	}
	for _, k := range need {
		if !seen[k] {
			return Record{}, fmt.Errorf("relay file record %s: no %s line", name, k)
		}
	}
	return r, nil
}

// ErrKeyChanged: the key file has a key under the record's id, but not
// the one the file was written with.
var ErrKeyChanged = errors.New("the key with that id is not the one the file was written with (its key-check differs)")

// PositionCipher encrypts and decrypts a relay file's bytes at their
// positions, by its record.
type PositionCipher struct {
	block cipher.Block
	segs  []Segment
}

// Cipher makes the record's cipher with its key from keys: an error names
// the key id when the key is missing or is not the one the file was
// written with.
func (r Record) Cipher(keys Keys) (*PositionCipher, error) {
	key, err := r.key(keys)
	if err != nil {
		return nil, err
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("key id %d: %w", r.KeyID, err)
	}
	return &PositionCipher{block: b, segs: slices.Clone(r.Segments)}, nil
}

// key is the record's key from keys: an error when keys lack its id or
// hold another key under it than the file was written with.
func (r Record) key(keys Keys) ([]byte, error) {
	key, err := keys.Key(r.KeyID)
	if err != nil {
		return nil, err
	}
	if KeyCheck(key) != r.Check {
		return nil, ErrKeyChanged // the caller names the file and the key id
	}
	return key, nil
}

// XORAt encrypts or decrypts (the same operation) p, the bytes of the
// file at offset off, in place. Bytes before the first segment are left
// as they are.
func (c *PositionCipher) XORAt(p []byte, off int64) {
	for len(p) > 0 {
		i := c.segmentAt(off)
		n := int64(len(p))
		if i+1 < len(c.segs) && c.segs[i+1].From-off < n {
			n = c.segs[i+1].From - off
		}
		if i < 0 {
			// plaintext up to the first segment
			if len(c.segs) > 0 && c.segs[0].From-off < n {
				n = c.segs[0].From - off
			}
		} else {
			c.xor(p[:n], off, c.segs[i].Nonce)
		}
		p, off = p[n:], off+n
	}
}

// segmentAt is the index of the segment holding off, -1 before the first.
func (c *PositionCipher) segmentAt(off int64) int {
	i, _ := slices.BinarySearchFunc(c.segs, off, func(s Segment, off int64) int {
		switch {
		case s.From < off:
			return -1
		case s.From > off:
			return 1
		}
		return 0
	})
	if i < len(c.segs) && c.segs[i].From == off {
		return i
	}
	return i - 1
}

// xor applies the keystream of nonce at positions off.. to p.
func (c *PositionCipher) xor(p []byte, off int64, nonce [NonceLen]byte) {
	var iv [aes.BlockSize]byte
	copy(iv[:], nonce[:])
	binary.BigEndian.PutUint64(iv[NonceLen:], uint64(off)/aes.BlockSize)
	s := cipher.NewCTR(c.block, iv[:])
	if skip := int(off % aes.BlockSize); skip > 0 {
		var waste [aes.BlockSize]byte
		s.XORKeyStream(waste[:skip], waste[:skip])
	}
	s.XORKeyStream(p, p)
}

func checksumName(c byte) string {
	if c == binlog.ChecksumCRC32 {
		return "crc32"
	}
	return "none"
}
