//go:build bench

package test

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
)

// benchReader notes when each transaction's XID event arrives at a
// go-mysql reader and counts bytes.
type benchReader struct {
	*goReader
	mu    sync.Mutex
	xids  []time.Time
	bytes atomic.Int64
}

func (r *benchReader) HandleEvent(e *replication.BinlogEvent) error {
	r.bytes.Add(int64(len(e.RawData)))
	if e.Header.EventType == replication.XID_EVENT {
		now := time.Now()
		r.mu.Lock()
		r.xids = append(r.xids, now)
		r.mu.Unlock()
	}
	return nil
}

func (r *benchReader) arrivals() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.xids...)
}

// startReader reads from port as user from pos: the master as repl, or
// replink as slave1 with the client certificate.
func startReader(t *testing.T, p *PKI, port int, user string, id uint32, pos mysql.Position) *benchReader {
	t.Helper()
	r := &benchReader{}
	r.goReader = startGoReader(t, p, port, user, id, pos, r)
	return r
}

// waitCaughtUpBench waits until replink's relay log is durable at the
// master's position.
func waitCaughtUpBench(t *testing.T, b *benchProc, m *Server, limit time.Duration) {
	t.Helper()
	file, end := m.MasterStatus()
	waitUntil(t, limit, func() bool {
		f, o := b.durable(t)
		return f == file && o == end
	})
}

// TestBenchLatency measures commit → event latency at a steady write
// rate: one reader on the master directly, one through replink with
// sync=transaction and one through replink with sync=none, all at once.
func TestBenchLatency(t *testing.T) {
	rate, secs := envInt("BENCH_LAT_RATE", 200), envInt("BENCH_LAT_SECONDS", 15)
	p, m := newMaster(t)
	m.Exec("CREATE DATABASE app", "CREATE TABLE app.l (id INT PRIMARY KEY AUTO_INCREMENT, v INT)")
	durable := startBench(t, p, m, "VERIFY_IDENTITY", "transaction", "")
	loose := startBench(t, p, m, "VERIFY_IDENTITY", "none", "")
	for _, b := range []*benchProc{durable, loose} {
		b.waitListening(t)
		waitCaughtUpBench(t, b, m, 20*time.Second)
	}
	file, pos := m.MasterStatus()
	start := mysql.Position{Name: file, Pos: pos}
	const (
		direct  = "direct from the master"
		viaSync = "through replink, sync=transaction"
		viaNone = "through replink, sync=none"
	)
	names := []string{direct, viaSync, viaNone}
	readers := map[string]*benchReader{
		direct:  startReader(t, p, m.Port, "repl", 201, start),
		viaSync: startReader(t, p, durable.RelayPort, "slave1", 202, start),
		viaNone: startReader(t, p, loose.RelayPort, "slave1", 203, start),
	}
	time.Sleep(500 * time.Millisecond) // the dumps are running

	c, err := m.connect()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	n := rate * secs
	sent := make([]time.Time, n)
	interval := time.Second / time.Duration(rate)
	t0 := time.Now()
	for k := 0; k < n; k++ {
		time.Sleep(time.Until(t0.Add(time.Duration(k) * interval)))
		sent[k] = time.Now()
		if _, err := c.Execute(fmt.Sprintf("INSERT INTO app.l (v) VALUES (%d)", k)); err != nil {
			t.Fatal(err)
		}
	}
	writeWall := time.Since(t0)
	waitUntil(t, 30*time.Second, func() bool {
		for _, r := range readers {
			if len(r.arrivals()) < n {
				return false
			}
		}
		return true
	})
	lat := map[string][]float64{}
	for _, name := range names {
		arr := readers[name].arrivals()
		if len(arr) != n {
			t.Fatalf("%s: %d transactions arrived, %d committed", name, len(arr), n)
		}
		for k := range arr {
			lat[name] = append(lat[name], arr[k].Sub(sent[k]).Seconds()*1000)
		}
	}
	added := map[string][]float64{}
	for _, name := range names[1:] {
		for k := range lat[name] {
			added[name] = append(added[name], lat[name][k]-lat[direct][k])
		}
	}

	r := newReport("latency", fmt.Sprintf("Latency: commit on the master → XID event at a TLS reader, %d single-row commits at %d/s (%.1f s)", n, rate, writeWall.Seconds()))
	r.doc["workload"] = map[string]any{"commits": n, "rate_per_s": rate}
	type row struct {
		Name                 string  `json:"name"`
		P50, P99, Max        float64 `json:"-"`
		P50ms, P99ms, MaxMs  float64
		AddedP50, AddedP99ms float64
	}
	var rows []row
	r.printf("%-36s %9s %9s %9s %12s %12s\n", "path", "p50 ms", "p99 ms", "max ms", "added p50", "added p99")
	for _, name := range names {
		x := row{Name: name, P50ms: percentile(lat[name], 0.5), P99ms: percentile(lat[name], 0.99), MaxMs: percentile(lat[name], 1)}
		if name != direct {
			x.AddedP50, x.AddedP99ms = percentile(added[name], 0.5), percentile(added[name], 0.99)
		}
		rows = append(rows, x)
		r.printf("%-36s %9.3f %9.3f %9.3f %12.3f %12.3f\n", name, x.P50ms, x.P99ms, x.MaxMs, x.AddedP50, x.AddedP99ms)
		r.point("latency", name, x.P99ms)
	}
	r.doc["results"] = rows
	a := rows[1].AddedP99ms
	r.goal("added_latency_p99_ms_sync_transaction", "added latency p99 through replink, sync=transaction (ms)", a, "<= 1 ms", a <= 1)
	r.ratio["added_latency_p99_ms_sync_none"] = rows[2].AddedP99ms
	r.printf("%-58s %7.3f\n", "added latency p99 through replink, sync=none (ms)", rows[2].AddedP99ms)
	r.write(t)
}

