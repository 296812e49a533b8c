package binlog

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
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
	uuid   string // this data-dir's server_uuid
	log    hclog.Logger
	policy SyncPolicy
	m      *Metrics
	open   openFunc
	// writeFile replaces a small file atomically (WriteFileAtomic; tests
	// make it fail).
	writeFile func(name string, data []byte, perm os.FileMode) error

	lock *os.File // the data-dir's lock, held while the log is open

	// rest encrypts relay files at rest (nil: plaintext); seals are the
	// files' ciphers as read from their records (rest.go). Both under mu.
	rest      AtRest
	seals     map[string]sealed
	masterAlg string
	restOn    atomic.Bool // rest != nil, for the writer without mu
	// restMu makes a record's making and a change of rest (SetAtRest)
	// one at a time: every record is checked against the new keys, or
	// made with them.
	restMu sync.Mutex

	mu      sync.Mutex // guards files, readers, purging, written, durable, changed and syncErr
	changed chan struct{}
	files   []string // paths, oldest first (sequence.go)
	// seqs are the masters' runs of files, oldest first; the last is
	// written to.
	seqs []Sequence
	// readers counts the open Readers of each file: a file a reader has
	// open is never purged, as a master never purges a log a dump thread
	// uses. purging holds the files Purge is removing, which no reader
	// may open any more.
	readers map[string]int
	purging map[string]bool
	written Pos // end of the last complete transaction written to the file
	durable Pos // end of the last complete transaction fsynced (per policy)
	// syncErr is a failed fsync (or write) of what was not yet durable:
	// nothing more is acknowledged or served, and the stream resumes at
	// durable, cut back to by Rollback, not at written.
	syncErr error

	// The writer state (f, w, cur, groups) belongs to the writer: the one
	// goroutine that calls StartFile, Append, Rollback and Close (the
	// replica's stream). Other goroutines never touch w, groups or
	// cur.Offset. The syncer fsyncs f and reads cur.File; the writer
	// changes those two (switching, reopening, closing a file) and cuts
	// the file back (cutBack) only while holding syncMu, so the syncer
	// never fsyncs a file being closed or records a durable end in a file
	// the log has left. Purge holds syncMu too: no file switch while the
	// index is rewritten.
	syncMu sync.Mutex
	f      file
	w      *bufio.Writer
	cur    Pos // end of what has been appended (possibly mid-transaction)
	groups GroupTracker
	// The current file's encryption at rest (rest.go): its cipher, and
	// whether its format is chosen yet (it is at the first event after
	// the FDE); where the FDE ends (its checksum algorithm is groups').
	wseal   FileCipher
	wrecord []byte // wseal's record: the writer's own, not the readers' cache
	wbuf    []byte // an event being encrypted (the master's format)
	wsealed bool
	wfdeEnd int64
	// have is the binlog state at the last switch while the crossing
	// point of the current sequence has not arrived (nil otherwise).
	have    *BinlogState
	syncReq chan struct{}
	// head: the binlog state of the durable log, kept as it grows (State).
	head    headState
	stop    chan struct{}
	stopped chan struct{}
}

// OpenLog opens the relay log in dir, creating it when needed, and
// recovers it: the tail of the last file is scanned and cut back to the
// end of the last complete transaction, so a crash at any moment leaves a
// log that ends on a transaction boundary. The data-dir is locked while
// the log is open: a second OpenLog on it, in this process or another,
// fails naming the holder.
func OpenLog(dir string, policy SyncPolicy, log hclog.Logger, m *Metrics) (*Log, error) {
	return openLog(dir, policy, log, m, openOS, nil)
}

// OpenLogAtRest is OpenLog with the relay files encrypted at rest by
// rest: new files, and what is written to older plaintext ones from now
// on. Every file's key must be at hand (an error names the file and the
// key id).
func OpenLogAtRest(dir string, policy SyncPolicy, log hclog.Logger, m *Metrics, rest AtRest) (*Log, error) {
	return openLog(dir, policy, log, m, openOS, rest)
}

