package test

import (
	"io"
	"net"
	"sync"
	"testing"
)

// Proxy forwards loopback TCP connections to a target. Stall makes the
// connections open at that moment stop forwarding without closing, as a
// firewall that lost its connection-tracking state does; connections made
// afterwards forward normally.
type Proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []*proxied
	closed bool
	held   chan struct{} // while not nil, new connections wait (the path is down)
	// stallAfter, when > 0, stalls the next connection's master-to-client
	// direction after that many bytes (a link that dies mid-event).
	stallAfter int
	accepted   int
}

// Accepted counts the connections the proxy has accepted.
func (p *Proxy) Accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

// StallAfter makes new connections stop forwarding, without closing,
// once n bytes have gone from the target to the client; after the first
// one stalls, connections are normal again.
func (p *Proxy) StallAfter(n int) {
	p.mu.Lock()
	p.stallAfter = n
	p.mu.Unlock()
}

// Hold makes new connections wait before they reach the target, as if the
// network path were down; Release lets them through.
func (p *Proxy) Hold() {
	p.mu.Lock()
	if p.held == nil {
		p.held = make(chan struct{})
	}
	p.mu.Unlock()
}

// Release ends Hold.
func (p *Proxy) Release() {
	p.mu.Lock()
	if p.held != nil {
		close(p.held)
		p.held = nil
	}
	p.mu.Unlock()
}

type proxied struct {
	a, b    net.Conn
	mu      sync.Mutex
	stalled bool
	budget  int // bytes target→client before stalling; 0: no limit
	p       *Proxy
}

// StartProxy listens on a free loopback port.
func StartProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln, target: target}
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

// Port is the proxy's port.
func (p *Proxy) Port() int { return p.ln.Addr().(*net.TCPAddr).Port }

func (p *Proxy) accept() {
	for {
		a, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.accepted++
		held := p.held
		p.mu.Unlock()
		if held != nil {
			go func() { <-held; a.Close() }() // the client times out or gives up
			continue
		}
		b, err := net.Dial("tcp", p.target)
		if err != nil {
			a.Close()
			continue
		}
		pc := &proxied{a: a, b: b, p: p}
		p.mu.Lock()
		pc.budget = p.stallAfter
		if p.closed {
			p.mu.Unlock()
			a.Close()
			b.Close()
			return
		}
		p.conns = append(p.conns, pc)
		p.mu.Unlock()
		go pc.pipe(a, b)
		go pc.pipe(b, a)
	}
}

func (pc *proxied) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		pc.mu.Lock()
		stalled := pc.stalled
		pc.mu.Unlock()
		if stalled {
			// Swallow everything, forward nothing, close nothing.
			_, _ = io.Copy(io.Discard, src)
			return
		}
		if n > 0 && src == pc.b && pc.budget > 0 {
			pc.mu.Lock()
			if n >= pc.budget {
				n, pc.stalled = pc.budget, true
				pc.p.mu.Lock()
				pc.p.stallAfter = 0
				pc.p.mu.Unlock()
			}
			pc.budget -= n
			pc.mu.Unlock()
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			dst.Close()
			return
		}
	}
}

// Stall stops forwarding on every connection open now.
func (p *Proxy) Stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pc := range p.conns {
		pc.mu.Lock()
		pc.stalled = true
		pc.mu.Unlock()
	}
	p.conns = nil
}

// Close closes the listener and every connection.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.closed = true
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	p.ln.Close()
	for _, pc := range conns {
		pc.a.Close()
		pc.b.Close()
	}
}
