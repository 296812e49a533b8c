package binlog

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
)

// appendFrom appends events of server id server at the stream's next
// offsets.
func appendFrom(t *testing.T, l *Log, s *stream, server uint32, events ...typedBody) {
	t.Helper()
	for _, e := range events {
		if s.off == 0 {
			s.off = 4
		}
		size := uint32(HeaderSize + len(e.body) + 4)
		ev := Frame(e.typ, server, 1700000000, e.body, s.off+size, 0)
		s.off += size
		s.events = append(s.events, ev)
		if _, err := l.Append(ev); err != nil {
			t.Fatal(err)
		}
	}
}

func txn(seq uint64) []typedBody {
	return []typedBody{{TypeMariaGTID, gtidBody(seq, false)}, {30, []byte("rows")}, {TypeXID, make([]byte, 8)}}
}

// readAll reads path from start to where the reader stops, returning the
// events' offsets and why it stopped.
func readAll(t *testing.T, l *Log, path string, start uint32) ([]uint32, error) {
	t.Helper()
	r, err := l.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if start > 4 {
		if err := r.Seek(start); err != nil {
			t.Fatal(err)
		}
	}
	var at []uint32
	for {
		ev, err := r.Next()
		if err != nil {
			return at, err
		}
		at = append(at, r.Pos()-uint32(len(ev)))
	}
}

