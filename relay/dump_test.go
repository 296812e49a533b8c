package relay

import (
	"encoding/binary"
	"hash/crc32"
	"testing"

	"github.com/replink/replink/binlog"
)

func TestResendFDE(t *testing.T) {
	body := make([]byte, 2+50+4+1+10+1)
	binary.LittleEndian.PutUint16(body, 4)
	binary.LittleEndian.PutUint32(body[52:], 1763779200) // created: the master just started
	body[len(body)-1] = binlog.ChecksumCRC32
	size := binlog.HeaderSize + len(body) + 4
	fde := make([]byte, binlog.HeaderSize, size)
	fde[4] = binlog.TypeFormatDescription
	binary.LittleEndian.PutUint32(fde[9:], uint32(size))
	binary.LittleEndian.PutUint32(fde[13:], uint32(4+size))
	binary.LittleEndian.PutUint16(fde[17:], binlog.FlagInUse)
	fde = append(fde, body...)
	fde = binary.LittleEndian.AppendUint32(fde, crc32.ChecksumIEEE(fde))

	got := resendFDE(fde)
	if binary.LittleEndian.Uint32(got[13:]) != 0 {
		t.Error("log_pos not zeroed")
	}
	if binary.LittleEndian.Uint32(got[binlog.HeaderSize+52:]) != 0 {
		t.Error("created not zeroed: a slave would roll back its open transaction")
	}
	if binary.LittleEndian.Uint16(got[17:])&binlog.FlagInUse != 0 {
		t.Error("in-use flag kept")
	}
	if err := binlog.VerifyChecksum(got); err != nil {
		t.Error(err)
	}
	if binary.LittleEndian.Uint32(fde[13:]) == 0 {
		t.Error("the stored FDE was modified")
	}
}
