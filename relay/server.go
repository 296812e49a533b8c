package relay

import (
	"cmp"
	"context"
	"crypto/sha1"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/debug"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/hashicorp/go-hclog"

	"github.com/replink/replink/binlog"
	"github.com/replink/replink/tlsutil"
)

// Config is the [relay] section, parsed.
type Config struct {
	Listen                 string
	ServerID               uint32
	TLS                    *tlsutil.Server // nil: no TLS offered
	RequireSecureTransport bool
	Users                  []User
	// ServerVersion is the version string to advertise (the master's when
	// known, so slaves pick the right protocol).
	ServerVersion func() string
	// GTIDMode is a MySQL master's @@GLOBAL.GTID_MODE, "" while unknown.
	GTIDMode func() string
	// CaughtUpTo is the master time the relay log is known complete up to
	// (zero while unknown): the heartbeats to a replink downstream carry it.
	CaughtUpTo func() time.Time
	// HandshakeTimeout bounds a client's login. MaxConnections bounds how
	// many may be connected at once, MaxHandshakes how many of those may be
	// still logging in: a flood of half-open connections uses up the
	// handshake slots, not the room of slaves that are replicating.
	HandshakeTimeout time.Duration
	// WriteTimeout bounds each write to a client after login, as a
	// master's net_write_timeout (60 s): a client that stops reading is
	// dropped, its files no longer held, and counted as "timeout".
	WriteTimeout   time.Duration
	MaxConnections int
	MaxHandshakes  int
	// Retain is how long relay log files are kept (0: forever); a file a
	// connected slave still needs is kept regardless.
	Retain time.Duration
	// KeepForAbsentSlaves is how long a slave that left is remembered and
	// the files it still needs kept beyond Retain (0: not at all); MinFreeSpace is the
	// free space of the data-dir's file system below which those files
	// are purged after all.
	KeepForAbsentSlaves time.Duration
	MinFreeSpace        FreeSpace
	// WaitWhenBehind bounds how long a slave asking for a position of the
	// master's binlog that replink has not reached yet waits, with
	// heartbeats, before ERR 1236 says replink is behind (0: for ever).
	WaitWhenBehind time.Duration
	// FreeSpace reports the free and total bytes of the data-dir's file
	// system (statfs when nil).
	FreeSpace func() (free, total uint64, err error)
}

// FreeSpace is a free-space threshold: a share of the file system
// (Percent) or a number of bytes.
type FreeSpace struct {
	Percent float64
	Bytes   uint64
}

// below reports whether free of total bytes is under the threshold.
func (f FreeSpace) below(free, total uint64) bool {
	if f.Percent > 0 {
		return float64(free) < f.Percent/100*float64(total)
	}
	return free < f.Bytes
}

func (f FreeSpace) String() string {
	if f.Percent > 0 {
		return fmt.Sprintf("%g%%", f.Percent)
	}
	return fmt.Sprintf("%d bytes", f.Bytes)
}

// Server serves the relay log to slaves.
type Server struct {
	cfg   Config
	rlog  *binlog.Log
	log   hclog.Logger
	tlsm  *tlsutil.Metrics
	m     *Metrics
	users map[string]*User
	dummy [sha1.Size]byte // the hash an unknown user is checked against
	sem   chan struct{}   // connections
	hs    chan struct{}   // connections still in the handshake

	// refused are the recent refusals, for /status.
	refused refusals

	mu     sync.Mutex
	slaves map[*session]struct{}
	// memory: every slave served, kept in the data-dir.
	memory *memory
}

// DefaultMaxConnections is MaxConnections when it is not set.
const DefaultMaxConnections = 256

