package binlog

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
)

// logBuffer collects what a logger writes, for tests that check what the
// log says.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func bufferLogger() (hclog.Logger, *logBuffer) {
	buf := &logBuffer{}
	return hclog.New(&hclog.LoggerOptions{Output: buf, Level: hclog.Trace}), buf
}

// fileOfTransactions is a relay file: the magic, an FDE and n MariaDB
// transactions (GTID, rows, XID); ends[i] is the offset after the FDE
// (i = 0) and after transaction i.
func fileOfTransactions(n int) (data []byte, ends []int64) {
	var s stream
	s.add(TypeFormatDescription, fdeBody())
	ends = append(ends, int64(s.off))
	for i := 1; i <= n; i++ {
		s.add(TypeMariaGTID, gtidBody(uint64(i), false))
		s.add(30, bytes.Repeat([]byte{byte('a' + i)}, 100))
		s.add(TypeXID, make([]byte, 8))
		ends = append(ends, int64(s.off))
	}
	return append(append([]byte{}, Magic...), bytes.Join(s.events, nil)...), ends
}

// dataDirWith makes a data-dir whose index lists one file with data.
func dataDirWith(t *testing.T, name string, data []byte) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, IndexName), []byte(name+"\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o640); err != nil {
		t.Fatal(err)
	}
	return dir
}

func corruptCopies(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.corrupt-*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestRecoverTellsATornTailFromCorruption: recovery cuts the last file
// back to its last complete transaction. A torn tail (the file ends inside
// the last event, or the last event's checksum is bad and nothing follows,
// or the file ends in zeros) is cut with a warning. Damage followed by
// whole events is corruption: what is cut is kept in
// <file>.corrupt-<offset> and the log says so at error level.
func TestRecoverTellsATornTailFromCorruption(t *testing.T) {
	const name = "mariadb-bin.000001"
	whole, ends := fileOfTransactions(3)
	rowsOf := func(i int) int64 { return ends[i-1] + HeaderSize + 13 + 4 } // transaction i's rows event
	flip := func(at int64) []byte {
		b := bytes.Clone(whole)
		b[at] ^= 0x40
		return b
	}
	badSize := bytes.Clone(whole)
	binary.LittleEndian.PutUint32(badSize[rowsOf(2)+9:], 3) // a size no event has
	cases := []struct {
		name    string
		data    []byte
		cutTo   int64
		corrupt bool
	}{
		{"file ends inside the last event", whole[:rowsOf(3)+50], ends[2], false},
		{"file ends inside a header", whole[:rowsOf(3)+7], ends[2], false},
		{"last event's checksum is bad, nothing follows", flip(int64(len(whole)) - 6), ends[2], false},
		{"zeros after the last transaction", append(bytes.Clone(whole), make([]byte, 8192)...), ends[3], false},
		{"bad checksum in the middle", flip(rowsOf(2) + HeaderSize + 10), ends[1], true},
		{"bad size in the middle", badSize, ends[1], true},
		{"bad checksum in the FDE, transactions follow", flip(4 + HeaderSize + 5), 4, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := dataDirWith(t, name, tc.data)
			logger, logs := bufferLogger()
			l, err := OpenLog(dir, SyncTransaction, logger, NewMetrics(prometheus.NewRegistry()))
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if got := l.ResumePoint(); got != (Pos{name, uint32(tc.cutTo)}) {
				t.Fatalf("recovered to %v, want %s:%d", got, name, tc.cutTo)
			}
			data, _ := os.ReadFile(filepath.Join(dir, name))
			if !bytes.Equal(data, tc.data[:tc.cutTo]) {
				t.Fatalf("file is %d bytes after recovery, want the first %d", len(data), tc.cutTo)
			}
			copies := corruptCopies(t, dir)
			if !tc.corrupt {
				if len(copies) != 0 {
					t.Fatalf("a torn tail was kept as corrupt: %v", copies)
				}
				if !strings.Contains(logs.String(), "[WARN]") || !strings.Contains(logs.String(), "from="+strconv.Itoa(len(tc.data))) {
					t.Fatalf("the cut is not logged as a warning with its offsets:\n%s", logs)
				}
				return
			}
			want := filepath.Join(dir, name+".corrupt-"+strconv.FormatInt(tc.cutTo, 10))
			if len(copies) != 1 || copies[0] != want {
				t.Fatalf("copies of the cut %v, want %s", copies, want)
			}
			kept, _ := os.ReadFile(want)
			if !bytes.Equal(kept, tc.data[tc.cutTo:]) {
				t.Fatalf("the copy holds %d bytes, want the %d that were cut", len(kept), len(tc.data)-int(tc.cutTo))
			}
			out := logs.String()
			if !strings.Contains(out, "[ERROR]") || !strings.Contains(out, want) || !strings.Contains(out, "to="+strconv.FormatInt(tc.cutTo, 10)) {
				t.Fatalf("the corruption is not logged at error level with the offsets and the copy:\n%s", out)
			}
			// The copy is not a name the master can make replink write.
			if err := l.StartFile(filepath.Base(want)); err == nil {
				t.Fatal("StartFile accepted the name of a corrupt copy")
			}
		})
	}
}

