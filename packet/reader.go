package packet

import (
	"bufio"
	"errors"
	"io"
	"slices"
)

// Reader reads messages from a stream of packets, checking their sequence
// numbers. A message that fits its read buffer is returned in place, with
// no copy and no allocation; a larger one is gathered in a buffer the
// Reader reuses, grown as the bytes arrive, so a header that merely claims
// 16 MB costs no memory.
type Reader struct {
	br      *bufio.Reader
	max     int
	split   int // MaxPayload; smaller in tests
	seq     uint8
	pending int    // bytes of the last message still in br
	big     []byte // reused for messages that do not fit br
}

// NewReader returns a Reader of r with a read buffer of size bytes that
// refuses messages longer than max bytes. It expects sequence number 0
// first.
func NewReader(r io.Reader, size, max int) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, size), max: max, split: MaxPayload}
}

// SetSequence sets the sequence number the next packet must carry.
func (r *Reader) SetSequence(seq uint8) { r.seq = seq }

// Sequence is the number the next packet must carry: after a request, the
// number its answer starts with.
func (r *Reader) Sequence() uint8 { return r.seq }

// ReadOne reads one message of at most max bytes from r without reading
// ahead: the bytes after it stay in r, as they must before a switch to
// TLS, whose ClientHello follows the SSL request at once. The first packet
// must carry seq; the returned sequence is the number that follows.
func ReadOne(r io.Reader, seq uint8, max int) ([]byte, uint8, error) {
	var msg []byte
	for {
		var h [HeaderSize]byte
		if _, err := io.ReadFull(r, h[:]); err != nil {
			if msg != nil {
				err = unexpected(err)
			}
			return nil, seq, err
		}
		hd := ParseHeader(h[:])
		if hd.Seq != seq {
			return nil, seq, &SequenceError{Got: hd.Seq, Want: seq}
		}
		seq++
		if len(msg)+hd.Len > max {
			return nil, seq, &TooLargeError{Max: max}
		}
		var err error
		if msg, err = AppendRead(msg, r, hd.Len); err != nil {
			return nil, seq, err
		}
		if hd.Len < MaxPayload {
			if msg == nil {
				msg = []byte{}
			}
			return msg, seq, nil
		}
	}
}

// Next returns the payload of the next message, valid until the
// following call. It returns io.EOF when the stream ends before a message,
// io.ErrUnexpectedEOF when it ends inside one, a *SequenceError for a
// packet out of order and a *TooLargeError for a message longer than the
// bound, before reading its excess.
func (r *Reader) Next() ([]byte, error) {
	if r.pending > 0 {
		if _, err := r.br.Discard(r.pending); err != nil {
			return nil, err
		}
		r.pending = 0
	}
	n, err := r.header(true)
	if err != nil {
		return nil, err
	}
	if n < r.split && n <= r.br.Size() {
		if n > r.max {
			return nil, &TooLargeError{Max: r.max}
		}
		p, err := r.br.Peek(n)
		if err != nil {
			return nil, unexpected(err)
		}
		r.pending = n
		return p, nil
	}
	r.big = r.big[:0]
	for {
		if len(r.big)+n > r.max {
			return nil, &TooLargeError{Max: r.max}
		}
		if r.big, err = AppendRead(r.big, r.br, n); err != nil {
			return nil, err
		}
		if n < r.split {
			return r.big, nil
		}
		if n, err = r.header(false); err != nil {
			return nil, err
		}
	}
}

// header reads a packet header and returns the payload length; first says
// whether it starts a message.
func (r *Reader) header(first bool) (int, error) {
	b, err := r.br.Peek(HeaderSize)
	if err != nil {
		if first && len(b) == 0 {
			return 0, err
		}
		return 0, unexpected(err)
	}
	h := ParseHeader(b)
	_, _ = r.br.Discard(HeaderSize) // buffered: cannot fail
	if h.Seq != r.seq {
		return 0, &SequenceError{Got: h.Seq, Want: r.seq}
	}
	r.seq++
	return h.Len, nil
}

// AppendRead appends n bytes read from r to dst, growing dst as the
// bytes arrive (asking for at most 1 MiB more at a time) rather than by n
// at once: a size that a peer or a torn file merely claims costs memory
// only once the bytes exist. Large reads go from r straight into dst. A stream that ends
// early is io.ErrUnexpectedEOF.
func AppendRead(dst []byte, r io.Reader, n int) ([]byte, error) {
	for n > 0 {
		if len(dst) == cap(dst) {
			dst = slices.Grow(dst, min(n, 1<<20))
		}
		k := min(n, cap(dst)-len(dst))
		got, err := io.ReadFull(r, dst[len(dst):len(dst)+k])
		dst = dst[:len(dst)+got]
		if err != nil {
			return dst, unexpected(err)
		}
		n -= k
	}
	return dst, nil
}

// unexpected is err for a stream that ended inside a message.
func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
