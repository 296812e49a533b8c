package binlog

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"
)

// Pos is a binlog coordinate: a file name and a byte offset in it.
type Pos struct {
	File   string
	Offset uint32
}

func (p Pos) String() string { return fmt.Sprintf("%s:%d", p.File, p.Offset) }

// IsZero reports an unset position.
func (p Pos) IsZero() bool { return p.File == "" }

// Compare orders positions: by file as CompareFiles does, then by offset.
func (p Pos) Compare(q Pos) int {
	if c := CompareFiles(p.File, q.File); c != 0 {
		return c
	}
	return cmp.Compare(p.Offset, q.Offset)
}

// ParsePos reads NAME:OFFSET.
func ParsePos(s string) (Pos, error) {
	i := strings.LastIndexByte(s, ':')
	if i <= 0 {
		return Pos{}, fmt.Errorf("position %q: want FILE:OFFSET", s)
	}
	off, err := strconv.ParseUint(s[i+1:], 10, 32)
	if err != nil {
		return Pos{}, fmt.Errorf("position %q: offset: %w", s, err)
	}
	return Pos{File: s[:i], Offset: uint32(off)}, nil
}

// SplitFile splits a binlog file name into its base name and sequence
// number, as the server numbers them: "mysql-bin.000012" is "mysql-bin"
// and 12. ok is false for a name without a numeric extension.
func SplitFile(name string) (base string, seq uint64, ok bool) {
	i := strings.LastIndexByte(name, '.')
	if i < 0 || i == len(name)-1 {
		return name, 0, false
	}
	n, err := strconv.ParseUint(name[i+1:], 10, 64)
	if err != nil {
		return name, 0, false
	}
	return name[:i], n, true
}

// NextFile is the name the server gives the file after name: the same
// base, the sequence number plus one, at least as many digits
// ("mysql-bin.000012" → "mysql-bin.000013"). ok is false when name has no
// sequence number.
func NextFile(name string) (string, bool) {
	base, seq, ok := SplitFile(name)
	if !ok {
		return "", false
	}
	width := len(name) - len(base) - 1
	return fmt.Sprintf("%s.%0*d", base, width, seq+1), true
}

// CompareFiles orders binlog file names of one server: by base name, then
// by sequence number as a number (".999999" before ".1000000"). Names
// without a sequence number compare as strings.
func CompareFiles(a, b string) int {
	ab, an, aok := SplitFile(a)
	bb, bn, bok := SplitFile(b)
	if !aok || !bok || ab != bb {
		return strings.Compare(a, b)
	}
	return cmp.Compare(an, bn)
}
