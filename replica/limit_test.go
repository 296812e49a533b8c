package replica

import (
	"bytes"
	"io"
	"net"
	"strings"
	"testing"
)

type readerConn struct {
	net.Conn
	r io.Reader
}

func (c readerConn) Read(b []byte) (int, error) { return c.r.Read(b) }

func packet(size int, seq byte) []byte {
	return append([]byte{byte(size), byte(size >> 8), byte(size >> 16), seq}, make([]byte, size)...)
}

func TestPacketLimit(t *testing.T) {
	var stream bytes.Buffer
	stream.Write(packet(100, 0))
	stream.Write(packet(0xffffff, 1)) // a 16 MB chain...
	stream.Write(packet(5, 2))        // ...that ends
	p := newPacketLimit(readerConn{r: &stream})
	p.max = 0xffffff + 10
	if n, err := io.Copy(io.Discard, p); err != nil || n != int64(104+0xffffff+4+9) {
		t.Fatalf("a chain within the limit: %d bytes, %v", n, err)
	}
	stream.Reset()
	for i := 0; i < 3; i++ {
		stream.Write(packet(0xffffff, byte(i)))
	}
	p = newPacketLimit(readerConn{r: &stream})
	p.max = 2 * 0xffffff
	_, err := io.Copy(io.Discard, p)
	if err == nil || !strings.Contains(err.Error(), "refusing") {
		t.Fatalf("a chain past the limit: %v", err)
	}
}
