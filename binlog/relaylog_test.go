package binlog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// mkEvent frames an event ending at logPos.
func mkEvent(typ byte, body []byte, logPos uint32, flags uint16) []byte {
	return Frame(typ, 1, 1700000000, body, logPos, flags)
}

func fdeBody() []byte {
	b := make([]byte, 2+50+4+1)
	binary.LittleEndian.PutUint16(b, 4)
	copy(b[2:], "10.11.19-MariaDB")
	b[56] = HeaderSize
	b = append(b, make([]byte, 10)...) // post-header lengths
	return append(b, ChecksumCRC32)
}

func gtidBody(seq uint64, standalone bool) []byte {
	b := make([]byte, 13)
	binary.LittleEndian.PutUint64(b, seq)
	if standalone {
		b[12] = 1
	}
	return b
}

func queryBody(q string) []byte {
	b := make([]byte, 13) // thread, exec time, db_len=0, error, status_vars_len=0
	b = append(b, 0)      // empty db name terminator
	return append(b, q...)
}

// stream builds events at consecutive offsets from 4.
type stream struct {
	off    uint32
	events [][]byte
}

func (s *stream) add(typ byte, body []byte) []byte {
	if s.off == 0 {
		s.off = 4
	}
	size := uint32(HeaderSize + len(body) + 4)
	ev := mkEvent(typ, body, s.off+size, 0)
	s.off += size
	s.events = append(s.events, ev)
	return ev
}

func TestGroupTracker(t *testing.T) {
	var s stream
	type step struct {
		typ      byte
		body     []byte
		boundary bool
	}
	steps := []step{
		{TypeFormatDescription, fdeBody(), true},
		{TypeMariaGTIDList, nil, true},
		{TypeMariaGTID, gtidBody(1, false), false},
		{TypeAnnotateRows, []byte("INSERT ..."), false},
		{19, []byte("table map"), false},
		{30, []byte("rows"), false},
		{TypeXID, make([]byte, 8), true},
		{TypeMariaGTID, gtidBody(2, true), false},
		{TypeQuery, queryBody("CREATE TABLE t (id INT)"), true},
		{TypeMariaGTID, gtidBody(3, false), false},
		{TypeQuery, queryBody("INSERT INTO myisam VALUES (1)"), false},
		{TypeQuery, queryBody("COMMIT"), true},
		{TypeGTID, make([]byte, 25), false}, // MySQL
		{TypeQuery, queryBody("BEGIN"), false},
		{TypeXID, make([]byte, 8), true},
		{TypeGTID, make([]byte, 25), false},
		{TypeQuery, queryBody("DROP TABLE t"), true},
	}
	var g GroupTracker
	for i, st := range steps {
		ev, err := ParseEvent(s.add(st.typ, st.body))
		if err != nil {
			t.Fatal(err)
		}
		if got := g.Add(ev); got != st.boundary {
			t.Fatalf("step %d (type %d): boundary %v, want %v", i, st.typ, got, st.boundary)
		}
	}
}