// openLog is OpenLog with the files written through open.
func openLog(dir string, policy SyncPolicy, log hclog.Logger, m *Metrics, open openFunc, rest AtRest) (*Log, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("relay log %s: %w", dir, err)
	}
	lock, err := lockDataDir(dir)
	if err != nil {
		return nil, err
	}
	// Temporary files of replacements a crash cut short (the index, the
	// remembered slaves): with the data-dir locked, nobody writes them.
	if stale, _ := filepath.Glob(filepath.Join(dir, "replink.*.tmp")); len(stale) > 0 {
		for _, name := range stale {
			os.Remove(name)
		}
		log.Info("removed temporary files a crash left in the data-dir", "files", len(stale))
	}
	l := &Log{dir: dir, policy: policy, log: log, m: m, open: open, lock: lock, writeFile: WriteFileAtomic, rest: rest, seals: map[string]sealed{}, readers: map[string]int{}, purging: map[string]bool{}, syncReq: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{})}
	l.restOn.Store(rest != nil)
	if l.seqs, err = loadSequences(dir); err != nil {
		unlockDataDir(lock)
		return nil, err
	}
	if last := l.seqs[len(l.seqs)-1]; len(l.seqs) > 1 && !last.crossKnown() {
		if l.have, err = ParseBinlogState(last.Have); err != nil {
			unlockDataDir(lock)
			return nil, fmt.Errorf("relay log sequences: %s: have: %w", last.Dir, err)
		}
	}
	if err := l.load(); err != nil {
		unlockDataDir(lock)
		return nil, err
	}
	if l.uuid, err = loadUUID(dir); err != nil {
		unlockDataDir(lock)
		return nil, err
	}
	go l.syncer()
	return l, nil
}

// load reads the index and recovers its last file.
func (l *Log) load() error {
	index := filepath.Join(l.dir, IndexName)
	data, err := os.ReadFile(index)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("relay log index %s: %w", index, err)
	}
	for i, line := range strings.Split(string(data), "\n") {
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		if err := CheckPath(line); err != nil {
			return fmt.Errorf("relay log index %s: line %d: %w", index, i+1, err)
		}
		l.files = append(l.files, line)
	}
	if len(l.files) == 0 {
		return nil
	}
	if err := l.checkSealed(); err != nil {
		return err
	}
	l.removeOrphanRecords()
	return l.recover(l.files[len(l.files)-1])
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
		if err := l.groupSync(); err != nil {
			l.log.Error("relay log fsync failed; nothing past the durable point is acknowledged or served, the master sends it again",
				"error", err, "durable", l.Durable())
		}
	}
}

// groupSync fsyncs the complete transactions written since the last
// fsync and records them durable. All of it is under syncMu, so no
// rotation, truncation or Rollback comes between the fsync and its
// record; after a failure it does nothing until Rollback.
func (l *Log) groupSync() error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.mu.Lock()
	target, failed, durable := l.written, l.syncErr, l.durable
	l.mu.Unlock()
	if failed != nil || l.f == nil || target.File != l.cur.File || target == durable {
		return nil
	}
	if err := l.fsync(); err != nil {
		l.failSync(err)
		return err
	}
	l.setDurable(target)
	return nil
}

// failSync records a failed fsync or write of what was not durable yet,
// and wakes those who wait for the durable end (WaitDurable). Callers
// hold syncMu.
func (l *Log) failSync(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.syncErr == nil {
		l.syncErr = err
	}
	l.notify()
}

