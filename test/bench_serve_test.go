//go:build bench

package test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/replink/replink/binlog"
	"github.com/replink/replink/replica"
	"github.com/replink/replink/tlsutil"
)

// TestBenchServe measures replink as a server of binlog files, where a
// backup or CDC client that reads from replink costs the master nothing:
// the C client (mariadb-binlog --raw) reading one complete binlog file
// over verified TLS from replink against from the master (and a Go
// reader that throws the events away, for which the server is the
// bound), and the master's CPU with eight such readers through replink
// against eight reading from the master directly.
func TestBenchServe(t *testing.T) {
	txns, rows := envInt("BENCH_TXNS", 180), envInt("BENCH_ROWS", 1000)
	runs, n := envInt("BENCH_RUNS", 5), envInt("BENCH_SERVE_READERS", 8)
	if _, err := exec.LookPath("mariadb-binlog"); err != nil {
		t.Fatal("mariadb-binlog is not installed: run scripts/setup.sh")
	}
	p, m := newMaster(t, "max_allowed_packet=64M", "max_binlog_size=1G")
	largeWorkload(t, m, txns, rows)
	m.Exec("FLUSH BINARY LOGS") // the file is complete: a reader of it ends at its ROTATE
	logs := m.Query("SHOW BINARY LOGS")
	if len(logs) != 2 {
		t.Fatalf("the workload spans %d binlog files, want one (and the one FLUSH started)", len(logs)-1)
	}
	file := logs[0][0]
	size, _ := strconv.ParseInt(logs[0][1], 10, 64)
	want := filepath.Join(m.DataDir, file)
	ReplinkBinary(t)

	// replink mirrors the master over VERIFY_IDENTITY before any reader
	// comes: it holds the whole file once its relay log moved past it.
	keyFile, _ := writeKeyFile(t)
	ingestWith := func(t *testing.T, keyFile string) *benchProc {
		b := startBenchAtRest(t, p, m, "VERIFY_IDENTITY", "transaction", "", keyFile)
		b.waitListening(t)
		waitUntil(t, 5*time.Minute, func() bool {
			f, _ := b.durable(t)
			return f != "" && binlog.CompareFiles(f, file) > 0
		})
		return b
	}
	ingest := func(t *testing.T) *benchProc { return ingestWith(t, "") }
	m0 := procCPU(m.pid())
	b := ingest(t)
	ingestMasterCPU := procCPU(m.pid()) - m0
	// The same file held encrypted at rest, for what serving it costs.
	bRest := ingestWith(t, keyFile)

	// Both servers are read as a client with the same certificate: the
	// master's account replx and replink's slave1 both REQUIRE X509.
	master := ClientEndpoint{Name: "master", Host: "127.0.0.1", Port: m.Port, User: "replx", Password: "replpass", CAFile: p.CAFile}
	relay := ClientEndpoint{Name: "replink", Host: "127.0.0.1", Port: b.RelayPort, User: "slave1", Password: "slavepass", CAFile: p.CAFile}
	relayRest := relay
	relayRest.Name, relayRest.Port = "replink at rest", bRest.RelayPort
	read := mariadbBinlog("--raw", "--ssl-cert="+p.ClientCert, "--ssl-key="+p.ClientKey, file)

	// check fails unless got is the master's file; cmp (byte for byte) on
	// each contender's first run, the size on every run.
	compared := map[string]bool{}
	check := func(t *testing.T, name, got string) {
		t.Helper()
		if st, err := os.Stat(got); err != nil || st.Size() != size {
			t.Fatalf("%s: %s is not %d bytes: %v", name, got, size, err)
		}
		if compared[name] {
			return
		}
		if out, err := exec.Command("cmp", got, want).CombinedOutput(); err != nil {
			t.Fatalf("%s: the file read differs from the master's: %v %s", name, err, out)
		}
	}

	// One reader.
	const (
		oneMaster      = "mariadb-binlog --raw from the master"
		oneReplink     = "mariadb-binlog --raw from replink"
		discardMaster  = "Go reader, events discarded, from the master"
		discardReplink = "Go reader, events discarded, from replink"
		discardRest    = "Go reader, events discarded, from replink encrypted at rest"
	)
	replinkCPU := map[string][]float64{}
	one := func(name string, e ClientEndpoint) func(t *testing.T) sample {
		return func(t *testing.T) sample {
			dir := t.TempDir()
			defer os.RemoveAll(dir)
			m0, r0 := procCPU(m.pid()), procCPU(b.pid())
			c, err := timeClient(read(e, dir))
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			s := sample{Wall: c.wall, ReaderCPU: c.cpu, MasterCPU: procCPU(m.pid()) - m0, PeakRSS: c.peak}
			replinkCPU[name] = append(replinkCPU[name], procCPU(b.pid())-r0)
			check(t, name, filepath.Join(dir, file))
			compared[name] = true
			return s
		}
	}
	// The same without the C client's own work (writing the file is half
	// of its CPU): the servers are the bound.
	discard := func(name string, e ClientEndpoint, b *benchProc) func(t *testing.T) sample {
		return func(t *testing.T) sample {
			m0, r0, c0 := procCPU(m.pid()), procCPU(b.pid()), procCPU(os.Getpid())
			t0 := time.Now()
			got := discardRead(t, p, e, file)
			s := sample{Wall: time.Since(t0).Seconds(), ReaderCPU: procCPU(os.Getpid()) - c0, MasterCPU: procCPU(m.pid()) - m0}
			replinkCPU[name] = append(replinkCPU[name], procCPU(b.pid())-r0)
			if got < size-4 {
				t.Fatalf("%s: %d bytes of events, want the file's %d", name, got, size-4)
			}
			return s
		}
	}
	single, singleList := interleave(t, runs, []contender{
		{oneMaster, one(oneMaster, master)},
		{oneReplink, one(oneReplink, relay)},
		{discardMaster, discard(discardMaster, master, b)},
		{discardReplink, discard(discardReplink, relay, b)},
		{discardRest, discard(discardRest, relayRest, bRest)},
	}, size)

	// n readers at once, each reading the whole file: from the master,
	// through the replink that holds it, and through a replink started
	// for the run (its ingest from the master included).
	fanDirect := fmt.Sprintf("%d readers directly from the master", n)
	fanReplink := fmt.Sprintf("%d readers through replink (holding the file)", n)
	fanCold := fmt.Sprintf("%d readers through a new replink (its ingest included)", n)
	fan := func(name string, e ClientEndpoint, cold bool) func(t *testing.T) sample {
		return func(t *testing.T) sample {
			m0 := procCPU(m.pid())
			t0 := time.Now()
			rb, r0 := b, procCPU(b.pid())
			if cold {
				rb, r0 = ingest(t), 0
				e.Port = rb.RelayPort
			}
			dirs := make([]string, n)
			res, errs := make([]clientRun, n), make([]error, n)
			var wg sync.WaitGroup
			for i := range dirs {
				dirs[i] = t.TempDir()
				wg.Add(1)
				go func() {
					defer wg.Done()
					res[i], errs[i] = timeClient(read(e, dirs[i]))
				}()
			}
			wg.Wait()
			s := sample{Wall: time.Since(t0).Seconds(), MasterCPU: procCPU(m.pid()) - m0}
			replinkCPU[name] = append(replinkCPU[name], procCPU(rb.pid())-r0)
			if cold {
				rb.stop(t, false)
			}
			for i, err := range errs {
				if err != nil {
					t.Fatalf("%s: reader %d: %v", name, i+1, err)
				}
				s.ReaderCPU += res[i].cpu
				s.PeakRSS = max(s.PeakRSS, res[i].peak)
				check(t, name, filepath.Join(dirs[i], file))
				os.RemoveAll(dirs[i])
			}
			compared[name] = true
			return s
		}
	}
	many, manyList := interleave(t, runs, []contender{
		{fanDirect, fan(fanDirect, master, false)},
		{fanReplink, fan(fanReplink, relay, false)},
		{fanCold, fan(fanCold, relay, true)},
	}, size*int64(n))

	r := newReport("serve", fmt.Sprintf("Serving: mariadb-binlog --raw reading one %d MB binlog file over verified TLS (%d transactions of %d rows), %d runs each, interleaved; medians",
		size/1_000_000, txns, rows, runs))
	r.doc["workload"] = map[string]any{"transactions": txns, "rows": rows, "file": file, "bytes": size}
	r.doc["one_reader"], r.doc["readers"] = singleList, manyList
	cpu := map[string]float64{}
	for name, xs := range replinkCPU {
		cpu[name] = median(xs)
	}
	r.doc["median_replink_cpu_s"] = cpu
	r.doc["master_cpu_s_replink_ingest"] = ingestMasterCPU
	r.printf("%-56s %7s %6s %10s %10s %11s\n", "one reader", "wall s", "MB/s", "client cpu", "master cpu", "replink cpu")
	for _, x := range singleList {
		r.printf("%-56s %7.3f %6.0f %10.3f %10.3f %11.3f\n", x.Name, x.Median, x.MBps, x.ReaderCPU, x.MasterCPU, cpu[x.Name])
		r.point("serve", x.Name, x.MBps)
	}
	over := single[oneMaster].Median / single[oneReplink].Median
	r.goal("serve_replink_over_master_throughput", "mariadb-binlog from replink / from the master (throughput)", over, ">= 1.2", over >= 1.2)
	r.ratio["serve_discard_replink_over_master_throughput"] = single[discardMaster].Median / single[discardReplink].Median
	r.printf("%-62s %7.3f\n", "Go reader from replink / from the master (throughput)", r.ratio["serve_discard_replink_over_master_throughput"])
	rw := single[discardRest].Median / single[discardReplink].Median
	r.goal("serve_at_rest_over_without_wall", "serving encrypted at rest / without (wall, Go reader)", rw, "<= 1.10", rw <= 1.10)
	rc := cpu[discardRest] / cpu[discardReplink]
	r.goal("serve_at_rest_over_without_cpu", "serving encrypted at rest / without (replink CPU)", rc, "<= 1.15", rc <= 1.15)

	r.printf("\n%-56s %7s %6s %10s %10s %11s\n", fmt.Sprintf("%d readers at once, the whole file each", n), "wall s", "MB/s", "client cpu", "master cpu", "replink cpu")
	for _, x := range manyList {
		r.printf("%-56s %7.3f %6.0f %10.3f %10.3f %11.3f\n", x.Name, x.Median, x.MBps, x.ReaderCPU, x.MasterCPU, cpu[x.Name])
		r.point("servecpu", x.Name, x.MasterCPU)
	}
	f := many[fanReplink].MasterCPU / many[fanDirect].MasterCPU
	r.goal("serve_master_cpu_replink_over_direct", fmt.Sprintf("master CPU, %d readers via replink / direct", n), f, "<= 0.2", f <= 0.2)
	r.ratio["serve_master_cpu_new_replink_over_direct"] = many[fanCold].MasterCPU / many[fanDirect].MasterCPU
	r.printf("%-62s %7.3f\n", "  the same with replink's ingest of the file included", r.ratio["serve_master_cpu_new_replink_over_direct"])
	r.ratio["serve_readers_replink_over_direct_throughput"] = many[fanDirect].Median / many[fanReplink].Median
	r.printf("%-62s %7.3f\n", fmt.Sprintf("%d readers via replink / direct (throughput)", n), r.ratio["serve_readers_replink_over_direct_throughput"])
	r.printf("master CPU of replink's one ingest of the file: %.3f s\n", ingestMasterCPU)
	r.write(t)
}