// TestSwitchToANewMaster: the relay log holds a second master's files
// after the first's, under the second master's names (the same name as
// one of the first's here) in a directory of their own; a reader at the
// end of the first master's files waits until the first transaction the
// relay log did not have arrives, then goes on there, past what the new
// master's file repeats. All of it survives a restart, also one between
// the switch and the crossing point.
func TestSwitchToANewMaster(t *testing.T) {
	dir := t.TempDir()
	open := func() *Log {
		l, err := OpenLog(dir, SyncEvent, hclog.NewNullLogger(), NewMetrics(prometheus.NewRegistry()))
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	l := open()
	if err := l.StartFile("mariadb-bin.000001"); err != nil {
		t.Fatal(err)
	}
	var s1 stream
	appendFrom(t, l, &s1, 1, typedBody{TypeFormatDescription, fdeBody()}, typedBody{TypeMariaGTIDList, gtidListBody(0, 1, 0)})
	for seq := uint64(1); seq <= 3; seq++ {
		appendFrom(t, l, &s1, 1, txn(seq)...)
	}
	if err := l.Switch("127.0.0.1:3307", 2); err != nil {
		t.Fatal(err)
	}
	// A restart between the switch and the crossing point.
	l.Close()
	l = open()
	defer func() { l.Close() }()
	if err := l.StartFile("mariadb-bin.000001"); err != nil {
		t.Fatal(err)
	}
	var s2 stream
	appendFrom(t, l, &s2, 2, typedBody{TypeFormatDescription, fdeBody()}, typedBody{TypeMariaGTIDList, gtidListBody(0, 1, 1)})
	appendFrom(t, l, &s2, 1, txn(2)...) // replicated by the new master before its promotion
	appendFrom(t, l, &s2, 2, txn(1)...) // the new master's own, from long before: not new
	appendFrom(t, l, &s2, 1, txn(3)...)
	if _, _, ok := l.NextStart("mariadb-bin.000001"); ok {
		t.Fatal("a reader may cross before the first new transaction arrived")
	}
	at, err := readAll(t, l, "mariadb-bin.000001", 4)
	if !errors.Is(err, ErrNoMore) || len(at) != len(s1.events) {
		t.Fatalf("the old master's file before the crossing point: %d events then %v, want its %d then ErrNoMore", len(at), err, len(s1.events))
	}
	cross := s2.off
	appendFrom(t, l, &s2, 2, txn(4)...)
	appendFrom(t, l, &s2, 2, txn(5)...)

	check := func(l *Log) {
		t.Helper()
		if got := l.Files(); !slices.Equal(got, []string{"mariadb-bin.000001", "seq-2/mariadb-bin.000001"}) {
			t.Fatalf("files %v", got)
		}
		next, start, ok := l.NextStart("mariadb-bin.000001")
		if !ok || next != "seq-2/mariadb-bin.000001" || start != cross {
			t.Fatalf("after the old master's file: %s at %d (%v), want seq-2/mariadb-bin.000001 at %d", next, start, ok, cross)
		}
		if at, err := readAll(t, l, "mariadb-bin.000001", 4); !errors.Is(err, io.EOF) || len(at) != len(s1.events) {
			t.Fatalf("the old master's file: %d events then %v, want %d then EOF", len(at), err, len(s1.events))
		}
		at, err := readAll(t, l, next, start)
		if !errors.Is(err, ErrNoMore) || len(at) != 6 || at[0] != cross {
			t.Fatalf("the new master's file from the crossing point: events at %v then %v, want 6 from %d", at, err, cross)
		}
		if got := l.Resolve("mariadb-bin.000001"); len(got) != 2 {
			t.Fatalf("Resolve = %v, want both masters' files", got)
		}
		st, err := l.State()
		if err != nil || st.Maria.String() != "0-1-3,0-2-5" {
			t.Fatalf("state %v (%v), want 0-1-3,0-2-5", st.Maria, err)
		}
		if seqs := l.Sequences(); len(seqs) != 2 || seqs[1].Master != "127.0.0.1:3307" || seqs[1].ServerID != 2 || seqs[1].Have != "0-1-3" {
			t.Fatalf("sequences %+v", seqs)
		}
		if got := l.BytesAfter(Pos{File: "mariadb-bin.000001", Offset: 4}); got != int64(s1.off-4)+int64(s2.off-cross) {
			t.Fatalf("BytesAfter the old file's start = %d, want %d (the old file, then the new from the crossing point)", got, int64(s1.off-4)+int64(s2.off-cross))
		}
	}
	check(l)
	for _, f := range []string{"mariadb-bin.000001", "seq-2/mariadb-bin.000001"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	l.Close()
	l = open()
	check(l)
	if MasterName("seq-2/mariadb-bin.000001") != "mariadb-bin.000001" || MasterName("mariadb-bin.000001") != "mariadb-bin.000001" {
		t.Fatal("MasterName")
	}
}

func TestCheckPath(t *testing.T) {
	for _, c := range []struct {
		path string
		ok   bool
	}{
		{"mariadb-bin.000001", true},
		{"seq-2/mariadb-bin.000001", true},
		{"seq-17/db2-bin.000100", true},
		{"seq-1/mariadb-bin.000001", false},
		{"seq-02/mariadb-bin.000001", false},
		{"other/mariadb-bin.000001", false},
		{"seq-2/../x", false},
		{"seq-2/seq-3/x.000001", false},
		{"../mariadb-bin.000001", false},
	} {
		if err := CheckPath(c.path); (err == nil) != c.ok {
			t.Errorf("CheckPath(%q) = %v, want ok %v", c.path, err, c.ok)
		}
	}
}

// A crossing point is taken only once it is durable; a master left again
// before it sent anything new is stepped over; and the relay log's state
// never goes back below what it had at a switch, though a new master's
// file begins with its own older GTID_LIST.
func TestSwitchTwiceAndDurableCrossing(t *testing.T) {
	l := logWithFiles(t, t.TempDir())
	if err := l.StartFile("mariadb-bin.000007"); err != nil {
		t.Fatal(err)
	}
	var s1 stream
	appendFrom(t, l, &s1, 1, typedBody{TypeFormatDescription, fdeBody()}, typedBody{TypeMariaGTIDList, gtidListBody(0, 1, 0)})
	for seq := uint64(1); seq <= 3; seq++ {
		appendFrom(t, l, &s1, 1, txn(seq)...)
	}
	state := func(want string) {
		t.Helper()
		st, err := l.State()
		if err != nil || st.Maria.String() != want {
			t.Fatalf("state %v (%v), want %s", st.Maria, err, want)
		}
	}
	// M2: only what replink has, then left.
	if err := l.Switch("m2:3306", 2); err != nil {
		t.Fatal(err)
	}
	if err := l.StartFile("mariadb-bin.000002"); err != nil {
		t.Fatal(err)
	}
	var s2 stream
	appendFrom(t, l, &s2, 2, typedBody{TypeFormatDescription, fdeBody()}, typedBody{TypeMariaGTIDList, gtidListBody(0, 1, 1)})
	appendFrom(t, l, &s2, 1, txn(2)...)
	state("0-1-3") // not 0-1-2: M2's file begins at 0-1-1
	// M3, which goes further.
	if err := l.Switch("m3:3306", 3); err != nil {
		t.Fatal(err)
	}
	if err := l.StartFile("mariadb-bin.000005"); err != nil {
		t.Fatal(err)
	}
	var s3 stream
	appendFrom(t, l, &s3, 3, typedBody{TypeFormatDescription, fdeBody()}, typedBody{TypeMariaGTIDList, gtidListBody(0, 1, 2)})
	appendFrom(t, l, &s3, 1, txn(3)...)
	state("0-1-3")
	cross := s3.off
	appendFrom(t, l, &s3, 3, typedBody{TypeMariaGTID, gtidBody(4, false)}) // the crossing transaction, not complete yet
	if _, _, ok := l.NextStart("mariadb-bin.000007"); ok {
		t.Fatal("a reader may cross to a transaction that is not durable")
	}
	appendFrom(t, l, &s3, 3, typedBody{30, []byte("rows")}, typedBody{TypeXID, make([]byte, 8)})
	next, start, ok := l.NextStart("mariadb-bin.000007")
	if !ok || next != "seq-3/mariadb-bin.000005" || start != cross {
		t.Fatalf("after M1's file: %s at %d (%v), want M3's crossing point seq-3/mariadb-bin.000005 at %d, past M2's files", next, start, ok, cross)
	}
	state("0-1-3,0-3-4")
}
