package relay

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/replink/replink/binlog"
)

// SlavesName is the data-dir file that remembers the slaves replink has
// served: a slave down for maintenance comes back to the files it needs,
// where MaxScale and Ripple keep only what a connected slave reads.
const SlavesName = "replink.slaves"

// Remembered is a slave replink has served: where it was when last seen.
type Remembered struct {
	ServerID uint32    `json:"server_id"`
	User     string    `json:"user"`
	Peer     string    `json:"peer"`
	File     string    `json:"file"`
	Pos      uint32    `json:"pos"`
	LastSeen time.Time `json:"last_seen"`
}

// memory holds the remembered slaves and writes them to the data-dir
// (atomically: a crash leaves the old list or the new one).
type memory struct {
	path string
	mu   sync.Mutex
	byID map[uint32]Remembered
	// dirty: changed since the last save.
	dirty bool
}

// loadMemory reads the remembered slaves of a data-dir (none the first
// time). A file that is not a list of slaves is an error naming it: a
// slave's files must not be purged for a list replink could not read.
func loadMemory(dir string) (*memory, error) {
	m := &memory{path: filepath.Join(dir, SlavesName), byID: map[uint32]Remembered{}}
	b, err := os.ReadFile(m.path)
	if errors.Is(err, os.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		return nil, fmt.Errorf("remembered slaves: %w", err)
	}
	var list []Remembered
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf("remembered slaves %s: %w (move it away to start with none)", m.path, err)
	}
	for _, r := range list {
		m.byID[r.ServerID] = r
	}
	return m, nil
}

// see records a slave at its position now.
func (m *memory) see(r Remembered) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.byID[r.ServerID] = r
	m.dirty = true
}

// list is every remembered slave, by server_id.
func (m *memory) list() []Remembered {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Remembered, 0, len(m.byID))
	for _, r := range m.byID {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Remembered) int { return cmp.Compare(a.ServerID, b.ServerID) })
	return out
}

// forget drops the slaves last seen before cutoff, except those in
// connected, and returns them.
func (m *memory) forget(cutoff time.Time, connected map[uint32]bool) []Remembered {
	m.mu.Lock()
	defer m.mu.Unlock()
	var gone []Remembered
	for id, r := range m.byID {
		if !connected[id] && r.LastSeen.Before(cutoff) {
			gone = append(gone, r)
			delete(m.byID, id)
			m.dirty = true
		}
	}
	return gone
}

// save writes the list when it changed.
func (m *memory) save() error {
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
func (s *Server) remember(ss *session) {
	if ss.serverID == 0 || ss.nonBlocking {
		return
	}
	ss.mu.Lock()
	r := Remembered{ServerID: ss.serverID, User: ss.user, Peer: ss.peer, File: ss.curFile, Pos: ss.curPos, LastSeen: time.Now().UTC()}
	ss.mu.Unlock()
	if r.File == "" {
		return
	}
	s.memory.see(r)
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
		out = append(out, RememberedStatus{ServerID: r.ServerID, User: r.User, Peer: r.Peer, Position: fmt.Sprintf("%s:%d", r.File, r.Pos),
			AwaySince: r.LastSeen, LagBytes: s.rlog.BytesAfter(binlog.Pos{File: r.File, Offset: r.Pos}), KeptUntil: r.LastSeen.Add(s.cfg.KeepForAbsentSlaves)})
	}
	return out
}

// absent are the remembered slaves not connected at now whose files are
// still kept for them.
func (s *Server) absent(now time.Time) []Remembered {
	connected := s.connectedIDs()
	var out []Remembered
	for _, r := range s.memory.list() {
		if !connected[r.ServerID] && now.Before(r.LastSeen.Add(s.cfg.KeepForAbsentSlaves)) {
			out = append(out, r)
		}
	}
	return out
}

func (s *Server) connectedIDs() map[uint32]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := map[uint32]bool{}
	for ss := range s.slaves {
		ids[ss.serverID] = true
	}
	return ids
}
