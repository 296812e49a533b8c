package relay

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/replink/replink/binlog"
)

// SlavesName is the data-dir file that remembers the slaves replink has
// served: a slave down for maintenance comes back to the files it needs,
// where MaxScale and Ripple keep only what a connected slave reads.
const SlavesName = "replink.slaves"

// How many slaves are remembered: per account, and in all. Past either,
// the record of a slave of that account (of any account, for the total)
// that is not connected and was seen longest ago is forgotten, so one
// account dumping under ever new server_ids cannot grow the list, the
// metrics or the data-dir file, nor push out another account's slaves.
const (
	rememberPerUser = 32
	rememberTotal   = 1024
)

// saveEvery is the most often the list is written: a slave's connect or
// leave asks for a write, and writes are coalesced.
const saveEvery = time.Second

// Remembered is a slave replink has served: where it was when last seen.
type Remembered struct {
	ServerID uint32 `json:"server_id"`
	User     string `json:"user"`
	Peer     string `json:"peer"`
	// From is the file its last dump started in: what its last request
	// needed. A GTID slave's next request is what it has applied, which
	// may lag what it was sent but not what it last asked for, so the
	// files from here on are kept for it ("" when the dump began longer
	// than keep-for-absent-slaves ago: then from the file before File).
	From     string    `json:"from,omitempty"`
	File     string    `json:"file"`
	Pos      uint32    `json:"pos"`
	LastSeen time.Time `json:"last_seen"`
}

// slaveKey is how a slave is remembered: the account and the server_id
// it dumps as, so another account's dump with the same server_id is
// another record.
type slaveKey struct {
	user     string
	serverID uint32
}

func (r Remembered) key() slaveKey { return slaveKey{r.User, r.ServerID} }

// memory holds the remembered slaves and writes them to the data-dir.
// One writer (the housekeeping goroutine, and the last save at shutdown)
// writes at a time; the file is replaced atomically, so a crash leaves
// the old list or the new one.
type memory struct {
	path string
	log  hclog.Logger

	mu    sync.Mutex
	byKey map[slaveKey]Remembered
	dirty bool // changed since the last save
	// lostUntil: the file could not be read at start (kept aside); until
	// then replink purges nothing its records might have protected.
	lostUntil time.Time

	wake   chan struct{} // a change asks for a write soon
	saveMu sync.Mutex    // one write at a time
}

// loadMemory reads the remembered slaves of a data-dir (none the first
// time). A file that cannot be read or is not a list of slaves does not
// stop replink: it is kept aside as <name>.bad-<time>, logged at error,
// and until keep has passed nothing is purged for retention, since the
// lost records may have protected any file.
func loadMemory(dir string, keep time.Duration, log hclog.Logger, now time.Time) *memory {
	m := &memory{path: filepath.Join(dir, SlavesName), log: log, byKey: map[slaveKey]Remembered{}, wake: make(chan struct{}, 1)}
	b, err := os.ReadFile(m.path)
	if errors.Is(err, os.ErrNotExist) {
		return m
	}
	// A list found unreadable before (kept aside, and touched then)
	// still suspends retention after a restart, for what is left of its
	// keep-for-absent-slaves.
	bad, _ := filepath.Glob(m.path + ".bad-*")
	for _, name := range bad {
		if st, err := os.Stat(name); err == nil && now.Before(st.ModTime().Add(keep)) && st.ModTime().Add(keep).After(m.lostUntil) {
			m.lostUntil = st.ModTime().Add(keep)
		}
	}
	if !m.lostUntil.IsZero() {
		log.Warn("an unreadable list of remembered slaves was kept aside lately; purging nothing for retention until keep-for-absent-slaves has passed since",
			"until", m.lostUntil)
	}
	if errors.Is(err, os.ErrNotExist) {
		return m
	}
	var list []Remembered
	if err == nil {
		err = json.Unmarshal(b, &list)
	}
	if err != nil {
		aside := fmt.Sprintf("%s.bad-%s", m.path, now.UTC().Format("20060102T150405Z"))
		kept := os.Rename(m.path, aside) == nil
		if kept {
			_ = os.Chtimes(aside, now, now) // the window starts now, across restarts too
			m.dirty = true                  // a good list replaces it at the first save
		} else {
			aside = "(could not be moved aside; it is left in place until a slave is remembered)"
		}
		m.lostUntil = now.Add(keep)
		log.Error("remembered slaves unreadable; starting with none, and purging nothing for retention until keep-for-absent-slaves has passed",
			"file", m.path, "error", err, "kept_as", aside, "until", m.lostUntil)
		return m
	}
	for _, r := range list {
		m.byKey[r.key()] = r
	}
	// A list written by a replink without the bounds, or with other ones.
	users := map[string]bool{}
	for k := range m.byKey {
		users[k.user] = true
	}
	if gone := m.trim(slices.Collect(maps.Keys(users)), slaveKey{}, nil); len(gone) > 0 {
		log.Warn("remembered slaves past the bounds; forgetting those seen longest ago", "forgotten", len(gone),
			"per_user", rememberPerUser, "total", rememberTotal)
		m.dirty = true
	}
	return m
}

// see records a slave at its position now, and forgets others past the
// bounds (returned, for the log); connected slaves are never forgotten.
func (m *memory) see(r Remembered, connected map[slaveKey]bool) []Remembered {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, known := m.byKey[r.key()]
	m.byKey[r.key()] = r
	m.dirty = true
	if known {
		return nil
	}
	return m.trim([]string{r.User}, r.key(), connected)
}

