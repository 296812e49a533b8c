package tlsutil

import (
	"crypto/tls"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// WireConn is a net.Conn below TLS. It counts the bytes on the socket,
// the time spent blocked in socket calls (so crypto time can be told
// apart from waiting), how long the read in progress has waited for the
// peer (for stall detection), and the TLS handshake's start and end as
// seen on the wire.
type WireConn struct {
	net.Conn
	traffic *linkTraffic
	tlsUsed bool
	server  bool

	readWait  atomic.Int64 // nanos blocked in Read
	writeWait atomic.Int64 // nanos blocked in Write
	// reading is when the Read in progress began, as nanoseconds since
	// born plus one (monotonic); 0 when none is.
	reading atomic.Int64
	born    time.Time

	mu          sync.Mutex
	writes      int
	hsStart     time.Time
	hsEnd       time.Time
	verified    bool
	verifiedVer uint16
}

// NewWireConn wraps a freshly dialed or accepted connection. tlsUsed says
// whether the MySQL handshake will switch to TLS (the first client write
// after the greeting is then the SSL request, where the handshake timer
// starts). link is one of Links.
func NewWireConn(c net.Conn, link string, m *Metrics, tlsUsed bool) *WireConn {
	w := &WireConn{Conn: c, tlsUsed: tlsUsed, traffic: m.traffic[link], born: time.Now()}
	if w.traffic == nil {
		panic("tlsutil: no metrics for link " + link) // Links names them
	}
	return w
}

func (w *WireConn) Read(p []byte) (int, error) {
	t0 := time.Now()
	w.reading.Store(int64(t0.Sub(w.born)) + 1)
	n, err := w.Conn.Read(p)
	t1 := time.Now()
	w.reading.Store(0)
	w.readWait.Add(int64(t1.Sub(t0)))
	if n > 0 && w.server {
		w.mu.Lock()
		if w.hsStart.IsZero() {
			w.hsStart = t1 // the client's SSL request (or its login, in plaintext)
		}
		w.mu.Unlock()
	}
	if n > 0 {
		w.traffic.in.wire.Add(float64(n))
	}
	return n, err
}

func (w *WireConn) Write(p []byte) (int, error) {
	t0 := time.Now()
	w.mu.Lock()
	w.writes++
	if w.tlsUsed && w.hsStart.IsZero() {
		w.hsStart = t0 // the SSL request
	}
	tls12AppData := w.verified && w.hsEnd.IsZero() && w.verifiedVer <= tls.VersionTLS12 && len(p) > 0 && p[0] == 0x17
	if tls12AppData {
		w.hsEnd = t0 // TLS 1.2: the first application record follows the handshake
	}
	w.mu.Unlock()
	n, err := w.Conn.Write(p)
	t1 := time.Now()
	w.writeWait.Add(int64(t1.Sub(t0)))
	w.mu.Lock()
	if w.verified && w.hsEnd.IsZero() && w.verifiedVer == tls.VersionTLS13 {
		w.hsEnd = t1 // TLS 1.3: the client's Finished is the write after verification
	}
	w.mu.Unlock()
	if n > 0 {
		w.traffic.out.wire.Add(float64(n))
	}
	return n, err
}

// NewServerWireConn wraps an accepted connection: the handshake timer
// starts when the client's first packet (the SSL request) arrives and
// ends when Observe is called from the server's VerifyConnection.
func NewServerWireConn(c net.Conn, link string, m *Metrics) *WireConn {
	w := NewWireConn(c, link, m, false)
	w.server = true
	return w
}

// Observe is given the connection state from tls.Config.VerifyConnection.
func (w *WireConn) Observe(cs tls.ConnectionState) {
	w.mu.Lock()
	if w.server && w.hsEnd.IsZero() {
		w.hsEnd = time.Now()
	}
	w.verified, w.verifiedVer = true, cs.Version
	w.mu.Unlock()
}

// MarkHandshakeStart sets the handshake start (server side, where the
// SSL request is read rather than written).
func (w *WireConn) MarkHandshakeStart(t time.Time) {
	w.mu.Lock()
	w.hsStart = t
	w.mu.Unlock()
}

// HandshakeDuration is the time from the SSL request to the end of the
// TLS handshake, or to at (a failure) when the end was not seen.
func (w *WireConn) HandshakeDuration(at time.Time) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.hsStart.IsZero() {
		return 0
	}
	end := w.hsEnd
	if end.IsZero() {
		end = at
	}
	return end.Sub(w.hsStart)
}

// ReadBlocked is how long the Read in progress has been waiting for the
// peer at now, 0 when no Read is in progress: the peer's silence, which
// unlike the time since LastRead does not grow while the reader is busy
// elsewhere (a slow disk, its own file rotation) and leaves the socket
// alone. A Read above TLS answered from the TLS buffer never reaches the
// socket and is not waiting; one that needs more of a record is, from
// the start of each socket read. It assumes one reader at a time, as a
// stream has.
func (w *WireConn) ReadBlocked(now time.Time) time.Duration {
	began := w.reading.Load()
	if began == 0 {
		return 0
	}
	return max(now.Sub(w.born)-time.Duration(began-1), 0)
}

// ConnState is c's TLS state, or nil when c is not a TLS connection.
func ConnState(c net.Conn) *tls.ConnectionState {
	tc, ok := c.(*tls.Conn)
	if !ok {
		return nil
	}
	cs := tc.ConnectionState()
	return &cs
}

// Payload wraps the connection above TLS (or the plaintext connection)
// so that protocol bytes, and for TLS the time spent in record
// processing, are counted.
func (w *WireConn) Payload(upper net.Conn) net.Conn {
	_, isTLS := upper.(*tls.Conn)
	return &payloadConn{Conn: upper, w: w, crypto: isTLS}
}

type payloadConn struct {
	net.Conn
	w      *WireConn
	crypto bool
}

func (p *payloadConn) Read(b []byte) (int, error) {
	t0, wait0 := time.Now(), p.w.readWait.Load()
	n, err := p.Conn.Read(b)
	p.count(&p.w.traffic.in, n, t0, p.w.readWait.Load()-wait0)
	return n, err
}

func (p *payloadConn) Write(b []byte) (int, error) {
	t0, wait0 := time.Now(), p.w.writeWait.Load()
	n, err := p.Conn.Write(b)
	p.count(&p.w.traffic.out, n, t0, p.w.writeWait.Load()-wait0)
	return n, err
}

// count adds a call's protocol bytes and, above TLS, the time it took
// less the time blocked on the socket beneath.
func (p *payloadConn) count(d *direction, n int, t0 time.Time, waited int64) {
	if n > 0 {
		d.payload.Add(float64(n))
	}
	if p.crypto {
		if spent := time.Since(t0) - time.Duration(waited); spent > 0 {
			d.crypto.Add(spent.Seconds())
		}
	}
}
