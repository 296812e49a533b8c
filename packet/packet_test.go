package packet

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
)

// frame encodes msg as packets of at most split bytes from sequence seq,
// written out apart from the code under test.
func frame(seq uint8, split int, msg []byte) ([]byte, uint8) {
	var out []byte
	for {
		n := min(len(msg), split)
		out = append(out, byte(n), byte(n>>8), byte(n>>16), seq)
		out = append(out, msg[:n]...)
		seq++
		msg = msg[n:]
		if n < split {
			return out, seq
		}
	}
}

func TestParseHeader(t *testing.T) {
	for _, c := range []struct {
		in   []byte
		want Header
	}{
		{[]byte{0, 0, 0, 0}, Header{0, 0}},
		{[]byte{1, 0, 0, 7}, Header{1, 7}},
		{[]byte{0x56, 0x34, 0x12, 0xff, 'x'}, Header{0x123456, 255}},
		{[]byte{0xff, 0xff, 0xff, 1}, Header{MaxPayload, 1}},
	} {
		if got := ParseHeader(c.in); got != c.want {
			t.Errorf("ParseHeader(% x) = %+v, want %+v", c.in, got, c.want)
		}
	}
}

func TestWriteMessage(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 17<<20/16) // 17 MB
	for _, c := range []struct {
		name    string
		parts   [][]byte
		seq     uint8
		packets int
	}{
		{"empty", nil, 0, 1},
		{"empty parts", [][]byte{{}, {}}, 3, 1},
		{"event", [][]byte{{0x00}, []byte("an event")}, 1, 1},
		{"sequence wraps", [][]byte{{0x00}, big}, 255, 2},
		{"exactly 0xffffff", [][]byte{{0x00}, big[:MaxPayload-1]}, 1, 2},
		{"0xfffffe", [][]byte{big[:MaxPayload-1]}, 1, 1},
		{"17 MB", [][]byte{{0x00}, big}, 1, 2},
		{"twice 0xffffff", [][]byte{big[:MaxPayload], big[:MaxPayload]}, 0, 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			w := bufio.NewWriterSize(&out, 64<<10)
			seq := c.seq
			if err := WriteMessage(w, &seq, c.parts...); err != nil {
				t.Fatal(err)
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			want, wantSeq := frame(c.seq, MaxPayload, bytes.Join(c.parts, nil))
			if !bytes.Equal(out.Bytes(), want) {
				t.Fatalf("%d bytes written, want %d (or the bytes differ)", out.Len(), len(want))
			}
			if seq != wantSeq || seq != c.seq+uint8(c.packets) {
				t.Fatalf("sequence %d after the message, want %d", seq, c.seq+uint8(c.packets))
			}
		})
	}
}

func TestWriteMessageExactlyMaxPayloadEndsWithEmptyPacket(t *testing.T) {
	var out bytes.Buffer
	w := bufio.NewWriter(&out)
	seq := uint8(1)
	if err := WriteMessage(w, &seq, []byte{0x00}, make([]byte, MaxPayload-1)); err != nil {
		t.Fatal(err)
	}
	_ = w.Flush()
	b := out.Bytes()
	if len(b) != 2*HeaderSize+MaxPayload {
		t.Fatalf("%d bytes", len(b))
	}
	if h := ParseHeader(b); h != (Header{MaxPayload, 1}) {
		t.Fatalf("first header %+v", h)
	}
	if h := ParseHeader(b[HeaderSize+MaxPayload:]); h != (Header{0, 2}) {
		t.Fatalf("second header %+v, want an empty packet numbered 2", h)
	}
}

// TestWriteMessageErrors: a failing writer's error comes back.
func TestWriteMessageErrors(t *testing.T) {
	w := bufio.NewWriterSize(failWriter{}, 16)
	seq := uint8(0)
	if err := WriteMessage(w, &seq, make([]byte, 100)); !errors.Is(err, errFail) {
		t.Fatalf("got %v", err)
	}
}

var errFail = errors.New("write failed")

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errFail }

func TestReader(t *testing.T) {
	const bufSize = 1 << 10
	small := bytes.Repeat([]byte{'a'}, 100)
	fits := bytes.Repeat([]byte{'b'}, bufSize)
	over := bytes.Repeat([]byte{'c'}, bufSize+1)
	huge := bytes.Repeat([]byte{'d'}, MaxPayload+5)
	exact := bytes.Repeat([]byte{'e'}, MaxPayload)
	msgs := [][]byte{small, {}, fits, over, huge, exact, small}
	var stream []byte
	seq := uint8(0)
	for _, m := range msgs {
		var b []byte
		b, seq = frame(seq, MaxPayload, m)
		stream = append(stream, b...)
	}
	r := NewReader(bytes.NewReader(stream), bufSize, 2*MaxPayload)
	for i, want := range msgs {
		got, err := r.Next()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("message %d: %d bytes, want %d", i, len(got), len(want))
		}
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("at the end: %v, want io.EOF", err)
	}
}

