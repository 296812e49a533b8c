//go:build bench

package test

import (
	"fmt"
	"strconv"
	"testing"
	"time"
)

// directSlave points a mariadbd slave at the master itself over verified
// TLS (MASTER_SSL=1), from the first binlog.
func directSlave(t *testing.T, s, m *Server, p *PKI) {
	t.Helper()
	s.Exec(fmt.Sprintf(`CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='repl', MASTER_PASSWORD='replpass',
		MASTER_SSL=1, MASTER_SSL_CA='%s', MASTER_SSL_VERIFY_SERVER_CERT=1, MASTER_CONNECT_RETRY=1, MASTER_HEARTBEAT_PERIOD=1,
		MASTER_USE_GTID=no, MASTER_LOG_FILE='mariadb-bin.000001', MASTER_LOG_POS=4`, m.Port, p.CAFile))
}

// slaveProgress reports whether the slave's IO thread has read, and its
// SQL thread executed, up to file:end; it fails on a thread error.
func slaveProgress(t *testing.T, s *Server, file string, end uint32) (read, applied bool) {
	t.Helper()
	st := s.SlaveStatus()
	if e := st["Last_SQL_Error"] + st["Last_IO_Error"]; e != "" {
		t.Fatalf("%s: %s", s.Name, e)
	}
	pos := strconv.FormatUint(uint64(end), 10)
	read = st["Master_Log_File"] == file && st["Read_Master_Log_Pos"] == pos
	applied = st["Relay_Master_Log_File"] == file && st["Exec_Master_Log_Pos"] == pos
	return read, applied
}

// resetSlave forgets the slave's master and relay logs and drops what it
// applied, so the next run starts from nothing.
func resetSlave(s *Server) {
	s.Exec("STOP SLAVE", "RESET SLAVE ALL", "SET sql_log_bin=0", "DROP DATABASE IF EXISTS app")
}

