package binlog

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/replink/replink/packet"
)

// SyncPolicy says when the relay log is fsynced.
type SyncPolicy string

const (
	SyncEvent       SyncPolicy = "event"       // after every event
	SyncTransaction SyncPolicy = "transaction" // at every transaction boundary
	SyncNone        SyncPolicy = "none"        // leave it to the OS
)

// ParseSyncPolicy checks a [relay] sync value.
func ParseSyncPolicy(s string) (SyncPolicy, error) {
	switch p := SyncPolicy(s); p {
	case SyncEvent, SyncTransaction, SyncNone:
		return p, nil
	case "":
		return SyncTransaction, nil
	}
	return "", fmt.Errorf("unknown sync policy %q (event, transaction, none)", s)
}

// IndexName is the relay log's index file in data-dir.
const IndexName = "replink.index"

// Log is the relay log: the master's binlog files under their own names,
// byte for byte at the master's offsets, and an index file.
type Log struct {
	dir    string
	log    hclog.Logger
	policy SyncPolicy
	m      *Metrics

	mu      sync.Mutex // guards files, written, durable, changed and syncErr
	changed chan struct{}
	files   []string
	written Pos   // end of the last complete transaction written to the file
	durable Pos   // end of the last complete transaction fsynced (per policy)
	syncErr error // a failed background fsync: nothing more is acknowledged

	// syncMu serialises fsync with switching files and truncating, so the
	// group-commit syncer never fsyncs a file being closed.
	syncMu  sync.Mutex
	f       *os.File
	w       *bufio.Writer
	cur     Pos // end of what has been appended (possibly mid-transaction)
	groups  GroupTracker
	syncReq chan struct{}
	stop    chan struct{}
	stopped chan struct{}
}

// OpenLog opens the relay log in dir, creating it when needed, and
// recovers it: the tail of the last file is scanned and cut back to the
// end of the last complete transaction, so a crash at any moment leaves a
// log that ends on a transaction boundary.
func OpenLog(dir string, policy SyncPolicy, log hclog.Logger, m *Metrics) (*Log, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("relay log %s: %w", dir, err)
	}
	l := &Log{dir: dir, policy: policy, log: log, m: m, syncReq: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{})}
	data, err := os.ReadFile(filepath.Join(dir, IndexName))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("relay log index %s: %w", filepath.Join(dir, IndexName), err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			l.files = append(l.files, line)
		}
	}
	if len(l.files) > 0 {
		if err := l.recover(l.files[len(l.files)-1]); err != nil {
			return nil, err
		}
	}
	go l.syncer()
	return l, nil
}

// syncer is the group commit of sync = "transaction": it fsyncs whatever
// complete transactions have been written since the last fsync, so a
// burst of small transactions costs one fsync, not one each, and the
// stream is never held up waiting for the disk.
func (l *Log) syncer() {
	defer close(l.stopped)
	for {
		select {
		case <-l.stop:
			return
		case <-l.syncReq:
		}
		l.syncMu.Lock()
		l.mu.Lock()
		target := l.written
		l.mu.Unlock()
		if l.f == nil || target.File != l.cur.File {
			l.syncMu.Unlock()
			continue
		}
		err := l.fsync()
		l.syncMu.Unlock()
		if err != nil {
			l.mu.Lock()
			l.syncErr = err
			l.mu.Unlock()
			l.log.Error("relay log fsync failed; no further events are acknowledged or served", "error", err)
			continue
		}
		l.setDurable(target)
	}
}

