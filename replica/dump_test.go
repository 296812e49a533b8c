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

// FuzzDumpStream feeds arbitrary bytes as a master's dump stream, with
// semi-sync on and off: the reader must hand out exactly the events, ACK
// requests and failure a plain reading of the packets finds (refDump).
func FuzzDumpStream(f *testing.F) {
	ev, seq := frame(1, append([]byte{0x00}, bytes.Repeat([]byte{'a'}, 40)...))
	semi, seq := frame(seq, []byte{0x00, semiSyncMagic, 1, 'x'})
	noAck, seq := frame(seq, []byte{0x00, semiSyncMagic, 0, 'y'})
	end, _ := frame(seq, []byte{0xfe, 0, 0, 2, 0})
	f.Add(append(append(append(ev, semi...), noAck...), end...))
	f.Add([]byte{0xff, 0xff, 0xff, 1, 0x00})
	f.Add([]byte{5, 0, 0, 1, 0xff, 0x10, 0x04, '#', 'H'})
	f.Add([]byte{2, 0, 0, 1, 0x00, semiSyncMagic, 0, 0, 0, 2})
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, semi := range []bool{false, true} {
			d := newDumpStream(nil, bytes.NewReader(data), semi)
			for i, want := range refDump(data, semi) {
				ev, ack, err := d.next()
				got := dumpMsg{ev: ev, ack: ack, fail: failKind(err)}
				if got.fail != want.fail || !bytes.Equal(got.ev, want.ev) || got.ack != want.ack {
					t.Fatalf("semi-sync %v, message %d: got event %q ack %v failure %q (%v), want %q %v %q",
						semi, i, got.ev, got.ack, got.fail, err, want.ev, want.ack, want.fail)
				}
			}
		}
	})
}

// dumpMsg is what one read of a dump stream gives: an event and whether
// the master asks for its ACK, or the kind of failure (failKind).
type dumpMsg struct {
	ev   []byte
	ack  bool
	fail string
}

// refDump reads a dump stream as the protocol lays it out: messages in
// packets of 3-byte length and sequence number from 1, a message going on
// while its packets are full; a message is an event after 0x00 (and after
// 0xef and the ACK flag, with semi-sync), an ERR, or an EOF. It ends with
// the first failure.
func refDump(data []byte, semi bool) []dumpMsg {
	var out []dumpMsg
	seq := byte(1)
	for {
		if len(data) == 0 {
			return append(out, dumpMsg{fail: "closed"})
		}
		var msg []byte
		for {
			if len(data) < 4 {
				return append(out, dumpMsg{fail: "cut"})
			}
			n := int(data[0]) | int(data[1])<<8 | int(data[2])<<16
			if data[3] != seq {
				return append(out, dumpMsg{fail: "order"})
			}
			seq++
			data = data[4:]
			if n > len(data) {
				return append(out, dumpMsg{fail: "cut"})
			}
			msg, data = append(msg, data[:n]...), data[n:]
			if n < 1<<24-1 {
				break
			}
		}
		switch {
		case len(msg) == 0:
			return append(out, dumpMsg{fail: "empty"})
		case msg[0] == 0xff:
			return append(out, dumpMsg{fail: "master error"})
		case msg[0] == 0xfe && len(msg) < 9:
			return append(out, dumpMsg{fail: "end"})
		case msg[0] != 0x00:
			return append(out, dumpMsg{fail: "unexpected"})
		}
		m := dumpMsg{ev: msg[1:]}
		if semi && len(m.ev) >= 2 && m.ev[0] == 0xef {
			m.ack, m.ev = m.ev[1] == 1, m.ev[2:]
		}
		out = append(out, m)
	}
}

// failKind names the failure err is, in refDump's words.
func failKind(err error) string {
	var order *packet.SequenceError
	var me *mysql.MyError
	switch {
	case err == nil:
		return ""
	case errors.Is(err, io.EOF):
		return "closed"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "cut"
	case errors.As(err, &order):
		return "order"
	case errors.As(err, &me):
		return "master error"
	case errors.Is(err, errEndOfDump):
		return "end"
	case strings.Contains(err.Error(), "empty packet"):
		return "empty"
	case strings.Contains(err.Error(), "unexpected packet"):
		return "unexpected"
	}
	return err.Error()
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