// recover opens name, a file the index lists, to go on writing it: it is
// scanned from its start and cut back after its last complete
// transaction. A torn tail (a write cut short by a crash) is cut with a
// warning. Damage followed by whole events is corruption: the cut bytes
// are kept in <name>.corrupt-<offset> first and the cut is logged as an
// error (the master sends the events again; the copy is the evidence).
// A file that is empty or holds part of the magic (create was cut short)
// starts afresh; any other bad start is an error, never a rewrite.
func (l *Log) recover(name string) error {
	path := l.path(name)
	f, err := l.open(path, os.O_RDWR, 0o640)
	if errors.Is(err, os.ErrNotExist) {
		// Listed but never created: start it afresh.
		return l.create(name)
	}
	if err != nil {
		return fmt.Errorf("relay log %s: %w", path, err)
	}
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	fail := func(err error) error {
		f.Close()
		return fmt.Errorf("relay log %s: %w", path, err)
	}
	s, err := l.sealOf(name)
	if err != nil {
		return fail(err)
	}
	f = sealFile(f, s.c, l.m, 0)
	sc, err := scanFile(f)
	if err != nil {
		return fail(err)
	}
	st, err := f.Stat()
	if err != nil {
		return fail(err)
	}
	size := st.Size()
	switch {
	case sc.end == 0:
		if size > 0 {
			l.log.Warn("relay file holds only part of the binlog magic; starting it afresh", "file", name, "bytes", size)
		}
		if err := f.Truncate(0); err != nil {
			return fail(err)
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return fail(err)
		}
		if _, err := f.Write(Magic); err != nil {
			return fail(err)
		}
		sc.end = int64(len(Magic))
	case size != sc.end && sc.corrupt:
		kept, err := keepCut(raw(f), path, sc.end, size) // as stored: still encrypted
		if err != nil {
			return fail(fmt.Errorf("corrupt event at %d: keep a copy of %d..%d before cutting it: %w", sc.bad, sc.end, size, err))
		}
		l.log.Error("relay log corrupt before its end: cut back to the last complete transaction; the master sends the rest again",
			"file", name, "bad_event_at", sc.bad, "from", size, "to", sc.end, "bytes", size-sc.end, "copy", kept)
	case size != sc.end:
		args := []any{"file", name, "from", size, "to", sc.end, "bytes", size - sc.end}
		if sc.bad >= 0 {
			args = append(args, "torn_event_at", sc.bad)
		}
		l.log.Warn("truncating partial transaction at the end of the relay log", args...)
	}
	if size != sc.end {
		if err := f.Truncate(sc.end); err != nil {
			return fail(fmt.Errorf("truncate partial transaction at %d: %w", sc.end, err))
		}
	}
	l.restMu.Lock()
	defer l.restMu.Unlock()
	l.mu.Lock()
	rest := l.rest
	l.mu.Unlock()
	if s.c.Bytes != nil {
		// What is written from here gets keystream of its own, whether
		// or not bytes were cut now: a crash between an earlier cut and
		// its record, or bytes past the end that a power loss left on
		// disk, used the old.
		if rest == nil {
			return fail(fmt.Errorf("encrypted at rest, and [relay] key-file is not set"))
		}
		rec, err := rest.Cut(s.record, sc.end)
		if err != nil {
			return fail(err)
		}
		if s.c, err = l.setRecord(name, rec); err != nil {
			return fail(err)
		}
		s.record = rec
	}
	l.wrecord = s.record
	// A file without a record while encryption is on is encrypted from
	// its next event (Append), its format chosen there.
	l.wseal, l.wsealed = s.c, s.record != nil || rest == nil
	l.wfdeEnd = sc.fdeEnd
	f = sealFile(raw(f), s.c, l.m, 0)
	// Always: what a crashed replink left in the page cache is served as
	// durable from here on.
	if err := f.Sync(); err != nil {
		return fail(fmt.Errorf("fsync: %w", err))
	}
	if _, err := f.Seek(sc.end, io.SeekStart); err != nil {
		return fail(err)
	}
	l.f, l.w = f, bufio.NewWriterSize(f, 256<<10)
	l.cur = Pos{File: name, Offset: uint32(sc.end)}
	l.groups = sc.tracker
	l.moveTo(l.cur)
	return nil
}

