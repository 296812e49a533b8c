package binlog

import (
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

// Compare orders positions: binlog names sort by their numeric suffix.
func (p Pos) Compare(q Pos) int {
	if c := strings.Compare(p.File, q.File); c != 0 {
		return c
	}
	switch {
	case p.Offset < q.Offset:
		return -1
	case p.Offset > q.Offset:
		return 1
	}
	return 0
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
