package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkRecordPath streams 16 KiB writes from a server to a client
// over loopback TCP: plaintext, TLS 1.3 with each of the suites a master
// negotiates, and TLS with replink's wire/payload meter on both ends. The
// ratio tls/tcp is what encryption costs one reader; metered/tls is what
// the metrics cost.
func BenchmarkRecordPath(b *testing.B) {
	now := time.Now()
	ca, err := NewCA(pkix.Name{CommonName: "bench CA"}, now.Add(-time.Hour), now.Add(time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	srv, err := ca.Issue(CertSpec{Subject: pkix.Name{CommonName: "127.0.0.1"}, Hosts: []string{"127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), Server: true})
	if err != nil {
		b.Fatal(err)
	}
	pair, err := tls.X509KeyPair(srv.CertPEM, srv.KeyPEM)
	if err != nil {
		b.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)

	cases := []struct {
		name    string
		tls     bool
		metered bool
		suite   uint16 // TLS 1.2 suite to force; 0 for TLS 1.3
	}{
		{"tcp", false, false, 0},
		{"tls13", true, false, 0},
		{"tls13-metered", true, true, 0},
		{"tls12-aes256gcm", true, false, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384},
		{"tls12-chacha20", true, false, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			m := NewMetrics(prometheus.NewRegistry())
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			go func() {
				raw, err := ln.Accept()
				if err != nil {
					return
				}
				var conn net.Conn = raw
				var wire *WireConn
				if c.metered {
					wire = NewServerWireConn(raw, "replica", m)
					conn = wire
				}
				if c.tls {
					conn = tls.Server(conn, &tls.Config{Certificates: []tls.Certificate{pair}})
					if wire != nil {
						conn = wire.Payload(conn)
					}
				}
				defer conn.Close()
				chunk := make([]byte, 16<<10)
				for {
					if _, err := conn.Write(chunk); err != nil {
						return
					}
				}
			}()
			raw, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			var conn net.Conn = raw
			var wire *WireConn
			if c.metered {
				wire = NewWireConn(raw, "master", m, true)
				conn = wire
			}
			if c.tls {
				cfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
				if c.suite != 0 {
					cfg.MaxVersion, cfg.CipherSuites = tls.VersionTLS12, []uint16{c.suite}
				}
				conn = tls.Client(conn, cfg)
				if wire != nil {
					conn = wire.Payload(conn)
				}
			}
			defer conn.Close()
			buf := make([]byte, 16<<10)
			if _, err := io.ReadFull(conn, buf); err != nil { // the handshake, outside the timing
				b.Fatal(err)
			}
			b.SetBytes(int64(len(buf)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := io.ReadFull(conn, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
