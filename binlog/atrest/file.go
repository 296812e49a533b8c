package atrest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/replink/replink/binlog"
)

// ErrNoStartEncryption is a binlog
// file that has no Start_encryption event after its format description:
// the master did not encrypt it.
var ErrNoStartEncryption = errors.New("no Start_encryption event after the format description event: the file is not encrypted")

// MasterFile is what the head of a binlog file says about its
// encryption: the checksum algorithm of its format description event,
// the Start_encryption event, and where the encrypted events begin.
type MasterFile struct {
	Checksum  byte
	Start     StartEncryption
	StartAt   int64 // offset of the Start_encryption event
	Encrypted int64 // offset of the first encrypted event
}

// ReadHead reads the magic, the format description event and the
// Start_encryption event at the start of a binlog file.
func ReadHead(data []byte) (MasterFile, error) {
	var h MasterFile
	if !bytes.HasPrefix(data, binlog.Magic) {
		return h, fmt.Errorf("not a binlog file (no magic)")
	}
	off := int64(len(binlog.Magic))
	fde, err := eventAt(data, off)
	if err != nil {
		return h, fmt.Errorf("format description event: %w", err)
	}
	if fde.Type() != binlog.TypeFormatDescription {
		return h, fmt.Errorf("event at %d is type %d, not a format description event", off, fde.Type())
	}
	h.Checksum = binlog.FDEChecksum(fde)
	off += int64(len(fde))
	se, err := eventAt(data, off)
	if err != nil || se.Type() != TypeStartEncryption {
		return h, ErrNoStartEncryption
	}
	if h.Start, err = ParseStartEncryption(se, h.Checksum); err != nil {
		return h, fmt.Errorf("event at %d: %w", off, err)
	}
	h.StartAt, h.Encrypted = off, off+int64(len(se))
	return h, nil
}

// eventAt returns the event at off, whose size is in clear also in an
// encrypted file.
func eventAt(data []byte, off int64) (binlog.Event, error) {
	if off+binlog.HeaderSize > int64(len(data)) {
		return nil, fmt.Errorf("event at %d: %w", off, binlog.ErrShort)
	}
	n := int64(binary.LittleEndian.Uint32(data[off+offSize:]))
	if n < binlog.HeaderSize || off+n > int64(len(data)) {
		return nil, fmt.Errorf("event at %d of %d bytes: %w", off, n, binlog.ErrShort)
	}
	return binlog.Event(data[off : off+n]), nil
}

// DetectAlgorithm finds which algorithm the master encrypted data, a
// binlog file that starts with a Start_encryption event, with: the one
// under which its first encrypted event verifies. A file with no
// encrypted event yet says nothing; then ok is false.
func DetectAlgorithm(data []byte, keys Keys) (alg Algorithm, ok bool, err error) {
	h, err := ReadHead(data)
	if err != nil {
		return 0, false, err
	}
	ev, err := eventAt(data, h.Encrypted)
	if err != nil {
		return 0, false, nil
	}
	for _, a := range []Algorithm{AESCBC, AESCTR} {
		c, err := MasterCipher(a, keys, h.Start)
		if err != nil {
			return 0, false, err
		}
		buf := bytes.Clone(ev)
		if err := c.Decrypt(buf, uint64(h.Encrypted)); err != nil {
			return 0, false, err
		}
		if Verify(buf, uint64(h.Encrypted), h.Checksum) == nil {
			return a, true, nil
		}
	}
	return 0, false, fmt.Errorf("the event at %d decrypts under neither AES_CBC nor AES_CTR with key id 1: not the master's key file?", h.Encrypted)
}

// DecryptMasterFile returns the plaintext of a whole binlog file a
// MariaDB master encrypted: the same bytes with every event after the
// Start_encryption event decrypted (the Start_encryption event stays as
// the file has it). Every decrypted event is verified; a trailing partial
// event is an error.
func DecryptMasterFile(data []byte, keys Keys, alg Algorithm) ([]byte, error) {
	return cryptMasterFile(data, keys, alg, false)
}

// EncryptMasterFile is DecryptMasterFile's inverse: given the plaintext
// of a binlog file that holds a Start_encryption event after its format
// description event, it returns the file as the master writes it.
func EncryptMasterFile(plain []byte, keys Keys, alg Algorithm) ([]byte, error) {
	return cryptMasterFile(plain, keys, alg, true)
}

func cryptMasterFile(data []byte, keys Keys, alg Algorithm, encrypt bool) ([]byte, error) {
	h, err := ReadHead(data)
	if err != nil {
		return nil, err
	}
	c, err := MasterCipher(alg, keys, h.Start)
	if err != nil {
		return nil, err
	}
	out := bytes.Clone(data)
	for off := h.Encrypted; off < int64(len(out)); {
		ev, err := eventAt(out, off)
		if err != nil {
			return nil, err
		}
		if encrypt {
			if err := Verify(ev, uint64(off), h.Checksum); err != nil {
				return nil, fmt.Errorf("plaintext %w", err)
			}
			err = c.Encrypt(ev, uint64(off))
		} else {
			if err = c.Decrypt(ev, uint64(off)); err == nil {
				err = Verify(ev, uint64(off), h.Checksum)
			}
		}
		if err != nil {
			return nil, err
		}
		off += int64(len(ev))
	}
	return out, nil
}
