package atrest

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"strconv"
	"strings"
	"testing"

	"github.com/replink/replink/binlog"
)

// event returns a plaintext event of n bytes (n >= 23) at offset off,
// with log_pos and a CRC32 trailer right.
func event(n int, off uint64, fill byte) []byte {
	body := bytes.Repeat([]byte{fill}, n-binlog.HeaderSize-4)
	e := make([]byte, 0, n)
	e = binary.LittleEndian.AppendUint32(e, 0x5f5e1000) // timestamp
	e = append(e, 30)                                   // type: WRITE_ROWS
	e = binary.LittleEndian.AppendUint32(e, 7)
	e = binary.LittleEndian.AppendUint32(e, uint32(n))
	e = binary.LittleEndian.AppendUint32(e, uint32(off)+uint32(n))
	e = binary.LittleEndian.AppendUint16(e, 0)
	e = append(e, body...)
	return binary.LittleEndian.AppendUint32(e, crc32.ChecksumIEEE(e))
}

var testNonce = [NonceSize]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}

// TestEventCipherRoundTrip: for both algorithms and every length around
// the block boundaries, an event encrypts in place at the same length,
// with its size in clear at offset 9 and nothing else of it in clear,
// decrypts back exactly and verifies; at another offset it does not.
func TestEventCipherRoundTrip(t *testing.T) {
	for _, alg := range []Algorithm{AESCBC, AESCTR} {
		for _, keyLen := range []int{16, 24, 32} {
			c, err := NewEventCipher(alg, bytes.Repeat([]byte{0x42}, keyLen), testNonce)
			if err != nil {
				t.Fatal(err)
			}
			for n := 23; n <= 23+3*16; n++ {
				const off = 4096
				plain := event(n, off, 'm')
				ev := bytes.Clone(plain)
				if err := c.Encrypt(ev, off); err != nil {
					t.Fatal(err)
				}
				if len(ev) != n || binary.LittleEndian.Uint32(ev[9:]) != uint32(n) {
					t.Fatalf("%v/%d n=%d: length %d, size field %d", alg, keyLen, n, len(ev), binary.LittleEndian.Uint32(ev[9:]))
				}
				if bytes.Contains(ev, []byte("mmm")) || bytes.Equal(ev[:4], plain[:4]) {
					t.Fatalf("%v/%d n=%d: plaintext left in % x", alg, keyLen, n, ev)
				}
				wrong := bytes.Clone(ev)
				if err := c.Decrypt(ev, off); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(ev, plain) {
					t.Fatalf("%v/%d n=%d: round trip\n% x\n% x", alg, keyLen, n, ev, plain)
				}
				if err := Verify(ev, off, binlog.ChecksumCRC32); err != nil {
					t.Fatal(err)
				}
				_ = c.Decrypt(wrong, off+16)
				if Verify(wrong, off+16, binlog.ChecksumCRC32) == nil {
					t.Fatalf("%v/%d n=%d: decrypts and verifies at the wrong offset", alg, keyLen, n)
				}
			}
		}
	}
}

// TestVerifyCatchesAFlippedByte: a byte flipped anywhere in an encrypted
// event (size field aside, which is in clear and checked by the walk)
// fails Verify after decryption when the file has checksums.
func TestVerifyCatchesAFlippedByte(t *testing.T) {
	for _, alg := range []Algorithm{AESCBC, AESCTR} {
		c, _ := NewEventCipher(alg, bytes.Repeat([]byte{7}, 32), testNonce)
		const off, n = 256, 77
		enc := event(n, off, 'x')
		_ = c.Encrypt(enc, off)
		for i := range n {
			if i >= 9 && i < 13 {
				continue
			}
			ev := bytes.Clone(enc)
			ev[i] ^= 0x01
			_ = c.Decrypt(ev, off)
			if err := Verify(ev, off, binlog.ChecksumCRC32); err == nil {
				t.Fatalf("%v: flipped byte %d not detected", alg, i)
			}
		}
	}
}