// recover scans name from its start and truncates it after the last
// complete transaction.
func (l *Log) recover(name string) error {
	path := l.path(name)
	f, err := os.OpenFile(path, os.O_RDWR, 0o640)
	if errors.Is(err, os.ErrNotExist) {
		// Listed but never created: start it afresh.
		return l.create(name)
	}
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	if err != nil {
		return fmt.Errorf("relay log %s: %w", path, err)
	}
	end, tracker, err := ScanComplete(f)
	if err != nil {
		f.Close()
		return fmt.Errorf("relay log %s: %w", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	if st.Size() != end {
		l.log.Warn("truncating partial transaction at the end of the relay log", "file", name, "from", st.Size(), "to", end)
		if err := f.Truncate(end); err != nil {
			f.Close()
			return fmt.Errorf("relay log %s: truncate partial transaction at %d: %w", path, end, err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return fmt.Errorf("relay log %s: fsync: %w", path, err)
		}
	}
	if _, err := f.Seek(end, io.SeekStart); err != nil {
		f.Close()
		return err
	}
	l.f, l.w = f, bufio.NewWriterSize(f, 256<<10)
	l.cur = Pos{File: name, Offset: uint32(end)}
	l.groups = tracker
	l.setWritten(l.cur)
	l.setDurable(l.cur)
	return nil
}

// ScanComplete reads a binlog file from its start and returns the offset
// just after the last complete transaction (at least 4, past the magic),
// with the group tracker's state at that point. A torn or corrupt event
// ends the scan there.
func ScanComplete(r io.Reader) (int64, GroupTracker, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	var g GroupTracker
	magic := make([]byte, 4)
	if n, err := io.ReadFull(br, magic); err != nil {
		if n == 0 || errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, g, nil // empty or torn magic: rewrite from scratch
		}
		return 0, g, err
	}
	if string(magic) != string(Magic) {
		return 0, g, fmt.Errorf("not a binlog file (magic %x)", magic)
	}
	off, good := int64(4), int64(4)
	goodTracker := g
	var big []byte // for events larger than br's buffer
	for {
		hdr, err := br.Peek(HeaderSize)
		if err != nil {
			break
		}
		size := SizeOf(hdr)
		if size < HeaderSize || size > MaxEventSize {
			break
		}
		// Events are read in place; a larger one is gathered as its bytes
		// arrive, so a torn header claiming a huge size costs nothing.
		var raw []byte
		if size <= br.Size() {
			raw, err = br.Peek(size)
		} else {
			big, err = packet.AppendRead(big[:0], br, size)
			raw = big
		}
		if err != nil {
			break
		}
		ev, err := ParseEvent(raw)
		if err != nil || g.Verify(ev) != nil {
			break
		}
		if size <= br.Size() {
			_, _ = br.Discard(size)
		}
		off += int64(size)
		if g.Add(ev) {
			good, goodTracker = off, g
		}
	}
	return good, goodTracker, nil
}

func (l *Log) create(name string) error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	path := l.path(name)
	// The file is complete (magic, fsynced) before the index names it; on
	// any failure it is removed again, so the index never lists a file
	// that is not there (a full disk must leave nothing half made).
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("relay log %s: %w", path, err)
	}
	fail := func(err error) error {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("relay log %s: %w", path, err)
	}
	if _, err := f.Write(Magic); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if len(l.files) == 0 || l.files[len(l.files)-1] != name {
		files := append(append([]string(nil), l.files...), name)
		if err := l.writeIndex(files); err != nil {
			return fail(err)
		}
		l.mu.Lock()
		l.files = files
		l.mu.Unlock()
	}
	l.f, l.w = f, bufio.NewWriterSize(f, 256<<10)
	l.cur = Pos{File: name, Offset: 4}
	l.groups.Reset()
	l.setWritten(l.cur)
	l.setDurable(l.cur)
	return syncDir(l.dir)
}

// writeIndex replaces the index file with files, atomically.
func (l *Log) writeIndex(files []string) error {
	return WriteFileAtomic(filepath.Join(l.dir, IndexName), []byte(strings.Join(files, "\n")+"\n"), 0o640)
}

// WriteFileAtomic writes data to name through a temporary file, fsync,
// rename and an fsync of the directory, so name holds either the old or
// the new content after a crash.
func WriteFileAtomic(name string, data []byte, perm os.FileMode) error {
	tmp := name + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("fsync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, name); err != nil {
		return err
	}
	return syncDir(filepath.Dir(name))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}

// ResumePoint is where the upstream stream should continue: the end of
// the last complete transaction written. Zero when the log is empty.
func (l *Log) ResumePoint() Pos {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.written
}

// Durable is the end of the last complete transaction that is on disk as
// the sync policy requires: all that slaves may see and semi-sync may
// acknowledge.
func (l *Log) Durable() Pos {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.durable
}

// WaitDurable waits until everything written is durable, or the syncer
// failed, or done is closed.
func (l *Log) WaitDurable(done <-chan struct{}) error {
	for {
		l.mu.Lock()
		ok, err := l.durable == l.written, l.syncErr
		l.mu.Unlock()
		if ok || err != nil {
			return err
		}
		select {
		case <-l.Changed():
		case <-done:
			return errors.New("relay log: stopped while waiting for fsync")
		}
	}
}

func (l *Log) setWritten(p Pos) {
	l.mu.Lock()
	l.written = p
	l.mu.Unlock()
}

