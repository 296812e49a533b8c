package replica

import (
	"bytes"
	"io"
	"net"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/replink/replink/tlsutil"
)

// greeting is a MariaDB protocol-10 handshake packet offering SSL.
func greeting() []byte {
	g := []byte{10}
	g = append(g, "5.5.5-10.11.0-MariaDB\x00"...)
	g = append(g, 42, 0, 0, 0, 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 0, 0xff, 0xff, 33, 2, 0, 0xff, 0xc1, 21)
	g = append(g, make([]byte, 10)...)
	g = append(g, "ijklmnopqrst\x00mysql_native_password\x00"...)
	return append([]byte{byte(len(g)), 0, 0, 0}, g...)
}

func TestReadGreeting(t *testing.T) {
	for _, c := range []struct {
		name   string
		stream []byte
		want   string // error, or "" for the greeting
	}{
		{"greeting", greeting(), ""},
		{"too large", []byte{0x01, 0x00, 0x01, 0}, "server greeting of 65537 bytes: not a MySQL server"},
		{"torn header", []byte{0x10, 0}, "reading server greeting: unexpected EOF"},
		{"torn payload", greeting()[:20], "reading server greeting: unexpected EOF"},
		{"error packet", append([]byte{11, 0, 0, 0, 0xff, 0x6a, 0x04}, "#HY000no"...), "server answered with an error packet: no"},
	} {
		t.Run(c.name, func(t *testing.T) {
			g, err := ReadGreeting(readerConn{r: iotest.OneByteReader(bytes.NewReader(c.stream))})
			if c.want != "" {
				if err == nil || err.Error() != c.want {
					t.Fatalf("got %v, want %q", err, c.want)
				}
				return
			}
			if err != nil || g.Version != "5.5.5-10.11.0-MariaDB" || g.ConnectionID != 42 || !g.SSL {
				t.Fatalf("got %+v, %v", g, err)
			}
		})
	}
}

// TestGreetingSniffer: the greeting is recorded as the bytes pass by, in
// pieces of any size, and the reader gets every byte unchanged.
func TestGreetingSniffer(t *testing.T) {
	stream := append(greeting(), "what follows"...)
	m := tlsutil.NewMetrics(prometheus.NewRegistry())
	for _, piece := range []int{1, 3, len(stream)} {
		client, server := net.Pipe()
		go func() {
			for off := 0; off < len(stream); off += piece {
				_, _ = server.Write(stream[off:min(off+piece, len(stream))])
			}
			server.Close()
		}()
		a := &Attempt{}
		g := &greetingSniffer{WireConn: tlsutil.NewWireConn(client, "master", m, false), a: a}
		got, err := io.ReadAll(g)
		if err != nil || !bytes.Equal(got, stream) {
			t.Fatalf("pieces of %d: read %q, %v", piece, got, err)
		}
		if a.Greeting == nil || a.Greeting.ConnectionID != 42 {
			t.Fatalf("pieces of %d: greeting %+v", piece, a.Greeting)
		}
	}
	// A first packet that claims more than a greeting is not buffered.
	client, server := net.Pipe()
	go func() {
		_, _ = server.Write(append([]byte{0xff, 0xff, 0xff, 0}, strings.Repeat("x", 100)...))
		server.Close()
	}()
	g := &greetingSniffer{WireConn: tlsutil.NewWireConn(client, "master", m, false), a: &Attempt{}}
	if _, err := io.ReadAll(g); err != nil || !g.done || g.buf != nil {
		t.Fatalf("a 16 MB first packet: done %v, %d bytes kept, %v", g.done, len(g.buf), err)
	}
}
