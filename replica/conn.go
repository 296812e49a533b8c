package replica

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-mysql-org/go-mysql/client"

	"github.com/replink/replink/packet"
	"github.com/replink/replink/tlsutil"
)

// Endpoint is how to reach and log in to the master.
type Endpoint struct {
	Host           string
	Port           int
	User           string
	Password       string
	TLS            *tlsutil.Client
	ConnectTimeout time.Duration
}

// Addr is host:port.
func (e Endpoint) Addr() string { return net.JoinHostPort(e.Host, strconv.Itoa(e.Port)) }

// Attempt records one connection attempt: the wire connection, the TLS
// state the peer showed (also when verification failed), and the greeting.
type Attempt struct {
	mu       sync.Mutex
	Wire     *tlsutil.WireConn
	TLSState *tls.ConnectionState
	Greeting *Greeting
	// SentClientCert: we presented a client certificate.
	SentClientCert bool
}

// State returns the TLS state observed, if any.
func (a *Attempt) State() *tls.ConnectionState {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.TLSState
}

// Greeting is what the server's initial handshake packet says.
type Greeting struct {
	Version      string
	ConnectionID uint32
	Capabilities uint32
	SSL          bool
}

const (
	clientSSL = 0x00000800
	// maxGreeting bounds the greeting read: a real one is about 100 bytes.
	maxGreeting = 1 << 16
)

// parseGreeting reads a protocol-10 initial handshake payload.
func parseGreeting(p []byte) (*Greeting, error) {
	if len(p) < 1 || p[0] != 10 {
		if len(p) > 0 && p[0] == 0xff {
			return nil, fmt.Errorf("server answered with an error packet: %s", errText(p))
		}
		return nil, errors.New("not a MySQL protocol-10 greeting")
	}
	i := 1
	end := strings.IndexByte(string(p[i:]), 0)
	if end < 0 {
		return nil, errors.New("greeting: unterminated server version")
	}
	g := &Greeting{Version: string(p[i : i+end])}
	i += end + 1
	if len(p) < i+4+9+2 {
		return nil, errors.New("greeting: too short")
	}
	g.ConnectionID = uint32(p[i]) | uint32(p[i+1])<<8 | uint32(p[i+2])<<16 | uint32(p[i+3])<<24
	i += 4 + 9
	g.Capabilities = uint32(p[i]) | uint32(p[i+1])<<8
	i += 2
	if len(p) >= i+5 {
		g.Capabilities |= (uint32(p[i+3]) | uint32(p[i+4])<<8) << 16
	}
	g.SSL = g.Capabilities&clientSSL != 0
	return g, nil
}

func errText(p []byte) string {
	if len(p) > 9 && p[3] == '#' {
		return string(p[9:])
	}
	if len(p) > 3 {
		return string(p[3:])
	}
	return ""
}

// greetingSniffer reads the first packet as it passes by; it gives up on
// one longer than maxGreeting.
type greetingSniffer struct {
	*tlsutil.WireConn
	a    *Attempt
	buf  []byte
	done bool
}

func (g *greetingSniffer) Read(p []byte) (int, error) {
	n, err := g.WireConn.Read(p)
	if g.done || n == 0 {
		return n, err
	}
	g.buf = append(g.buf, p[:n]...)
	if len(g.buf) < packet.HeaderSize {
		return n, err
	}
	h := packet.ParseHeader(g.buf)
	switch {
	case h.Len > maxGreeting:
		g.done, g.buf = true, nil
	case len(g.buf) >= packet.HeaderSize+h.Len:
		if gr, perr := parseGreeting(g.buf[packet.HeaderSize : packet.HeaderSize+h.Len]); perr == nil {
			g.a.mu.Lock()
			g.a.Greeting = gr
			g.a.mu.Unlock()
		}
		g.done, g.buf = true, nil
	}
	return n, err
}

