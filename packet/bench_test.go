package packet

import (
	"bufio"
	"bytes"
	"io"
	"testing"
)

// loopReader repeats its bytes forever.
type loopReader struct {
	b   []byte
	off int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := copy(p, l.b[l.off:])
	l.off = (l.off + n) % len(l.b)
	return n, nil
}

// BenchmarkReader reads a stream of 8 KiB messages with the dump's
// 256 KiB buffer: each is handed out in place, with no allocation.
func BenchmarkReader(b *testing.B) {
	const size = 8 << 10
	var stream []byte
	for i := range 256 { // a whole round of sequence numbers, so the stream loops
		p, _ := frame(uint8(i), MaxPayload, bytes.Repeat([]byte{byte(i)}, size))
		stream = append(stream, p...)
	}
	r := NewReader(&loopReader{b: stream}, 256<<10, 1<<30)
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		if m, err := r.Next(); err != nil || len(m) != size {
			b.Fatalf("%d bytes, %v", len(m), err)
		}
	}
}

// eventPrefix is the byte ahead of each event of a binlog dump; as a
// package variable it costs no allocation per message.
var eventPrefix = []byte{0x00}

// BenchmarkWriteMessage writes 8 KiB events, each behind a 0x00 byte, as
// a relay sends them to a slave.
func BenchmarkWriteMessage(b *testing.B) {
	ev := bytes.Repeat([]byte{'e'}, 8<<10)
	w := bufio.NewWriterSize(io.Discard, 64<<10)
	var seq uint8
	b.SetBytes(int64(len(ev)) + 1)
	b.ReportAllocs()
	for b.Loop() {
		if err := WriteMessage(w, &seq, eventPrefix, ev); err != nil {
			b.Fatal(err)
		}
	}
}