func (l *Log) setDurable(p Pos) {
	l.mu.Lock()
	l.durable = p
	if l.changed != nil {
		close(l.changed)
		l.changed = nil
	}
	l.mu.Unlock()
}

// Changed returns a channel closed the next time the durable end moves.
// Readers (slaves) see only what is durable: they read files up to
// ResumePoint and wait on Changed for more.
func (l *Log) Changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.changed == nil {
		l.changed = make(chan struct{})
	}
	return l.changed
}

// Next returns the file after name in the index, or "" when name is the
// last (or unknown).
func (l *Log) Next(name string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, f := range l.files {
		if f == name && i+1 < len(l.files) {
			return l.files[i+1]
		}
	}
	return ""
}

// Has reports whether name is in the index.
func (l *Log) Has(name string) bool { return l.Index(name) >= 0 }

// Files lists the relay log files, oldest first.
func (l *Log) Files() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.files...)
}

// Dir is the data directory.
func (l *Log) Dir() string { return l.dir }

// path is where a relay file lives.
func (l *Log) path(name string) string { return filepath.Join(l.dir, name) }

// StartFile makes name the file that following events go to. A file the
// log is already writing is kept; a new name closes the current file.
func (l *Log) StartFile(name string) error {
	if strings.ContainsAny(name, "/\\") || name == "" || name == "." || name == ".." || name == IndexName {
		return fmt.Errorf("relay log: refusing binlog file name %q from the master", name)
	}
	if l.f != nil && l.cur.File == name {
		return nil
	}
	if err := l.closeFile(); err != nil {
		return err
	}
	if l.Has(name) {
		// A file the log already holds is reopened and continued, never
		// truncated (the stream resumes at its end).
		return l.recover(name)
	}
	return l.create(name)
}

// Append writes one event exactly as received at the current end of the
// current file. The event's log_pos must agree with that offset; a
// mismatch means the stream and the file disagree and nothing is written.
// It returns false, writing nothing, for events that are not part of the
// file (those Event.InFile says are not, and the FDE a master resends
// when a dump starts mid-file).
func (l *Log) Append(ev Event) (bool, error) {
	if !ev.InFile() {
		return false, nil
	}
	if l.f == nil {
		return false, errors.New("relay log: event before any file was started")
	}
	l.mu.Lock()
	serr := l.syncErr
	l.mu.Unlock()
	if serr != nil {
		return false, fmt.Errorf("relay log %s: an earlier fsync failed: %w", l.cur.File, serr)
	}
	if ev.Type() == TypeFormatDescription && l.cur.Offset > 4 {
		return false, nil
	}
	if end := int64(l.cur.Offset) + int64(len(ev)); ev.LogPos() != 0 && int64(ev.LogPos()) != end {
		return false, fmt.Errorf("relay log %s: event type %d ends at %d but would be written at %d..%d",
			l.cur.File, ev.Type(), ev.LogPos(), l.cur.Offset, end)
	}
	if err := l.groups.Verify(ev); err != nil {
		return false, fmt.Errorf("relay log %s: event type %d at %d from the master: %w", l.cur.File, ev.Type(), l.cur.Offset, err)
	}
	if int64(l.cur.Offset)+int64(len(ev)) > 1<<32-1 {
		return false, fmt.Errorf("relay log %s: file would pass 4 GiB", l.cur.File)
	}
	if _, err := l.w.Write(ev); err != nil {
		return false, l.undoTail(fmt.Errorf("relay log %s: write at %d: %w", l.cur.File, l.cur.Offset, err))
	}
	l.cur.Offset += uint32(len(ev))
	boundary := l.groups.Add(ev)
	if l.policy == SyncEvent {
		l.syncMu.Lock()
		err := l.flushSync()
		l.syncMu.Unlock()
		if err != nil {
			return true, l.undoTail(err)
		}
	}
	if !boundary {
		return true, nil
	}
	if err := l.w.Flush(); err != nil {
		return true, l.undoTail(fmt.Errorf("relay log %s: write: %w", l.cur.File, err))
	}
	l.setWritten(l.cur)
	switch l.policy {
	case SyncTransaction:
		select {
		case l.syncReq <- struct{}{}:
		default: // a request is pending; it will cover this transaction
		}
	default:
		l.setDurable(l.cur)
	}
	return true, nil
}