// keepCut copies bytes from..to of f to a new file beside path, fsynced,
// and returns its name.
func keepCut(f file, path string, from, to int64) (string, error) {
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return "", err
	}
	var (
		c    *os.File
		name string
		err  error
	)
	for i := 1; ; i++ {
		name = fmt.Sprintf("%s.corrupt-%d", path, from)
		if i > 1 {
			name = fmt.Sprintf("%s.%d", name, i)
		}
		c, err = os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
		if !errors.Is(err, os.ErrExist) || i == 100 {
			break
		}
	}
	if err != nil {
		return "", err
	}
	if _, err = io.CopyN(c, f, to-from); err == nil {
		err = c.Sync()
	}
	if cerr := c.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		os.Remove(name)
		return "", err
	}
	return name, nil
}

func (l *Log) create(name string) error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	path := l.path(name)
	// A new file's record (encryption at rest) is durable before the
	// file; a record left from an earlier file of this name is not reused.
	if err := os.Remove(l.sidePath(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("relay log %s: %w", path, err)
	}
	l.mu.Lock()
	delete(l.seals, name)
	l.mu.Unlock()
	// The file is complete (magic, fsynced) before the index names it; on
	// any failure it is removed again, so the index never lists a file
	// that is not there (a full disk must leave nothing half made).
	f, err := l.open(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o640)
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
	l.mu.Lock()
	l.wseal, l.wrecord, l.wsealed = FileCipher{}, nil, l.rest == nil
	l.mu.Unlock()
	l.wfdeEnd = 4
	l.moveTo(l.cur)
	return syncDir(filepath.Dir(path)) // the data-dir, or a sequence's directory in it
}

// writeIndex replaces the index file with files, atomically.
func (l *Log) writeIndex(files []string) error {
	return l.writeFile(filepath.Join(l.dir, IndexName), []byte(strings.Join(files, "\n")+"\n"), 0o640)
}

// WriteFileAtomic writes data to name through a temporary file of its
// own (a unique name beside name, so two writers never share one), fsync,
// rename and an fsync of the directory, so name holds either the old or
// the new content after a crash, and never a mix of two writers'.
func WriteFileAtomic(name string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(name), filepath.Base(name)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Chmod(perm); err != nil {
		return fail(fmt.Errorf("chmod %s: %w", tmp, err))
	}
	if _, err := f.Write(data); err != nil {
		return fail(fmt.Errorf("write %s: %w", tmp, err))
	}
	if err := f.Sync(); err != nil {
		return fail(fmt.Errorf("fsync %s: %w", tmp, err))
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, name); err != nil {
		os.Remove(tmp)
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
// the last complete transaction written, or, after a failed fsync, the
// last durable one (Rollback cuts the file back to it). Zero when the log
// is empty.
func (l *Log) ResumePoint() Pos {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.syncErr != nil {
		return l.durable
	}
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

// setDurable moves the durable end forward to p in the file it is in.
// It never moves it back, nor to another file: only create and recover
// switch files (moveTo), so a late record of an fsync (of a file the log
// has moved past, or of less than was made durable since) changes
// nothing.
func (l *Log) setDurable(p Pos) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if p.File != l.durable.File || p.Compare(l.durable) <= 0 {
		return
	}
	l.durable = p
	l.notify()
}

// moveTo makes p, the start of the file being written (or its end when
// it is reopened), both written and durable. Callers hold syncMu.
func (l *Log) moveTo(p Pos) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.written, l.durable = p, p
	l.notify()
}

// notify wakes the waiters on Changed; callers hold mu.
func (l *Log) notify() {
	if l.changed != nil {
		close(l.changed)
		l.changed = nil
	}
}

// Changed returns a channel closed the next time the durable end moves
// or an fsync fails. Readers (slaves) see only what is durable: they read
// files up to Durable and wait on Changed for more.
func (l *Log) Changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.changed == nil {
		l.changed = make(chan struct{})
	}
	return l.changed
}

// Next returns the file a reader goes on in after name (NextStart), or
// "" when there is none yet (or name is unknown).
func (l *Log) Next(name string) string {
	next, _, _ := l.NextStart(name)
	return next
}

// Has reports whether name is in the index.
func (l *Log) Has(name string) bool { return l.Index(name) >= 0 }

