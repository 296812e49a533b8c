package replica

import (
	"bytes"
	"io"
	"net"
	"testing"
)

type readerConn struct {
	net.Conn
	r io.Reader
}

func (c readerConn) Read(b []byte) (int, error) { return c.r.Read(b) }

func rawPacket(size int, seq byte) []byte {
	return append([]byte{byte(size), byte(size >> 8), byte(size >> 16), seq}, make([]byte, size)...)
}

func TestPacketLimit(t *testing.T) {
	var stream bytes.Buffer
	stream.Write(rawPacket(100, 0))
	stream.Write(rawPacket(0xffffff, 1)) // a 16 MB chain...
	stream.Write(rawPacket(5, 2))        // ...that ends
	p := newPacketLimit(readerConn{r: &stream}, 0xffffff+10)
	if n, err := io.Copy(io.Discard, p); err != nil || n != int64(104+0xffffff+4+9) {
		t.Fatalf("a chain within the limit: %d bytes, %v", n, err)
	}
	stream.Reset()
	for i := 0; i < 3; i++ {
		stream.Write(rawPacket(0xffffff, byte(i)))
	}
	p = newPacketLimit(readerConn{r: &stream}, 2*0xffffff)
	_, err := io.Copy(io.Discard, p)
	if want := "master sent a message of more than 33554430 bytes: refusing it"; err == nil || err.Error() != want {
		t.Fatalf("a chain past the limit: %v", err)
	}
}
