package binlog

import (
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkAppendSmallTransactions appends single-row transactions
// (GTID, rows, XID: ~200 bytes) under each sync policy. With
// "transaction", the group-commit syncer fsyncs in the background, so
// the append path does not wait for the disk per transaction.
func BenchmarkAppendSmallTransactions(b *testing.B) {
	for _, policy := range []SyncPolicy{SyncNone, SyncTransaction, SyncEvent} {
		b.Run(string(policy), func(b *testing.B) {
			l, err := OpenLog(b.TempDir(), policy, hclog.NewNullLogger(), NewMetrics(prometheus.NewRegistry()))
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			if err := l.StartFile("mariadb-bin.000001"); err != nil {
				b.Fatal(err)
			}
			var s stream
			app := func(typ byte, body []byte) {
				ev, err := ParseEvent(s.add(typ, body))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := l.Append(ev); err != nil {
					b.Fatal(err)
				}
			}
			app(TypeFormatDescription, fdeBody())
			rows := make([]byte, 120)
			b.SetBytes(int64(3*HeaderSize + 13 + 120 + 8 + 12))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				app(TypeMariaGTID, gtidBody(uint64(i), false))
				app(30, rows)
				app(TypeXID, make([]byte, 8))
			}
			b.StopTimer()
			s.events = nil
		})
	}
}

func BenchmarkScanComplete(b *testing.B) {
	var s stream
	s.add(TypeFormatDescription, fdeBody())
	for i := 0; i < 2000; i++ {
		s.add(TypeMariaGTID, gtidBody(uint64(i), false))
		s.add(30, make([]byte, 1000))
		s.add(TypeXID, make([]byte, 8))
	}
	data := append([]byte{}, Magic...)
	for _, e := range s.events {
		data = append(data, e...)
	}
	b.SetBytes(int64(len(data)))
	for i := 0; i < b.N; i++ {
		if _, _, err := ScanComplete(bytesReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFrameAndVerify is the per-event work on the ingest path for a
// full rows event (8 KiB, the default binlog_row_event_max_size): parse
// the header, check the CRC32, track the transaction.
func BenchmarkFrameAndVerify(b *testing.B) {
	var s stream
	fde, err := ParseEvent(s.add(TypeFormatDescription, fdeBody()))
	if err != nil {
		b.Fatal(err)
	}
	raw := s.add(30, make([]byte, 8<<10))
	var g GroupTracker
	g.Add(fde) // CRC32 from here on
	b.SetBytes(int64(len(raw)))
	for i := 0; i < b.N; i++ {
		ev, err := ParseEvent(raw)
		if err != nil {
			b.Fatal(err)
		}
		if err := g.Verify(ev); err != nil {
			b.Fatal(err)
		}
		g.Add(ev)
	}
}
