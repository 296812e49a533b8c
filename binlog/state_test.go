package binlog

import "testing"

// The binlog state is kept as the log grows: asked a thousand times it
// reads no event twice, after more is appended only the new events, and
// after a rotation the answer is what a full read of the newest file
// gives.
func TestStateReadsOnlyWhatIsNew(t *testing.T) {
	l, _ := testLog(t, SyncEvent)
	var s stream
	group := func(seq uint64) {
		appendTo(t, l, &s, typedBody{TypeMariaGTID, gtidBody(seq, false)}, typedBody{30, []byte("rows")}, typedBody{TypeXID, make([]byte, 8)})
	}
	appendTo(t, l, &s, typedBody{TypeFormatDescription, fdeBody()}, typedBody{TypeMariaGTIDList, gtidListBody(0, 1, 41)})
	group(42)
	group(43)
	for range 1000 {
		st, err := l.State()
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Maria.String(); got != "0-1-43" || st.MasterID != 1 {
			t.Fatalf("State = %s, master %d; want 0-1-43, master 1", got, st.MasterID)
		}
	}
	if read := l.head.events; read != len(s.events) {
		t.Fatalf("1,000 looks read %d events, want the file's %d once", read, len(s.events))
	}
	group(44)
	st, err := l.State()
	if err != nil || st.Maria.String() != "0-1-44" {
		t.Fatalf("after 0-1-44: %v, %v", st.Maria, err)
	}
	if read := l.head.events; read != len(s.events) {
		t.Fatalf("after one more transaction %d events were read, want each of the file's %d once", read, len(s.events))
	}
	if err := l.StartFile("mariadb-bin.000002"); err != nil {
		t.Fatal(err)
	}
	s = stream{}
	appendTo(t, l, &s, typedBody{TypeFormatDescription, fdeBody()}, typedBody{TypeMariaGTIDList, gtidListBody(0, 1, 44)})
	group(45)
	st, err = l.State()
	if err != nil || st.Maria.String() != "0-1-45" {
		t.Fatalf("after a rotation and 0-1-45: %v, %v", st.Maria, err)
	}
	var fresh headState
	full, err := fresh.look(l)
	if err != nil || full.Maria.String() != st.Maria.String() {
		t.Fatalf("kept state %s, a full read %s (%v)", st.Maria, full.Maria, err)
	}
}