// trim forgets, while one of users has more than rememberPerUser records
// or all have more than rememberTotal, the record of that account (of
// any, for the total) seen longest ago, never one in connected nor keep.
// Callers hold mu (or own m).
func (m *memory) trim(users []string, keep slaveKey, connected map[slaveKey]bool) []Remembered {
	var gone []Remembered
	evict := func(user string, all bool, limit int) bool {
		n := 0
		var oldest *Remembered
		for k, o := range m.byKey {
			if !all && k.user != user {
				continue
			}
			n++
			if !connected[k] && k != keep && (oldest == nil || o.LastSeen.Before(oldest.LastSeen)) {
				oldest = &o
			}
		}
		if n <= limit || oldest == nil {
			return false
		}
		delete(m.byKey, oldest.key())
		gone = append(gone, *oldest)
		return true
	}
	for _, u := range users {
		for evict(u, false, rememberPerUser) {
		}
	}
	for evict("", true, rememberTotal) {
	}
	return gone
}

// changed asks the housekeeping goroutine for a write soon.
func (m *memory) changed() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// list is every remembered slave, by server_id then account.
func (m *memory) list() []Remembered {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Remembered, 0, len(m.byKey))
	for _, r := range m.byKey {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Remembered) int {
		return cmp.Or(cmp.Compare(a.ServerID, b.ServerID), cmp.Compare(a.User, b.User))
	})
	return out
}

// lost reports whether, at now, records lost with an unreadable file may
// still protect files.
func (m *memory) lost(now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return now.Before(m.lostUntil)
}

// forget drops the slaves last seen before cutoff, except those in
// connected, and returns them.
func (m *memory) forget(cutoff time.Time, connected map[slaveKey]bool) []Remembered {
	m.mu.Lock()
	defer m.mu.Unlock()
	var gone []Remembered
	for k, r := range m.byKey {
		if !connected[k] && r.LastSeen.Before(cutoff) {
			gone = append(gone, r)
			delete(m.byKey, k)
			m.dirty = true
		}
	}
	return gone
}

// save writes the list when it changed, one writer at a time.
func (m *memory) save() error {
	m.saveMu.Lock()
	defer m.saveMu.Unlock()
	m.mu.Lock()
	if !m.dirty {
		m.mu.Unlock()
		return nil
	}
	m.dirty = false
	m.mu.Unlock()
	b, err := json.MarshalIndent(m.list(), "", "  ")
	if err != nil {
		return err
	}
	if err := binlog.WriteFileAtomic(m.path, append(b, '\n'), 0o640); err != nil {
		m.mu.Lock()
		m.dirty = true
		m.mu.Unlock()
		return fmt.Errorf("remembered slaves %s: %w", m.path, err)
	}
	return nil
}

// remember records a dumping slave where it is now. Tools that read and
// go (a non-blocking dump, server_id 0) are not remembered.
func (s *Server) remember(ss *session, now time.Time) {
	if ss.serverID == 0 || ss.nonBlocking {
		return
	}
	ss.mu.Lock()
	r := Remembered{ServerID: ss.serverID, User: ss.user, Peer: ss.peer, File: ss.curFile, Pos: ss.curPos, LastSeen: now.UTC()}
	if now.Sub(ss.dumpStart) < s.cfg.KeepForAbsentSlaves {
		r.From = ss.from
	}
	ss.mu.Unlock()
	if r.File == "" {
		return
	}
	for _, o := range s.memory.see(r, s.connectedKeys()) {
		s.log.Warn("too many slaves remembered; forgetting the one seen longest ago (its files are no longer kept for it)",
			"server_id", o.ServerID, "user", o.User, "last_seen", o.LastSeen, "per_user", rememberPerUser, "total", rememberTotal,
			"new_server_id", r.ServerID, "new_user", r.User)
	}
}

// RememberedStatus is a remembered slave that is not connected, for
// /status: where it stopped, since when, and how far behind that is.
type RememberedStatus struct {
	ServerID  uint32    `json:"server_id"`
	User      string    `json:"user"`
	Peer      string    `json:"peer"`
	Position  string    `json:"position"`
	AwaySince time.Time `json:"away_since"`
	LagBytes  int64     `json:"lag_bytes"`
	// KeptUntil is when replink forgets it, and its files are no longer kept.
	KeptUntil time.Time `json:"kept_until"`
}

// Away lists the remembered slaves that are not connected now and are
// still kept for (none when KeepForAbsentSlaves is 0).
func (s *Server) Away() []RememberedStatus { return s.awayAt(time.Now()) }

func (s *Server) awayAt(now time.Time) []RememberedStatus {
	out := []RememberedStatus{}
	for _, r := range s.absent(now) {
		out = append(out, RememberedStatus{ServerID: r.ServerID, User: r.User, Peer: r.Peer, Position: fmt.Sprintf("%s:%d", binlog.MasterName(r.File), r.Pos),
			AwaySince: r.LastSeen, LagBytes: s.rlog.BytesAfter(binlog.Pos{File: r.File, Offset: r.Pos}), KeptUntil: r.LastSeen.Add(s.cfg.KeepForAbsentSlaves)})
	}
	return out
}

// absent are the remembered slaves not connected at now whose files are
// still kept for them.
func (s *Server) absent(now time.Time) []Remembered {
	connected := s.connectedKeys()
	var out []Remembered
	for _, r := range s.memory.list() {
		if !connected[r.key()] && now.Before(r.LastSeen.Add(s.cfg.KeepForAbsentSlaves)) {
			out = append(out, r)
		}
	}
	return out
}

func (s *Server) connectedKeys() map[slaveKey]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := map[slaveKey]bool{}
	for ss := range s.slaves {
		keys[slaveKey{ss.user, ss.serverID}] = true
	}
	return keys
}
