package atrest

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

func testKeys() Keys {
	return Keys{1: bytes.Repeat([]byte{0x11}, 32), 2: bytes.Repeat([]byte{0x22}, 16)}
}

// TestPositionCipherAnyRange: encrypting a file in one piece and
// decrypting it in random pieces at their offsets (as readers read from
// any offset) gives the plaintext back; the ciphertext holds no run of the
// plaintext; segments and a plaintext head are honoured.
func TestPositionCipherAnyRange(t *testing.T) {
	rec, err := NewRecord(testKeys(), 1, 4)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		rec  func() Record
		head int64 // bytes left in plaintext at the start
	}{
		{"one segment", func() Record { return rec }, 4},
		{"cut at 1000 and 1001", func() Record {
			r, _ := rec.Cut(1000)
			r, _ = r.Cut(1001)
			return r
		}, 4},
		{"turned on at 777", func() Record {
			r, _ := NewRecord(testKeys(), 2, 777)
			return r
		}, 777},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := c.rec()
			ci, err := r.Cipher(testKeys())
			if err != nil {
				t.Fatal(err)
			}
			plain := bytes.Repeat([]byte("MARKER-row-0123456789-"), 300)
			enc := bytes.Clone(plain)
			ci.XORAt(enc[4:], 4)
			if !bytes.Equal(enc[:c.head], plain[:c.head]) {
				t.Fatalf("the first %d bytes changed", c.head)
			}
			if bytes.Contains(enc[c.head:], []byte("MARKER")) {
				t.Fatalf("the marker is in the ciphertext")
			}
			// decrypt in random pieces
			rng := rand.New(rand.NewPCG(1, 2))
			out := bytes.Clone(enc)
			for off := int64(4); off < int64(len(out)); {
				n := min(int64(1+rng.IntN(70)), int64(len(out))-off)
				ci.XORAt(out[off:off+n], off)
				off += n
			}
			if !bytes.Equal(out, plain) {
				t.Fatalf("decrypting in pieces does not give the plaintext back")
			}
		})
	}
}

// TestCutNeverReusesKeystream: the bytes written again after a cut at c
// are encrypted with other keystream than the bytes cut.
func TestCutNeverReusesKeystream(t *testing.T) {
	rec, _ := NewRecord(testKeys(), 1, 4)
	before, _ := rec.Cipher(testKeys())
	after, _ := rec.Cut(500)
	ac, _ := after.Cipher(testKeys())
	a, b := make([]byte, 64), make([]byte, 64)
	before.XORAt(a, 500)
	ac.XORAt(b, 500)
	if bytes.Equal(a, b) {
		t.Fatal("same keystream at offset 500 before and after the cut")
	}
	c := make([]byte, 64)
	ac.XORAt(c, 100) // before the cut: the old segment
	d := make([]byte, 64)
	before.XORAt(d, 100)
	if !bytes.Equal(c, d) {
		t.Fatal("the bytes before the cut no longer decrypt")
	}
}

func TestRecordRoundTripAndErrors(t *testing.T) {
	rec, _ := NewRecord(testKeys(), 2, 4)
	rec, _ = rec.Cut(9000)
	got, err := ParseRecord("x", rec.Marshal())
	if err != nil || got.KeyID != 2 || got.Check != rec.Check || len(got.Segments) != 2 || got.Segments[1] != rec.Segments[1] {
		t.Fatalf("round trip: %+v, %v; want %+v", got, err, rec)
	}
	for _, c := range []struct{ name, data, want string }{
		{"empty", "", "no cipher line"},
		{"other magic", "hello\n", "want \"replink-atrest 1\""},
		{"other cipher", "replink-atrest 1\ncipher rot13\n", "rot13"},
		{"no segment", "replink-atrest 1\ncipher aes-ctr-pos\nkey-id 1\nkey-check 0011223344556677\n", "no segment line"},
		{"bad nonce", "replink-atrest 1\ncipher aes-ctr-pos\nkey-id 1\nkey-check 0011223344556677\nsegment 4 zz\n", "line 5"},
		{"segments out of order", "replink-atrest 1\ncipher aes-ctr-pos\nkey-id 1\nkey-check 0011223344556677\nsegment 40 0011223344556677\nsegment 4 0011223344556677\n", "does not follow"},
	} {
		if _, err := ParseRecord("rec", []byte(c.data)); err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "rec") {
			t.Errorf("%s: %v, want an error naming the record and saying %q", c.name, err, c.want)
		}
	}
	if _, err := rec.Cipher(Keys{1: testKeys()[1]}); err == nil || !strings.Contains(err.Error(), "no key with id 2") {
		t.Errorf("missing key: %v", err)
	}
	if _, err := rec.Cipher(Keys{2: bytes.Repeat([]byte{0x33}, 16)}); !errors.Is(err, ErrKeyChanged) {
		t.Errorf("changed key: %v, want ErrKeyChanged", err)
	}
}

func BenchmarkPositionCipher(b *testing.B) {
	rec, _ := NewRecord(testKeys(), 1, 4)
	c, _ := rec.Cipher(testKeys())
	buf := make([]byte, 256<<10)
	b.SetBytes(int64(len(buf)))
	for i := 0; i < b.N; i++ {
		c.XORAt(buf, int64(4+i*len(buf)))
	}
}
