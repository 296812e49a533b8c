package replica

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/replink/replink/packet"
)

// frame splits payload into MySQL packets from sequence seq, as a master
// does for messages of 16 MB and more.
func frame(seq byte, payload []byte) ([]byte, byte) {
	var out []byte
	for {
		n := min(len(payload), packet.MaxPayload)
		out = append(out, byte(n), byte(n>>8), byte(n>>16), seq)
		out = append(out, payload[:n]...)
		seq++
		payload = payload[n:]
		if n < packet.MaxPayload {
			return out, seq
		}
	}
}

func TestDumpStreamFraming(t *testing.T) {
	small := append([]byte{0x00}, bytes.Repeat([]byte{'a'}, 100)...)
	big := append([]byte{0x00}, bytes.Repeat([]byte{'b'}, readBufSize+10)...)
	huge := append([]byte{0x00}, bytes.Repeat([]byte{'c'}, packet.MaxPayload+5)...)  // two packets
	exact := append([]byte{0x00}, bytes.Repeat([]byte{'d'}, packet.MaxPayload-1)...) // one full packet + an empty one
	semi := append([]byte{0x00, semiSyncMagic, 1}, bytes.Repeat([]byte{'e'}, 50)...)
	errPkt := append([]byte{0xff, 0xd4, 0x04}, "#HY000Could not find first log file name in binary log index file"...)

	var stream []byte
	seq := byte(1)
	for _, p := range [][]byte{small, big, huge, exact, semi, errPkt} {
		var b []byte
		b, seq = frame(seq, p)
		stream = append(stream, b...)
	}
	d := newDumpStream(nil, bytes.NewReader(stream), true)
	for i, want := range [][]byte{small[1:], big[1:], huge[1:], exact[1:], semi[3:]} {
		ev, ack, err := d.next()
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if !bytes.Equal(ev, want) {
			t.Fatalf("event %d: %d bytes, want %d", i, len(ev), len(want))
		}
		if ack != (i == 4) {
			t.Fatalf("event %d: ack %v", i, ack)
		}
	}
	_, _, err := d.next()
	var me *mysql.MyError
	if !errors.As(err, &me) || me.Code != 1236 || me.State != "HY000" || !strings.Contains(me.Message, "first log file") {
		t.Fatalf("ERR packet: %v", err)
	}
}

func TestDumpStreamRefuses(t *testing.T) {
	cases := []struct {
		name   string
		stream []byte
		want   string
	}{
		{"out of order", []byte{1, 0, 0, 5, 0x00}, "binlog stream packets out of order (sequence 5, expected 1)"},
		{"EOF packet", []byte{1, 0, 0, 1, 0xfe}, "ended the binlog dump"},
		{"unknown header", []byte{1, 0, 0, 1, 0x42}, "unexpected packet"},
		{"truncated", []byte{10, 0, 0, 1, 0x00, 1}, "EOF"},
		{"empty", []byte{0, 0, 0, 1}, "empty packet"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := newDumpStream(nil, bytes.NewReader(c.stream), false)
			if _, _, err := d.next(); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want %q", err, c.want)
			}
		})
	}
}

// FuzzDumpStream feeds arbitrary bytes as a master's dump stream: the
// reader must return events or an error, never panic or run away.
func FuzzDumpStream(f *testing.F) {
	ev, _ := frame(1, append([]byte{0x00}, bytes.Repeat([]byte{'a'}, 40)...))
	semi, _ := frame(2, []byte{0x00, semiSyncMagic, 1, 'x'})
	f.Add(append(ev, semi...))
	f.Add([]byte{0xff, 0xff, 0xff, 1, 0x00})
	f.Add([]byte{5, 0, 0, 1, 0xff, 0x10, 0x04, '#', 'H'})
	f.Fuzz(func(t *testing.T, data []byte) {
		d := newDumpStream(nil, bytes.NewReader(data), true)
		for i := 0; i < 1000; i++ {
			ev, _, err := d.next()
			if err != nil {
				return
			}
			if len(ev) > len(data) {
				t.Fatalf("event of %d bytes from %d bytes of input", len(ev), len(data))
			}
		}
	})
}

// TestDumpStreamEnd: the master closing the connection, between messages
// or inside one, is the master going away, not a stall to clean up after.
func TestDumpStreamEnd(t *testing.T) {
	ev, _ := frame(1, append([]byte{0x00}, "event"...))
	for _, c := range []struct {
		name   string
		stream []byte
		want   error
	}{
		{"between messages", ev, io.EOF},
		{"inside a header", append(ev[:len(ev):len(ev)], 9, 0), io.ErrUnexpectedEOF},
		{"inside a payload", append(ev[:len(ev):len(ev)], 9, 0, 0, 2, 0x00), io.ErrUnexpectedEOF},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := newDumpStream(nil, bytes.NewReader(c.stream), false)
			if ev, _, err := d.next(); err != nil || string(ev) != "event" {
				t.Fatalf("first event: %q, %v", ev, err)
			}
			_, _, err := d.next()
			if !errors.Is(err, c.want) || !peerClosed(err) {
				t.Fatalf("got %v, want %v and the master gone", err, c.want)
			}
		})
	}
}

// TestFramingErr: the package's framing errors read as replink's own,
// and stay what they are underneath.
func TestFramingErr(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{&packet.TooLargeError{Max: maxMessage}, "master sent a message of more than 1074790400 bytes: refusing it"},
		{&packet.SequenceError{Got: 3, Want: 2}, "binlog stream packets out of order (sequence 3, expected 2)"},
		{io.ErrUnexpectedEOF, "unexpected EOF"},
	} {
		if got := framingErr(c.err); got.Error() != c.want || !errors.Is(got, c.err) {
			t.Errorf("framingErr(%v) = %v, want %q", c.err, got, c.want)
		}
	}
}

// TestDumpStreamNoAllocs: events that fit the read buffer cost no
// allocation (the ingest hot path).
func TestDumpStreamNoAllocs(t *testing.T) {
	var stream []byte
	seq := byte(1)
	for range 600 {
		var b []byte
		b, seq = frame(seq, append([]byte{0x00}, bytes.Repeat([]byte{'a'}, 8<<10)...))
		stream = append(stream, b...)
	}
	d := newDumpStream(nil, bytes.NewReader(stream), true)
	allocs := testing.AllocsPerRun(500, func() {
		if ev, _, err := d.next(); err != nil || len(ev) != 8<<10 {
			t.Fatalf("%d bytes, %v", len(ev), err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per event", allocs)
	}
}