// New checks the configuration and makes a server.
func New(cfg Config, rlog *binlog.Log, log hclog.Logger, tlsm *tlsutil.Metrics, m *Metrics) (*Server, error) {
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = 10 * time.Second
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = 60 * time.Second
	}
	if cfg.MaxConnections == 0 {
		cfg.MaxConnections = DefaultMaxConnections
	}
	if cfg.MaxHandshakes == 0 || cfg.MaxHandshakes > cfg.MaxConnections/2 {
		cfg.MaxHandshakes = max(cfg.MaxConnections/2, 1)
	}
	if cfg.ServerVersion == nil {
		cfg.ServerVersion = func() string { return "" }
	}
	if cfg.RequireSecureTransport && cfg.TLS == nil {
		return nil, errors.New("require-secure-transport needs ssl-cert and ssl-key")
	}
	mem := loadMemory(rlog.Dir(), cfg.KeepForAbsentSlaves, log, time.Now())
	s := &Server{cfg: cfg, dummy: nativeHash(string(scramble())), rlog: rlog, log: log, tlsm: tlsm, m: m, users: map[string]*User{},
		sem: make(chan struct{}, cfg.MaxConnections), hs: make(chan struct{}, cfg.MaxHandshakes), slaves: map[*session]struct{}{},
		memory: mem}
	if s.cfg.FreeSpace == nil {
		s.cfg.FreeSpace = func() (uint64, uint64, error) { return diskSpace(rlog.Dir()) }
	}
	for i := range cfg.Users {
		u := cfg.Users[i]
		if _, dup := s.users[u.Name]; dup {
			return nil, fmt.Errorf("user %q is listed twice", u.Name)
		}
		if u.Require != RequireNone && u.Require != "" && cfg.TLS == nil {
			return nil, fmt.Errorf("user %q requires %s but the relay has no ssl-cert/ssl-key", u.Name, u.Require)
		}
		if u.Password == "" {
			return nil, fmt.Errorf("user %q has no password: the relay log holds every row of the master", u.Name)
		}
		u.hash = nativeHash(u.Password)
		s.users[u.Name] = &u
	}
	m.bind(s)
	return s, nil
}

// Serve accepts on ln until ctx ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.log.Info("serving slaves", "listen", ln.Addr().String(), "tls", s.cfg.TLS != nil, "require_secure_transport", s.cfg.RequireSecureTransport)
	// A failed listener ends the purge loop and every slave's session
	// too, so Serve returns its error at once rather than when replink
	// stops.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	go func() { <-ctx.Done(); ln.Close() }()
	wg.Add(1)
	go func() { defer wg.Done(); s.housekeeping(ctx) }()
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if temporary(err) {
				// Out of descriptors or memory for a moment (a flood on
				// another port can do it): wait and go on, as net/http does,
				// rather than stop serving the slaves that are connected.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("relay accept failed; retrying", "error", err, "in", delay)
				select {
				case <-time.After(delay):
				case <-ctx.Done():
				}
				continue
			}
			cancel()
			wg.Wait()
			s.saveMemory()
			return fmt.Errorf("relay accept: %w", err)
		}
		select {
		case s.hs <- struct{}{}:
		default:
			s.log.Warn("too many connections logging in at once; refusing", "peer", c.RemoteAddr().String(), "max", s.cfg.MaxHandshakes)
			s.refuse(c.RemoteAddr().String(), "", "limit", fmt.Sprintf("too many connections logging in at once (max %d)", s.cfg.MaxHandshakes))
			tooMany(c)
			continue
		}
		select {
		case s.sem <- struct{}{}:
		default:
			<-s.hs
			s.log.Warn("too many connections; refusing", "peer", c.RemoteAddr().String(), "max", s.cfg.MaxConnections)
			s.refuse(c.RemoteAddr().String(), "", "limit", fmt.Sprintf("too many connections (max %d)", s.cfg.MaxConnections))
			tooMany(c)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-s.sem }()
			s.serve(ctx, c)
		}()
	}
	wg.Wait()
	s.saveMemory() // where every slave stopped
	return nil
}

