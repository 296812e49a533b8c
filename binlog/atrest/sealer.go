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

// Cut is record with fresh keystream from offset at.
func (s *Sealer) Cut(record []byte, at int64) ([]byte, error) {
	r, err := ParseRecord("", record)
	if err != nil {
		return nil, err
	}
	if r, err = r.Cut(at); err != nil {
		return nil, err
	}
	return r.Marshal(), nil
}

// Cipher is the cipher of relay file name's record.
func (s *Sealer) Cipher(name string, record []byte) (binlog.Cipher, error) {
	r, err := ParseRecord(name+SideSuffix, record)
	if err != nil {
		return nil, err
	}
	c, err := r.Cipher(s.keys)
	if err != nil {
		return nil, fmt.Errorf("relay file %s is encrypted with key id %d: %w", name, r.KeyID, err)
	}
	return c, nil
}

var _ binlog.AtRest = (*Sealer)(nil)

// Opener reads relay files encrypted with any key in keys, and makes
// none (replink binlog cat).
func Opener(keys Keys) *Sealer { return &Sealer{keys: keys} }
