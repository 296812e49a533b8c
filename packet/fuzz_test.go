package packet

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
)

// chunkReader hands out its bytes in reads of the sizes given, in turn.
type chunkReader struct {
	b     []byte
	sizes []byte
	i     int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	n := len(p)
	if len(c.sizes) > 0 {
		n = min(n, int(c.sizes[c.i%len(c.sizes)])+1)
		c.i++
	}
	n = copy(p, c.b[:min(n, len(c.b))])
	c.b = c.b[n:]
	return n, nil
}

// FuzzRoundTrip cuts data into messages (lengths from cuts), writes each
// as parts in packets of at most split bytes, and checks that the stream
// is the framing written out by hand, that a Reader fed in reads of
// arbitrary sizes returns the messages, refuses the first longer than
// its bound and tells a stream cut inside a message from one cut between
// messages, and that a Scanner refuses the same message.
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte("hello, world"), []byte{3, 0, 5}, uint8(4), []byte{0, 6}, uint8(255), uint16(0), uint16(7))
	f.Add(bytes.Repeat([]byte{'x'}, 300), []byte{64, 128, 0, 200}, uint8(63), []byte{100}, uint8(1), uint16(100), uint16(400))
	f.Add([]byte{}, []byte{}, uint8(0), []byte{}, uint8(0), uint16(0), uint16(0))
	f.Fuzz(func(t *testing.T, data, cuts []byte, split uint8, reads []byte, seq0 uint8, bound, cut uint16) {
		sp := int(split%64) + 1
		var msgs [][]byte
		for _, c := range cuts {
			n := min(int(c), len(data))
			msgs, data = append(msgs, data[:n]), data[n:]
		}
		msgs = append(msgs, data)
		max := int(bound)
		if max == 0 {
			max = 1 << 30
		}

		var out bytes.Buffer
		w := bufio.NewWriterSize(&out, 16)
		seq := seq0
		for i, m := range msgs {
			k := i % (len(m) + 1)
			if err := writeMessage(w, &seq, sp, [][]byte{m[:k], nil, m[k:]}); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		stream := out.Bytes()
		var want []byte
		var ends []int // where each message ends in the stream
		wantSeq := seq0
		for _, m := range msgs {
			var b []byte
			b, wantSeq = frame(wantSeq, sp, m)
			want = append(want, b...)
			ends = append(ends, len(want))
		}
		if !bytes.Equal(stream, want) || seq != wantSeq {
			t.Fatalf("encoded %x (sequence then %d), want %x (%d)", stream, seq, want, wantSeq)
		}

		bufSize := 16 + int(split/64)*16
		newReader := func(b []byte, max int) *Reader {
			r := NewReader(&chunkReader{b: b, sizes: reads}, bufSize, max)
			r.split = sp
			r.SetSequence(seq0)
			return r
		}
		r := newReader(stream, max)
		refused := -1 // the first message longer than the bound
		for i, m := range msgs {
			got, err := r.Next()
			if len(m) > max {
				var tl *TooLargeError
				if !errors.As(err, &tl) || tl.Max != max {
					t.Fatalf("message %d of %d bytes, bound %d: %v", i, len(m), max, err)
				}
				refused = i
				break
			}
			if err != nil || !bytes.Equal(got, m) {
				t.Fatalf("message %d: %q, %v; want %q", i, got, err, m)
			}
		}
		if refused < 0 {
			if _, err := r.Next(); err != io.EOF {
				t.Fatalf("after the last message: %v, want io.EOF", err)
			}
		}

		s := NewScanner(max)
		s.split = sp
		scanned, err := 0, error(nil)
		for c := (&chunkReader{b: stream, sizes: reads}); err == nil; {
			var p [256]byte
			n, rerr := c.Read(p[:])
			if rerr != nil {
				break
			}
			var k int
			k, err = s.Scan(p[:n])
			scanned += k
		}
		if refused < 0 {
			if err != nil || scanned != len(stream) {
				t.Fatalf("scanner: %d of %d bytes, %v", scanned, len(stream), err)
			}
		} else {
			start := 0
			if refused > 0 {
				start = ends[refused-1]
			}
			if err == nil || scanned < start+HeaderSize || scanned > ends[refused] {
				t.Fatalf("scanner stopped at %d, %v; message %d is at %d..%d", scanned, err, refused, start, ends[refused])
			}
		}

		at := int(cut) % (len(stream) + 1)
		r = newReader(stream[:at], 1<<30)
		for i, m := range msgs {
			got, err := r.Next()
			if ends[i] <= at {
				if err != nil || !bytes.Equal(got, m) {
					t.Fatalf("cut at %d: message %d: %q, %v; want %q", at, i, got, err, m)
				}
				continue
			}
			wantErr := io.ErrUnexpectedEOF
			if i == 0 && at == 0 || i > 0 && ends[i-1] == at {
				wantErr = io.EOF
			}
			if err != wantErr {
				t.Fatalf("cut at %d: message %d: %v, want %v", at, i, err, wantErr)
			}
			break
		}
	})
}
