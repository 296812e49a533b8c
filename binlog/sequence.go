package binlog

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Several masters in one relay log (docs/failover.md). A sequence is one
// master's run of files. The first sequence's files are in the data-dir
// itself, as they always were; sequence k > 1 lives in seq-<k>/ under the
// new master's own file names, which may be the old master's names too.
// Inside the relay log a file is known by its path ("mariadb-bin.000007",
// "seq-2/mariadb-bin.000003"); slaves and masters only ever see the
// master's name (MasterName).
//
// The new master's first file is fetched from position 4 like any other,
// so it begins with transactions the relay log already has (the new
// master replicated them before it was promoted). They stay in the file
// but are not served again: a reader that reaches the end of the old
// sequence goes on at the sequence's crossing point, the first
// transaction whose GTID the relay log did not have at the switch.

// SequencesName is the data-dir file that lists the sequences.
const SequencesName = "replink.sequences"

// Sequence is one master's run of files in the relay log.
type Sequence struct {
	// Dir is where its files are, in the data-dir: "" for the first,
	// "seq-<k>" for the k-th.
	Dir      string `json:"dir"`
	Master   string `json:"master,omitempty"` // host:port
	ServerID uint32 `json:"server_id,omitempty"`
	// Have is the relay log's binlog state when replink switched to this
	// master (@@gtid_binlog_state form; empty for the first sequence).
	Have string `json:"have,omitempty"`
	// CrossFile and CrossPos are where a reader coming from the previous
	// sequence goes on: the first transaction not in Have. Empty while it
	// has not arrived yet (and for the first sequence).
	CrossFile string `json:"cross_file,omitempty"`
	CrossPos  uint32 `json:"cross_pos,omitempty"`
}

// crossKnown reports whether readers may cross into s.
func (s Sequence) crossKnown() bool { return s.CrossFile != "" }

// seqDir is sequence k's directory (k counts from 1).
func seqDir(k int) string {
	if k <= 1 {
		return ""
	}
	return fmt.Sprintf("seq-%d", k)
}

// MasterName is the master's name of a relay file: its path without the
// sequence's directory.
func MasterName(path string) string {
	if i := strings.IndexByte(path, '/'); i >= 0 {
		return path[i+1:]
	}
	return path
}

// seqOf is the place in the list of sequences of a path's sequence.
func seqOf(path string) int {
	dir, _, ok := strings.Cut(path, "/")
	if !ok {
		return 0
	}
	k, _ := strconv.Atoi(strings.TrimPrefix(dir, "seq-"))
	return k - 1
}

// CheckPath checks a path of the index: a binlog file name (CheckName),
// or seq-<k>/ and one, k from 2 on.
func CheckPath(path string) error {
	dir, name, ok := strings.Cut(path, "/")
	if !ok {
		return CheckName(path)
	}
	k, err := strconv.Atoi(strings.TrimPrefix(dir, "seq-"))
	if !strings.HasPrefix(dir, "seq-") || err != nil || k < 2 || seqDir(k) != dir {
		return fmt.Errorf("bad relay file path %q: a directory other than seq-<k>", path)
	}
	return CheckName(name)
}

// loadSequences reads the data-dir's list of sequences: one, the data-dir
// itself, when there is none.
func loadSequences(dir string) ([]Sequence, error) {
	path := filepath.Join(dir, SequencesName)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return []Sequence{{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("relay log sequences %s: %w", path, err)
	}
	var seqs []Sequence
	if err := json.Unmarshal(b, &seqs); err != nil {
		return nil, fmt.Errorf("relay log sequences %s: %w", path, err)
	}
	for i, s := range seqs {
		if s.Dir != seqDir(i+1) {
			return nil, fmt.Errorf("relay log sequences %s: sequence %d in %q, want %q", path, i+1, s.Dir, seqDir(i+1))
		}
	}
	if len(seqs) == 0 {
		seqs = []Sequence{{}}
	}
	return seqs, nil
}

// writeSequences replaces the list of sequences, atomically and durably.
func (l *Log) writeSequences(seqs []Sequence) error {
	b, err := json.MarshalIndent(seqs, "", "  ")
	if err != nil {
		return err
	}
	return l.writeFile(filepath.Join(l.dir, SequencesName), append(b, '\n'), 0o640)
}

// Sequences lists the masters the relay log holds files of, oldest first.
func (l *Log) Sequences() []Sequence {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Sequence(nil), l.seqs...)
}

