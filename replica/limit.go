package replica

import (
	"fmt"
	"net"

	"github.com/replink/replink/binlog"
)

// packetLimit follows MySQL packet headers in the byte stream from the
// master (above TLS) and fails a read once a chain of 16 MB packets would
// make one message larger than the largest event. go-mysql joins chained
// packets without a bound; a hostile master could otherwise make replink
// allocate without limit.
type packetLimit struct {
	net.Conn
	max     int64
	hdr     [4]byte
	hdrN    int   // header bytes seen of the current header
	left    int64 // payload bytes left in the current packet
	chained int64 // payload bytes of the message so far
}

func newPacketLimit(c net.Conn) *packetLimit {
	return &packetLimit{Conn: c, max: binlog.MaxEventSize + 1<<20}
}

func (p *packetLimit) Read(b []byte) (int, error) {
	n, err := p.Conn.Read(b)
	for i := 0; i < n; {
		if p.left > 0 {
			step := min(int64(n-i), p.left)
			p.left -= step
			i += int(step)
			continue
		}
		p.hdr[p.hdrN] = b[i]
		p.hdrN++
		i++
		if p.hdrN < 4 {
			continue
		}
		p.hdrN = 0
		size := int64(p.hdr[0]) | int64(p.hdr[1])<<8 | int64(p.hdr[2])<<16
		p.left = size
		p.chained += size
		if p.chained > p.max {
			return i, fmt.Errorf("master sent a message of more than %d bytes: refusing it", p.max)
		}
		if size < 0xffffff {
			p.chained = 0 // the last packet of this message
		}
	}
	return n, err
}