func (s *Server) serve(ctx context.Context, raw net.Conn) {
	defer raw.Close()
	peer := raw.RemoteAddr().String()
	inHandshake := true
	defer func() {
		if inHandshake {
			<-s.hs
		}
		// Whatever a peer sends, a fault in its connection ends that
		// connection only: the master link and the other slaves go on.
		if p := recover(); p != nil {
			s.log.Error("connection failed inside replink; closing it", "peer", peer, "panic", p, "stack", string(debug.Stack()))
			s.refuse(peer, "", "protocol", "the connection failed inside replink (logged)")
		}
	}()
	w := tlsutil.NewServerWireConn(raw, "replica", s.tlsm)
	_ = raw.SetDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	c := &conn{Conn: w, wire: w}
	sess, err := s.login(c, peer)
	<-s.hs // the handshake is over, one way or the other
	inHandshake = false
	if err != nil {
		// Counted and logged before the client hears of it, so what it
		// sees next on /metrics already includes its refusal.
		s.rejected(peer, w, err)
		var r *rejection
		if errors.As(err, &r) && r.answer != nil {
			_ = c.writeErr(r.answer)
		}
		return
	}
	_ = raw.SetDeadline(time.Time{})
	c.Conn = &writeTimeout{Conn: w.Payload(c.Conn), raw: raw, limit: s.cfg.WriteTimeout}
	c.w.Reset(c.Conn)
	sess.done = ctx.Done()
	s.log.Debug("slave logged in", "peer", peer, "user", sess.user, "tls", sess.tls != nil)
	// On shutdown close the socket (safe from another goroutine); the
	// command loop then ends with a read or write error.
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	for {
		p, err := c.nextCommand()
		if err != nil {
			if !errors.Is(err, io.EOF) && ctx.Err() == nil {
				s.log.Debug("slave connection ended", "peer", peer, "error", err)
			}
			return
		}
		if quit := sess.command(p); quit {
			return
		}
	}
}

// login greets the client, reads its login (switching to TLS when it
// asks), checks the password and the account's REQUIRE clause, and
// answers OK or 1045. Every failed login gets 1045 with the same words
// and the same work, whether the user exists or not.
func (s *Server) login(c *conn, peer string) (*session, error) {
	var tlsCfg *tls.Config
	if s.cfg.TLS != nil {
		tlsCfg = s.cfg.TLS.Config(func(c net.Conn, cs tls.ConnectionState) {
			if wc, ok := c.(*tlsutil.WireConn); ok {
				wc.Observe(cs)
			}
		})
	}
	version := s.cfg.ServerVersion()
	if version == "" {
		version = "5.5.5-10.11.0-MariaDB-replink"
	}
	if err := c.greet(version, tlsCfg != nil); err != nil {
		return nil, reject("protocol", err)
	}
	hr, err := c.readLogin(tlsCfg)
	if err != nil {
		return nil, err
	}
	denied := func(reason string, why error) error {
		using := "YES"
		if len(hr.auth) == 0 {
			using = "NO"
		}
		return &rejection{reason: reason, user: hr.user, err: fmt.Errorf("user %q: %w", hr.user, why),
			answer: mysql.NewDefaultError(mysql.ER_ACCESS_DENIED_ERROR, hr.user, hostOf(peer), using)}
	}
	u, known := s.users[hr.user]
	stored := s.dummy
	if known {
		stored = u.hash
	}
	cs := tlsutil.ConnState(c.Conn)
	if cs != nil {
		// The TLS handshake is over and succeeded, whatever the login
		// gives: a refused password is not a TLS failure.
		s.tlsm.HandshakeOK("replica", c.wire.HandshakeDuration(time.Now()), cs)
	}
	if !checkNative(stored, c.salt, hr.auth) || !known {
		return nil, denied("auth", errors.New("wrong password or unknown user"))
	}
	if err := u.check(cs, s.cfg.RequireSecureTransport); err != nil {
		return nil, denied("require", err)
	}
	if err := c.writeOK(); err != nil {
		return nil, reject("protocol", err)
	}
	return &session{s: s, conn: c, peer: peer, user: hr.user, tls: cs, vars: map[string]string{}}, nil
}

// rejected logs, counts and keeps a failed login. A refused account
// (auth, require) comes after a TLS handshake that succeeded (counted
// then): it is counted only as a rejected connection, not as a TLS
// handshake failure; its reason word in the log is access_denied.
func (s *Server) rejected(peer string, w *tlsutil.WireConn, err error) {
	reason, user := "protocol", ""
	var r *rejection
	if errors.As(err, &r) {
		reason, user = r.reason, r.user
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		reason = "timeout"
	}
	switch reason {
	case "auth", "require":
		s.log.Warn("slave refused", "peer", peer, "reason", "access_denied", "why", err.Error())
		s.refuse(peer, user, reason, err.Error())
	default:
		tr := tlsutil.Classify(err)
		s.log.Warn("slave handshake failed", "peer", peer, "reason", tr, "rejected", reason, "error", err)
		s.tlsm.HandshakeFailed("replica", w.HandshakeDuration(time.Now()), s.cfg.TLS != nil, tr, nil)
		s.refuse(peer, user, reason, string(tr)+": "+err.Error())
	}
}

