package replica

import (
	"bufio"
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/go-mysql-org/go-mysql/mysql"
)

// frame splits payload into MySQL packets from sequence seq, as a master
// does for messages of 16 MB and more.
func frame(seq byte, payload []byte) ([]byte, byte) {
	var out []byte
	for {
		n := min(len(payload), maxPacket)
		out = append(out, byte(n), byte(n>>8), byte(n>>16), seq)
		out = append(out, payload[:n]...)
		seq++
		payload = payload[n:]
		if n < maxPacket {
			return out, seq
		}
	}
}

func TestDumpStreamFraming(t *testing.T) {
	small := append([]byte{0x00}, bytes.Repeat([]byte{'a'}, 100)...)
	big := append([]byte{0x00}, bytes.Repeat([]byte{'b'}, readBufSize+10)...)
	huge := append([]byte{0x00}, bytes.Repeat([]byte{'c'}, maxPacket+5)...)  // two packets
	exact := append([]byte{0x00}, bytes.Repeat([]byte{'d'}, maxPacket-1)...) // one full packet + an empty one
	semi := append([]byte{0x00, semiSyncMagic, 1}, bytes.Repeat([]byte{'e'}, 50)...)
	errPkt := append([]byte{0xff, 0xd4, 0x04}, "#HY000Could not find first log file name in binary log index file"...)

	var stream []byte
	seq := byte(1)
	for _, p := range [][]byte{small, big, huge, exact, semi, errPkt} {
		var b []byte
		b, seq = frame(seq, p)
		stream = append(stream, b...)
	}
	d := &dumpStream{br: bufio.NewReaderSize(bytes.NewReader(stream), readBufSize), seq: 1, semi: true}
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
		{"out of order", []byte{1, 0, 0, 5, 0x00}, "out of order"},
		{"EOF packet", []byte{1, 0, 0, 1, 0xfe}, "ended the binlog dump"},
		{"unknown header", []byte{1, 0, 0, 1, 0x42}, "unexpected packet"},
		{"truncated", []byte{10, 0, 0, 1, 0x00, 1}, "EOF"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := &dumpStream{br: bufio.NewReaderSize(bytes.NewReader(c.stream), readBufSize), seq: 1}
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
		d := &dumpStream{br: bufio.NewReaderSize(bytes.NewReader(data), readBufSize), seq: 1, semi: true}
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