func TestReaderRefuses(t *testing.T) {
	chain, _ := frame(0, MaxPayload, make([]byte, MaxPayload+10))
	for _, c := range []struct {
		name   string
		stream []byte
		max    int
		want   error
	}{
		{"out of order", []byte{1, 0, 0, 5, 'x'}, 100, &SequenceError{Got: 5, Want: 0}},
		{"out of order in a chain", append(chain[:HeaderSize+MaxPayload:HeaderSize+MaxPayload], 1, 0, 0, 9, 'x'), 1 << 30, &SequenceError{Got: 9, Want: 1}},
		{"too large in place", []byte{5, 0, 0, 0, 1, 2, 3, 4, 5}, 4, &TooLargeError{Max: 4}},
		{"too large, bigger than the buffer", []byte{0, 4, 0, 0}, 1000, &TooLargeError{Max: 1000}},
		{"too large chain", chain, MaxPayload + 9, &TooLargeError{Max: MaxPayload + 9}},
		{"empty", nil, 100, io.EOF},
		{"torn header", []byte{1, 0}, 100, io.ErrUnexpectedEOF},
		{"torn payload", []byte{10, 0, 0, 0, 'x'}, 100, io.ErrUnexpectedEOF},
		{"torn big payload", []byte{0, 8, 0, 0, 'x'}, 1 << 20, io.ErrUnexpectedEOF},
		{"chain ends after a full packet", chain[:HeaderSize+MaxPayload], 1 << 30, io.ErrUnexpectedEOF},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := NewReader(bytes.NewReader(c.stream), 1<<10, c.max)
			_, err := r.Next()
			if err == nil || err.Error() != c.want.Error() {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

// TestReaderClaimCostsNothing: a header claiming 16 MB followed by a few
// bytes does not make the Reader allocate 16 MB.
func TestReaderClaimCostsNothing(t *testing.T) {
	stream := append([]byte{0xff, 0xff, 0xff, 0}, make([]byte, 1000)...)
	r := NewReader(bytes.NewReader(stream), 1<<10, 1<<30)
	if _, err := r.Next(); err != io.ErrUnexpectedEOF {
		t.Fatalf("got %v", err)
	}
	if cap(r.big) > 2<<20 {
		t.Fatalf("a 16 MB claim backed by 1000 bytes took %d bytes", cap(r.big))
	}
}

// TestReaderInPlace: a message that fits the buffer is handed out from
// it, without allocating.
func TestReaderInPlace(t *testing.T) {
	var stream []byte
	seq := uint8(0)
	for range 1000 {
		var b []byte
		b, seq = frame(seq, MaxPayload, bytes.Repeat([]byte{'z'}, 200))
		stream = append(stream, b...)
	}
	r := NewReader(bytes.NewReader(stream), 4<<10, 1<<20)
	allocs := testing.AllocsPerRun(500, func() {
		if m, err := r.Next(); err != nil || len(m) != 200 {
			t.Fatalf("%d bytes, %v", len(m), err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per message", allocs)
	}
}

func TestReaderSetSequence(t *testing.T) {
	a, _ := frame(1, MaxPayload, []byte("x"))
	b, _ := frame(1, MaxPayload, []byte("y"))
	r := NewReader(bytes.NewReader(append(a, b...)), 1<<10, 100)
	r.SetSequence(1)
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	r.SetSequence(1) // the writer started over
	if m, err := r.Next(); err != nil || string(m) != "y" {
		t.Fatalf("%q, %v", m, err)
	}
}

func TestScanner(t *testing.T) {
	var stream []byte
	for i, n := range []int{100, 0, MaxPayload, 5, MaxPayload, MaxPayload, 0} {
		b, _ := frame(uint8(i), MaxPayload+1, make([]byte, n)) // one packet each
		stream = append(stream, b...)
	}
	// Messages: 100, 0, MaxPayload+5, 2*MaxPayload+0.
	for _, c := range []struct {
		max  int
		want int // bytes Scan takes before refusing; len(stream) for none
	}{
		{2 * MaxPayload, len(stream)},
		{2*MaxPayload - 1, 6*HeaderSize + 105 + 2*MaxPayload},
		{MaxPayload + 5, 6*HeaderSize + 105 + 2*MaxPayload},
		{MaxPayload + 4, 4*HeaderSize + 100 + MaxPayload},
		{99, HeaderSize},
	} {
		for _, piece := range []int{1, 3, 4096, len(stream)} {
			s := NewScanner(c.max)
			n := 0
			var err error
			for off := 0; off < len(stream) && err == nil; off += piece {
				var k int
				k, err = s.Scan(stream[off:min(off+piece, len(stream))])
				n += k
			}
			if n != c.want || (err != nil) != (c.want < len(stream)) {
				t.Errorf("max %d, pieces of %d: took %d bytes, %v; want %d", c.max, piece, n, err, c.want)
			}
			if err != nil {
				if _, again := s.Scan([]byte{0}); again == nil {
					t.Errorf("max %d: Scan goes on after refusing", c.max)
				}
			}
		}
	}
}
