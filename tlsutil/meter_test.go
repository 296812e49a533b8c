package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// meterPKI is a CA and a server certificate for 127.0.0.1, made once.
var meterPKI = sync.OnceValues(func() (tls.Certificate, *x509.CertPool) {
	now := time.Now()
	ca, err := NewCA(pkix.Name{CommonName: "meter CA"}, now.Add(-time.Hour), now.Add(time.Hour))
	if err != nil {
		panic(err)
	}
	srv, err := ca.Issue(CertSpec{Subject: pkix.Name{CommonName: "127.0.0.1"}, Hosts: []string{"127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), Server: true})
	if err != nil {
		panic(err)
	}
	pair, err := tls.X509KeyPair(srv.CertPEM, srv.KeyPEM)
	if err != nil {
		panic(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return pair, pool
})

// sslRequest stands for the MySQL SSL request: the client's plaintext
// packet before the TLS handshake.
var sslRequest = make([]byte, 36)

// loopback is a connected TCP pair on 127.0.0.1.
func loopback(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// TestHandshakeEnd: the handshake duration runs from the SSL request to
// the end of the TLS handshake, on either side and in either version.
// The peer takes delay inside the handshake, which must be counted; the
// idle gap before the SSL request (server side) and after the handshake
// must not, except that a TLS 1.2 client can only see the end at its
// first application record, so a gap before that one is counted.
func TestHandshakeEnd(t *testing.T) {
	const delay, gap = 100 * time.Millisecond, 400 * time.Millisecond
	cert, pool := meterPKI()
	for _, c := range []struct {
		name     string
		server   bool // measure the server side, else the client side
		version  uint16
		gapFirst bool // idle before the first application record
		withGap  bool // the gap is part of the duration
	}{
		{"client TLS 1.3", false, tls.VersionTLS13, false, false},
		{"client TLS 1.3, idle before the first record", false, tls.VersionTLS13, true, false},
		{"client TLS 1.2", false, tls.VersionTLS12, false, false},
		{"client TLS 1.2, idle before the first record", false, tls.VersionTLS12, true, true},
		{"server TLS 1.3", true, tls.VersionTLS13, false, false},
		{"server TLS 1.2", true, tls.VersionTLS12, false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := NewMetrics(prometheus.NewRegistry())
			craw, sraw := loopback(t)
			var cw, sw *WireConn
			var cconn, sconn net.Conn = craw, sraw
			if c.server {
				sw = NewServerWireConn(sraw, "replica", m)
				sconn = sw
			} else {
				cw = NewWireConn(craw, "master", m, true)
				cconn = cw
			}
			// As the relay's: a client certificate is asked for, so the
			// server's verification follows the client's.
			scfg := &tls.Config{MinVersion: c.version, MaxVersion: c.version, ClientAuth: tls.RequestClientCert,
				GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
					if !c.server {
						time.Sleep(delay) // the server's part of the client's handshake
					}
					return &cert, nil
				},
				VerifyConnection: func(cs tls.ConnectionState) error {
					if sw != nil {
						sw.Observe(cs)
					}
					return nil
				}}
			ccfg := &tls.Config{MinVersion: c.version, MaxVersion: c.version, RootCAs: pool, ServerName: "127.0.0.1",
				VerifyConnection: func(cs tls.ConnectionState) error {
					if cw != nil {
						cw.Observe(cs)
					} else {
						time.Sleep(delay) // the client's part of the server's handshake
					}
					return nil
				}}

			serverDone := make(chan error, 1)
			go func() {
				if _, err := io.ReadFull(sconn, make([]byte, len(sslRequest))); err != nil {
					serverDone <- err
					return
				}
				ts := tls.Server(sconn, scfg)
				if err := ts.Handshake(); err != nil {
					serverDone <- err
					return
				}
				var p net.Conn = ts
				if sw != nil {
					p = sw.Payload(ts)
					time.Sleep(gap) // after the handshake: not part of it
					_, _ = p.Write([]byte("greeting"))
				}
				_, err := io.Copy(io.Discard, p)
				serverDone <- err
			}()

			if c.server {
				time.Sleep(gap) // connected, no SSL request yet: not part of it
			}
			if _, err := cconn.Write(sslRequest); err != nil {
				t.Fatal(err)
			}
			tc := tls.Client(cconn, ccfg)
			if err := tc.Handshake(); err != nil {
				t.Fatal(err)
			}
			var p net.Conn = tc
			if cw != nil {
				p = cw.Payload(tc)
				if c.gapFirst {
					time.Sleep(gap)
				}
				_, _ = p.Write([]byte("login"))
				time.Sleep(gap) // a later record: never the end
				_, _ = p.Write([]byte("command"))
			} else {
				_, _ = io.ReadFull(p, make([]byte, len("greeting")))
			}
			tc.Close()
			if err := <-serverDone; err != nil {
				t.Fatalf("server: %v", err)
			}

			w := cw
			if c.server {
				w = sw
			}
			// An end never seen would read as the hour to come.
			d := w.HandshakeDuration(time.Now().Add(time.Hour))
			lo, hi := delay, delay+gap
			if c.withGap {
				lo, hi = delay+gap, delay+2*gap
			}
			t.Logf("handshake %s", d)
			if d < lo || d >= hi {
				t.Fatalf("handshake duration %s, want in [%s, %s)", d, lo, hi)
			}
		})
	}
}

// countConn counts the bytes that cross a connection, independently of
// the meter above it.
type countConn struct {
	net.Conn
	in, out atomic.Int64
}

func (c *countConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.in.Add(int64(n))
	return n, err
}

func (c *countConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.out.Add(int64(n))
	return n, err
}

// TestMeterCounts: wire bytes are the bytes on the socket, payload bytes
// the protocol's, and crypto time is the time in TLS record processing,
// without the time spent waiting for the peer: a read that waits idle
// for the peer's answer adds almost nothing, a megabyte encrypted adds
// something. Over plaintext, wire and payload are the same and there is
// no crypto time.
func TestMeterCounts(t *testing.T) {
	const idle = 300 * time.Millisecond
	const sent = 1 << 20
	answer := []byte("answer")
	cert, pool := meterPKI()
	for _, c := range []struct {
		name    string
		version uint16 // 0: plaintext
	}{
		{"TLS 1.3", tls.VersionTLS13},
		{"TLS 1.2", tls.VersionTLS12},
		{"plaintext", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := NewMetrics(prometheus.NewRegistry())
			craw, sraw := loopback(t)
			cc, sc := &countConn{Conn: craw}, &countConn{Conn: sraw}
			cw, sw := NewWireConn(cc, "master", m, c.version != 0), NewServerWireConn(sc, "replica", m)
			cp := cw.Payload(cw)
			serverDone := make(chan error, 1)
			go func() {
				serverDone <- func() error {
					sp := sw.Payload(sw)
					if c.version != 0 {
						ts := tls.Server(sw, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: c.version, MaxVersion: c.version})
						if err := ts.Handshake(); err != nil {
							return err
						}
						sp = sw.Payload(ts)
					}
					if _, err := io.ReadFull(sp, make([]byte, sent)); err != nil {
						return err
					}
					time.Sleep(idle) // the client waits for the answer
					if _, err := sp.Write(answer); err != nil {
						return err
					}
					_, err := io.Copy(io.Discard, sp)
					return err
				}()
			}()
			var tc *tls.Conn
			if c.version != 0 {
				tc = tls.Client(cw, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: c.version, MaxVersion: c.version})
				if err := tc.Handshake(); err != nil {
					t.Fatal(err)
				}
				cp = cw.Payload(tc)
			}
			chunk := make([]byte, 16<<10)
			for n := 0; n < sent; n += len(chunk) {
				if _, err := cp.Write(chunk); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := io.ReadFull(cp, make([]byte, len(answer))); err != nil {
				t.Fatal(err)
			}
			if tc != nil {
				tc.CloseWrite() // close_notify: the server's copy ends
			}
			craw.(*net.TCPConn).CloseWrite()
			if err := <-serverDone; err != nil {
				t.Fatalf("server: %v", err)
			}

			for _, s := range []struct {
				link      string
				c         *countConn
				payIn     int
				payOut    int
				waitedIn  bool // its reads waited idle for the peer
				bulkWrite bool // it wrote the megabyte
			}{
				{"master", cc, len(answer), sent, true, true},
				{"replica", sc, sent, len(answer), false, false},
			} {
				tr := m.traffic[s.link]
				get := func(name string, ctr prometheus.Counter) float64 {
					v := testutil.ToFloat64(ctr)
					t.Logf("%s %s: %v", s.link, name, v)
					return v
				}
				wireIn, wireOut := get("wire in", tr.in.wire), get("wire out", tr.out.wire)
				payIn, payOut := get("payload in", tr.in.payload), get("payload out", tr.out.payload)
				cryptoIn, cryptoOut := get("crypto in", tr.in.crypto), get("crypto out", tr.out.crypto)
				if wireIn != float64(s.c.in.Load()) || wireOut != float64(s.c.out.Load()) {
					t.Errorf("%s: wire bytes in %v out %v, the socket carried %d and %d", s.link, wireIn, wireOut, s.c.in.Load(), s.c.out.Load())
				}
				if payIn != float64(s.payIn) || payOut != float64(s.payOut) {
					t.Errorf("%s: payload bytes in %v out %v, want %d and %d", s.link, payIn, payOut, s.payIn, s.payOut)
				}
				if c.version == 0 {
					if wireIn != payIn || wireOut != payOut || cryptoIn != 0 || cryptoOut != 0 {
						t.Errorf("%s plaintext: wire %v/%v, payload %v/%v, crypto %v/%v: want wire = payload, no crypto",
							s.link, wireIn, wireOut, payIn, payOut, cryptoIn, cryptoOut)
					}
					continue
				}
				if wireOut <= payOut || wireIn <= payIn {
					t.Errorf("%s: wire %v/%v not above payload %v/%v: TLS records have overhead", s.link, wireIn, wireOut, payIn, payOut)
				}
				if s.bulkWrite && cryptoOut <= 0 {
					t.Errorf("%s: no crypto time for encrypting %d bytes", s.link, sent)
				}
				if s.waitedIn && cryptoIn >= (idle/2).Seconds() {
					t.Errorf("%s: crypto time in %vs: the %s waiting for the peer was counted", s.link, cryptoIn, idle)
				}
			}
		})
	}
}
