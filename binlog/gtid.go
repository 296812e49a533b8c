package binlog

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
)

// MariaGTID is one MariaDB GTID: domain-server-sequence.
type MariaGTID struct {
	Domain, Server uint32
	Seq            uint64
}

func (g MariaGTID) String() string { return fmt.Sprintf("%d-%d-%d", g.Domain, g.Server, g.Seq) }

// MariaState is a MariaDB GTID position: the last GTID per domain.
type MariaState map[uint32]MariaGTID

// ParseMariaState reads "0-1-100,1-2-5" (empty means no position).
func ParseMariaState(s string) (MariaState, error) {
	st := MariaState{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		f := strings.Split(part, "-")
		if len(f) != 3 {
			return nil, fmt.Errorf("GTID %q: want domain-server-sequence", part)
		}
		d, err1 := strconv.ParseUint(f[0], 10, 32)
		sv, err2 := strconv.ParseUint(f[1], 10, 32)
		seq, err3 := strconv.ParseUint(f[2], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			return nil, fmt.Errorf("GTID %q: not numbers", part)
		}
		if _, dup := st[uint32(d)]; dup {
			return nil, fmt.Errorf("GTID position %q names domain %d twice", s, d)
		}
		st[uint32(d)] = MariaGTID{Domain: uint32(d), Server: uint32(sv), Seq: seq}
	}
	return st, nil
}

func (s MariaState) String() string {
	var parts []string
	for _, g := range s {
		parts = append(parts, g.String())
	}
	return strings.Join(parts, ",")
}

// GTIDOf reads the GTID of a MariaDB GTID event.
func GTIDOf(e Event, checksum byte) (MariaGTID, bool) {
	body := e.Body(checksum)
	if e.Type() != TypeMariaGTID || len(body) < 12 {
		return MariaGTID{}, false
	}
	return MariaGTID{Seq: binary.LittleEndian.Uint64(body), Domain: binary.LittleEndian.Uint32(body[8:]), Server: e.ServerID()}, true
}

// GTIDList reads a GTID_LIST event: the binlog state when its file began.
func GTIDList(e Event, checksum byte) (MariaState, error) {
	body := e.Body(checksum)
	if e.Type() != TypeMariaGTIDList || len(body) < 4 {
		return nil, fmt.Errorf("not a GTID_LIST event")
	}
	n := int(binary.LittleEndian.Uint32(body) & 0x0fffffff)
	if len(body) < 4+16*n {
		return nil, fmt.Errorf("GTID_LIST of %d entries in %d bytes", n, len(body))
	}
	st := MariaState{}
	for i := 0; i < n; i++ {
		b := body[4+16*i:]
		g := MariaGTID{Domain: binary.LittleEndian.Uint32(b), Server: binary.LittleEndian.Uint32(b[4:]), Seq: binary.LittleEndian.Uint64(b[8:])}
		st[g.Domain] = g
	}
	return st, nil
}
