package binlog

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"testing"
)

func TestResentFDE(t *testing.T) {
	body := make([]byte, 2+50+4+1+10+1)
	binary.LittleEndian.PutUint16(body, 4)
	binary.LittleEndian.PutUint32(body[52:], 1763779200) // created: the master just started
	body[len(body)-1] = ChecksumCRC32
	size := HeaderSize + len(body) + 4
	fde := make([]byte, HeaderSize, size)
	fde[4] = TypeFormatDescription
	binary.LittleEndian.PutUint32(fde[9:], uint32(size))
	binary.LittleEndian.PutUint32(fde[13:], uint32(4+size))
	binary.LittleEndian.PutUint16(fde[17:], FlagInUse)
	fde = append(fde, body...)
	fde = binary.LittleEndian.AppendUint32(fde, crc32.ChecksumIEEE(fde))

	got := ResentFDE(fde)
	if binary.LittleEndian.Uint32(got[13:]) != 0 {
		t.Error("log_pos not zeroed")
	}
	if binary.LittleEndian.Uint32(got[HeaderSize+52:]) != 0 {
		t.Error("created not zeroed: a slave would roll back its open transaction")
	}
	if binary.LittleEndian.Uint16(got[17:])&FlagInUse != 0 {
		t.Error("in-use flag kept")
	}
	if err := VerifyChecksum(got); err != nil {
		t.Error(err)
	}
	if binary.LittleEndian.Uint32(fde[13:]) == 0 {
		t.Error("the stored FDE was modified")
	}
}

func FuzzResentFDE(f *testing.F) {
	f.Add(make([]byte, 100))
	f.Fuzz(func(t *testing.T, fde []byte) {
		if len(fde) < 23 {
			return
		}
		out := ResentFDE(fde)
		if len(out) != len(fde) {
			t.Fatal("length changed")
		}
		if out.LogPos() != 0 || out.Flags()&FlagInUse != 0 {
			t.Fatalf("log_pos %d, flags %#x: want 0 and in-use cleared", out.LogPos(), out.Flags())
		}
		if FDEChecksum(out) != ChecksumCRC32 {
			if !bytes.Equal(out[len(out)-4:], fde[len(fde)-4:]) {
				t.Fatal("the last 4 bytes of an FDE without checksums changed")
			}
			return
		}
		if err := VerifyChecksum(out); err != nil {
			t.Fatalf("resent FDE fails its own checksum: %v", err)
		}
	})
}
