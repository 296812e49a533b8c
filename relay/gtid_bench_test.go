package relay

import "testing"

// BenchmarkGTIDVariable is one reference to @@gtid_binlog_pos with the
// relay log unchanged since the last.
func BenchmarkGTIDVariable(b *testing.B) {
	rl := startRelay(b)
	for seq := uint64(3); seq < 3000; seq++ {
		n := len(rl.file.events)
		rl.file.addGroup(seq)
		rl.appendAll(b, n)
	}
	b.ResetTimer()
	for range b.N {
		if rl.srv.gtidPos(false) == "" {
			b.Fatal("no position")
		}
	}
}