// addSlave lists a dumping slave and remembers it (written to the
// data-dir within a second, by the housekeeping goroutine). An older
// dump of the same server_id is ended, as a master ends it: it is the
// same slave back after its connection died without the master seeing it.
func (s *Server) addSlave(ss *session) {
	s.mu.Lock()
	var older []*session
	for o := range s.slaves {
		if ss.serverID != 0 && o.serverID == ss.serverID {
			older = append(older, o)
		}
	}
	s.slaves[ss] = struct{}{}
	n := len(s.slaves)
	s.mu.Unlock()
	for _, o := range older {
		s.log.Warn("a slave with the same server_id started a dump; ending the older one, as a master does",
			"server_id", ss.serverID, "older_peer", o.peer, "peer", ss.peer)
		o.conn.wire.Close() // the socket: a TLS close would wait on a peer that went silent
	}
	s.m.connected.Set(float64(n))
	s.remember(ss, time.Now())
	s.memory.changed()
}

// removeSlave unlists a slave whose dump ended and remembers where it
// stopped.
func (s *Server) removeSlave(ss *session) {
	// Remembered before it is unlisted: whoever sees it gone finds where
	// it stopped.
	s.remember(ss, time.Now())
	s.memory.changed()
	s.mu.Lock()
	delete(s.slaves, ss)
	n := len(s.slaves)
	s.mu.Unlock()
	s.m.connected.Set(float64(n))
}

func (s *Server) saveMemory() {
	if err := s.memory.save(); err != nil {
		s.log.Error("cannot save the remembered slaves; their files are kept while replink runs", "error", err)
	}
}

// SlaveStatus is one connected slave, for /status.
type SlaveStatus struct {
	ServerID uint32 `json:"server_id"`
	Peer     string `json:"peer"`
	User     string `json:"user"`
	TLS      string `json:"tls"`
	Position string `json:"position"`
	LagBytes int64  `json:"lag_bytes"`
	GTID     bool   `json:"gtid"`
}

// slaveHost is a dumping slave as SHOW SLAVE HOSTS lists it.
type slaveHost struct {
	serverID   uint32
	reportHost string
	reportPort uint16
}

func (s *Server) slaveHosts() []slaveHost {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []slaveHost
	for ss := range s.slaves {
		if ss.serverID != 0 {
			out = append(out, slaveHost{ss.serverID, ss.reportHost, ss.reportPort})
		}
	}
	slices.SortFunc(out, func(a, b slaveHost) int { return cmp.Compare(a.serverID, b.serverID) })
	return out
}

// Slaves lists the slaves that are dumping.
func (s *Server) Slaves() []SlaveStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []SlaveStatus{}
	for ss := range s.slaves {
		out = append(out, ss.status())
	}
	return out
}

// housekeeping remembers where the connected slaves are, forgets the
// ones away longer than KeepForAbsentSlaves, and applies the retention,
// every few seconds until ctx ends; between rounds it writes the list of
// remembered slaves when a slave came or left, at most once per
// saveEvery. It is the list's one writer while replink runs.
func (s *Server) housekeeping(ctx context.Context) {
	every := 10 * time.Second
	if s.cfg.Retain > 0 {
		every = min(every, max(s.cfg.Retain/4, time.Second))
	}
	t := time.NewTicker(every)
	defer t.Stop()
	s.Housekeep(time.Now())
	saved := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.Housekeep(time.Now())
		case <-s.memory.wake:
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Until(saved.Add(saveEvery))):
			}
			s.saveMemory()
		}
		saved = time.Now()
	}
}

// Housekeep does one round of housekeeping.
func (s *Server) Housekeep(now time.Time) {
	s.mu.Lock()
	dumping := make([]*session, 0, len(s.slaves))
	for ss := range s.slaves {
		dumping = append(dumping, ss)
	}
	s.mu.Unlock()
	for _, ss := range dumping {
		s.remember(ss, now)
	}
	for _, r := range s.memory.forget(now.Add(-s.cfg.KeepForAbsentSlaves), s.connectedKeys()) {
		s.log.Info("forgetting a slave away longer than keep-for-absent-slaves; its files are no longer kept for it",
			"server_id", r.ServerID, "user", r.User, "last_seen", r.LastSeen, "position", fmt.Sprintf("%s:%d", r.File, r.Pos),
			"keep_for_absent_slaves", s.cfg.KeepForAbsentSlaves)
	}
	s.saveMemory()
	if s.cfg.Retain > 0 {
		s.PurgeNow(now)
	}
}

