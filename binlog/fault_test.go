package binlog

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
)

// faultFS opens real files whose fsync fails while it is told to, as
// Linux's does after a writeback error (EIO) — and, as on Linux, the next
// fsync succeeds, the failed pages being marked clean.
type faultFS struct {
	mu        sync.Mutex
	failSyncs int // how many fsyncs fail from now; -1: all
	failed    int
}

var errInjectedEIO = errors.New("injected: input/output error")

func (fs *faultFS) open(name string, flag int, perm os.FileMode) (file, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: f, fs: fs}, nil
}

func (fs *faultFS) failNextSyncs(n int) {
	fs.mu.Lock()
	fs.failSyncs = n
	fs.mu.Unlock()
}

func (fs *faultFS) failures() int {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.failed
}

type faultFile struct {
	*os.File
	fs *faultFS
}

func (f *faultFile) Sync() error {
	f.fs.mu.Lock()
	fail := f.fs.failSyncs != 0
	if fail {
		f.fs.failed++
		if f.fs.failSyncs > 0 {
			f.fs.failSyncs--
		}
	}
	f.fs.mu.Unlock()
	if fail {
		return errInjectedEIO
	}
	return f.File.Sync()
}

func faultLog(t *testing.T, policy SyncPolicy) (*Log, *faultFS, string) {
	t.Helper()
	dir := t.TempDir()
	fs := &faultFS{}
	l, err := openLog(dir, policy, hclog.NewNullLogger(), NewMetrics(prometheus.NewRegistry()), fs.open, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if err := l.StartFile("mariadb-bin.000001"); err != nil {
		t.Fatal(err)
	}
	return l, fs, dir
}

func secondTransaction() []typedBody {
	return []typedBody{{TypeMariaGTID, gtidBody(2, false)}, {30, []byte("rows of the second transaction")}, {TypeXID, make([]byte, 8)}}
}

// TestFailedFsyncIsNotForgiven: the group commit's fsync fails. What it
// was to make durable is never served, and the replica's next session
// (ResumePoint, Rollback, stream from there) fetches it again from the
// last durable point, although a second fsync would now succeed.
func TestFailedFsyncIsNotForgiven(t *testing.T) {
	l, fs, dir := faultLog(t, SyncTransaction)
	done := make(chan struct{})
	defer close(done)
	var s stream
	appendTo(t, l, &s, oneTransaction()...)
	if err := l.WaitDurable(done); err != nil {
		t.Fatal(err)
	}
	durable := l.Durable()

	fs.failNextSyncs(1)
	appendTo(t, l, &s, secondTransaction()...)
	if err := l.WaitDurable(done); !errors.Is(err, errInjectedEIO) {
		t.Fatalf("WaitDurable after a failed fsync: %v", err)
	}
	if got := l.Durable(); got != durable {
		t.Fatalf("durable %v after the failed fsync, want %v", got, durable)
	}
	// The replica's session: where to resume, then Rollback.
	if got := l.ResumePoint(); got != durable {
		t.Fatalf("resume point %v after the failed fsync, want the durable %v", got, durable)
	}
	if err := l.Rollback(); err != nil {
		t.Fatal(err)
	}
	if got := l.Durable(); got != durable {
		t.Fatalf("after Rollback durable is %v: data whose fsync failed is served; want %v", got, durable)
	}
	if got := l.ResumePoint(); got != durable {
		t.Fatalf("after Rollback the stream resumes at %v, want %v", got, durable)
	}
	if n, _, _ := l.Readable("mariadb-bin.000001"); n != int64(durable.Offset) {
		t.Fatalf("slaves may read to %d, want %d", n, durable.Offset)
	}
	if st, _ := os.Stat(filepath.Join(dir, "mariadb-bin.000001")); st.Size() != int64(durable.Offset) {
		t.Fatalf("file is %d bytes after Rollback, want %d", st.Size(), durable.Offset)
	}
	// The master sends the second transaction again, at the same offsets.
	s.off = durable.Offset
	appendTo(t, l, &s, secondTransaction()...)
	if err := l.WaitDurable(done); err != nil {
		t.Fatal(err)
	}
	if got := l.Durable(); got.Offset != s.off {
		t.Fatalf("durable %v after the resend, want offset %d", got, s.off)
	}
}

// TestFailedFsyncAtRotation: the fsync that closes a file on ROTATE fails
// (or the group commit's just before it). The next file is not started,
// and the replica's next session cuts the file back to the last durable
// point and fetches the rest again, instead of reopening the file and
// taking all of it as durable.
func TestFailedFsyncAtRotation(t *testing.T) {
	l, fs, dir := faultLog(t, SyncTransaction)
	done := make(chan struct{})
	defer close(done)
	var s stream
	appendTo(t, l, &s, oneTransaction()...)
	if err := l.WaitDurable(done); err != nil {
		t.Fatal(err)
	}
	durable := l.Durable()
	want, _ := os.ReadFile(filepath.Join(dir, "mariadb-bin.000001"))

	fs.failNextSyncs(-1)
	// The stream as the replica hands it over, up to the first error.
	err := func() error {
		for _, e := range append(secondTransaction(), typedBody{TypeRotate, append(make([]byte, 8), "mariadb-bin.000002"...)}) {
			if _, err := l.Append(Event(s.add(e.typ, e.body))); err != nil {
				return err
			}
		}
		return l.StartFile("mariadb-bin.000002")
	}()
	if err == nil {
		t.Fatal("rotation succeeded although every fsync fails")
	}
	if fs.failures() == 0 {
		t.Fatal("no fsync was tried")
	}
	fs.failNextSyncs(0)
	// The next session: resume point, Rollback, the master's fake ROTATE.
	from := l.ResumePoint()
	if err := l.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := l.StartFile(from.File); err != nil {
		t.Fatal(err)
	}
	if from != durable || l.Durable() != durable || l.ResumePoint() != durable {
		t.Fatalf("resumes from %v, durable %v, resume point %v; want all at the last durable %v", from, l.Durable(), l.ResumePoint(), durable)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "mariadb-bin.000001")); !bytes.Equal(got, want) {
		t.Fatalf("file is %d bytes, want the %d that were durable", len(got), len(want))
	}
	if files := l.Files(); len(files) != 1 {
		t.Fatalf("index %v, want only the first file", files)
	}
}

// TestAppendDoesNotAllocate: writing through the file layer costs the
// append path no allocation.
func TestAppendDoesNotAllocate(t *testing.T) {
	l, _ := testLog(t, SyncNone)
	var s stream
	appendTo(t, l, &s, typedBody{TypeFormatDescription, fdeBody()})
	const runs = 200
	for i := 0; i <= runs; i++ {
		s.add(TypeMariaGTID, gtidBody(uint64(i), false))
		s.add(30, make([]byte, 120))
		s.add(TypeXID, make([]byte, 8))
	}
	next := 1
	allocs := testing.AllocsPerRun(runs, func() {
		for j := 0; j < 3; j++ {
			if _, err := l.Append(Event(s.events[next])); err != nil {
				t.Fatal(err)
			}
			next++
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per transaction appended", allocs)
	}
}
