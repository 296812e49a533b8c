package atrest

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/replink/replink/binlog"
)

// TypeStartEncryption is MariaDB's START_ENCRYPTION_EVENT. A master with
// encrypt_binlog=ON writes it right after the format description event
// of every binlog file; every event after it is encrypted.
const TypeStartEncryption = binlog.TypeStartEncryption

// Layout of a Start_encryption event's body (sql/log_event.h:
// BINLOG_CRYPTO_SCHEME_LENGTH, BINLOG_KEY_VERSION_LENGTH,
// BINLOG_NONCE_LENGTH).
const (
	NonceSize            = 12
	startEncryptionBody  = 1 + 4 + NonceSize
	schemeV1             = 1 // the only crypto scheme MariaDB writes or reads
	offSize              = 9
	offLogPos            = 13
	binlogSystemKeyID    = 1 // ENCRYPTION_KEY_SYSTEM_DATA: the binlog's key id
	fileKeyManagementVer = 1 // file_key_management has one version of each key
)

// StartEncryption is the body of a Start_encryption event: the crypto
// scheme (1), the version of the binlog's key (key id 1) and the nonce
// that, with an event's offset, makes that event's IV.
type StartEncryption struct {
	Scheme     byte
	KeyVersion uint32
	Nonce      [NonceSize]byte
}

// ParseStartEncryption reads a Start_encryption event as it is in the
// file or in the dump stream (checksum is the file's binlog.Checksum*
// algorithm, from its format description event).
func ParseStartEncryption(e binlog.Event, checksum byte) (StartEncryption, error) {
	if len(e) < binlog.HeaderSize || e.Type() != TypeStartEncryption {
		return StartEncryption{}, fmt.Errorf("not a Start_encryption event")
	}
	body := e.Body(checksum)
	if len(body) < startEncryptionBody {
		return StartEncryption{}, fmt.Errorf("Start_encryption event: body of %d bytes, want %d", len(body), startEncryptionBody)
	}
	var s StartEncryption
	s.Scheme = body[0]
	s.KeyVersion = binary.LittleEndian.Uint32(body[1:5])
	copy(s.Nonce[:], body[5:5+NonceSize])
	if s.Scheme != schemeV1 {
		return s, fmt.Errorf("Start_encryption event: crypto scheme %d, only scheme 1 is known", s.Scheme)
	}
	return s, nil
}

// InFile returns the Start_encryption event as the file holds it, given
// the copy a dump stream carries: the master sends it with
// LOG_EVENT_IGNORABLE_F set (so that old slaves skip it) and its CRC32
// recomputed (sql_repl.cc); in the file that flag is clear. The result is
// a new slice.
func InFile(streamed binlog.Event, checksum byte) binlog.Event {
	return binlog.WithFlags(streamed, streamed.Flags()&^binlog.FlagIgnorable, checksum)
}

// Algorithm is the AES mode of the events. MariaDB's file_key_management
// uses file_key_management_encryption_algorithm: AES_CBC (the default) or
// AES_CTR. The file does not say which: see DetectAlgorithm.
type Algorithm int

const (
	// AESCBC is AES-CBC without padding; the bytes after the last whole
	// 16-byte block are XORed with AES-ECB(key, IV) (my_crypt.cc,
	// MyCTX_nopad::finish).
	AESCBC Algorithm = iota
	// AESCTR is AES-CTR with the IV as the initial 128-bit big-endian
	// counter block.
	AESCTR
)

func (a Algorithm) String() string {
	switch a {
	case AESCBC:
		return "AES_CBC"
	case AESCTR:
		return "AES_CTR"
	}
	return fmt.Sprintf("Algorithm(%d)", int(a))
}

// EventCipher encrypts and decrypts binlog events in place, at the same
// length, as MariaDB's Log_event_writer::encrypt_and_write writes them
// and its binlog reader (Log_event::read_log_event) decrypts them:
//
//   - IV = nonce (12 bytes) || the event's offset in the file (uint32, LE);
//   - the event's first 4 bytes (timestamp) are put in place of its size
//     (offset 9), and bytes 4.. of that are encrypted with the algorithm;
//   - then the first 4 encrypted bytes (those now at offset 9) move to
//     offset 0, and the size goes back, in clear, to offset 9.
//
// So a reader finds every event's size in clear, without the key, and a
// file can be walked from its start like a plaintext one. The CRC32
// trailer, when there is one, is of the plaintext and is encrypted with
// the rest.
//
// An EventCipher is safe for concurrent use.
type EventCipher struct {
	alg   Algorithm
	block cipher.Block
	nonce [NonceSize]byte
	// CBC modes are reused with SetIV: making one copies the expanded key
	// (hundreds of bytes), which would cost more than a small event's AES.
	enc, dec sync.Pool // of cbcMode
}