// dialer returns a go-mysql Dialer that bounds the whole TCP + TLS + auth
// handshake by ConnectTimeout and puts a WireConn below TLS.
func (e Endpoint) dialer(link string, m *tlsutil.Metrics, tlsUsed bool, onDial func(*Attempt)) client.Dialer {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		d := net.Dialer{Timeout: e.ConnectTimeout}
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		_ = c.SetDeadline(time.Now().Add(e.ConnectTimeout))
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(4 << 20)
			_ = tc.SetKeepAlive(true)
			_ = tc.SetKeepAlivePeriod(15 * time.Second)
		}
		a := &Attempt{Wire: tlsutil.NewWireConn(c, link, m, tlsUsed)}
		if onDial != nil {
			onDial(a)
		}
		return &greetingSniffer{WireConn: a.Wire, a: a}, nil
	}
}

// tlsConfig builds the per-attempt tls.Config that records the peer's state.
func (e Endpoint) tlsConfig(get func() *Attempt) *tls.Config {
	if e.TLS == nil {
		return nil
	}
	cfg := e.TLS.Config(e.Host, func(cs tls.ConnectionState) {
		a := get()
		if a == nil {
			return
		}
		a.Wire.Observe(cs)
		a.mu.Lock()
		a.TLSState = &cs
		a.mu.Unlock()
	})
	getCert := cfg.GetClientCertificate
	cfg.GetClientCertificate = func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
		c, err := getCert(cri)
		if a := get(); a != nil && c != nil && len(c.Certificate) > 0 {
			a.mu.Lock()
			a.SentClientCert = true
			a.mu.Unlock()
		}
		return c, err
	}
	return cfg
}

// classifyAttempt names the reason of a failed attempt. Under TLS 1.3 a
// server that rejects our client certificate says so only after our side
// of the handshake is done: the alert is lost in the reset that meets our
// first write. A reset right after a TLS 1.3 handshake in which we
// presented a certificate is therefore a rejected client certificate.
func classifyAttempt(a *Attempt, err error) tlsutil.Reason {
	r := tlsutil.Classify(err)
	if a == nil || r != tlsutil.ReasonOther {
		return r
	}
	a.mu.Lock()
	tls13 := a.TLSState != nil && a.TLSState.Version == tls.VersionTLS13
	sent := a.SentClientCert
	a.mu.Unlock()
	if tls13 && sent && (errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, io.EOF) ||
		strings.Contains(err.Error(), "connection reset by peer") || strings.Contains(err.Error(), "broken pipe") ||
		strings.Contains(err.Error(), "EOF")) {
		return tlsutil.ReasonClientCertRejected
	}
	return r
}

// Connect opens a plain client session to the master with the endpoint's
// TLS settings (PREFERRED falls back to plaintext only when the server
// lacks SSL). It is used for the checks before streaming and by diagnose.
func (e Endpoint) Connect(ctx context.Context, link string, m *tlsutil.Metrics) (c *client.Conn, a *Attempt, err error) {
	err = e.withTLS(func(useTLS bool) error {
		c, a, err = e.connect(ctx, link, m, useTLS)
		return err
	})
	return c, a, err
}

// withTLS runs attempt as ssl-mode says (tlsutil.Client.Use): with TLS
// when the mode wants it, and once more in plaintext when the server
// turned out to have no SSL and the mode is PREFERRED.
func (e Endpoint) withTLS(attempt func(useTLS bool) error) error {
	useTLS, _ := e.TLS.Use(true)
	err := attempt(useTLS)
	if err == nil || !useTLS || tlsutil.Classify(err) != tlsutil.ReasonServerNoSSL {
		return err
	}
	if fallback, ferr := e.TLS.Use(false); ferr == nil && !fallback {
		return attempt(false)
	}
	return err
}