func TestLogRecoversToLastCompleteTransaction(t *testing.T) {
	dir := t.TempDir()
	l, err := OpenLog(dir, SyncTransaction, hclog.NewNullLogger(), NewMetrics(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.StartFile("mariadb-bin.000001"); err != nil {
		t.Fatal(err)
	}
	var s stream
	appendEv := func(typ byte, body []byte) {
		t.Helper()
		ev, err := ParseEvent(s.add(typ, body))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Append(ev); err != nil {
			t.Fatal(err)
		}
	}
	appendEv(TypeFormatDescription, fdeBody())
	appendEv(TypeMariaGTID, gtidBody(1, false))
	appendEv(30, []byte("rows"))
	appendEv(TypeXID, make([]byte, 8))
	complete := l.ResumePoint()
	appendEv(TypeMariaGTID, gtidBody(2, false))
	appendEv(30, []byte("rows of an unfinished transaction"))
	if l.ResumePoint() != complete {
		t.Fatalf("resume point moved inside a transaction: %v", l.ResumePoint())
	}
	// A wrong log_pos is refused and writes nothing.
	bad, _ := ParseEvent(mkEvent(TypeXID, make([]byte, 8), 9999, 0))
	if _, err := l.Append(bad); err == nil {
		t.Fatal("event at the wrong offset was accepted")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// A torn write after the unfinished transaction.
	f, _ := os.OpenFile(filepath.Join(dir, "mariadb-bin.000001"), os.O_APPEND|os.O_WRONLY, 0)
	f.Write([]byte{1, 2, 3, 4, 5, 6, 7})
	f.Close()

	l, err = OpenLog(dir, SyncTransaction, hclog.NewNullLogger(), NewMetrics(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if got := l.ResumePoint(); got != complete {
		t.Fatalf("recovered to %v, want %v", got, complete)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "mariadb-bin.000001"))
	want := append(append([]byte{}, Magic...), bytes.Join(s.events[:4], nil)...)
	if !bytes.Equal(data, want) {
		t.Fatalf("recovered file is %d bytes, want the %d bytes of the complete transactions", len(data), len(want))
	}
}

func TestVerifyChecksumDetectsFlip(t *testing.T) {
	ev := mkEvent(TypeXID, make([]byte, 8), 100, 0)
	if err := VerifyChecksum(ev); err != nil {
		t.Fatal(err)
	}
	ev[HeaderSize+2] ^= 0x40
	if err := VerifyChecksum(ev); err == nil {
		t.Fatal("flipped bit not detected")
	}
}

func TestStartFileRefusesPathNames(t *testing.T) {
	l, err := OpenLog(t.TempDir(), SyncNone, hclog.NewNullLogger(), NewMetrics(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, name := range []string{"../etc/passwd", "/tmp/x", "", "..", IndexName} {
		if err := l.StartFile(name); err == nil {
			t.Errorf("StartFile(%q) accepted", name)
		}
	}
}

func FuzzParseEvent(f *testing.F) {
	f.Add(mkEvent(TypeXID, make([]byte, 8), 100, 0))
	f.Add(mkEvent(TypeRotate, append(make([]byte, 8), "mariadb-bin.000002"...), 0, FlagArtificial))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := ParseEvent(data)
		if err != nil {
			return
		}
		var g GroupTracker
		g.Add(ev)
		_, _ = FDEChecksum(ev), VerifyChecksum(ev)
		if ev.Type() == TypeRotate {
			_, _, _ = RotateTarget(ev)
		}
	})
}

func FuzzScanComplete(f *testing.F) {
	var s stream
	s.add(TypeFormatDescription, fdeBody())
	s.add(TypeMariaGTID, gtidBody(1, false))
	s.add(TypeXID, make([]byte, 8))
	f.Add(append(append([]byte{}, Magic...), bytes.Join(s.events, nil)...))
	f.Add([]byte{0xfe, 0x62, 0x69, 0x6e, 0xff, 0xff, 0xff, 0xff})
	whole, ends := fileOfTransactions(3)
	f.Add(whole)
	mid := bytes.Clone(whole)
	mid[ends[1]+40] ^= 1 // a bad checksum with whole transactions after it
	f.Add(mid)
	f.Add(whole[:len(whole)-3])
	f.Fuzz(func(t *testing.T, data []byte) {
		// ScanComplete is scanFile's end.
		sc, err := scanFile(bytes.NewReader(data))
		if err != nil {
			return
		}
		if sc.end > int64(len(data)) || (sc.end != 0 && sc.end < 4) {
			t.Fatalf("end %d with %d bytes", sc.end, len(data))
		}
		if sc.bad >= 0 && (sc.bad < sc.end || sc.bad >= int64(len(data))) {
			t.Fatalf("bad event at %d outside %d..%d", sc.bad, sc.end, len(data))
		}
		if sc.bad < 0 && sc.corrupt {
			t.Fatal("corrupt without a bad event")
		}
		// The cut is exactly where a fresh group tracker, fed the whole
		// events from the start one by one, last saw a boundary.
		if want := lastBoundary(data); sc.end != want {
			t.Fatalf("ScanComplete cut at %d; the group tracker's last boundary before the first bad event is %d", sc.end, want)
		}
	})
}

// lastBoundary walks data's events from offset 4 while each is whole (it
// parses, its log_pos is its end, its checksum verifies as the last FDE
// says) and returns the end of the last one after which the group tracker
// saw a boundary: 4 when none did, 0 when data is not past the magic.
func lastBoundary(data []byte) int64 {
	if len(data) < len(Magic) {
		return 0
	}
	var g GroupTracker
	off, last := len(Magic), int64(len(Magic))
	for off+HeaderSize <= len(data) {
		size := SizeOf(data[off:])
		if size < HeaderSize || off+size > len(data) {
			break
		}
		ev, err := ParseEvent(data[off : off+size])
		if err != nil || g.Verify(ev) != nil || (ev.LogPos() != 0 && int(ev.LogPos()) != off+size) {
			break
		}
		off += size
		if g.Add(ev) {
			last = int64(off)
		}
	}
	return last
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

// testLog opens a relay log in a temp dir under policy, with its metrics,
// writing mariadb-bin.000001; it is closed when the test ends.
func testLog(t testing.TB, policy SyncPolicy) (*Log, *Metrics) {
	t.Helper()
	m := NewMetrics(prometheus.NewRegistry())
	l, err := OpenLog(t.TempDir(), policy, hclog.NewNullLogger(), m)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if err := l.StartFile("mariadb-bin.000001"); err != nil {
		t.Fatal(err)
	}
	return l, m
}

// appendTo frames each (type, body) at the stream's next offset and
// appends it to l.
func appendTo(t testing.TB, l *Log, s *stream, events ...typedBody) {
	t.Helper()
	for _, e := range events {
		if _, err := l.Append(Event(s.add(e.typ, e.body))); err != nil {
			t.Fatal(err)
		}
	}
}

type typedBody struct {
	typ  byte
	body []byte
}

// oneTransaction is an FDE and one MariaDB transaction of one rows event.
func oneTransaction() []typedBody {
	return []typedBody{{TypeFormatDescription, fdeBody()}, {TypeMariaGTID, gtidBody(1, false)}, {30, []byte("rows")}, {TypeXID, make([]byte, 8)}}
}

func TestGroupCommitMakesTransactionsDurable(t *testing.T) {
	l, m := testLog(t, SyncTransaction)
	var s stream
	appendTo(t, l, &s, oneTransaction()...)
	done := make(chan struct{})
	defer close(done)
	if err := l.WaitDurable(done); err != nil {
		t.Fatal(err)
	}
	if l.Durable() != l.ResumePoint() || l.Durable().Offset != s.off {
		t.Fatalf("durable %v, written %v, want both at %d", l.Durable(), l.ResumePoint(), s.off)
	}
	// The file's creation fsyncs directly; the transaction went through
	// the group commit, which times its fsync.
	var h dto.Metric
	if err := m.fsync.Write(&h); err != nil {
		t.Fatal(err)
	}
	if n := h.GetHistogram().GetSampleCount(); n < 1 {
		t.Fatalf("replink_relay_log_fsync_duration_seconds has %d samples, want at least 1", n)
	}
}

func TestPurgeKeepsCurrentAndReadFiles(t *testing.T) {
	dir := t.TempDir()
	l := logWithFiles(t, dir, "b.000001", "b.000002", "b.000003", "b.000004")
	future := time.Now().Add(time.Hour)
	removed, err := l.Purge(future, func(name string) bool { return name == "b.000003" })
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 2 || removed[0] != "b.000001" || removed[1] != "b.000002" {
		t.Fatalf("removed %v, want the two files before the one a slave reads", removed)
	}
	if got := l.Files(); len(got) != 2 || got[0] != "b.000003" {
		t.Fatalf("index %v", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "b.000001")); !os.IsNotExist(err) {
		t.Fatal("purged file still on disk")
	}
	removed, _ = l.Purge(future, func(string) bool { return false })
	if len(removed) != 1 || removed[0] != "b.000003" {
		t.Fatalf("second purge removed %v; the file being written must stay", removed)
	}
	// Too young: nothing goes.
	if removed, _ := l.Purge(time.Now().Add(-time.Hour), func(string) bool { return false }); len(removed) != 0 {
		t.Fatalf("purged young files %v", removed)
	}
	l.Close()
	l2, err := OpenLog(dir, SyncNone, hclog.NewNullLogger(), NewMetrics(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if got := l2.Files(); len(got) != 1 || got[0] != "b.000004" {
		t.Fatalf("index after reopen %v", got)
	}
}

func FuzzParseMariaState(f *testing.F) {
	for _, s := range []string{"", "0-1-100", "0-1-100,1-2-5", " 0-1-1 , 2-3-4 ", "0-1", "a-b-c", "0-1-1,0-2-2", "-1-1-1", "4294967296-1-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		st, err := ParseMariaState(s)
		if err != nil {
			return
		}
		again, err := ParseMariaState(st.String())
		if err != nil || len(again) != len(st) {
			t.Fatalf("%q -> %q does not parse back: %v", s, st.String(), err)
		}
		for d, g := range st {
			if again[d] != g {
				t.Fatalf("%q: domain %d round-trips to %v, was %v", s, d, again[d], g)
			}
		}
	})
}

func FuzzGTIDList(f *testing.F) {
	f.Add(mkEvent(TypeMariaGTIDList, []byte{1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0}, 100, 0))
	f.Add(mkEvent(TypeMariaGTIDList, []byte{0xff, 0xff, 0xff, 0x0f}, 100, 0))
	f.Fuzz(func(t *testing.T, raw []byte) {
		ev, err := ParseEvent(raw)
		if err != nil {
			return
		}
		_, _ = GTIDOf(ev, ChecksumCRC32)
		list, err := GTIDListEntries(ev, ChecksumCRC32)
		if err != nil {
			return
		}
		// Round trip: the entries, framed again, read back the same, and
		// GTIDList keeps each domain's last entry.
		body := binary.LittleEndian.AppendUint32(nil, uint32(len(list)))
		for _, g := range list {
			body = binary.LittleEndian.AppendUint32(body, g.Domain)
			body = binary.LittleEndian.AppendUint32(body, g.Server)
			body = binary.LittleEndian.AppendUint64(body, g.Seq)
		}
		again, err := GTIDListEntries(Frame(TypeMariaGTIDList, 1, 0, body, 0, 0), ChecksumCRC32)
		if err != nil || len(again) != len(list) {
			t.Fatalf("%v does not read back: %v, %v", list, again, err)
		}
		for i := range list {
			if again[i] != list[i] {
				t.Fatalf("entry %d reads back as %v, was %v", i, again[i], list[i])
			}
		}
		st, _ := GTIDList(ev, ChecksumCRC32)
		for _, g := range list {
			if st[g.Domain].Domain != g.Domain {
				t.Fatalf("GTIDList lost domain %d", g.Domain)
			}
		}
		if len(list) > 0 {
			if g := list[len(list)-1]; st[g.Domain] != g {
				t.Fatalf("GTIDList keeps %v for domain %d, want the last entry %v", st[g.Domain], g.Domain, g)
			}
		}
	})
}

// TestScanCompleteLargeEventsAndTornHeader: an event larger than the
// scanner's buffer is read whole; a torn header claiming a huge event ends
// the scan at the last complete transaction without allocating its size.
func TestScanCompleteLargeEventsAndTornHeader(t *testing.T) {
	var s stream
	s.add(TypeFormatDescription, fdeBody())
	s.add(TypeMariaGTID, gtidBody(1, false))
	s.add(30, bytes.Repeat([]byte{'r'}, 3<<20)) // 3 MiB of rows
	s.add(TypeXID, make([]byte, 8))
	data := append(append([]byte{}, Magic...), bytes.Join(s.events, nil)...)
	complete := int64(len(data))
	torn := mkEvent(TypeMariaGTID, gtidBody(2, false), 0, 0)[:HeaderSize]
	binary.LittleEndian.PutUint32(torn[9:], 900<<20) // claims 900 MiB
	data = append(data, torn...)

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	end, _, err := ScanComplete(bytes.NewReader(data))
	runtime.ReadMemStats(&after)
	if err != nil || end != complete {
		t.Fatalf("ScanComplete = %d, %v; want %d", end, err, complete)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
		t.Fatalf("scanning %d bytes allocated %d MiB", len(data), grew>>20)
	}
}

// logWithFiles opens a relay log in dir holding the files names (each
// just its magic), closed when the test ends.
func logWithFiles(t *testing.T, dir string, names ...string) *Log {
	t.Helper()
	l, err := OpenLog(dir, SyncNone, hclog.NewNullLogger(), NewMetrics(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	for _, name := range names {
		if err := l.StartFile(name); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// TestPurgeSparesOpenReaders: a file open in a Reader (a slave reads it)
// is never purged, whatever keep says, and a purged file cannot be opened
// or asked about: Open and Readable say ErrPurged rather than "nothing
// yet", so a reader of a vanished file ends instead of waiting for ever.
func TestPurgeSparesOpenReaders(t *testing.T) {
	l := logWithFiles(t, t.TempDir(), "b.000001", "b.000002", "b.000003", "b.000004")
	future := time.Now().Add(time.Hour)
	none := func(string) bool { return false }
	r, err := l.Open("b.000002")
	if err != nil {
		t.Fatal(err)
	}
	removed, err := l.Purge(future, none)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(removed, []string{"b.000001"}) {
		t.Fatalf("purged %v with b.000002 open, want only b.000001", removed)
	}
	// Moving on holds the next file before letting go of the last.
	if err := r.Reopen("b.000003"); err != nil {
		t.Fatal(err)
	}
	if removed, _ = l.Purge(future, none); !slices.Equal(removed, []string{"b.000002"}) {
		t.Fatalf("purged %v with b.000003 open, want b.000002", removed)
	}
	r.Close()
	if removed, _ = l.Purge(future, none); !slices.Equal(removed, []string{"b.000003"}) {
		t.Fatalf("purged %v after the reader closed, want b.000003", removed)
	}
	for _, name := range []string{"b.000001", "b.000003", "../x"} {
		if _, err := l.Open(name); !errors.Is(err, ErrPurged) {
			t.Errorf("Open(%q) = %v, want ErrPurged", name, err)
		}
		if _, _, err := l.Readable(name); !errors.Is(err, ErrPurged) {
			t.Errorf("Readable(%q) = %v, want ErrPurged", name, err)
		}
	}
}

// TestPurgeFollowsTheIndex: when the index cannot be rewritten, nothing
// is purged, in memory or on disk.
func TestPurgeFollowsTheIndex(t *testing.T) {
	l := logWithFiles(t, t.TempDir(), "b.000001", "b.000002")
	l.writeFile = func(string, []byte, os.FileMode) error { return errors.New("injected: no space left on device") }
	if removed, err := l.Purge(time.Now().Add(time.Hour), func(string) bool { return false }); err == nil || len(removed) != 0 {
		t.Fatalf("Purge with a failing index write = %v, %v", removed, err)
	}
	if got := l.Files(); !slices.Equal(got, []string{"b.000001", "b.000002"}) {
		t.Fatalf("files in memory %v after a failed index write", got)
	}
	r, err := l.Open("b.000001")
	if err != nil {
		t.Fatalf("the file the failed purge kept cannot be opened: %v", err)
	}
	r.Close()
}

// TestWriteFileAtomicConcurrent: writers of one file never leave a mix
// of their contents, nor temporary files.
func TestWriteFileAtomicConcurrent(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "replink.slaves")
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := bytes.Repeat([]byte{byte('a' + w)}, 64<<10-w*1000)
			for i := 0; i < 25; i++ {
				if err := WriteFileAtomic(name, data, 0o640); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	stop := make(chan struct{})
	var reads int
	go func() {
		defer close(stop)
		for i := 0; i < 400; i++ {
			b, err := os.ReadFile(name)
			if err != nil {
				continue
			}
			reads++
			if len(b) == 0 || !bytes.Equal(b, bytes.Repeat(b[:1], len(b))) || len(b) != 64<<10-int(b[0]-'a')*1000 {
				t.Errorf("read a mixed or torn file: %d bytes starting %q", len(b), b[:min(len(b), 1)])
				return
			}
		}
	}()
	wg.Wait()
	<-stop
	if left, _ := filepath.Glob(filepath.Join(dir, "*.tmp")); len(left) > 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}