// Switch starts a new sequence: the files that follow are master's (at
// server id serverID), kept in a directory of their own. It is the
// writer's: the current file is closed, durable and complete, and the
// relay log's binlog state now is what the new master's stream is
// compared with to find the crossing point.
func (l *Log) Switch(master string, serverID uint32) error {
	if err := l.closeFile(); err != nil {
		return err
	}
	st, err := l.State()
	if err != nil {
		return fmt.Errorf("relay log: binlog state at the switch to %s: %w", master, err)
	}
	l.mu.Lock()
	seqs := append([]Sequence(nil), l.seqs...)
	l.mu.Unlock()
	s := Sequence{Dir: seqDir(len(seqs) + 1), Master: master, ServerID: serverID, Have: st.Maria.String()}
	if err := os.MkdirAll(filepath.Join(l.dir, s.Dir), 0o750); err != nil {
		return fmt.Errorf("relay log: %w", err)
	}
	if err := syncDir(l.dir); err != nil {
		return err
	}
	seqs = append(seqs, s)
	if err := l.writeSequences(seqs); err != nil {
		return fmt.Errorf("relay log sequences: %w", err)
	}
	l.mu.Lock()
	l.seqs = seqs
	l.mu.Unlock()
	l.have = st.Maria
	l.log.Info("relay log: a new master's files follow", "master", master, "server_id", serverID, "dir", s.Dir, "have", s.Have)
	return nil
}

// pathOf is where the current sequence keeps the master's file name.
func (l *Log) pathOf(name string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if d := l.seqs[len(l.seqs)-1].Dir; d != "" {
		return d + "/" + name
	}
	return name
}

// crossing records, before ev is written at l.cur, whether ev begins the
// first transaction of the current sequence that the relay log did not
// have at the switch and that comes after all it had in its domain:
// readers from the previous sequence go on there. It is recorded durably
// before anything of that transaction is.
func (l *Log) crossing(ev Event) error {
	if l.have == nil || ev.Type() != TypeMariaGTID {
		return nil
	}
	// Older than what the relay log has in its domain is not new either:
	// a transaction of the new master's own from before (an errant one),
	// which a master does not send a slave past it.
	g, ok := GTIDOf(ev, l.groups.Checksum())
	if !ok || Repeated(l.have, g) {
		return nil
	}
	l.mu.Lock()
	seqs := append([]Sequence(nil), l.seqs...)
	l.mu.Unlock()
	last := &seqs[len(seqs)-1]
	last.CrossFile, last.CrossPos = l.cur.File, l.cur.Offset
	if err := l.writeSequences(seqs); err != nil {
		return fmt.Errorf("relay log sequences: crossing point %s: %w", l.cur, err)
	}
	l.mu.Lock()
	l.seqs = seqs
	l.mu.Unlock()
	l.have = nil
	l.log.Info("relay log: readers cross to the new master here", "at", l.cur, "first_new_gtid", g)
	return nil
}

// NextStart is where a reader goes on after the complete file path: the
// next file from offset 4, or, at the end of a sequence, the next
// sequence's crossing point once it is durable. A sequence that never got
// a crossing point (the master was left again before it sent anything
// new) holds nothing new: the reader goes on to the next sequence's. ok
// is false when there is nowhere to go yet (path is the newest file, or
// the crossing point has not arrived or is not durable yet) or path is
// not in the index.
func (l *Log) NextStart(path string) (next string, start uint32, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	i := slices.Index(l.files, path)
	if i < 0 || i+1 >= len(l.files) {
		return "", 0, false
	}
	next = l.files[i+1]
	k := seqOf(path)
	if seqOf(next) == k {
		return next, 4, true
	}
	for j := k + 1; j < len(l.seqs); j++ {
		s := l.seqs[j]
		if !s.crossKnown() {
			if j == len(l.seqs)-1 {
				return "", 0, false // still to come
			}
			continue // left before anything new: all of it is in the next one's Have
		}
		// Durable up to the crossing point, or past its file.
		c, d := slices.Index(l.files, s.CrossFile), slices.Index(l.files, l.durable.File)
		if c < 0 || d < c || d == c && l.durable.Offset <= s.CrossPos {
			return "", 0, false
		}
		return s.CrossFile, s.CrossPos, true
	}
	return "", 0, false
}

// Resolve lists the relay files a master's file name may be, oldest
// first: more than one when two masters' sequences use the same name.
func (l *Log) Resolve(name string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, f := range l.files {
		if MasterName(f) == name {
			out = append(out, f)
		}
	}
	return out
}

// Repeats says, for a reader of path, which transactions it must not
// serve again: those of path's sequence's Have (what the relay log had
// when it switched to that master), for a file of a sequence after the
// first; nil otherwise. Past the crossing point a new master's binlog
// may still hold one (a transaction it applied after its first own).
func (l *Log) Repeats(path string) *BinlogState {
	k := seqOf(path)
	l.mu.Lock()
	defer l.mu.Unlock()
	if k <= 0 || k >= len(l.seqs) || l.seqs[k].Have == "" {
		return nil
	}
	have, err := ParseBinlogState(l.seqs[k].Have)
	if err != nil {
		return nil // checked when the log was opened
	}
	return have
}

// Repeated reports whether g is one of have's, or older than all have
// holds of its domain (a new master's own from before: not new either).
func Repeated(have *BinlogState, g MariaGTID) bool {
	if have.Has(g) {
		return true
	}
	max, ok := have.MaxSeq(g.Domain)
	return ok && g.Seq <= max
}