// discardRead reads file from e with a non-blocking dump over verified
// TLS, as a client with the PKI's certificate, and throws the events
// away; it returns how many bytes of events came (the dump goes on to
// the end of the binlog, past file).
func discardRead(t *testing.T, p *PKI, e ClientEndpoint, file string) int64 {
	t.Helper()
	tc, err := tlsutil.NewClient(tlsutil.ClientOptions{Mode: "VERIFY_IDENTITY", CA: e.CAFile, Cert: p.ClientCert, Key: p.ClientKey})
	if err != nil {
		t.Fatal(err)
	}
	ep := replica.Endpoint{Host: e.Host, Port: e.Port, User: e.User, Password: e.Password, TLS: tc, ConnectTimeout: 5 * time.Second}
	c, _, err := ep.Connect(context.Background(), "replica", unmetered())
	if err != nil {
		t.Fatalf("%s: %v", e.Name, err)
	}
	defer c.Close()
	for _, q := range []string{"SET @master_binlog_checksum='NONE'", "SET @mariadb_slave_capability=4"} {
		if _, err := c.Execute(q); err != nil {
			t.Fatalf("%s: %s: %v", e.Name, q, err)
		}
	}
	sendDump(t, c, file, 4, 1|2, 0) // non-blocking, with Annotate_rows, server id 0: as mariadb-binlog
	var n int64
	var buf bytes.Buffer
	for {
		buf.Reset()
		if err := c.ReadPacketTo(&buf); err != nil {
			t.Fatalf("%s: dump: %v", e.Name, err)
		}
		switch pkt := buf.Bytes(); {
		case len(pkt) > 0 && pkt[0] == 0x00:
			n += int64(len(pkt) - 1)
		case len(pkt) > 0 && pkt[0] == 0xfe && len(pkt) < 9:
			return n
		default:
			t.Fatalf("%s: dump: %q", e.Name, pkt[:min(len(pkt), 120)])
		}
	}
}