func TestStartEncryptionInFileAndParse(t *testing.T) {
	body := append([]byte{1, 1, 0, 0, 0}, testNonce[:]...)
	inFile := binlog.Frame(TypeStartEncryption, 1, 1700000000, body, 292, 0)
	streamed := bytes.Clone(inFile)
	binary.LittleEndian.PutUint16(streamed[17:], binlog.FlagIgnorable) // the header's flags
	n := len(streamed) - 4
	binary.LittleEndian.PutUint32(streamed[n:], crc32.ChecksumIEEE(streamed[:n]))
	if got := InFile(streamed, binlog.ChecksumCRC32); !bytes.Equal(got, inFile) {
		t.Fatalf("InFile\n% x\nwant\n% x", got, inFile)
	}
	s, err := ParseStartEncryption(inFile, binlog.ChecksumCRC32)
	if err != nil || s.KeyVersion != 1 || s.Nonce != testNonce || s.Scheme != 1 {
		t.Fatalf("ParseStartEncryption = %+v, %v", s, err)
	}
	bad := binlog.Frame(TypeStartEncryption, 1, 1, append([]byte{2}, body[1:]...), 0, 0)
	if _, err := ParseStartEncryption(bad, binlog.ChecksumCRC32); err == nil || !strings.Contains(err.Error(), "crypto scheme 2") {
		t.Fatalf("scheme 2: %v", err)
	}
}

// BenchmarkEncrypt measures one event's encryption at binlog event sizes
// (AES-NI here; SetBytes makes -bench print MB/s).
func BenchmarkEncrypt(b *testing.B) {
	for _, alg := range []Algorithm{AESCBC, AESCTR} {
		for _, n := range []int{64, 1024, 8192, 65536} {
			b.Run(alg.String()+"/"+strconv.Itoa(n), func(b *testing.B) {
				c, _ := NewEventCipher(alg, bytes.Repeat([]byte{7}, 32), testNonce)
				ev := event(n, 4, 'x')
				b.SetBytes(int64(n))
				for b.Loop() {
					_ = c.Encrypt(ev, 4)
				}
			})
		}
	}
}

// BenchmarkDecrypt is BenchmarkEncrypt's reader side (CBC decryption runs
// its blocks in parallel, encryption cannot).
func BenchmarkDecrypt(b *testing.B) {
	for _, alg := range []Algorithm{AESCBC, AESCTR} {
		for _, n := range []int{1024, 65536} {
			b.Run(alg.String()+"/"+strconv.Itoa(n), func(b *testing.B) {
				c, _ := NewEventCipher(alg, bytes.Repeat([]byte{7}, 32), testNonce)
				ev := event(n, 4, 'x')
				b.SetBytes(int64(n))
				for b.Loop() {
					_ = c.Decrypt(ev, 4)
				}
			})
		}
	}
}

// TestMasterCTRKeystreamRepeatsEvery16MiB pins down a property of
// MariaDB's AES_CTR binlog scheme that replink's own format must not
// copy (docs/encryption-at-rest.md): the IV's last 4 bytes are the offset
// little-endian, but CTR counts the 16-byte block big-endian, so block k
// of the event at offset o has the counter of block 0 of an event at
// o + k·2^24. Two events 16 MiB apart share 16 bytes of keystream.
func TestMasterCTRKeystreamRepeatsEvery16MiB(t *testing.T) {
	c, _ := NewEventCipher(AESCTR, bytes.Repeat([]byte{9}, 32), testNonce)
	const o = 1000
	a := make([]byte, 4+32) // bytes 4.. are encrypted: two blocks
	b := make([]byte, 4+16)
	c.crypt(a[4:], o, true)
	c.crypt(b[4:], o+1<<24, true)
	if !bytes.Equal(a[4+16:4+32], b[4:4+16]) {
		t.Fatalf("block 1 at %d and block 0 at %d have different keystreams", o, o+1<<24)
	}
	// CBC's blocks do not chain that way.
	c, _ = NewEventCipher(AESCBC, bytes.Repeat([]byte{9}, 32), testNonce)
	a, b = make([]byte, 4+32), make([]byte, 4+16)
	c.crypt(a[4:], o, true)
	c.crypt(b[4:], o+1<<24, true)
	if bytes.Equal(a[4+16:4+32], b[4:4+16]) {
		t.Fatal("CBC repeats too")
	}
}
