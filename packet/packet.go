package packet

import (
	"bufio"
	"fmt"
)

// Every packet is a 4-byte header and a payload:
//
//	byte 0..2  length of the payload, little endian (0 to 0xffffff)
//	byte 3     sequence number: one more than the packet before, mod 256
//	byte 4...  payload
//
// A message of MaxPayload bytes or more goes out as packets of exactly
// MaxPayload bytes followed by one shorter packet, empty when the length is
// a multiple of MaxPayload: a message ends at its first packet shorter than
// MaxPayload.
const (
	HeaderSize = 4
	MaxPayload = 1<<24 - 1
)

// Header is what a packet's header says.
type Header struct {
	Len int   // payload bytes that follow the header
	Seq uint8 // sequence number
}

// ParseHeader decodes the header at the start of b, which must hold at
// least HeaderSize bytes.
func ParseHeader(b []byte) Header {
	_ = b[3]
	return Header{Len: int(b[0]) | int(b[1])<<8 | int(b[2])<<16, Seq: b[3]}
}

// SequenceError is a packet whose sequence number is not the one expected.
type SequenceError struct {
	Got, Want uint8
}

func (e *SequenceError) Error() string {
	return fmt.Sprintf("packets out of order (sequence %d, expected %d)", e.Got, e.Want)
}

// TooLargeError is a message longer than the bound a Reader or Scanner was
// given.
type TooLargeError struct {
	Max int
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("message of more than %d bytes: refusing it", e.Max)
}

// WriteMessage writes one message, the concatenation of parts, to w as
// packets numbered from *seq, and leaves *seq at the number of the packet
// that would follow. The parts are written as they are, not copied into
// one buffer first; a part that is a constant is best a package variable,
// as a slice literal would be allocated on every call.
func WriteMessage(w *bufio.Writer, seq *uint8, parts ...[]byte) error {
	return writeMessage(w, seq, MaxPayload, parts)
}

// writeMessage is WriteMessage with packets of at most split bytes, so the
// tests can make chains of small packets.
func writeMessage(w *bufio.Writer, seq *uint8, split int, parts [][]byte) error {
	left := 0
	for _, p := range parts {
		left += len(p)
	}
	i, off := 0, 0 // the next byte to write is parts[i][off]
	for {
		n := min(left, split)
		left -= n
		for _, b := range [HeaderSize]byte{byte(n), byte(n >> 8), byte(n >> 16), *seq} {
			if err := w.WriteByte(b); err != nil {
				return err
			}
		}
		*seq++
		for rest := n; rest > 0; {
			p := parts[i][off:]
			if len(p) == 0 {
				i, off = i+1, 0
				continue
			}
			p = p[:min(len(p), rest)]
			if _, err := w.Write(p); err != nil {
				return err
			}
			off += len(p)
			rest -= len(p)
		}
		if n < split {
			return nil
		}
	}
}