// TestRecoverTornMagic: a listed file that is empty or holds a prefix of
// the magic (create crashed before it was written) starts afresh at 4;
// any other bad start is an error and the file is left as it is.
func TestRecoverTornMagic(t *testing.T) {
	const name = "mariadb-bin.000001"
	for _, tc := range []struct {
		name  string
		data  []byte
		fresh bool
	}{
		{"empty", nil, true},
		{"one byte of the magic", Magic[:1], true},
		{"three bytes of the magic", Magic[:3], true},
		{"two bytes, not the magic", []byte{0xfe, 0x00}, false},
		{"not a binlog file", []byte("hello, this is not a binlog"), false},
		{"magic torn inside a longer file", append([]byte{0xfe, 0x62, 0, 0}, make([]byte, 100)...), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := dataDirWith(t, name, tc.data)
			l, err := OpenLog(dir, SyncEvent, hclog.NewNullLogger(), NewMetrics(prometheus.NewRegistry()))
			data, _ := os.ReadFile(filepath.Join(dir, name))
			if !tc.fresh {
				if err == nil {
					l.Close()
					t.Fatal("a file with a bad magic was opened")
				}
				if !bytes.Equal(data, tc.data) {
					t.Fatalf("the file was rewritten: %x", data)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if got := l.ResumePoint(); got != (Pos{name, 4}) {
				t.Fatalf("resume point %v, want %s:4", got, name)
			}
			if !bytes.Equal(data, Magic) {
				t.Fatalf("file holds %x, want the magic", data)
			}
			var s stream
			appendTo(t, l, &s, oneTransaction()...)
			if l.Durable().Offset != s.off {
				t.Fatalf("durable %v after a transaction, want offset %d", l.Durable(), s.off)
			}
		})
	}
}

// TestStartFileAcceptsOnlyBinlogNames: a name from the master is a plain
// file name of [A-Za-z0-9._-], never one of replink's own files.
func TestStartFileAcceptsOnlyBinlogNames(t *testing.T) {
	dir := t.TempDir()
	l, err := OpenLog(dir, SyncNone, hclog.NewNullLogger(), NewMetrics(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	bad := []string{"", ".", "..", "../x", "a/b", `a\b`, "a b", "a\nb", "mariadb-bin.000001\n", "a\x00b", "bin.00000é",
		IndexName, IndexName + ".tmp", LockName, "mariadb-bin.000001.corrupt-120", "replink.state", strings.Repeat("a", 256)}
	for _, name := range bad {
		if err := l.StartFile(name); err == nil {
			t.Errorf("StartFile(%q) accepted", name)
		}
	}
	good := []string{"mariadb-bin.000001", "host_1-bin.000002", "replink.000003", "binlog.1000000"}
	for _, name := range good {
		if err := l.StartFile(name); err != nil {
			t.Errorf("StartFile(%q): %v", name, err)
		}
	}
	if got := l.Files(); strings.Join(got, ",") != strings.Join(good, ",") {
		t.Fatalf("index lists %q, want %q", got, good)
	}
	l.Close()
	l, err = OpenLog(dir, SyncNone, hclog.NewNullLogger(), NewMetrics(prometheus.NewRegistry()))
	if err != nil {
		t.Fatalf("reopening after refused names: %v", err)
	}
	if got := l.Files(); strings.Join(got, ",") != strings.Join(good, ",") {
		t.Fatalf("index lists %q after reopening, want %q", got, good)
	}
}

// TestOpenLogRefusesAnIndexWithBadNames: an index that names a path out
// of data-dir (edited by hand, damaged) is refused, not followed.
func TestOpenLogRefusesAnIndexWithBadNames(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	os.Mkdir(dir, 0o750)
	os.WriteFile(filepath.Join(dir, IndexName), []byte("mariadb-bin.000001\n../outside.000001\n"), 0o640)
	l, err := OpenLog(dir, SyncNone, hclog.NewNullLogger(), NewMetrics(prometheus.NewRegistry()))
	if err == nil {
		l.Close()
		t.Error("an index naming ../outside.000001 was opened")
	}
	if _, err := os.Stat(filepath.Join(dir, "..", "outside.000001")); err == nil {
		t.Error("the relay log wrote a file outside data-dir")
	}
}

// TestDataDirIsLocked: a second relay log on a data-dir fails, naming the
// holder; once the first is closed the data-dir can be opened again.
func TestDataDirIsLocked(t *testing.T) {
	dir := t.TempDir()
	open := func() (*Log, error) {
		return OpenLog(dir, SyncNone, hclog.NewNullLogger(), NewMetrics(prometheus.NewRegistry()))
	}
	first, err := open()
	if err != nil {
		t.Fatal(err)
	}
	second, err := open()
	if err == nil {
		second.Close()
		first.Close()
		t.Fatal("a second relay log opened the same data-dir")
	}
	host, _ := os.Hostname()
	for _, want := range []string{dir, "in use by another replink", "pid " + strconv.Itoa(os.Getpid()), host} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	third, err := open()
	if err != nil {
		t.Fatalf("after the first was closed: %v", err)
	}
	third.Close()
}

// TestDurableNeverMovesBack: the syncer records the position it fsynced
// after the fact; by then the log may have rotated (closing the file made
// it durable to its end, the new file is durable at 4). A late record of
// an older position must not move the durable end back, which would hide
// the rest of the finished file and the new one from slaves.
func TestDurableNeverMovesBack(t *testing.T) {
	l, _ := testLog(t, SyncTransaction)
	var s stream
	appendTo(t, l, &s, oneTransaction()...)
	fsynced := l.ResumePoint() // what the syncer fsyncs, then records
	appendTo(t, l, &s, typedBody{TypeMariaGTID, gtidBody(2, false)}, typedBody{30, []byte("rows")}, typedBody{TypeXID, make([]byte, 8)})
	end := l.ResumePoint()
	// Within the file.
	done := make(chan struct{})
	defer close(done)
	if err := l.WaitDurable(done); err != nil {
		t.Fatal(err)
	}
	l.setDurable(fsynced)
	if got := l.Durable(); got != end {
		t.Fatalf("durable moved back to %v from %v", got, end)
	}
	// Across a rotation.
	if err := l.StartFile("mariadb-bin.000002"); err != nil {
		t.Fatal(err)
	}
	l.setDurable(end)
	if got := l.Durable(); got != (Pos{"mariadb-bin.000002", 4}) {
		t.Fatalf("durable moved back to %v after the rotation", got)
	}
	if n, complete, err := l.Readable("mariadb-bin.000001"); err != nil || !complete || n != int64(end.Offset) {
		t.Fatalf("Readable(first file) = %d, %v, %v; want the whole file, complete", n, complete, err)
	}
}

// TestDurableMonotonicUnderRotation streams small transactions and rotates
// often under sync = "transaction" while a slave-like watcher checks that
// the durable end only ever moves forward (run it with -race).
func TestDurableMonotonicUnderRotation(t *testing.T) {
	l, _ := testLog(t, SyncTransaction)
	stop := make(chan struct{})
	errs := make(chan string, 1)
	go func() {
		defer close(errs)
		var last Pos
		for {
			select {
			case <-stop:
				return
			default:
			}
			d := l.Durable()
			li, di := l.Index(last.File), l.Index(d.File)
			if di < li || (di == li && d.Offset < last.Offset) {
				errs <- fmt.Sprintf("durable moved back from %v to %v", last, d)
				return
			}
			last = d
		}
	}()
	for i := 1; i <= 300; i++ {
		var s stream
		appendTo(t, l, &s, typedBody{TypeFormatDescription, fdeBody()})
		for j := 0; j < 3; j++ {
			appendTo(t, l, &s, typedBody{TypeMariaGTID, gtidBody(uint64(i), false)}, typedBody{30, []byte("rows")}, typedBody{TypeXID, make([]byte, 8)})
			runtime.Gosched()
		}
		next := fmt.Sprintf("mariadb-bin.%06d", i+1)
		appendTo(t, l, &s, typedBody{TypeRotate, append(binary.LittleEndian.AppendUint64(nil, 4), next...)})
		if err := l.StartFile(next); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	if msg, ok := <-errs; ok {
		t.Fatal(msg)
	}
}
