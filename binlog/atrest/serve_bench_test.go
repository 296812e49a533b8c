package atrest_test

import (
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/replink/replink/binlog"
	"github.com/replink/replink/binlog/atrest"
)

// BenchmarkReadRelayFile reads a 64 MB relay file through binlog.Reader,
// as a dump serves it: in plaintext, and encrypted at rest in replink's
// own format (AES-256 and AES-128).
func BenchmarkReadRelayFile(b *testing.B) {
	keys := atrest.Keys{1: make([]byte, 32), 2: make([]byte, 16)}
	for _, c := range []struct {
		name string
		id   uint32
	}{{"plaintext", 0}, {"at rest AES-256", 1}, {"at rest AES-128", 2}} {
		b.Run(c.name, func(b *testing.B) {
			var rest binlog.AtRest
			if c.id != 0 {
				s, err := atrest.NewSealer(keys, c.id)
				if err != nil {
					b.Fatal(err)
				}
				rest = s
			}
			l, err := binlog.OpenLogAtRest(b.TempDir(), binlog.SyncNone, hclog.NewNullLogger(), binlog.NewMetrics(prometheus.NewRegistry()), rest)
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			const name = "mariadb-bin.000001"
			if err := l.StartFile(name); err != nil {
				b.Fatal(err)
			}
			off := uint32(4)
			add := func(typ byte, body []byte) {
				size := uint32(binlog.HeaderSize + len(body) + 4)
				off += size
				if _, err := l.Append(binlog.Frame(typ, 1, 1700000000, body, off, 0)); err != nil {
					b.Fatal(err)
				}
			}
			fde := make([]byte, 2+50+4+1)
			binary.LittleEndian.PutUint16(fde, 4)
			fde[56] = binlog.HeaderSize
			fde = append(append(fde, make([]byte, 10)...), binlog.ChecksumCRC32)
			add(binlog.TypeFormatDescription, fde)
			rows := make([]byte, 8000)
			for seq := uint64(1); off < 64<<20; seq++ {
				g := make([]byte, 13)
				binary.LittleEndian.PutUint64(g, seq)
				add(binlog.TypeMariaGTID, g)
				for i := 0; i < 10; i++ {
					add(30, rows)
				}
				add(binlog.TypeXID, make([]byte, 8))
			}
			if err := l.StartFile("mariadb-bin.000002"); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(off))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				r, err := l.Open(name)
				if err != nil {
					b.Fatal(err)
				}
				for {
					if _, err := r.Next(); err != nil {
						if errors.Is(err, io.EOF) || errors.Is(err, binlog.ErrNoMore) {
							break
						}
						b.Fatal(err)
					}
				}
				r.Close()
			}
		})
	}
}