// TestBenchSlaves measures native mariadbd slaves: catching up through
// replink against replicating directly with MASTER_SSL=1, and the
// master's CPU with four slaves direct over TLS against four slaves
// through one replink.
func TestBenchSlaves(t *testing.T) {
	txns, rows := envInt("BENCH_TXNS", 180), envInt("BENCH_ROWS", 1000)
	runs := envInt("BENCH_RUNS", 5)
	p, m := newMaster(t, "max_allowed_packet=64M")
	total := largeWorkload(t, m, txns, rows)
	file, end := m.MasterStatus()
	ReplinkBinary(t)

	slaves := make([]*Server, 4)
	for i := range slaves {
		slaves[i] = StartServer(t, fmt.Sprintf("slave%d", i+1), ServerOptions{ServerID: 10 + i, Extra: []string{"max_allowed_packet=64M"}})
		resetSlave(slaves[i])
	}

	// End to end: one slave from nothing until it has applied everything.
	// "Catching up" is the slave behind a replink that streams all along,
	// so replink holds the binlog before the clock starts; in the "cold"
	// runs replink starts from an empty relay log at the same moment as
	// the slave, so its ingest and fsyncs are part of the time.
	var ioTime = map[string][]float64{}
	catchUp := func(name, sync string, warm bool) func(t *testing.T) sample {
		return func(t *testing.T) sample {
			s := slaves[0]
			resetSlave(s)
			var b *benchProc
			var r0 float64
			if sync != "" && warm {
				b = startBench(t, p, m, "VERIFY_IDENTITY", sync, "")
				b.waitListening(t)
				waitCaughtUpBench(t, b, m, 5*time.Minute)
				r0 = procCPU(b.pid())
				settle()
			}
			m0 := procCPU(m.pid())
			t0 := time.Now()
			switch {
			case sync == "":
				directSlave(t, s, m, p)
			case b == nil:
				b = startBench(t, p, m, "VERIFY_IDENTITY", sync, "")
				b.waitListening(t)
				fallthrough
			default:
				changeMaster(t, s, p, b.RelayPort, "slave1", "mariadb-bin.000001", "")
			}
			s.Exec("START SLAVE")
			var readAt float64
			for {
				read, applied := slaveProgress(t, s, file, end)
				if read && readAt == 0 {
					readAt = time.Since(t0).Seconds()
				}
				if applied {
					break
				}
				if time.Since(t0) > 10*time.Minute {
					t.Fatal("slave did not catch up in 10 minutes")
				}
				time.Sleep(20 * time.Millisecond)
			}
			smp := sample{Wall: time.Since(t0).Seconds(), MasterCPU: procCPU(m.pid()) - m0}
			ioTime[name] = append(ioTime[name], readAt)
			if b != nil {
				smp.ReaderCPU = procCPU(b.pid()) - r0
				b.stop(t, false)
			}
			if got, want := s.Checksum("app.t"), m.Checksum("app.t"); got != want {
				t.Fatalf("%s: slave checksum %s, master %s", name, got, want)
			}
			return smp
		}
	}
	const (
		e2eDirect = "slave direct, MASTER_SSL=1"
		e2eWarm   = "slave through replink (holding the binlog)"
		e2eCold   = "cold: replink starts with the slave"
		e2eNoSync = "cold, replink sync=none"
	)
	e2e, e2eList := interleave(t, runs, []contender{
		{e2eDirect, catchUp(e2eDirect, "", false)},
		{e2eWarm, catchUp(e2eWarm, "transaction", true)},
		{e2eCold, catchUp(e2eCold, "transaction", false)},
		{e2eNoSync, catchUp(e2eNoSync, "none", false)},
	}, total)

	// Fan-out: four slave IO threads reading everything; the master's CPU.
	fanOut := func(viaReplink bool) func(t *testing.T) sample {
		return func(t *testing.T) sample {
			for _, s := range slaves {
				resetSlave(s)
			}
			m0 := procCPU(m.pid())
			t0 := time.Now()
			var b *benchProc
			if viaReplink {
				b = startBench(t, p, m, "VERIFY_IDENTITY", "transaction", "")
				b.waitListening(t)
			}
			for _, s := range slaves {
				if viaReplink {
					changeMaster(t, s, p, b.RelayPort, "slave1", "mariadb-bin.000001", "")
				} else {
					directSlave(t, s, m, p)
				}
				s.Exec("START SLAVE IO_THREAD")
			}
			for _, s := range slaves {
				for {
					if read, _ := slaveProgress(t, s, file, end); read {
						break
					}
					if time.Since(t0) > 10*time.Minute {
						t.Fatal("slaves did not read everything in 10 minutes")
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
			smp := sample{Wall: time.Since(t0).Seconds(), MasterCPU: procCPU(m.pid()) - m0}
			if b != nil {
				smp.ReaderCPU = procCPU(b.pid())
				smp.PeakRSS, _ = procMem(b.pid())
				b.stop(t, false)
			}
			return smp
		}
	}
	const (
		fanDirect  = "4 slaves direct, MASTER_SSL=1"
		fanReplink = "4 slaves through one replink"
	)
	fan, fanList := interleave(t, runs, []contender{
		{fanDirect, fanOut(false)},
		{fanReplink, fanOut(true)},
	}, total)
	for _, s := range slaves {
		resetSlave(s)
	}

	r := newReport("slaves", fmt.Sprintf("Native slaves: %d MB of ROW binlog (%d transactions of %d rows), %d runs each, interleaved; medians", total/1_000_000, txns, rows, runs))
	r.doc["workload"] = map[string]any{"transactions": txns, "rows": rows, "bytes": total}
	r.doc["end_to_end"], r.doc["fan_out"] = e2eList, fanList
	r.printf("%-42s %12s %12s %10s %12s\n", "end to end (one slave from nothing)", "applied s", "IO read s", "master cpu", "replink cpu")
	for _, x := range e2eList {
		r.printf("%-42s %12.3f %12.3f %10.3f %12.3f\n", x.Name, x.Median, median(ioTime[x.Name]), x.MasterCPU, x.ReaderCPU)
		r.point("e2e", x.Name, x.Median)
	}
	e := e2e[e2eWarm].Median / e2e[e2eDirect].Median
	r.goal("end_to_end_replink_over_direct", "catch-up through replink / direct MASTER_SSL (wall)", e, "<= 1.05", e <= 1.05)
	for key, name := range map[string]string{"end_to_end_cold_over_direct": e2eCold, "end_to_end_cold_sync_none_over_direct": e2eNoSync} {
		r.ratio[key] = e2e[name].Median / e2e[e2eDirect].Median
	}
	r.printf("%-58s %7.3f\n", "cold (replink ingests meanwhile) / direct (wall)", r.ratio["end_to_end_cold_over_direct"])
	r.printf("%-58s %7.3f\n", "cold, replink sync=none / direct (wall)", r.ratio["end_to_end_cold_sync_none_over_direct"])
	r.ratio["io_read_replink_over_direct"] = median(ioTime[e2eWarm]) / median(ioTime[e2eDirect])
	r.printf("%-58s %7.3f\n", "IO thread read through replink (holding it) / direct (wall)", r.ratio["io_read_replink_over_direct"])
	r.printf("\n%-42s %12s %10s %12s %10s\n", "fan-out (4 slave IO threads)", "all read s", "master cpu", "replink cpu", "peak RSS")
	for _, x := range fanList {
		r.printf("%-42s %12.3f %10.3f %12.3f %9.1fM\n", x.Name, x.Median, x.MasterCPU, x.ReaderCPU, float64(x.PeakRSS)/(1<<20))
		r.point("fanout", x.Name, x.MasterCPU)
	}
	f := fan[fanReplink].MasterCPU / fan[fanDirect].MasterCPU
	r.goal("fan_out_master_cpu_replink_over_direct", "master CPU, 4 slaves via replink / 4 direct TLS", f, "<= 0.35", f <= 0.35)
	r.write(t)
}
