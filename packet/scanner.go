package packet

// Scanner follows the packet headers of a byte stream that passes by in
// pieces of any size, keeping no payload, and refuses a message longer
// than its bound: it guards readers that join packets without a bound.
type Scanner struct {
	max   int
	split int // MaxPayload; smaller in tests
	hdr   [HeaderSize]byte
	hdrN  int // bytes of the current header seen
	left  int // payload bytes of the current packet still to come
	msg   int // payload bytes of the current message so far
	err   error
}

// NewScanner returns a Scanner that refuses messages longer than max bytes.
func NewScanner(max int) *Scanner {
	return &Scanner{max: max, split: MaxPayload}
}

// Scan follows b, the next bytes of the stream. It returns len(b), or,
// with a *TooLargeError, the bytes up to the end of the header that made
// a message longer than the bound; after that it fails every call.
func (s *Scanner) Scan(b []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	for i := 0; i < len(b); {
		if s.left > 0 {
			step := min(len(b)-i, s.left)
			s.left -= step
			i += step
			continue
		}
		s.hdr[s.hdrN] = b[i]
		s.hdrN++
		i++
		if s.hdrN < HeaderSize {
			continue
		}
		s.hdrN = 0
		n := ParseHeader(s.hdr[:]).Len
		s.left = n
		s.msg += n
		if s.msg > s.max {
			s.err = &TooLargeError{Max: s.max}
			return i, s.err
		}
		if n < s.split {
			s.msg = 0 // the last packet of this message
		}
	}
	return len(b), nil
}
