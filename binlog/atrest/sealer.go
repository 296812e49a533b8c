package atrest

import (
	"fmt"

	"github.com/replink/replink/binlog"
)

// Sealer is the relay log's binlog.AtRest in replink's own format: the
// keys of a key file, and the id new files are encrypted with.
type Sealer struct {
	keys Keys
	id   uint32
}

// NewSealer encrypts new relay files with key id from keys.
func NewSealer(keys Keys, id uint32) (*Sealer, error) {
	if _, err := keys.Key(id); err != nil {
		return nil, err
	}
	return &Sealer{keys: keys, id: id}, nil
}

// KeyID is the id new files are encrypted with.
func (s *Sealer) KeyID() uint32 { return s.id }

// New is the record of a file encrypted from offset from on.
func (s *Sealer) New(from int64) ([]byte, error) {
	r, err := NewRecord(s.keys, s.id, from)
	if err != nil {
		return nil, err
	}
	return r.Marshal(), nil
}

// Cut is record with fresh keystream from offset at; a record of the
// master's format stays as it is (the same events go to the same
// offsets, as the master wrote them).
func (s *Sealer) Cut(record []byte, at int64) ([]byte, error) {
	r, err := ParseRecord("", record)
	if err != nil || r.master() {
		return record, err
	}
	if r, err = r.Cut(at); err != nil {
		return nil, err
	}
	return r.Marshal(), nil
}

// Master is the record of a file the master encrypts itself, when keys
// hold the master's binlog key (id 1): start is the Start_encryption
// event as in the file, at offset at.
func (s *Sealer) Master(start binlog.Event, at int64, checksum byte, alg string) ([]byte, error) {
	var c string
	switch alg {
	case "AES_CBC":
		c = cipherMasterCBC
	case "AES_CTR":
		c = cipherMasterCTR
	default:
		return nil, fmt.Errorf("%w: the master's file_key_management_encryption_algorithm is %q, not AES_CBC or AES_CTR", binlog.ErrNotMasterKey, alg)
	}
	st, err := ParseStartEncryption(start, checksum)
	if err != nil {
		return nil, err
	}
	key, err := s.keys.Key(binlogSystemKeyID)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", binlog.ErrNotMasterKey, err)
	}
	if st.KeyVersion != fileKeyManagementVer {
		return nil, fmt.Errorf("%w: the master's binlog key has version %d; a key file has version 1 only", binlog.ErrNotMasterKey, st.KeyVersion)
	}
	r := Record{Format: c, KeyID: binlogSystemKeyID, Check: KeyCheck(key), Start: at, From: at + int64(len(start)), Checksum: checksum, Nonce: st.Nonce}
	return r.Marshal(), nil
}

// Cipher is the cipher of relay file name's record.
func (s *Sealer) Cipher(name string, record []byte) (binlog.FileCipher, error) {
	r, err := ParseRecord(name+SideSuffix, record)
	if err != nil {
		return binlog.FileCipher{}, err
	}
	fail := func(err error) (binlog.FileCipher, error) {
		return binlog.FileCipher{}, fmt.Errorf("relay file %s is encrypted with key id %d: %w", name, r.KeyID, err)
	}
	if !r.master() {
		c, err := r.Cipher(s.keys)
		if err != nil {
			return fail(err)
		}
		return binlog.FileCipher{Bytes: c}, nil
	}
	key, err := r.key(s.keys)
	if err != nil {
		return fail(err)
	}
	alg := AESCBC
	if r.Format == cipherMasterCTR {
		alg = AESCTR
	}
	ec, err := NewEventCipher(alg, key, r.Nonce)
	if err != nil {
		return fail(err)
	}
	return binlog.FileCipher{Events: ec, StartAt: r.Start, From: r.From, Checksum: r.Checksum}, nil
}

var _ binlog.AtRest = (*Sealer)(nil)

// Opener reads relay files encrypted with any key in keys, and makes
// none (replink binlog cat).
func Opener(keys Keys) *Sealer { return &Sealer{keys: keys} }