// TestBenchSmallTransactions writes single-row autocommits as fast as
// four connections can and watches replink's durable lag behind the
// master with sync=transaction.
func TestBenchSmallTransactions(t *testing.T) {
	total, conns := envInt("BENCH_SMALL", 100000), 4
	p, m := newMaster(t)
	m.Exec("CREATE DATABASE app", "CREATE TABLE app.s (id INT PRIMARY KEY AUTO_INCREMENT, v VARCHAR(32), n INT)")
	b := startBench(t, p, m, "VERIFY_IDENTITY", "transaction", "")
	b.waitListening(t)
	waitCaughtUpBench(t, b, m, 20*time.Second)
	file, base := m.MasterStatus()

	type lagSample struct{ at, lag float64 }
	var samples []lagSample
	stop := make(chan struct{})
	sampled := make(chan struct{})
	mc, err := m.connect()
	if err != nil {
		t.Fatal(err)
	}
	defer mc.Close()
	masterPos := func() (string, uint32) {
		res, err := mc.Execute("SHOW MASTER STATUS")
		if err != nil {
			t.Error(err)
			return "", 0
		}
		f, _ := res.GetString(0, 0)
		o, _ := res.GetUint(0, 1)
		return f, uint32(o)
	}
	t0 := time.Now()
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			mf, mo := masterPos()
			rf, ro := b.durable(t)
			if mf == file && rf == file {
				samples = append(samples, lagSample{time.Since(t0).Seconds(), float64(mo) - float64(ro)})
			}
		}
	}()
	var wg sync.WaitGroup
	for w := 0; w < conns; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			c, err := m.connect()
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			for i := 0; i < total/conns; i++ {
				if _, err := c.Execute(fmt.Sprintf("INSERT INTO app.s (v, n) VALUES ('row %d-%d', %d)", w, i, i)); err != nil {
					t.Error(err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	writeWall := time.Since(t0)
	tEnd := time.Now()
	close(stop)
	<-sampled
	endFile, end := m.MasterStatus()
	if endFile != file {
		t.Fatalf("the master rotated during the run (%s → %s)", file, endFile)
	}
	waitUntil(t, time.Minute, func() bool {
		f, o := b.durable(t)
		return f == endFile && o == end
	})
	catchUp := time.Since(tEnd)

	bytesPerSec := float64(end-base) / writeWall.Seconds()
	var lags, firstQ, lastQ []float64
	for _, s := range samples {
		lags = append(lags, s.lag)
		switch {
		case s.at < writeWall.Seconds()/4:
			firstQ = append(firstQ, s.lag)
		case s.at > writeWall.Seconds()*3/4:
			lastQ = append(lastQ, s.lag)
		}
	}
	r := newReport("small", fmt.Sprintf("Small transactions: %d single-row autocommits from %d connections, replink TLS sync=transaction", total, conns))
	r.doc["workload"] = map[string]any{"commits": total, "connections": conns, "bytes": end - base}
	r.printf("master: %.0f commits/s, %.2f MB/s of binlog for %.1f s\n", float64(total)/writeWall.Seconds(), bytesPerSec/1e6, writeWall.Seconds())
	r.printf("replink durable lag behind the master (%d samples every 100 ms): p50 %.0f B, p99 %.0f B, max %.0f B\n",
		len(lags), percentile(lags, 0.5), percentile(lags, 0.99), percentile(lags, 1))
	r.printf("median lag, first quarter %.0f B, last quarter %.0f B\n", median(firstQ), median(lastQ))
	r.printf("durable at the master's end %.1f ms after the last commit returned\n", catchUp.Seconds()*1000)
	r.doc["lag_bytes"] = map[string]float64{"p50": percentile(lags, 0.5), "p99": percentile(lags, 0.99), "max": percentile(lags, 1),
		"first_quarter_median": median(firstQ), "last_quarter_median": median(lastQ)}
	r.doc["commits_per_s"] = float64(total) / writeWall.Seconds()
	r.doc["catch_up_ms"] = catchUp.Seconds() * 1000
	// Keeping up: the lag is a fraction of a second of writes and does not
	// grow from the first quarter to the last.
	lagSecs := percentile(lags, 0.99) / bytesPerSec
	growth := median(lastQ) - median(firstQ)
	r.goal("small_lag_p99_seconds_of_writes", "lag p99 in seconds of the master's writes", lagSecs, "< 1 and no growth", lagSecs < 1 && growth <= bytesPerSec*0.1)
	r.ratio["small_lag_growth_bytes"] = growth
	for _, s := range samples {
		r.series("smalllag", s.at, s.lag/1024)
	}
	r.write(t)
}

// rssWatch samples a process's resident set every 20 ms until stopped and
// returns the largest sample.
func rssWatch(pid int) (stop func() int64) {
	done, out := make(chan struct{}), make(chan int64)
	go func() {
		var top int64
		for {
			_, now := procMem(pid)
			top = max(top, now)
			select {
			case <-done:
				out <- top
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return func() int64 { close(done); return <-out }
}

// TestBenchMemory measures replink's peak RSS while ingesting a 1 GB
// binlog, then while serving it to 1, 5 and 20 TLS slaves at once.
func TestBenchMemory(t *testing.T) {
	txns := envInt("BENCH_GB_TXNS", 720)
	perSlave := int64(envInt("BENCH_MEM_READ_MB", 300)) << 20
	p, m := newMaster(t, "max_allowed_packet=64M")
	total := largeWorkload(t, m, txns, 1000)
	file, end := m.MasterStatus()
	ReplinkBinary(t)
	data := t.TempDir()

	settle()
	b := startBench(t, p, m, "VERIFY_IDENTITY", "transaction", data)
	t0 := time.Now()
	waitFile(t, data, file, end, 10*time.Minute)
	ingestWall := time.Since(t0)
	ingestPeak, _ := procMem(b.pid())
	b.stop(t, true)

	r := newReport("memory", fmt.Sprintf("Memory: replink's peak RSS, ingesting %d MB (TLS, sync=transaction) and serving it to TLS slaves", total/1_000_000))
	r.doc["workload"] = map[string]any{"transactions": txns, "rows": 1000, "bytes": total}
	r.printf("%-40s %10s\n", "phase", "peak RSS")
	r.printf("%-40s %9.1fM\n", fmt.Sprintf("ingest of %d MB (%.1f s)", total/1_000_000, ingestWall.Seconds()), float64(ingestPeak)/(1<<20))
	r.point("memory", fmt.Sprintf("ingest %d MB", total/1_000_000), float64(ingestPeak)/(1<<20))
	peaks := map[int]int64{}
	var startPeak int64
	for _, n := range []int{1, 5, 20} {
		settle()
		b := startBench(t, p, m, "VERIFY_IDENTITY", "transaction", data)
		b.waitListening(t)
		waitCaughtUpBench(t, b, m, time.Minute)
		idle, _ := procMem(b.pid())
		watch := rssWatch(b.pid())
		var readers []*benchReader
		for i := 0; i < n; i++ {
			readers = append(readers, startReader(t, p, b.RelayPort, "slave1", uint32(300+i), mysql.Position{Name: "mariadb-bin.000001", Pos: 4}))
		}
		deadline := time.Now().Add(time.Duration(envInt("BENCH_MEM_SECONDS", 30)) * time.Second)
		var read int64
		for time.Now().Before(deadline) {
			read = 0
			done := true
			for _, rd := range readers {
				got := rd.bytes.Load()
				read += got
				done = done && got >= min(perSlave, total-4096)
			}
			if done {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		top := watch()
		peak, _ := procMem(b.pid())
		for _, rd := range readers {
			rd.syncer.Close()
			if err := rd.Err(); err != nil && !strings.Contains(err.Error(), "closed") {
				t.Fatalf("slave reader: %v", err)
			}
		}
		b.stop(t, true)
		peaks[n], startPeak = top, max(startPeak, idle)
		r.printf("%-40s %9.1fM  (%d MB sent in all; peak since start-up %.1fM)\n", fmt.Sprintf("serving %d slave(s) at once", n),
			float64(top)/(1<<20), read>>20, float64(peak)/(1<<20))
		r.point("memory", fmt.Sprintf("%d slave(s)", n), float64(top)/(1<<20))
	}
	r.printf("%-40s %9.1fM\n", "start-up on the 1 GB relay log (recovery)", float64(startPeak)/(1<<20))
	worst := max(ingestPeak, startPeak, peaks[1], peaks[5], peaks[20])
	r.goal("peak_rss_mib", "largest peak RSS (MiB)", float64(worst)/(1<<20), "<= 64", worst <= 64<<20)
	per := float64(peaks[20]-peaks[1]) / 19
	r.ratio["rss_per_extra_slave_kib"] = per / 1024
	r.printf("%-58s %7.0f KiB\n", "RSS added per slave while serving, 1 → 20 slaves", per/1024)
	r.doc["peak_rss_bytes"] = map[string]int64{"ingest": ingestPeak, "start_up": startPeak, "slaves_1": peaks[1], "slaves_5": peaks[5], "slaves_20": peaks[20]}
	r.write(t)
}
