package status

import (
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Limits bound what HTTP clients can hold of replink: descriptors, and how
// long a connection may sit idle or take over one request. A zero field
// takes its value from LimitsFor(0).
type Limits struct {
	// MaxConns is how many HTTP connections may be open at once.
	MaxConns int
	// ReadHeaderTimeout and ReadTimeout bound reading a request,
	// WriteTimeout answering it, IdleTimeout a keep-alive connection
	// waiting for its next request.
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
}

const (
	maxHTTPConns = 64
	minHTTPConns = 4
	// httpShare: HTTP may hold 1/httpShare of the open files limit.
	httpShare = 8
)

// LimitsFor are the limits of a process that may have nofile descriptors
// open (RLIMIT_NOFILE; 0: unknown). HTTP gets at most 64 connections and
// at most an eighth of nofile (and at least 4), so that the master link, the relay
// log's files and the slaves keep the rest however many clients come.
//
// IdleTimeout is longer than the usual scrape intervals (15s, 30s), so
// Prometheus keeps its connection from one scrape to the next, and short
// enough that abandoned keep-alives go within a minute. WriteTimeout
// leaves /metrics six times Prometheus' default scrape timeout.
func LimitsFor(nofile uint64) Limits {
	n := maxHTTPConns
	if nofile > 0 {
		n = int(min(max(nofile/httpShare, minHTTPConns), maxHTTPConns))
	}
	return Limits{MaxConns: n, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: time.Minute, IdleTimeout: 45 * time.Second}
}

func (l Limits) orDefaults() Limits {
	d := LimitsFor(0)
	for _, f := range []struct{ v, d *time.Duration }{{&l.ReadHeaderTimeout, &d.ReadHeaderTimeout},
		{&l.ReadTimeout, &d.ReadTimeout}, {&l.WriteTimeout, &d.WriteTimeout}, {&l.IdleTimeout, &d.IdleTimeout}} {
		if *f.v <= 0 {
			*f.v = *f.d
		}
	}
	if l.MaxConns <= 0 {
		l.MaxConns = d.MaxConns
	}
	return l
}

// connLimiter is a listener that keeps at most max connections open. At
// the cap, the connection just accepted waits in Accept for a slot, and
// the connection idle the longest (a keep-alive between requests) is
// closed to make one: a scrape is not kept out by idle connections, only
// delayed while every slot serves a request. The server calls Accept
// again only once it returns, so beyond that one connection clients wait
// in the kernel's backlog, holding no descriptor of replink's: HTTP holds
// at most max+1 connections and its listener.
type connLimiter struct {
	net.Listener
	log      hclog.Logger
	maxConns int
	slots    chan struct{} // one per open connection
	idle     chan struct{} // a connection went idle
	done     chan struct{} // closed with the listener
	once     sync.Once

	mu       sync.Mutex
	conns    map[*limitedConn]struct{}
	lastWarn time.Time
}

func newConnLimiter(ln net.Listener, maxConns int, log hclog.Logger) *connLimiter {
	return &connLimiter{Listener: ln, log: log, maxConns: maxConns, slots: make(chan struct{}, maxConns), idle: make(chan struct{}, 1),
		done: make(chan struct{}), conns: map[*limitedConn]struct{}{}}
}

func (l *connLimiter) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if err := l.admit(c); err != nil {
		c.Close()
		return nil, err
	}
	lc := &limitedConn{Conn: c, l: l}
	l.mu.Lock()
	l.conns[lc] = struct{}{}
	l.mu.Unlock()
	return lc, nil
}

// admit takes a slot for c, closing idle connections to free one.
func (l *connLimiter) admit(c net.Conn) error {
	for warned := false; ; {
		select {
		case l.slots <- struct{}{}:
			return nil
		default:
		}
		if !warned {
			l.warnAtCap(c)
			warned = true
		}
		l.closeIdlest()
		select {
		case l.slots <- struct{}{}:
			return nil
		case <-l.idle: // a request ended: its connection can go
		case <-l.done:
			return net.ErrClosed
		}
	}
}

// closeIdlest closes the connection idle the longest, if one is.
func (l *connLimiter) closeIdlest() {
	var oldest *limitedConn
	l.mu.Lock()
	for c := range l.conns {
		if !c.idleSince.IsZero() && (oldest == nil || c.idleSince.Before(oldest.idleSince)) {
			oldest = c
		}
	}
	l.mu.Unlock()
	if oldest != nil {
		l.log.Debug("HTTP connections at the cap; closing an idle one", "peer", oldest.RemoteAddr().String(), "max", l.maxConns)
		oldest.Close()
	}
}

func (l *connLimiter) warnAtCap(c net.Conn) {
	l.mu.Lock()
	warn := time.Since(l.lastWarn) > time.Minute
	if warn {
		l.lastWarn = time.Now()
	}
	l.mu.Unlock()
	if warn {
		l.log.Warn("HTTP connections at the cap; a new one waits for a slot (idle ones are closed for it)",
			"peer", c.RemoteAddr().String(), "max", l.maxConns)
	}
}

// connState follows the server's connections (http.Server.ConnState):
// which are idle between requests.
func (l *connLimiter) connState(c net.Conn, s http.ConnState) {
	if u, ok := c.(interface{ NetConn() net.Conn }); ok { // TLS
		c = u.NetConn()
	}
	lc, ok := c.(*limitedConn)
	if !ok {
		return
	}
	l.mu.Lock()
	if s == http.StateIdle {
		lc.idleSince = time.Now()
	} else {
		lc.idleSince = time.Time{}
	}
	l.mu.Unlock()
	if s == http.StateIdle {
		select {
		case l.idle <- struct{}{}:
		default:
		}
	}
}

func (l *connLimiter) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// limitedConn gives its slot back when closed.
type limitedConn struct {
	net.Conn
	l         *connLimiter
	once      sync.Once
	idleSince time.Time // guarded by l.mu; zero: not idle
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
		<-c.l.slots
	})
	return err
}