// cbcMode is what crypto/cipher's CBC encrypter and decrypter are.
type cbcMode interface {
	cipher.BlockMode
	SetIV([]byte)
}

// NewEventCipher returns an EventCipher for key (16, 24 or 32 bytes).
func NewEventCipher(alg Algorithm, key []byte, nonce [NonceSize]byte) (*EventCipher, error) {
	if alg != AESCBC && alg != AESCTR {
		return nil, fmt.Errorf("unknown algorithm %d", int(alg))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("key of %d bytes: %w", len(key), err)
	}
	return &EventCipher{alg: alg, block: block, nonce: nonce}, nil
}

// MasterCipher returns the EventCipher for the events after start in a
// file that a MariaDB master with file_key_management wrote: the key is
// key id 1 of keys, and file_key_management has only key version 1.
func MasterCipher(alg Algorithm, keys Keys, start StartEncryption) (*EventCipher, error) {
	if start.KeyVersion != fileKeyManagementVer {
		return nil, fmt.Errorf("Start_encryption names key version %d; a file_key_management key file has only version 1 of each key", start.KeyVersion)
	}
	key, err := keys.Key(binlogSystemKeyID)
	if err != nil {
		return nil, fmt.Errorf("the binlog's key: %w", err)
	}
	return NewEventCipher(alg, key, start.Nonce)
}

// ErrEventTooShort is an event too short to hold a v4 header.
var ErrEventTooShort = errors.New("event shorter than a binlog event header")

// Encrypt encrypts the plaintext event ev, which starts at offset in its
// file, in place. Only the low 32 bits of offset count, as in MariaDB.
func (c *EventCipher) Encrypt(ev []byte, offset uint64) error { return c.event(ev, offset, true) }

// Decrypt decrypts the encrypted event ev, which starts at offset in its
// file, in place. It checks nothing: see Verify.
func (c *EventCipher) Decrypt(ev []byte, offset uint64) error { return c.event(ev, offset, false) }

// event is Encrypt or Decrypt: the timestamp takes the size's place for
// the cipher, whose first 4 bytes out then take the timestamp's, and the
// size goes back in clear.
func (c *EventCipher) event(ev []byte, offset uint64, encrypt bool) error {
	if len(ev) < binlog.HeaderSize {
		return ErrEventTooShort
	}
	copy(ev[offSize:offSize+4], ev[0:4])
	c.crypt(ev[4:], offset, encrypt)
	copy(ev[0:4], ev[offSize:offSize+4])
	binary.LittleEndian.PutUint32(ev[offSize:], uint32(len(ev)))
	return nil
}

func (c *EventCipher) iv(offset uint64) [aes.BlockSize]byte {
	var iv [aes.BlockSize]byte
	copy(iv[:], c.nonce[:])
	binary.LittleEndian.PutUint32(iv[NonceSize:], uint32(offset))
	return iv
}

func (c *EventCipher) crypt(b []byte, offset uint64, encrypt bool) {
	iv := c.iv(offset)
	if c.alg == AESCTR {
		cipher.NewCTR(c.block, iv[:]).XORKeyStream(b, b)
		return
	}
	whole := len(b) &^ (aes.BlockSize - 1)
	if whole > 0 {
		pool, mk := &c.dec, cipher.NewCBCDecrypter
		if encrypt {
			pool, mk = &c.enc, cipher.NewCBCEncrypter
		}
		m, _ := pool.Get().(cbcMode)
		if m == nil {
			m = mk(c.block, iv[:]).(cbcMode)
		} else {
			m.SetIV(iv[:])
		}
		m.CryptBlocks(b[:whole], b[:whole])
		pool.Put(m)
	}
	if tail := b[whole:]; len(tail) > 0 {
		// MyCTX_nopad::finish: "something CTR-like for the last partial
		// block", the same mask both ways: AES-ECB of the original IV.
		var mask [aes.BlockSize]byte
		c.block.Encrypt(mask[:], iv[:])
		for i := range tail {
			tail[i] ^= mask[i]
		}
	}
}

// Verify checks a decrypted event that starts at offset in its file: its
// log_pos is where it ends (true of every event a server writes to a
// file) and, when the file has CRC32 checksums, its checksum is right. A
// wrong key, a wrong algorithm or a flipped byte fails here.
func Verify(ev []byte, offset uint64, checksum byte) error {
	if len(ev) < binlog.HeaderSize {
		return ErrEventTooShort
	}
	if got, want := binary.LittleEndian.Uint32(ev[offLogPos:]), uint32(offset)+uint32(len(ev)); got != want {
		return fmt.Errorf("event at %d: decrypted log_pos %d, want %d (wrong key or algorithm, or a corrupted event)", offset, got, want)
	}
	if checksum == binlog.ChecksumCRC32 {
		if err := binlog.VerifyChecksum(binlog.Event(ev)); err != nil {
			return fmt.Errorf("event at %d: %w", offset, err)
		}
	}
	return nil
}
