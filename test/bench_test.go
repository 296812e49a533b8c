//go:build bench

package test

// The end-to-end benchmarks (`make bench`, not part of make test). They
// start their own master with the harness, generate the workload, run
// each reader several times interleaved, and report medians and ratios
// measured in the same run, with JSON under bench/out/.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// procCPU is a process's user+system CPU seconds.
func procCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

// procHWM is a process's peak resident set (VmHWM) in bytes.
func procHWM(pid int) int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			kb, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

type sample struct {
	Wall, ReaderCPU, MasterCPU float64
	PeakRSS                    int64
}

type result struct {
	Name      string    `json:"name"`
	Bytes     int64     `json:"bytes"`
	WallS     []float64 `json:"wall_s"`
	Median    float64   `json:"median_wall_s"`
	MBps      float64   `json:"mb_per_s"`
	ReaderCPU float64   `json:"median_reader_cpu_s"`
	MasterCPU float64   `json:"median_master_cpu_s"`
	PeakRSS   int64     `json:"max_peak_rss_bytes,omitempty"`
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// masterPID finds the mariadbd of s.
func (s *Server) pid() int { return s.cmd.Process.Pid }

func TestBenchIngest(t *testing.T) {
	txns, rows := envInt("BENCH_TXNS", 180), envInt("BENCH_ROWS", 1000)
	runs := envInt("BENCH_RUNS", 5)
	p, m := newMaster(t, "max_allowed_packet=64M")
	m.Exec("CREATE DATABASE app", "CREATE TABLE app.t (id INT PRIMARY KEY, a VARCHAR(200), b VARCHAR(200), c BLOB)")
	start := time.Now()
	for i := 0; i < txns; i++ {
		m.Exec(fmt.Sprintf("INSERT INTO app.t SELECT seq + %d, REPEAT('a', 200), REPEAT('b', 200), REPEAT(MD5(seq), 32) FROM app.seq_1_to_%d", i*rows, rows))
	}
	file, end := m.MasterStatus()
	files := m.Query("SHOW BINARY LOGS")
	var total int64
	for _, f := range files {
		n, _ := strconv.ParseInt(f[1], 10, 64)
		total += n
	}
	t.Logf("workload: %d transactions of %d rows (1 KB blob): %d bytes of binlog in %d files, made in %s", txns, rows, total, len(files), time.Since(start).Round(time.Second))

	ReplinkBinary(t) // built before anything is timed
	readers := map[string]func(t *testing.T) sample{
		"replink TLS VERIFY_IDENTITY, sync=transaction": func(t *testing.T) sample { return benchReplink(t, p, m, "VERIFY_IDENTITY", "transaction", file, end) },
		"replink TLS VERIFY_IDENTITY, sync=none":        func(t *testing.T) sample { return benchReplink(t, p, m, "VERIFY_IDENTITY", "none", file, end) },
		"replink plaintext, sync=transaction":           func(t *testing.T) sample { return benchReplink(t, p, m, "DISABLED", "transaction", file, end) },
		"mariadb-binlog --raw TLS (verified)":           func(t *testing.T) sample { return benchMariadbBinlog(t, p, m, true) },
		"mariadb-binlog --raw plaintext":                func(t *testing.T) sample { return benchMariadbBinlog(t, p, m, false) },
	}
	names := make([]string, 0, len(readers))
	for n := range readers {
		names = append(names, n)
	}
	sort.Strings(names)
	samples := map[string][]sample{}
	for r := 0; r < runs; r++ { // interleaved: every reader once per round
		for _, n := range names {
			samples[n] = append(samples[n], readers[n](t))
		}
	}
	var results []result
	byName := map[string]result{}
	for _, n := range names {
		res := result{Name: n, Bytes: total}
		var rc, mc []float64
		for _, s := range samples[n] {
			res.WallS = append(res.WallS, s.Wall)
			rc, mc = append(rc, s.ReaderCPU), append(mc, s.MasterCPU)
			res.PeakRSS = max(res.PeakRSS, s.PeakRSS)
		}
		res.Median, res.ReaderCPU, res.MasterCPU = median(res.WallS), median(rc), median(mc)
		res.MBps = float64(total) / 1e6 / res.Median
		results = append(results, res)
		byName[n] = res
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\ningest of %d MB (%d runs each, interleaved; medians)\n", total/1_000_000, runs)
	fmt.Fprintf(&b, "%-48s %8s %9s %10s %10s %10s\n", "reader", "wall s", "MB/s", "reader cpu", "master cpu", "peak RSS")
	for _, r := range results {
		fmt.Fprintf(&b, "%-48s %8.3f %9.0f %10.3f %10.3f %9.1fM\n", r.Name, r.Median, r.MBps, r.ReaderCPU, r.MasterCPU, float64(r.PeakRSS)/(1<<20))
	}
	rt, rp := byName["replink TLS VERIFY_IDENTITY, sync=transaction"], byName["replink plaintext, sync=transaction"]
	mt, mp := byName["mariadb-binlog --raw TLS (verified)"], byName["mariadb-binlog --raw plaintext"]
	ratios := map[string]float64{
		"replink_tls_over_mariadb_binlog_tls_throughput": mt.Median / rt.Median,
		"replink_tls_over_plain_wall":                    rt.Median / rp.Median,
		"mariadb_binlog_tls_over_plain_wall":             mt.Median / mp.Median,
	}
	fmt.Fprintf(&b, "replink TLS throughput / mariadb-binlog TLS: %.2fx (goal >= 1.2)\n", ratios["replink_tls_over_mariadb_binlog_tls_throughput"])
	fmt.Fprintf(&b, "replink TLS/plaintext wall: %.2f (goal <= 1.10); mariadb-binlog TLS/plaintext wall: %.2f\n", ratios["replink_tls_over_plain_wall"], ratios["mariadb_binlog_tls_over_plain_wall"])
	t.Log(b.String())
	out := filepath.Join(repoRoot(), "bench", "out")
	os.MkdirAll(out, 0o755)
	host, _ := os.Hostname()
	doc := map[string]any{"date": time.Now().UTC().Format(time.RFC3339), "host": host, "workload": map[string]int{"transactions": txns, "rows": rows},
		"results": results, "ratios": ratios}
	j, _ := json.MarshalIndent(doc, "", "  ")
	os.WriteFile(filepath.Join(out, "ingest.json"), j, 0o644)
	os.WriteFile(filepath.Join(out, "ingest.txt"), []byte(b.String()), 0o644)
}

// benchReplink runs the replink binary from an empty relay log until it
// holds the master's binlog up to file:end.
func benchReplink(t *testing.T, p *PKI, m *Server, mode, sync, file string, end uint32) sample {
	t.Helper()
	data := t.TempDir()
	conf := WriteReplinkConfig(t, p, m.Port, FreePort(t), FreePort(t), data)
	b, _ := os.ReadFile(conf)
	c := strings.Replace(string(b), `ssl-mode = "VERIFY_IDENTITY"`, fmt.Sprintf("ssl-mode = %q\nstart = \"file:mariadb-bin.000001:4\"", mode), 1)
	c = strings.Replace(c, `level = "debug"`, `level = "warn"`, 1)
	c = strings.Replace(c, `sync = "transaction"`, fmt.Sprintf("sync = %q", sync), 1)
	os.WriteFile(conf, []byte(c), 0o644)
	m0 := procCPU(m.pid())
	t0 := time.Now()
	proc := StartProcess(t, conf, filepath.Join(t.TempDir(), "replink.log"))
	target := filepath.Join(data, file)
	for {
		if st, err := os.Stat(target); err == nil && st.Size() >= int64(end) {
			break
		}
		if time.Since(t0) > 5*time.Minute {
			t.Fatal("replink did not finish in 5 minutes")
		}
		time.Sleep(2 * time.Millisecond)
	}
	wall := time.Since(t0).Seconds()
	s := sample{Wall: wall, ReaderCPU: procCPU(proc.cmd.Process.Pid), MasterCPU: procCPU(m.pid()) - m0, PeakRSS: procHWM(proc.cmd.Process.Pid)}
	proc.Signal(syscall.SIGTERM)
	proc.Wait(20 * time.Second)
	return s
}

// benchMariadbBinlog runs the C client reading every binlog raw.
func benchMariadbBinlog(t *testing.T, p *PKI, m *Server, useTLS bool) sample {
	t.Helper()
	dir := t.TempDir()
	args := []string{"--no-defaults", "--read-from-remote-server", "--raw", "--to-last-log", "--host=127.0.0.1",
		fmt.Sprintf("--port=%d", m.Port), "--user=repl", "--password=replpass", "--result-file=" + dir + "/", "mariadb-bin.000001"}
	if useTLS {
		args = append(args, "--ssl", "--ssl-ca="+p.CAFile, "--ssl-verify-server-cert")
	} else {
		args = append(args, "--skip-ssl")
	}
	m0 := procCPU(m.pid())
	cmd := exec.Command("mariadb-binlog", args...)
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	wall := time.Since(t0).Seconds()
	if err != nil {
		t.Fatalf("mariadb-binlog: %v %s", err, out)
	}
	u := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := float64(u.Utime.Sec+u.Stime.Sec) + float64(u.Utime.Usec+u.Stime.Usec)/1e6
	return sample{Wall: wall, ReaderCPU: cpu, MasterCPU: procCPU(m.pid()) - m0, PeakRSS: u.Maxrss * 1024}
}
