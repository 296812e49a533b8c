package binlog

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
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

// String prints the position by domain, as @@gtid_binlog_pos does.
func (s MariaState) String() string {
	var parts []string
	for _, g := range s.Sorted() {
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

// GTIDList reads a GTID_LIST event: the binlog state when its file began,
// as the last GTID of each domain.
func GTIDList(e Event, checksum byte) (MariaState, error) {
	list, err := GTIDListEntries(e, checksum)
	if err != nil {
		return nil, err
	}
	st := MariaState{}
	for _, g := range list {
		st[g.Domain] = g // within a domain, the last entry is the last logged
	}
	return st, nil
}

// GTIDListEntries reads every entry of a GTID_LIST event: the last GTID
// of each (domain, server id) pair the binlog had seen.
func GTIDListEntries(e Event, checksum byte) ([]MariaGTID, error) {
	body := e.Body(checksum)
	if e.Type() != TypeMariaGTIDList || len(body) < 4 {
		return nil, fmt.Errorf("not a GTID_LIST event")
	}
	n := int(binary.LittleEndian.Uint32(body) & 0x0fffffff)
	if n > (len(body)-4)/16 {
		return nil, fmt.Errorf("GTID_LIST of %d entries in %d bytes", n, len(body))
	}
	out := make([]MariaGTID, 0, n)
	for i := 0; i < n; i++ {
		b := body[4+16*i:]
		out = append(out, MariaGTID{Domain: binary.LittleEndian.Uint32(b), Server: binary.LittleEndian.Uint32(b[4:]), Seq: binary.LittleEndian.Uint64(b[8:])})
	}
	return out, nil
}

// GTIDListEvent is the artificial GTID_LIST a master sends a GTID slave
// once the dump reached the slave's position: the position as the slave
// gave it, at log_pos (where the next event starts), timestamp 0, the
// artificial flag, a CRC32 when checksum says so.
func GTIDListEvent(serverID uint32, list []MariaGTID, logPos uint32, checksum byte) Event {
	body := binary.LittleEndian.AppendUint32(nil, uint32(len(list)))
	for _, g := range list {
		body = binary.LittleEndian.AppendUint32(body, g.Domain)
		body = binary.LittleEndian.AppendUint32(body, g.Server)
		body = binary.LittleEndian.AppendUint64(body, g.Seq)
	}
	return frame(TypeMariaGTIDList, serverID, 0, body, logPos, FlagArtificial, checksum)
}

// Sorted lists the position's GTIDs by domain.
func (s MariaState) Sorted() []MariaGTID {
	out := make([]MariaGTID, 0, len(s))
	for _, d := range slices.Sorted(maps.Keys(s)) {
		out = append(out, s[d])
	}
	return out
}

// BinlogState is a MariaDB binlog state: the last sequence number logged
// by each server in each domain, and the last GTID of each domain, as a
// master keeps it to check where a GTID slave may start.
type BinlogState struct {
	seqs map[[2]uint32]uint64 // (domain, server) → last sequence number
	last MariaState
	// order is the (domain, server) pairs, least recently logged first.
	order [][2]uint32
}

// NewBinlogState starts a state from a GTID_LIST's entries.
func NewBinlogState(list []MariaGTID) *BinlogState {
	b := &BinlogState{seqs: map[[2]uint32]uint64{}, last: MariaState{}}
	for _, g := range list {
		b.Add(g)
	}
	return b
}

// Add records a GTID as logged.
func (b *BinlogState) Add(g MariaGTID) {
	k := [2]uint32{g.Domain, g.Server}
	if _, ok := b.seqs[k]; ok {
		b.order = slices.DeleteFunc(b.order, func(o [2]uint32) bool { return o == k })
	}
	b.order = append(b.order, k)
	b.seqs[k] = g.Seq
	b.last[g.Domain] = g
}

// Pos is the last GTID of each domain: @@gtid_binlog_pos.
func (b *BinlogState) Pos() MariaState { return maps.Clone(b.last) }

// String is the state as @@gtid_binlog_state prints it: by domain, and
// within a domain the servers in the order they last logged, so the
// domain's last GTID comes last.
func (b *BinlogState) String() string {
	order := slices.Clone(b.order)
	slices.SortStableFunc(order, func(x, y [2]uint32) int { return cmp.Compare(x[0], y[0]) })
	parts := make([]string, len(order))
	for i, k := range order {
		parts[i] = MariaGTID{Domain: k[0], Server: k[1], Seq: b.seqs[k]}.String()
	}
	return strings.Join(parts, ",")
}

// Has reports whether the binlog holds g: its server logged up to g's
// sequence number in g's domain.
func (b *BinlogState) Has(g MariaGTID) bool {
	seq, ok := b.seqs[[2]uint32{g.Domain, g.Server}]
	return ok && seq >= g.Seq
}

// Last is the last GTID logged in domain.
func (b *BinlogState) Last(domain uint32) (MariaGTID, bool) {
	g, ok := b.last[domain]
	return g, ok
}

// Clone is an independent copy of b.
func (b *BinlogState) Clone() *BinlogState {
	return &BinlogState{seqs: maps.Clone(b.seqs), last: maps.Clone(b.last), order: slices.Clone(b.order)}
}

// ParseBinlogState reads @@gtid_binlog_state: "0-1-100,0-2-7,1-2-5", the
// last GTID of each server in each domain, in the order they were logged
// within a domain (empty: none).
func ParseBinlogState(s string) (*BinlogState, error) {
	b := NewBinlogState(nil)
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		st, err := ParseMariaState(part)
		if err != nil {
			return nil, err
		}
		for _, g := range st {
			b.Add(g)
		}
	}
	return b, nil
}

// Lacks lists the GTIDs b holds that other does not: per domain and
// server, b's last one where other's is older or absent (so other lacks
// at least that transaction), sorted by domain and server.
func (b *BinlogState) Lacks(other *BinlogState) []MariaGTID {
	var out []MariaGTID
	for k, seq := range b.seqs {
		if o, ok := other.seqs[k]; !ok || o < seq {
			out = append(out, MariaGTID{Domain: k[0], Server: k[1], Seq: seq})
		}
	}
	slices.SortFunc(out, func(x, y MariaGTID) int {
		return cmp.Or(cmp.Compare(x.Domain, y.Domain), cmp.Compare(x.Server, y.Server))
	})
	return out
}

// MaxSeq is the highest sequence number b holds in domain (0, false when
// it holds none there).
func (b *BinlogState) MaxSeq(domain uint32) (uint64, bool) {
	var max uint64
	found := false
	for k, seq := range b.seqs {
		if k[0] == domain && (!found || seq > max) {
			max, found = seq, true
		}
	}
	return max, found
}