func (e Endpoint) connect(ctx context.Context, link string, m *tlsutil.Metrics, useTLS bool) (*client.Conn, *Attempt, error) {
	var cur *Attempt
	var mu sync.Mutex
	get := func() *Attempt { mu.Lock(); defer mu.Unlock(); return cur }
	var cfg *tls.Config
	if useTLS {
		cfg = e.tlsConfig(get)
	}
	dial := e.dialer(link, m, useTLS, func(a *Attempt) { mu.Lock(); cur = a; mu.Unlock() })
	ctx, cancel := context.WithTimeout(ctx, e.ConnectTimeout)
	defer cancel()
	var c *client.Conn
	err := recoverPanic(func() error {
		var err error
		c, err = client.ConnectWithDialer(ctx, "tcp", e.Addr(), e.User, e.Password, "", dial, func(c *client.Conn) error {
			c.SetTLSConfig(cfg)
			return nil
		})
		return err
	})
	a := get()
	if err != nil {
		recordFailure(m, link, a, useTLS, err)
		return nil, a, wrapConnectErr(e.Addr(), a, err)
	}
	adopt(m, link, a, c)
	_ = c.SetDeadline(time.Now().Add(e.ConnectTimeout))
	return c, a, nil
}

// adopt finishes a logged-in connection: it records the handshake, lifts
// the handshake deadline and meters payload bytes above TLS.
func adopt(m *tlsutil.Metrics, link string, a *Attempt, c *client.Conn) {
	recordSuccess(m, link, a, c)
	_ = c.SetDeadline(time.Time{})
	c.Conn.Conn = newPacketLimit(a.Wire.Payload(c.Conn.Conn), maxMessage)
}

func wrapConnectErr(addr string, a *Attempt, err error) error {
	r := classifyAttempt(a, err)
	return &tlsutil.Error{Reason: r, Err: fmt.Errorf("master %s: %w", addr, err)}
}

func recordFailure(m *tlsutil.Metrics, link string, a *Attempt, useTLS bool, err error) {
	var d time.Duration
	started := false
	var cs *tls.ConnectionState
	if a != nil {
		d = a.Wire.HandshakeDuration(time.Now())
		started = useTLS && d > 0
		cs = a.State()
	}
	r := classifyAttempt(a, err)
	if r == tlsutil.ReasonAccessDenied {
		// Authentication comes after the TLS handshake, which succeeded:
		// a refused login is not a TLS failure (as on the relay side). It
		// is counted in replink_master_reconnects_total{reason=
		// "access_denied"} and named in the log, /status and diagnose.
		if cs != nil {
			m.HandshakeOK(link, d, cs)
		}
		return
	}
	m.HandshakeFailed(link, d, started, r, cs)
}

func recordSuccess(m *tlsutil.Metrics, link string, a *Attempt, c *client.Conn) {
	if a == nil {
		return
	}
	m.HandshakeOK(link, a.Wire.HandshakeDuration(time.Now()), tlsutil.ConnState(c.Conn.Conn))
}

// ReadGreeting reads the server's first packet from a fresh connection.
func ReadGreeting(c net.Conn) (*Greeting, error) {
	var hdr [packet.HeaderSize]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return nil, fmt.Errorf("reading server greeting: %w", err)
	}
	h := packet.ParseHeader(hdr[:])
	if h.Len > maxGreeting {
		return nil, fmt.Errorf("server greeting of %d bytes: not a MySQL server", h.Len)
	}
	p := make([]byte, h.Len)
	if _, err := io.ReadFull(c, p); err != nil {
		return nil, fmt.Errorf("reading server greeting: %w", err)
	}
	return parseGreeting(p)
}

// recoverPanic runs f, turning a panic inside it into an error. go-mysql's
// client code panics on some malformed server answers (a bad public key
// during caching_sha2 authentication, for one); a hostile or broken master
// must not be able to crash replink.
func recoverPanic(f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("protocol error from the server (go-mysql panicked: %v)", p)
		}
	}()
	return f()
}
