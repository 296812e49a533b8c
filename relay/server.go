package relay

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/server"
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
	sem   chan struct{} // connections
	hs    chan struct{} // connections still in the handshake

	mu       sync.Mutex
	replicas map[*session]struct{}
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
	s := &Server{cfg: cfg, rlog: rlog, log: log, tlsm: tlsm, m: m, users: map[string]*User{},
		sem: make(chan struct{}, cfg.MaxConnections), hs: make(chan struct{}, cfg.MaxHandshakes), replicas: map[*session]struct{}{}}
	if m != nil {
		f := s.Replicas
		m.replicas.Store(&f)
	}
	for i := range cfg.Users {
		u := cfg.Users[i]
		if _, dup := s.users[u.Name]; dup {
			return nil, fmt.Errorf("user %q is listed twice", u.Name)
		}
		if u.Require != RequireNone && u.Require != "" && cfg.TLS == nil {
			return nil, fmt.Errorf("user %q requires %s but the relay has no ssl-cert/ssl-key", u.Name, u.Require)
		}
		s.users[u.Name] = &u
	}
	return s, nil
}

// Run accepts slaves until ctx ends, then closes them.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("relay listen %s: %w", s.cfg.Listen, err)
	}
	return s.Serve(ctx, ln)
}

// Serve accepts on ln until ctx ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.log.Info("serving slaves", "listen", ln.Addr().String(), "tls", s.cfg.TLS != nil, "require_secure_transport", s.cfg.RequireSecureTransport)
	var wg sync.WaitGroup
	go func() { <-ctx.Done(); ln.Close() }()
	if s.cfg.Retain > 0 {
		wg.Add(1)
		go func() { defer wg.Done(); s.purgeLoop(ctx) }()
	}
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
			wg.Wait()
			return fmt.Errorf("relay accept: %w", err)
		}
		select {
		case s.hs <- struct{}{}:
		default:
			s.log.Warn("too many connections logging in at once; refusing", "peer", c.RemoteAddr().String(), "max", s.cfg.MaxHandshakes)
			c.Close()
			continue
		}
		select {
		case s.sem <- struct{}{}:
		default:
			<-s.hs
			s.log.Warn("too many connections; refusing", "peer", c.RemoteAddr().String(), "max", s.cfg.MaxConnections)
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
	w := tlsutil.NewServerWireConn(raw, "replica", s.tlsm)
	_ = raw.SetDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
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
	srv := server.NewServer(version, mysql.DEFAULT_COLLATION_ID, mysql.AUTH_NATIVE_PASSWORD, nil, tlsCfg)
	sess := &session{s: s, peer: peer, vars: map[string]string{}, done: ctx.Done()}
	c, err := srv.NewCustomizedConn(w, &authHandler{s: s}, sess)
	<-s.hs // the handshake is over, one way or the other
	if err != nil {
		var me *mysql.MyError
		if !errors.As(err, &me) || me.Code != mysql.ER_ACCESS_DENIED_ERROR {
			reason := tlsutil.Classify(err)
			s.log.Warn("slave handshake failed", "peer", peer, "reason", reason, "error", err)
			s.tlsm.HandshakeFailed("replica", w.HandshakeDuration(time.Now()), s.cfg.TLS != nil, reason, nil)
		}
		return
	}
	cs := tlsutil.ConnState(c.Conn.Conn)
	if cs != nil {
		s.tlsm.HandshakeOK("replica", w.HandshakeDuration(time.Now()), cs)
	}
	_ = raw.SetDeadline(time.Time{})
	c.Conn.Conn = w.Payload(c.Conn.Conn)
	sess.conn, sess.tls, sess.user = c, cs, c.GetUser()
	s.log.Debug("slave logged in", "peer", peer, "user", c.GetUser(), "tls", cs != nil)
	// On shutdown close the socket (safe from another goroutine); the
	// command loop then ends with a read or write error.
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	for !c.Closed() {
		if err := c.HandleCommand(); err != nil {
			break
		}
	}
}

func (s *Server) addReplica(ss *session) {
	s.mu.Lock()
	s.replicas[ss] = struct{}{}
	n := len(s.replicas)
	s.mu.Unlock()
	if s.m != nil {
		s.m.connected.Set(float64(n))
	}
}

func (s *Server) removeReplica(ss *session) {
	s.mu.Lock()
	delete(s.replicas, ss)
	n := len(s.replicas)
	s.mu.Unlock()
	if s.m != nil {
		s.m.connected.Set(float64(n))
	}
}

// readable is how far a relay file may be served: the durable end of the
// file being written, the whole of a file the log has moved past
// (complete), nothing past the magic of a file that was only just created.
func (s *Server) readable(name string) (end int64, complete bool, err error) {
	dur := s.rlog.Durable()
	if dur.File == name {
		return int64(dur.Offset), false, nil
	}
	if s.rlog.Next(name) == "" {
		return 4, false, nil
	}
	st, err := os.Stat(filepath.Join(s.rlog.Dir(), name))
	if err != nil {
		return 0, false, err
	}
	return st.Size(), true, nil
}

// lagBytes is how much durable relay log lies beyond file:pos, across files.
func (s *Server) lagBytes(file string, pos uint32) int64 {
	dur := s.rlog.Durable()
	if file == "" {
		return 0
	}
	if file == dur.File {
		return max(int64(dur.Offset)-int64(pos), 0)
	}
	var lag int64
	for f, first := file, true; f != "" && f != dur.File; f, first = s.rlog.Next(f), false {
		st, err := os.Stat(filepath.Join(s.rlog.Dir(), f))
		if err != nil {
			return lag
		}
		if first {
			lag += max(st.Size()-int64(pos), 0)
		} else {
			lag += st.Size()
		}
	}
	return lag + int64(dur.Offset)
}

// ReplicaStatus is one connected slave, for /status.
type ReplicaStatus struct {
	ServerID uint32 `json:"server_id"`
	Peer     string `json:"peer"`
	User     string `json:"user"`
	TLS      string `json:"tls"`
	Position string `json:"position"`
	LagBytes int64  `json:"lag_bytes"`
	GTID     bool   `json:"gtid"`
}

// Replicas lists the slaves that are dumping.
func (s *Server) Replicas() []ReplicaStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []ReplicaStatus{}
	for ss := range s.replicas {
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
	for ss := range s.replicas {
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