// Files lists the relay log files, oldest first.
func (l *Log) Files() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.files...)
}

// FileStat is a relay file as it is on disk now.
type FileStat struct {
	Name    string
	Size    int64
	ModTime time.Time
	// Writing: the file events go to, which no purge removes.
	Writing bool
}

// Stat lists the relay files, oldest first (the index's order, so a
// file's place is its Index), with their size and last modification on
// disk; a file that cannot be stat'ed (being purged) has zero values.
func (l *Log) Stat() []FileStat {
	l.mu.Lock()
	files := append([]string(nil), l.files...)
	current := l.written.File
	l.mu.Unlock()
	out := make([]FileStat, 0, len(files))
	for _, name := range files {
		f := FileStat{Name: name, Writing: name == current}
		if st, err := os.Stat(l.path(name)); err == nil {
			f.Size, f.ModTime = st.Size(), st.ModTime()
		}
		out = append(out, f)
	}
	return out
}

// Purgeable is how many of files, oldest first, a purge with cutoff
// removes: it stops at the file being written, at the first file keep(i)
// keeps, and at the first one not older than cutoff. Purge and the relay's
// view of what it would purge (its gauges) share this one rule.
func Purgeable(files []FileStat, cutoff time.Time, keep func(i int) bool) int {
	for i, f := range files {
		if f.Writing || keep(i) || !f.ModTime.Before(cutoff) {
			return i
		}
	}
	return len(files)
}

// Dir is the data directory.
func (l *Log) Dir() string { return l.dir }

// path is where a relay file lives.
func (l *Log) path(name string) string { return filepath.Join(l.dir, name) }