// kept is what the retention keeps for slaves' next requests at one
// moment: floor, the index of the oldest file kept for any slave, and
// present, for the connected slaves alone (-1: none); the absent
// remembered slaves; and lost, whether the list of remembered slaves was
// unreadable (every file is kept then, for slaves it may have named).
type kept struct {
	floor, present int
	away           []Remembered
	lost           bool
}

// keptAt is what the retention keeps for slaves at now.
func (s *Server) keptAt(now time.Time) kept {
	k := kept{floor: -1, present: -1}
	need := func(floor *int, i int) {
		if i >= 0 && (*floor < 0 || i < *floor) {
			*floor = i
		}
	}
	s.mu.Lock()
	for ss := range s.slaves {
		ss.mu.Lock()
		if now.Sub(ss.dumpStart) < s.cfg.KeepForAbsentSlaves {
			need(&k.present, s.rlog.Index(ss.from))
		}
		// Its reader holds the file it reads, but a listed slave whose
		// dump is ending (its reader closed, its refusal still being
		// written) is not absent yet either.
		need(&k.present, s.rlog.Index(ss.curFile))
		ss.mu.Unlock()
	}
	s.mu.Unlock()
	k.floor = k.present
	k.away = s.absent(now)
	for _, r := range k.away {
		need(&k.floor, s.rlog.Index(r.From))
		// And the file before where it stopped: what was sent last may
		// have been lost with the connection, and the slave asks for it
		// again.
		if i := s.rlog.Index(r.File); i > 0 {
			need(&k.floor, i-1)
		} else {
			need(&k.floor, i)
		}
	}
	if k.lost = s.memory.lost(now); k.lost {
		k.floor = 0
	}
	return k
}

// purgeable is how many of files, oldest first, the retention purges
// with cutoff when the files from index floor on are kept (floor -1:
// none is): Purge's prefix of files older than cutoff, up to the one
// being written or the first kept.
func purgeable(files []binlog.FileStat, cutoff time.Time, floor int) int {
	return binlog.Purgeable(files, cutoff, func(i int) bool { return floor >= 0 && i >= floor })
}

// heldForAbsent is the bytes of the files kept only for absent slaves
// (remembered, or possibly named by an unreadable list): those the
// retention with cutoff would purge if only the connected slaves' files
// were kept (from present on) and does not purge because it keeps from
// floor on.
func heldForAbsent(files []binlog.FileStat, cutoff time.Time, floor, present int) int64 {
	var n int64
	for _, f := range files[purgeable(files, cutoff, floor):purgeable(files, cutoff, present)] {
		n += f.Size
	}
	return n
}

// relayLogBytes is the bytes of relay files on disk at now, and of those
// kept only for absent slaves (none without retain, which keeps every
// file).
func (s *Server) relayLogBytes(now time.Time) (total, absent int64) {
	files := s.rlog.Stat()
	for _, f := range files {
		total += f.Size
	}
	if s.cfg.Retain > 0 {
		k := s.keptAt(now)
		absent = heldForAbsent(files, now.Add(-s.cfg.Retain), k.floor, k.present)
	}
	return total, absent
}

