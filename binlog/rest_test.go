package binlog

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
)

// fakeRest is an AtRest for the log's logic: records are text, the
// "cipher" a position-dependent XOR (replink's format: "bytes f1 f2 ...",
// one segment per offset) or a XOR of every byte of an event but its size
// (the master's: "events <start> <from>").
type fakeRest struct{ noMaster bool }

func (fakeRest) New(from int64) ([]byte, error) { return []byte(fmt.Sprintf("bytes %d", from)), nil }
func (fakeRest) Cut(rec []byte, at int64) ([]byte, error) {
	var keep []string
	for _, f := range strings.Fields(string(rec))[1:] {
		var n int64
		fmt.Sscan(f, &n)
		if n < at {
			keep = append(keep, f)
		}
	}
	return []byte(fmt.Sprintf("bytes %s %d", strings.Join(keep, " "), at)), nil
}
func (r fakeRest) Master(start Event, at int64, checksum byte, alg string) ([]byte, error) {
	if r.noMaster || start.Flags()&FlagIgnorable != 0 {
		return nil, ErrNotMasterKey
	}
	return []byte(fmt.Sprintf("events %d %d %d", at, at+int64(len(start)), checksum)), nil
}
func (fakeRest) Cipher(name string, rec []byte) (FileCipher, error) {
	f := strings.Fields(string(rec))
	var ns []int64
	for _, x := range f[1:] {
		var n int64
		if _, err := fmt.Sscan(x, &n); err != nil {
			return FileCipher{}, fmt.Errorf("%s: bad record %q", name, rec)
		}
		ns = append(ns, n)
	}
	if f[0] == "events" {
		return FileCipher{Events: fakeEvents{}, StartAt: ns[0], From: ns[1], Checksum: byte(ns[2])}, nil
	}
	return FileCipher{Bytes: fakeBytes(ns)}, nil
}

type fakeBytes []int64

func (s fakeBytes) XORAt(p []byte, off int64) {
	for i := range p {
		pos := off + int64(i)
		seg := -1
		for j, from := range s {
			if pos >= from {
				seg = j
			}
		}
		if seg >= 0 {
			p[i] ^= byte(pos*7+int64(seg)*13) | 1
		}
	}
}

type fakeEvents struct{}

func (fakeEvents) Encrypt(ev []byte, off uint64) error { return fakeEvents{}.Decrypt(ev, off) }
func (fakeEvents) Decrypt(ev []byte, off uint64) error {
	for i := range ev {
		if i < 9 || i >= 13 {
			ev[i] ^= byte(off) | 0x21
		}
	}
	return nil
}

