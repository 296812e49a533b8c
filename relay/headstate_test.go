package relay

import (
	"strings"
	"testing"
)

// The GTID variables are answered from a state kept as the relay log
// grows: a statement referring to them a thousand times reads no event
// twice, and after more is appended, or a rotation, only the new events
// are read, with the same answer a full read gives.
func TestGTIDStateReadsOnlyWhatIsNew(t *testing.T) {
	rl := startRelay(t)
	ss := &session{s: rl.srv, vars: map[string]string{}}
	query := "SELECT " + strings.TrimSuffix(strings.Repeat("@@gtid_binlog_pos, @@gtid_binlog_state, @@gtid_current_pos, ", 334), ", ")
	res, err := ss.HandleQuery(query)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Fields) != 1002 || !strings.Contains(string(res.RowDatas[0]), "0-1-2") {
		t.Fatalf("%d columns, row %.100q; want 1,002 with 0-1-2", len(res.Fields), res.RowDatas[0])
	}
	read := rl.srv.head.events
	if read != len(rl.file.events) {
		t.Fatalf("1,002 references read %d events, want the file's %d once", read, len(rl.file.events))
	}
	n := len(rl.file.events)
	rl.file.addGroup(3)
	rl.appendAll(t, n)
	if got := rl.srv.gtidPos(false); got != "0-1-3" {
		t.Fatalf("after 0-1-3: @@gtid_binlog_pos = %q", got)
	}
	if more := rl.srv.head.events - read; more != 3 {
		t.Fatalf("one more transaction read %d events, want its 3", more)
	}
	rl.rotateTo(t, "mariadb-bin.000002", 4)
	if got := rl.srv.gtidPos(true); got != "0-1-4" {
		t.Fatalf("after a rotation and 0-1-4: @@gtid_binlog_state = %q", got)
	}
	var fresh headState
	st, err := fresh.look(rl.rlog)
	if err != nil {
		t.Fatal(err)
	}
	if kept, _, _ := rl.srv.binlogState(); kept.String() != st.maria.String() {
		t.Fatalf("kept state %s, a full read %s", kept, st.maria)
	}
}

// BenchmarkGTIDVariable is one reference to @@gtid_binlog_pos with the
// relay log unchanged since the last.
func BenchmarkGTIDVariable(b *testing.B) {
	rl := startRelay(b)
	for seq := uint64(3); seq < 3000; seq++ {
		n := len(rl.file.events)
		rl.file.addGroup(seq)
		rl.appendAll(b, n)
	}
	b.ResetTimer()
	for range b.N {
		if rl.srv.gtidPos(false) == "" {
			b.Fatal("no position")
		}
	}
}
