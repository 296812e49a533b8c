package relay

import (
	"context"
	"crypto/sha1"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/debug"
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
	// HandshakeTimeout bounds a client's login. MaxConnections bounds how
	// many may be connected at once, MaxHandshakes how many of those may be
	// still logging in: a flood of half-open connections uses up the
	// handshake slots, not the room of slaves that are replicating.
	HandshakeTimeout time.Duration
	MaxConnections   int
	MaxHandshakes    int
	// Retain is how long relay log files are kept (0: forever); a file a
	// connected slave still needs is kept regardless.
	Retain time.Duration
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

	mu     sync.Mutex
	slaves map[*session]struct{}
}

// New checks the configuration and makes a server.
func New(cfg Config, rlog *binlog.Log, log hclog.Logger, tlsm *tlsutil.Metrics, m *Metrics) (*Server, error) {
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = 10 * time.Second
	}
	if cfg.MaxConnections == 0 {
		cfg.MaxConnections = 256
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
	s := &Server{cfg: cfg, dummy: nativeHash(string(scramble())), rlog: rlog, log: log, tlsm: tlsm, m: m, users: map[string]*User{},
		sem: make(chan struct{}, cfg.MaxConnections), hs: make(chan struct{}, cfg.MaxHandshakes), slaves: map[*session]struct{}{}}
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
	if s.cfg.Retain > 0 {
		wg.Add(1)
		go func() { defer wg.Done(); s.purgeLoop(ctx) }()
	}
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
			return fmt.Errorf("relay accept: %w", err)
		}
		select {
		case s.hs <- struct{}{}:
		default:
			s.log.Warn("too many connections logging in at once; refusing", "peer", c.RemoteAddr().String(), "max", s.cfg.MaxHandshakes)
			s.m.reject("limit")
			c.Close()
			continue
		}
		select {
		case s.sem <- struct{}{}:
		default:
			<-s.hs
			s.log.Warn("too many connections; refusing", "peer", c.RemoteAddr().String(), "max", s.cfg.MaxConnections)
			s.m.reject("limit")
			c.Close()
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
			s.m.reject("protocol")
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
	c.Conn = w.Payload(c.Conn)
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
		return &rejection{reason: reason, err: fmt.Errorf("user %q: %w", hr.user, why),
			answer: mysql.NewDefaultError(mysql.ER_ACCESS_DENIED_ERROR, hr.user, hostOf(peer), using)}
	}
	u, known := s.users[hr.user]
	stored := s.dummy
	if known {
		stored = u.hash
	}
	if !checkNative(stored, c.salt, hr.auth) || !known {
		return nil, denied("auth", errors.New("wrong password or unknown user"))
	}
	cs := tlsutil.ConnState(c.Conn)
	if err := u.check(cs, s.cfg.RequireSecureTransport); err != nil {
		return nil, denied("require", err)
	}
	if err := c.writeOK(); err != nil {
		return nil, reject("protocol", err)
	}
	if cs != nil {
		s.tlsm.HandshakeOK("replica", c.wire.HandshakeDuration(time.Now()), cs)
	}
	return &session{s: s, conn: c, peer: peer, user: hr.user, tls: cs, vars: map[string]string{}}, nil
}

// rejected logs and counts a failed login.
func (s *Server) rejected(peer string, w *tlsutil.WireConn, err error) {
	reason := "protocol"
	var r *rejection
	if errors.As(err, &r) {
		reason = r.reason
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		reason = "timeout"
	}
	s.m.reject(reason)
	switch reason {
	case "auth", "require":
		s.log.Warn("slave refused", "peer", peer, "reason", "access_denied", "why", err.Error())
		s.tlsm.HandshakeFailed("replica", 0, false, tlsutil.ReasonAccessDenied, nil)
	default:
		tr := tlsutil.Classify(err)
		s.log.Warn("slave handshake failed", "peer", peer, "reason", tr, "rejected", reason, "error", err)
		s.tlsm.HandshakeFailed("replica", w.HandshakeDuration(time.Now()), s.cfg.TLS != nil, tr, nil)
	}
}

func (s *Server) addSlave(ss *session) {
	s.mu.Lock()
	s.slaves[ss] = struct{}{}
	n := len(s.slaves)
	s.mu.Unlock()
	s.m.connected.Set(float64(n))
}

func (s *Server) removeSlave(ss *session) {
	s.mu.Lock()
	delete(s.slaves, ss)
	n := len(s.slaves)
	s.mu.Unlock()
	s.m.connected.Set(float64(n))
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

// purgeLoop removes relay log files older than Retain, never one a
// connected slave reads or will read next.
func (s *Server) purgeLoop(ctx context.Context) {
	every := min(time.Minute, max(s.cfg.Retain/4, time.Second))
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		s.PurgeNow(time.Now())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// PurgeNow applies the retention once.
func (s *Server) PurgeNow(now time.Time) {
	oldest := -1
	s.mu.Lock()
	for ss := range s.slaves {
		if i := s.rlog.Index(ss.file()); i >= 0 && (oldest < 0 || i < oldest) {
			oldest = i
		}
	}
	s.mu.Unlock()
	removed, err := s.rlog.Purge(now.Add(-s.cfg.Retain), func(name string) bool {
		return oldest >= 0 && s.rlog.Index(name) >= oldest
	})
	if err != nil {
		s.log.Error("relay log retention", "error", err)
	}
	if len(removed) > 0 {
		s.log.Info("purged relay log files", "files", removed, "retain", s.cfg.Retain)
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

// temporary reports an accept error that passes: out of descriptors or
// memory.
func temporary(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM)
}