func openRest(t *testing.T, dir string, rest AtRest) *Log {
	t.Helper()
	l, err := OpenLogAtRest(dir, SyncTransaction, hclog.NewNullLogger(), NewMetrics(prometheus.NewRegistry()), rest)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// sealedName is the file the sealed logs of these tests write.
const sealedName = "mariadb-bin.000001"

// sealedLog opens a relay log with rest in a temp dir, writing
// sealedName; it is closed when the test ends.
func sealedLog(t *testing.T, rest AtRest) (*Log, string) {
	t.Helper()
	dir := t.TempDir()
	l := openRest(t, dir, rest)
	t.Cleanup(func() { l.Close() })
	if err := l.StartFile(sealedName); err != nil {
		t.Fatal(err)
	}
	return l, dir
}

// record is the record beside name in dir, "" when it has none.
func record(dir, name string) string {
	b, _ := os.ReadFile(filepath.Join(dir, name) + SideSuffix)
	return string(b)
}

// wantEvents fails unless name reads back through l as events.
func wantEvents(t *testing.T, l *Log, name string, events [][]byte) {
	t.Helper()
	got := readSealed(t, l, name)
	if len(got) != len(events) {
		t.Fatalf("read %d events back from %s, wrote %d", len(got), name, len(events))
	}
	for i := range got {
		if !bytes.Equal(got[i], events[i]) {
			t.Fatalf("event %d of %s read back differs from the one written", i, name)
		}
	}
}

// readSealed reads every event of name through a Reader.
func readSealed(t *testing.T, l *Log, name string) [][]byte {
	t.Helper()
	r, err := l.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out [][]byte
	for {
		ev, err := r.Next()
		if err != nil {
			if errors.Is(err, ErrNoMore) || err.Error() == "EOF" {
				return out
			}
			t.Fatalf("reading %s: %v", name, err)
		}
		out = append(out, bytes.Clone(ev))
	}
}

// TestSealedFileRoundTrip: in replink's format the FDE stays in clear and
// every later byte is stored changed, readers get the events back as
// written, a reopened log goes on (recovery decrypts to scan), a torn
// tail cut by recovery gets a new segment, and a purge removes the record.
func TestSealedFileRoundTrip(t *testing.T) {
	const name = "mariadb-bin.000001"
	dir := t.TempDir()
	l := openRest(t, dir, fakeRest{})
	if err := l.StartFile(name); err != nil {
		t.Fatal(err)
	}
	var s stream
	appendTo(t, l, &s, oneTransaction()...)
	appendTo(t, l, &s, typedBody{TypeMariaGTID, gtidBody(2, false)}, typedBody{30, []byte("rows two")}, typedBody{TypeXID, make([]byte, 8)})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	plain := append(bytes.Clone(Magic), bytes.Join(s.events, nil)...)
	stored, _ := os.ReadFile(filepath.Join(dir, name))
	fdeEnd := 4 + len(s.events[0])
	if len(stored) != len(plain) || !bytes.Equal(stored[:fdeEnd], plain[:fdeEnd]) || bytes.Contains(stored, []byte("rows two")) {
		t.Fatalf("stored file: %d bytes (want %d), FDE in clear %v, plaintext rows inside %v", len(stored), len(plain),
			bytes.Equal(stored[:fdeEnd], plain[:fdeEnd]), bytes.Contains(stored, []byte("rows two")))
	}
	rec := record(dir, name)
	if rec != fmt.Sprintf("bytes %d", fdeEnd) {
		t.Fatalf("record %q, want the format chosen at the first event after the FDE (%d)", rec, fdeEnd)
	}

	// A torn tail: half an event more on disk.
	f, _ := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_APPEND, 0)
	f.Write(stored[fdeEnd : fdeEnd+30])
	f.Close()
	l = openRest(t, dir, fakeRest{})
	defer l.Close()
	if got := l.ResumePoint().Offset; got != s.off {
		t.Fatalf("recovered to %d, want %d (the torn tail cut)", got, s.off)
	}
	rec = record(dir, name)
	if rec != fmt.Sprintf("bytes %d %d", fdeEnd, s.off) {
		t.Fatalf("record after the cut %q, want a new segment at %d", rec, s.off)
	}
	if err := l.StartFile(name); err != nil {
		t.Fatal(err)
	}
	appendTo(t, l, &s, typedBody{TypeMariaGTID, gtidBody(3, false)}, typedBody{30, []byte("rows three")}, typedBody{TypeXID, make([]byte, 8)})
	if err := l.StartFile("mariadb-bin.000002"); err != nil {
		t.Fatal(err)
	}
	wantEvents(t, l, name, s.events)
	if _, err := l.Purge(time.Now().Add(time.Hour), func(string) bool { return false }); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, name) + SideSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the purged file's record is still there: %v", err)
	}
}

// TestSealedMasterFormat: a Start_encryption event after the FDE chooses
// the master's format: it is stored with the ignorable flag cleared, the
// later events whole through the event cipher with their sizes in clear,
// and readers get the stream's bytes back (the Start_encryption event
// flagged ignorable, as the master's dump sends it).
func TestSealedMasterFormat(t *testing.T) {
	l, dir := sealedLog(t, fakeRest{})
	const name = sealedName
	l.MasterAlgorithm("AES_CBC")
	var s stream
	appendTo(t, l, &s, typedBody{TypeFormatDescription, fdeBody()})
	start := s.add(TypeStartEncryption, make([]byte, 17))
	start = WithFlags(start, FlagIgnorable, ChecksumCRC32)
	s.events[len(s.events)-1] = start
	if _, err := l.Append(start); err != nil {
		t.Fatal(err)
	}
	appendTo(t, l, &s, typedBody{TypeMariaGTID, gtidBody(1, false)}, typedBody{30, []byte("secret rows")}, typedBody{TypeXID, make([]byte, 8)})
	// A dump started mid-file gets the FDE and the Start_encryption
	// event again: neither goes into the file a second time.
	for _, again := range [][]byte{s.events[0], start} {
		if ok, err := l.Append(again); ok || err != nil {
			t.Fatalf("event type %d sent again mid-file: appended %v, %v; want it skipped", again[4], ok, err)
		}
	}
	if err := l.StartFile("mariadb-bin.000002"); err != nil {
		t.Fatal(err)
	}
	stored, _ := os.ReadFile(filepath.Join(dir, name))
	at := 4 + len(s.events[0])
	if Event(stored[at:]).Flags()&FlagIgnorable != 0 {
		t.Fatalf("the stored Start_encryption event keeps the stream's ignorable flag")
	}
	if bytes.Contains(stored, []byte("secret rows")) {
		t.Fatalf("rows stored in plaintext")
	}
	for off := at; off < len(stored); off += SizeOf(stored[off:]) {
		if SizeOf(stored[off:]) < HeaderSize {
			t.Fatalf("event at %d: size not in clear", off)
		}
	}
	wantEvents(t, l, name, s.events)
}