// undoTail is called when a write failed (a full disk): it cuts the file
// back to the last complete transaction at once, which needs no space, so
// the file on disk stays whole, and returns cause.
func (l *Log) undoTail(cause error) error {
	to := l.ResumePoint()
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.w.Reset(l.f)
	if to.File == l.cur.File {
		if err := l.f.Truncate(int64(to.Offset)); err != nil {
			return fmt.Errorf("%w (and truncating back to %d failed: %v)", cause, to.Offset, err)
		}
		if _, err := l.f.Seek(int64(to.Offset), io.SeekStart); err != nil {
			return fmt.Errorf("%w (and seeking back to %d failed: %v)", cause, to.Offset, err)
		}
		l.cur = to
		l.groups.Reset()
	}
	return cause
}

// flushSync writes out the buffer and fsyncs; callers hold syncMu.
func (l *Log) flushSync() error {
	if err := l.w.Flush(); err != nil {
		return fmt.Errorf("relay log %s: write: %w", l.cur.File, err)
	}
	return l.fsync()
}

// fsync fsyncs the current file; callers hold syncMu.
func (l *Log) fsync() error {
	start := time.Now()
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("relay log %s: fsync: %w", l.cur.File, err)
	}
	l.m.fsync.Observe(time.Since(start).Seconds())
	return nil
}

// Rollback drops an incomplete transaction at the end of the log, so the
// stream can resume at ResumePoint without duplicating events.
func (l *Log) Rollback() error {
	if l.f == nil {
		return nil
	}
	to := l.ResumePoint()
	if l.cur.File != to.File {
		return fmt.Errorf("relay log: partial transaction spans files %s and %s", to.File, l.cur.File)
	}
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	// Drop whatever is buffered (a failed write keeps its error in bufio)
	// and whatever reached the file past the last complete transaction.
	l.w.Reset(l.f)
	st, err := l.f.Stat()
	if err != nil {
		return fmt.Errorf("relay log %s: %w", l.cur.File, err)
	}
	if st.Size() != int64(to.Offset) {
		if err := l.f.Truncate(int64(to.Offset)); err != nil {
			return fmt.Errorf("relay log %s: truncate partial transaction at %d: %w", l.cur.File, to.Offset, err)
		}
		l.log.Info("dropped partial transaction", "file", l.cur.File, "from", st.Size(), "to", to.Offset)
	}
	if _, err := l.f.Seek(int64(to.Offset), io.SeekStart); err != nil {
		return err
	}
	l.cur = to
	l.groups.Reset()
	if err := l.fsync(); err != nil {
		return err
	}
	// On disk and consistent again: a failed fsync before is forgiven.
	l.mu.Lock()
	l.syncErr = nil
	l.mu.Unlock()
	l.setDurable(to)
	return nil
}

// closeFile fsyncs and closes the current file; everything written is
// then durable.
func (l *Log) closeFile() error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.flushSync()
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f, l.w = nil, nil
	if err == nil {
		l.setDurable(l.ResumePoint())
	}
	return err
}

// Close stops the syncer, then flushes, fsyncs and closes the log.
func (l *Log) Close() error {
	select {
	case <-l.stop:
	default:
		close(l.stop)
		<-l.stopped
	}
	return l.closeFile()
}

// Purge removes the oldest files whose last modification is before cutoff,
// stopping at the first file that is too new, is the file being written,
// or for which keep returns true (a slave reads it). The index is
// rewritten before any file is removed, so a crash leaves no index entry
// without its file.
func (l *Log) Purge(cutoff time.Time, keep func(name string) bool) ([]string, error) {
	l.mu.Lock()
	files := append([]string(nil), l.files...)
	current := l.written.File
	l.mu.Unlock()
	var purge []string
	for _, name := range files {
		if name == current || keep(name) {
			break
		}
		st, err := os.Stat(l.path(name))
		if err == nil && !st.ModTime().Before(cutoff) {
			break
		}
		purge = append(purge, name)
	}
	if len(purge) == 0 {
		return nil, nil
	}
	l.syncMu.Lock() // no file switch while the index is rewritten
	l.mu.Lock()
	l.files = l.files[len(purge):]
	rest := append([]string(nil), l.files...)
	l.mu.Unlock()
	err := l.writeIndex(rest)
	l.syncMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("relay log index: %w", err)
	}
	for _, name := range purge {
		if err := os.Remove(l.path(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return purge, fmt.Errorf("relay log: remove purged %s: %w", name, err)
		}
	}
	return purge, nil
}

// Index returns name's place in the index, -1 when it is not there.
func (l *Log) Index(name string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, f := range l.files {
		if f == name {
			return i
		}
	}
	return -1
}