// StartFile makes name, the master's file name, the file that following
// events go to, in the current sequence's directory. A file the log is
// already writing is kept; a new name closes the current file.
func (l *Log) StartFile(name string) error {
	if err := CheckName(name); err != nil {
		return fmt.Errorf("relay log: refusing binlog file name from the master: %w", err)
	}
	name = l.pathOf(name)
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
	if ev.Type() == TypeStartEncryption && int64(l.cur.Offset) != l.wfdeEnd {
		// A master that encrypts its binlog resends its Start_encryption
		// event after the FDE when a dump starts mid-file; in the file it
		// is only right after the FDE.
		return false, nil
	}
	if end := int64(l.cur.Offset) + int64(len(ev)); ev.LogPos() != 0 && int64(ev.LogPos()) != end {
		return false, fmt.Errorf("relay log %s: event type %d ends at %d but would be written at %d..%d",
			l.cur.File, ev.Type(), ev.LogPos(), l.cur.Offset, end)
	}
	if err := l.groups.Verify(ev); err != nil {
		return false, fmt.Errorf("relay log %s: event type %d at %d from the master: %w", l.cur.File, ev.Type(), l.cur.Offset, err)
	}
	if err := l.crossing(ev); err != nil {
		return false, err
	}
	if int64(l.cur.Offset)+int64(len(ev)) > 1<<32-1 {
		return false, fmt.Errorf("relay log %s: file would pass 4 GiB", l.cur.File)
	}
	out := ev
	switch {
	case ev.Type() == TypeFormatDescription:
		l.wfdeEnd = int64(l.cur.Offset) + int64(len(ev))
	case !l.wsealed || l.wseal.plain() && l.restOn.Load():
		// The file's format is chosen at its first event after the FDE;
		// a file begun in plaintext goes on encrypted once encryption is
		// turned on (a reload), from here.
		var err error
		if out, err = l.seal(ev); err != nil {
			return false, err
		}
	case ev.Type() == TypeStartEncryption && l.wseal.Events != nil:
		out = l.startEncryptionInFile(ev)
	}
	out, err := l.encryptEvent(out, int64(l.cur.Offset))
	if err != nil {
		return false, fmt.Errorf("relay log %s: encrypting the event at %d: %w", l.cur.File, l.cur.Offset, err)
	}
	if _, err := l.w.Write(out); err != nil {
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
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	to := l.ResumePoint()
	l.w.Reset(l.f)
	if to.File == l.cur.File {
		if err := l.cutBack(to); err != nil {
			return fmt.Errorf("%w (and %v)", cause, err)
		}
	}
	return cause
}

// cutBack drops whatever is buffered (a failed write keeps its error in
// bufio) and whatever reached the file past to, a transaction boundary in
// the current file, and goes on writing at to. Callers hold syncMu.
func (l *Log) cutBack(to Pos) error {
	l.w.Reset(l.f)
	st, err := l.f.Stat()
	if err != nil {
		return fmt.Errorf("relay log %s: %w", l.cur.File, err)
	}
	if high := writtenHigh(l.f); high > int64(to.Offset) || st.Size() > int64(to.Offset) {
		// What is written again from to gets keystream of its own, and
		// its record is durable before the file is cut: bytes once
		// written past to (even if a failed write or a truncation took
		// them off since) used the old keystream. Until that record is
		// written nothing is: the next Rollback tries again.
		if err := l.recutSeal(int64(to.Offset)); err != nil {
			return err
		}
		l.w.Reset(l.f)
	}
	if st.Size() != int64(to.Offset) {
		if err := l.f.Truncate(int64(to.Offset)); err != nil {
			return fmt.Errorf("relay log %s: truncate back to %d: %w", l.cur.File, to.Offset, err)
		}
		l.log.Info("dropped what followed the last complete transaction", "file", l.cur.File, "from", st.Size(), "to", to.Offset)
	}
	if _, err := l.f.Seek(int64(to.Offset), io.SeekStart); err != nil {
		return fmt.Errorf("relay log %s: seek to %d: %w", l.cur.File, to.Offset, err)
	}
	l.cur = to
	l.groups.Reset()
	l.setWritten(to)
	return nil
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
// stream can resume at ResumePoint without duplicating events. After a
// failed fsync it cuts the file back to the last durable point instead:
// a second fsync would succeed (the failed pages are marked clean), but
// what the first did not write is not on disk; the master sends it again.
func (l *Log) Rollback() error {
	if l.f == nil {
		return nil
	}
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.mu.Lock()
	to, failed := l.written, l.syncErr
	if failed != nil {
		to = l.durable
	}
	l.mu.Unlock()
	if l.cur.File != to.File {
		return fmt.Errorf("relay log: partial transaction spans files %s and %s", to.File, l.cur.File)
	}
	if err := l.cutBack(to); err != nil {
		return err
	}
	if err := l.fsync(); err != nil {
		l.failSync(err)
		return err
	}
	if failed != nil {
		l.mu.Lock()
		l.syncErr = nil
		l.mu.Unlock()
		l.log.Warn("relay log cut back to the last durable point after a failed fsync; the master sends the rest again",
			"file", to.File, "to", to.Offset, "error", failed)
	}
	l.setDurable(to)
	return nil
}

// closeFile fsyncs and closes the current file; everything written is
// then durable. When that fsync (or an earlier one) failed, the file
// stays open, for Rollback to cut it back to the durable point.
func (l *Log) closeFile() error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	if l.f == nil {
		return nil
	}
	l.mu.Lock()
	failed := l.syncErr
	l.mu.Unlock()
	if failed != nil {
		return fmt.Errorf("relay log %s: an earlier fsync failed: %w", l.cur.File, failed)
	}
	if err := l.flushSync(); err != nil {
		l.failSync(err)
		return err
	}
	err := l.f.Close()
	l.f, l.w = nil, nil
	if err != nil {
		return fmt.Errorf("relay log %s: close: %w", l.cur.File, err)
	}
	l.mu.Lock()
	written := l.written
	l.mu.Unlock()
	l.setDurable(written)
	return nil
}

// Close stops the syncer, then flushes, fsyncs and closes the log, and
// releases the data-dir. After a failed fsync the file is first cut back
// to the durable point, so the next OpenLog does not take what may not
// be on disk as durable.
func (l *Log) Close() error {
	select {
	case <-l.stop:
	default:
		close(l.stop)
		<-l.stopped
	}
	err := l.closeFile()
	if l.f != nil {
		if rerr := l.Rollback(); rerr != nil {
			l.log.Error("relay log: cutting back to the durable point on close failed", "error", rerr)
		}
		l.f.Close()
		l.f, l.w = nil, nil
	}
	if l.lock != nil {
		unlockDataDir(l.lock)
		l.lock = nil
	}
	return err
}

// Purge removes the oldest files whose last modification is before cutoff,
// stopping at the first file that is too new, is the file being written,
// is open in a Reader (a slave reads it), or for which keep returns true
// (a slave will read it). keep is called with syncMu held (so no file
// switch comes between the scan and the index write) but not mu: it may
// ask the log (Index), and must not wait on anything that waits on the
// writer.
// The index is rewritten before any file is removed and the log's list
// follows the index only once that write succeeded, so a crash or a
// failed write leaves no index entry without its file and no file the
// index lists forgotten. A file being purged can no longer be opened.
func (l *Log) Purge(cutoff time.Time, keep func(name string) bool) ([]string, error) {
	l.syncMu.Lock() // no file switch while the index is rewritten
	defer l.syncMu.Unlock()
	files := l.Stat()
	var purge []string
	for _, f := range files[:Purgeable(files, cutoff, func(i int) bool { return keep(files[i].Name) })] {
		purge = append(purge, f.Name)
	}
	// The readers are checked, and the files marked, in one hold of mu:
	// a reader opens a file before the purge marks it (and the purge
	// stops there) or fails to open it (ErrPurged), never in between.
	l.mu.Lock()
	for i, name := range purge {
		if l.readers[name] > 0 {
			purge = purge[:i]
			break
		}
	}
	for _, name := range purge {
		l.purging[name] = true
	}
	rest := append([]string(nil), l.files[len(purge):]...)
	l.mu.Unlock()
	if len(purge) == 0 {
		return nil, nil
	}
	err := l.writeIndex(rest)
	l.mu.Lock()
	for _, name := range purge {
		delete(l.purging, name)
	}
	if err == nil {
		l.files = l.files[len(purge):]
	}
	l.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("relay log index: %w", err)
	}
	records := map[string]bool{} // directories a record was removed from
	defer func() {
		for dir := range records {
			_ = syncDir(dir) // no record outlives its file after a crash
		}
	}()
	for _, name := range purge {
		if err := os.Remove(l.path(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return purge, fmt.Errorf("relay log: remove purged %s: %w", name, err)
		}
		if err := os.Remove(l.sidePath(name)); err == nil {
			records[filepath.Dir(l.path(name))] = true
		} else if !errors.Is(err, os.ErrNotExist) {
			return purge, fmt.Errorf("relay log: remove purged %s's record: %w", name, err)
		}
		l.mu.Lock()
		delete(l.seals, name)
		l.mu.Unlock()
		if dir := filepath.Dir(name); dir != "." && os.Remove(l.path(dir)) == nil { // a sequence's directory, once empty
			_ = syncDir(l.dir)
		}
	}
	return purge, nil
}

// ErrPurged is a relay file that is not (or no longer) in the relay log:
// purged, or never there.
var ErrPurged = errors.New("not in the relay log (purged)")

// pin counts a reader of name, which must be in the index and not being
// purged.
func (l *Log) pin(name string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.purging[name] || !slices.Contains(l.files, name) {
		return fmt.Errorf("relay log %s: %w", name, ErrPurged)
	}
	l.readers[name]++
	return nil
}

func (l *Log) unpin(name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.readers[name]--; l.readers[name] <= 0 {
		delete(l.readers, name)
	}
}

// Index returns name's place in the index, -1 when it is not there.
func (l *Log) Index(name string) int {
	i, _ := l.place(name)
	return i
}

// place is name's place in the index (-1 when it is not there) and the
// number of files.
func (l *Log) place(name string) (int, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Index(l.files, name), len(l.files)
}