// TestSealedTurnedOnWhileWriting: a log opened without encryption that
// gets it (SetAtRest, as a reload does) encrypts the file it is writing
// from its next event on, and warns of the plaintext head.
func TestSealedTurnedOnWhileWriting(t *testing.T) {
	l, dir := sealedLog(t, nil)
	const name = sealedName
	var s stream
	appendTo(t, l, &s, oneTransaction()...)
	before := s.off
	if err := l.SetAtRest(fakeRest{}); err != nil {
		t.Fatal(err)
	}
	appendTo(t, l, &s, typedBody{TypeMariaGTID, gtidBody(2, false)}, typedBody{30, []byte("after the reload")}, typedBody{TypeXID, make([]byte, 8)})
	if err := l.StartFile("mariadb-bin.000002"); err != nil {
		t.Fatal(err)
	}
	rec := record(dir, name)
	stored, _ := os.ReadFile(filepath.Join(dir, name))
	if rec != fmt.Sprintf("bytes %d", before) || bytes.Contains(stored, []byte("after the reload")) {
		t.Fatalf("record %q (want one from %d), plaintext after the reload %v", rec, before, bytes.Contains(stored, []byte("after the reload")))
	}
	wantEvents(t, l, name, s.events)
}

// TestSealedMasterKeyMissing: a master's Start_encryption event whose key
// the key file does not have makes the file replink's own format from
// that event on, not a file it cannot read.
func TestSealedMasterKeyMissing(t *testing.T) {
	l, dir := sealedLog(t, fakeRest{noMaster: true})
	const name = sealedName
	l.MasterAlgorithm("AES_CBC")
	var s stream
	appendTo(t, l, &s, typedBody{TypeFormatDescription, fdeBody()})
	at := s.off
	start := WithFlags(s.add(TypeStartEncryption, make([]byte, 17)), FlagIgnorable, ChecksumCRC32)
	s.events[len(s.events)-1] = start
	if _, err := l.Append(start); err != nil {
		t.Fatal(err)
	}
	appendTo(t, l, &s, typedBody{TypeMariaGTID, gtidBody(1, false)}, typedBody{30, []byte("secret rows")}, typedBody{TypeXID, make([]byte, 8)})
	if err := l.StartFile("mariadb-bin.000002"); err != nil {
		t.Fatal(err)
	}
	rec := record(dir, name)
	if rec != fmt.Sprintf("bytes %d", at) {
		t.Fatalf("record %q, want replink's own format from the Start_encryption event at %d", rec, at)
	}
	wantEvents(t, l, name, s.events)
}

// TestSealedCutWhoseRecordFails: a write that reached the file past the
// last transaction and then failed (its fsync) is cut back; when the new
// record cannot be written then (a full disk), nothing is cut or written
// until it can: the next Rollback makes it, so the positions written
// again never reuse the keystream of the bytes that were there.
func TestSealedCutWhoseRecordFails(t *testing.T) {
	const name = "mariadb-bin.000001"
	dir := t.TempDir()
	fs := &faultFS{}
	l, err := openLog(dir, SyncEvent, hclog.NewNullLogger(), NewMetrics(prometheus.NewRegistry()), fs.open, fakeRest{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.StartFile(name); err != nil {
		t.Fatal(err)
	}
	var s stream
	appendTo(t, l, &s, oneTransaction()...)
	to := s.off
	first := record(dir, name)

	fs.failNextSyncs(1)
	full := errors.New("injected: no space left on device")
	l.writeFile = func(string, []byte, os.FileMode) error { return full }
	if _, err := l.Append(Event(s.add(TypeMariaGTID, gtidBody(2, false)))); err == nil {
		t.Fatal("an append whose fsync failed succeeded")
	}
	if got := record(dir, name); got != first {
		t.Fatalf("record %q changed while it could not be written", got)
	}
	l.writeFile = WriteFileAtomic
	if err := l.Rollback(); err != nil {
		t.Fatal(err)
	}
	if got, want := record(dir, name), fmt.Sprintf("%s %d", first, to); got != want {
		t.Fatalf("record after the cut %q, want %q: the positions past %d would be written again with the keystream they had", got, want, to)
	}
}

func TestVerifyFile(t *testing.T) {
	whole, _ := fileOfTransactions(2)
	flip := bytes.Clone(whole)
	flip[len(flip)-30] ^= 1
	for _, c := range []struct {
		name string
		data []byte
		want string // "" for no error
	}{
		{"whole", whole, ""},
		{"cut short", whole[:len(whole)-5], "cut short"},
		{"flipped byte", flip, "checksum"},
		{"not a binlog", []byte("hello"), "no magic"},
	} {
		err := VerifyFile(c.data)
		if (c.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}