// PurgeNow applies the retention once, in this order: a file a slave is
// reading is never purged (the relay log does not purge a file open in a
// reader); a file older than Retain is purged unless a slave still needs
// it for its next request: a connected slave what its dump started from
// (for KeepForAbsentSlaves from the dump's start), a remembered one that
// and the file before the one it stopped in (for KeepForAbsentSlaves
// after it left), every file while records lost with an unreadable list
// may need them; and that protection gives way when the data-dir's free
// space is below MinFreeSpace (logged, and counted as reason
// "free_space").
func (s *Server) PurgeNow(now time.Time) {
	k := s.keptAt(now)
	floor, away, lost := k.floor, k.away, k.lost
	lowSpace := false
	if floor >= 0 {
		free, total, err := s.cfg.FreeSpace()
		switch {
		case err != nil:
			s.log.Warn("cannot tell the data-dir's free space; keeping the files slaves may ask for", "error", err)
		case s.cfg.MinFreeSpace.below(free, total):
			lowSpace = true
			s.log.Warn("data-dir free space below min-free-space: the files slaves may ask for again are no longer kept",
				"free_bytes", free, "total_bytes", total, "min_free_space", s.cfg.MinFreeSpace)
		}
	}
	keep := floor
	if lowSpace {
		keep = -1
	}
	removed, err := s.rlog.Purge(now.Add(-s.cfg.Retain), func(name string) bool {
		return keep >= 0 && s.rlog.Index(name) >= keep
	})
	if err != nil {
		s.log.Error("relay log retention", "error", err)
	}
	if len(removed) == 0 {
		return
	}
	// What is purged is a prefix of the index: removed[i] was file i, so
	// from floor on only a slave's next request would have kept it.
	for i := range removed {
		reason := "retain"
		if lowSpace && floor >= 0 && i >= floor {
			reason = "free_space"
		}
		s.m.purged.WithLabelValues(reason).Inc()
	}
	s.log.Info("purged relay log files", "files", removed, "retain", s.cfg.Retain)
	if lowSpace {
		for _, r := range away {
			if slices.Contains(removed, r.File) || slices.Contains(removed, r.From) {
				s.log.Warn("purged files a remembered slave needs, for free space; it will get ERR 1236 when it returns",
					"server_id", r.ServerID, "user", r.User, "position", fmt.Sprintf("%s:%d", r.File, r.Pos), "away_since", r.LastSeen)
			}
		}
		if lost {
			s.log.Warn("purged files, for free space, that slaves lost with the unreadable list of remembered slaves may need", "files", removed)
		}
	}
}

// binlogChecksum is @@binlog_checksum as the master's binlog has it: the
// algorithm the newest relay file's FDE declares (CRC32 before there is
// one, MariaDB's default).
func (s *Server) binlogChecksum() string {
	files := s.rlog.Files()
	if len(files) == 0 {
		return "CRC32"
	}
	r, err := s.rlog.Open(files[len(files)-1])
	if err != nil {
		return "CRC32"
	}
	defer r.Close()
	if _, err := r.FDE(); err != nil || r.Checksum() == binlog.ChecksumCRC32 {
		return "CRC32"
	}
	return "NONE"
}

// kill ends the dump of connection id of the same user, as KILL does on
// a master for an account without the CONNECTION ADMIN privilege; false
// when this user has no dump with that id.
func (s *Server) kill(id uint32, user string) bool {
	var victim *session
	s.mu.Lock()
	for ss := range s.slaves {
		if ss.conn.id == id && ss.user == user {
			victim = ss
		}
	}
	s.mu.Unlock()
	if victim == nil {
		return false
	}
	victim.conn.Close() // outside the lock: a TLS close can block
	return true
}

// tooMany tells a client refused for want of room so, with a master's
// code and words (1040 "Too many connections"), in place of the greeting
// (a client reads an ERR packet there as the server's refusal), and
// closes. Before the greeting no client knows the 4.1 protocol is spoken,
// so the packet has no SQL state, which clients would print as text. The
// write is bounded: the refused client may not be reading.
func tooMany(c net.Conn) {
	me := mysql.NewDefaultError(mysql.ER_CON_COUNT_ERROR)
	p := binary.LittleEndian.AppendUint16([]byte{mysql.ERR_HEADER}, me.Code)
	p = append(p, me.Message...)
	_ = c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	_, _ = c.Write(append([]byte{byte(len(p)), byte(len(p) >> 8), 0, 0}, p...))
	c.Close()
}

// temporary reports an accept error that passes: out of descriptors or
// memory.
func temporary(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM)
}

// writeTimeout gives every write to a logged-in client WriteTimeout to go
// through, on the socket under TLS.
type writeTimeout struct {
	net.Conn
	raw   net.Conn
	limit time.Duration
}

func (w *writeTimeout) Write(p []byte) (int, error) {
	if err := w.raw.SetWriteDeadline(time.Now().Add(w.limit)); err != nil {
		return 0, err
	}
	return w.Conn.Write(p)
}
