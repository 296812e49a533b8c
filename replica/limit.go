package replica

import (
	"fmt"
	"net"

	"github.com/replink/replink/packet"
)

// packetLimit follows MySQL packet headers in the byte stream from the
// master (above TLS) and fails a read once a chain of 16 MB packets would
// make one message longer than max. go-mysql joins chained packets
// without a bound; a hostile master could otherwise make replink allocate
// without limit.
type packetLimit struct {
	net.Conn
	s *packet.Scanner
}

func newPacketLimit(c net.Conn, max int) *packetLimit {
	return &packetLimit{Conn: c, s: packet.NewScanner(max)}
}

func (p *packetLimit) Read(b []byte) (int, error) {
	n, err := p.Conn.Read(b)
	if k, serr := p.s.Scan(b[:n]); serr != nil {
		return k, fmt.Errorf("master sent a %w", serr)
	}
	return n, err
}
