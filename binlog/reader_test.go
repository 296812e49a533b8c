package binlog

import (
	"encoding/binary"
	"errors"
	"io"
	"os"
	"testing"
)

// gtidListBody is a GTID_LIST of one GTID.
func gtidListBody(domain, server uint32, seq uint64) []byte {
	b := binary.LittleEndian.AppendUint32(nil, 1)
	b = binary.LittleEndian.AppendUint32(b, domain)
	b = binary.LittleEndian.AppendUint32(b, server)
	return binary.LittleEndian.AppendUint64(b, seq)
}

func TestReaderServesOnlyWhatIsDurable(t *testing.T) {
	l, _ := testLog(t, SyncEvent)
	var s stream
	appendEv := func(typ byte, body []byte) { t.Helper(); appendTo(t, l, &s, typedBody{typ, body}) }
	appendEv(TypeFormatDescription, fdeBody())
	appendEv(TypeMariaGTIDList, gtidListBody(0, 1, 41))
	appendEv(TypeMariaGTID, gtidBody(42, false))
	appendEv(30, []byte("rows"))
	appendEv(TypeXID, make([]byte, 8))
	firstGroupEnd := s.off
	appendEv(TypeMariaGTID, gtidBody(43, false)) // a transaction still open

	r, err := l.Open("mariadb-bin.000001")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var types []byte
	for {
		ev, err := r.Next()
		if errors.Is(err, ErrNoMore) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		types = append(types, ev.Type())
	}
	if want := []byte{TypeFormatDescription, TypeMariaGTIDList, TypeMariaGTID, 30, TypeXID}; string(types) != string(want) {
		t.Fatalf("read types %v, want %v (nothing of the open transaction)", types, want)
	}
	if r.Pos() != firstGroupEnd {
		t.Fatalf("reader at %d, want the durable end %d", r.Pos(), firstGroupEnd)
	}
	if got := l.BytesAfter(Pos{File: "mariadb-bin.000001", Offset: 4}); got != int64(firstGroupEnd)-4 {
		t.Fatalf("BytesAfter(4) = %d, want %d", got, firstGroupEnd-4)
	}
	if st, err := l.GTIDList("mariadb-bin.000001"); err != nil || st.String() != "0-1-41" {
		t.Fatalf("GTIDList = %v, %v; want 0-1-41", st, err)
	}

	// The transaction ends; the file rotates: the reader gets the rest,
	// then io.EOF, as the file is complete.
	appendEv(TypeXID, make([]byte, 8))
	if err := l.StartFile("mariadb-bin.000002"); err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		_, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 2 {
		t.Fatalf("read %d more events after the transaction ended, want 2", n)
	}

	// Seek checks that a position starts an event.
	if err := r.Seek(firstGroupEnd); err != nil {
		t.Fatalf("Seek to an event start: %v", err)
	}
	if err := r.Seek(firstGroupEnd + 1); err == nil {
		t.Fatal("Seek inside an event was accepted")
	}
	fde, err := r.FDE()
	if err != nil || fde.Type() != TypeFormatDescription {
		t.Fatalf("FDE() = type %v, %v", fde, err)
	}
}

func TestReaderStopsAtACorruptEvent(t *testing.T) {
	l, _ := testLog(t, SyncEvent)
	var s stream
	appendTo(t, l, &s, oneTransaction()...)
	// A bit flips in the rows event on disk.
	rowsAt := int64(4 + len(s.events[0]) + len(s.events[1]))
	f, err := os.OpenFile(l.path("mariadb-bin.000001"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{'R'}, rowsAt+HeaderSize); err != nil {
		t.Fatal(err)
	}
	f.Close()

	r, err := l.Open("mariadb-bin.000001")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for i := 0; i < 2; i++ {
		if _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
	}
	_, err = r.Next()
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.Pos.Offset != uint32(rowsAt) {
		t.Fatalf("reading the flipped event: %v, want a CorruptError at %d", err, rowsAt)
	}
}

// TestReaderGivesBackALargeBuffer: after an event larger than its chunk,
// the reader's buffer shrinks again at the next ordinary read.
func TestReaderGivesBackALargeBuffer(t *testing.T) {
	l, _ := testLog(t, SyncEvent)
	var s stream
	appendTo(t, l, &s, typedBody{TypeFormatDescription, fdeBody()}, typedBody{TypeMariaGTID, gtidBody(1, false)},
		typedBody{30, make([]byte, 4<<20)}, typedBody{TypeXID, make([]byte, 8)},
		typedBody{TypeMariaGTID, gtidBody(2, false)}, typedBody{30, []byte("small")}, typedBody{TypeXID, make([]byte, 8)})
	r, err := l.Open("mariadb-bin.000001")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	peak := 0
	for {
		ev, err := r.Next()
		if errors.Is(err, ErrNoMore) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		peak = max(peak, cap(r.buf))
		if ev.Type() == 30 && len(ev) < 1000 && cap(r.buf) > readerKeep {
			t.Fatalf("reading a small event after a 4 MiB one, the reader still holds %d bytes", cap(r.buf))
		}
	}
	if peak < 4<<20 {
		t.Fatalf("the large event never grew the buffer (peak %d)", peak)
	}
}
