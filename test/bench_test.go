//go:build bench

package test

// The end-to-end benchmarks (`make bench`, not part of make test). Each
// starts its own master (and slaves) with the harness, generates its
// workload, runs every contender several times interleaved, and reports
// medians and ratios measured in the same run. Each writes
// bench/out/<name>.{json,txt} and plot-<panel>.dat; `make bench` then
// prints the tables and draws bench/out/bench.png (bench/plot.gp).

import (
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
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

// procMem is a process's peak (VmHWM) and current (VmRSS) resident set in
// bytes.
func procMem(pid int) (peak, now int64) {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmHWM:":
			peak = kb * 1024
		case "VmRSS:":
			now = kb * 1024
		}
	}
	return peak, now
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// percentile is the nearest-rank q-quantile (0 < q <= 1) of xs.
func percentile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func (s *Server) pid() int { return s.cmd.Process.Pid }

// settle writes out dirty pages before a timed run, so no run pays for
// the writeback of the one before it.
func settle() { syscall.Sync() }

// report collects one benchmark's table, figures and plot data, and
// writes them under bench/out/ as <name>.txt, <name>.json and <name>.dat.
type report struct {
	name  string
	text  strings.Builder
	doc   map[string]any
	plots map[string]*strings.Builder
	ratio map[string]float64
}

func newReport(name, title string) *report {
	r := &report{name: name, doc: map[string]any{}, ratio: map[string]float64{}, plots: map[string]*strings.Builder{}}
	host, _ := os.Hostname()
	r.doc["date"] = time.Now().UTC().Format(time.RFC3339)
	r.doc["host"] = host
	r.doc["cpus"] = cpuCount()
	fmt.Fprintf(&r.text, "\n== %s\n", title)
	return r
}

func cpuCount() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "processor\t:")
}

func (r *report) printf(format string, args ...any) { fmt.Fprintf(&r.text, format, args...) }

// point adds a bar to one panel of the plot (bench/plot.gp draws
// bench/out/plot-<panel>.dat, one "label" value line per bar).
func (r *report) point(panel, label string, v float64) {
	if r.plots[panel] == nil {
		r.plots[panel] = &strings.Builder{}
	}
	fmt.Fprintf(r.plots[panel], "%q %.6f\n", label, v)
}

// series adds an x, y point to a line panel of the plot.
func (r *report) series(panel string, x, y float64) {
	if r.plots[panel] == nil {
		r.plots[panel] = &strings.Builder{}
	}
	fmt.Fprintf(r.plots[panel], "%.3f %.6f\n", x, y)
}

// goal records a ratio and prints it with its goal.
func (r *report) goal(key, what string, v float64, goal string, met bool) {
	r.ratio[key] = v
	verdict := "met"
	if !met {
		verdict = "MISSED"
	}
	r.printf("%-58s %7.3f  goal %s: %s\n", what, v, goal, verdict)
}

func (r *report) write(t *testing.T) {
	t.Helper()
	r.doc["ratios"] = r.ratio
	out := filepath.Join(repoRoot(), "bench", "out")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	j, _ := json.MarshalIndent(r.doc, "", "  ")
	files := map[string][]byte{r.name + ".json": j, r.name + ".txt": []byte(r.text.String())}
	for panel, b := range r.plots {
		files["plot-"+panel+".dat"] = []byte(b.String())
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(out, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Log(r.text.String())
}

// largeWorkload writes txns transactions of rows rows each (INT key, two
// VARCHAR(200), a 1 KB blob) and returns the binlog's total size.
func largeWorkload(t *testing.T, m *Server, txns, rows int) int64 {
	t.Helper()
	m.Exec("CREATE DATABASE IF NOT EXISTS app", "CREATE TABLE app.t (id INT PRIMARY KEY, a VARCHAR(200), b VARCHAR(200), c BLOB)")
	start := time.Now()
	for i := 0; i < txns; i++ {
		m.Exec(fmt.Sprintf("INSERT INTO app.t SELECT seq + %d, REPEAT('a', 200), REPEAT('b', 200), REPEAT(MD5(seq), 32) FROM app.seq_1_to_%d", i*rows, rows))
	}
	var total int64
	files := m.Query("SHOW BINARY LOGS")
	for _, f := range files {
		n, _ := strconv.ParseInt(f[1], 10, 64)
		total += n
	}
	t.Logf("workload: %d transactions of %d rows: %d bytes of binlog in %d files, made in %s", txns, rows, total, len(files), time.Since(start).Round(time.Second))
	return total
}

var benchIDs atomic.Uint32

// benchProc is a replink process started for a benchmark.
type benchProc struct {
	*Process
	Data        string
	RelayPort   int
	MetricsPort int
}

// startBench starts the replink binary against m with an empty relay log
// (or data, when not empty) in the given SSL mode and sync policy, reading
// from the master's first binlog.
func startBench(t *testing.T, p *PKI, m *Server, mode, sync, data string) *benchProc {
	t.Helper()
	return startBenchAtRest(t, p, m, mode, sync, data, "")
}

// startBenchAtRest is startBench with the relay log encrypted at rest
// with keyFile's keys (none when empty).
func startBenchAtRest(t *testing.T, p *PKI, m *Server, mode, sync, data, keyFile string) *benchProc {
	t.Helper()
	if data == "" {
		data = t.TempDir()
	}
	b := &benchProc{Data: data, RelayPort: FreePort(t), MetricsPort: FreePort(t)}
	// Each replink registers with its own server-id: a master drops one
	// of two dumps with the same id.
	conf := WriteReplinkConfigWith(t, p, m.Port, b.RelayPort, b.MetricsPort, data, ConfigOptions{
		SSLMode: mode, Sync: sync, Start: "file:mariadb-bin.000001:4", ServerID: 5000 + benchIDs.Add(1), LogLevel: "warn", KeyFile: keyFile})
	b.Process = StartProcess(t, conf, filepath.Join(t.TempDir(), "replink.log"))
	return b
}

// waitListening waits until the relay accepts connections (the time is
// part of what is measured: slaves cannot connect earlier).
func (b *benchProc) waitListening(t *testing.T) {
	t.Helper()
	waitUntil(t, 20*time.Second, func() bool { return dialOK(b.RelayPort) })
}

func (b *benchProc) pid() int { return b.cmd.Process.Pid }

// stop stops replink with SIGTERM and removes its relay log.
func (b *benchProc) stop(t *testing.T, keep bool) {
	t.Helper()
	b.Signal(syscall.SIGTERM)
	if !b.Wait(30 * time.Second) {
		t.Fatal("replink did not exit after SIGTERM")
	}
	if !keep {
		os.RemoveAll(b.Data)
	}
}

// durable reads replink's durable position from /status.
func (b *benchProc) durable(t *testing.T) (string, uint32) {
	t.Helper()
	var doc struct {
		Relay struct {
			Durable string `json:"durable"`
		} `json:"relay"`
	}
	if err := getJSON(fmt.Sprintf("http://127.0.0.1:%d/status", b.MetricsPort), &doc); err != nil {
		return "", 0
	}
	i := strings.LastIndexByte(doc.Relay.Durable, ':')
	if i < 0 {
		return "", 0
	}
	n, _ := strconv.ParseUint(doc.Relay.Durable[i+1:], 10, 32)
	return doc.Relay.Durable[:i], uint32(n)
}

// waitFile waits until name in dir has reached size bytes.
func waitFile(t *testing.T, dir, name string, size uint32, limit time.Duration) {
	t.Helper()
	t0 := time.Now()
	for {
		if st, err := os.Stat(filepath.Join(dir, name)); err == nil && st.Size() >= int64(size) {
			return
		}
		if time.Since(t0) > limit {
			t.Fatalf("%s did not reach %d bytes in %s", name, size, limit)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// sample is one timed run.
type sample struct {
	Wall, ReaderCPU, MasterCPU, TunnelCPU float64
	PeakRSS                               int64
}

// contender is one way of doing the benchmarked job.
type contender struct {
	name string
	run  func(t *testing.T) sample
}

type result struct {
	Name      string    `json:"name"`
	WallS     []float64 `json:"wall_s"`
	Median    float64   `json:"median_wall_s"`
	MBps      float64   `json:"mb_per_s,omitempty"`
	ReaderCPU float64   `json:"median_reader_cpu_s"`
	MasterCPU float64   `json:"median_master_cpu_s"`
	TunnelCPU float64   `json:"median_tunnel_cpu_s,omitempty"`
	PeakRSS   int64     `json:"max_peak_rss_bytes,omitempty"`
}

// interleave runs every contender once per round, runs rounds, with the
// disk settled before each run, and returns medians by name.
func interleave(t *testing.T, runs int, cs []contender, bytes int64) (map[string]result, []result) {
	t.Helper()
	samples := map[string][]sample{}
	for r := 0; r < runs; r++ {
		for _, c := range cs {
			settle()
			samples[c.name] = append(samples[c.name], c.run(t))
		}
	}
	byName := map[string]result{}
	var list []result
	for _, c := range cs {
		res := result{Name: c.name}
		var rc, mc, tc []float64
		for _, s := range samples[c.name] {
			res.WallS = append(res.WallS, s.Wall)
			rc, mc, tc = append(rc, s.ReaderCPU), append(mc, s.MasterCPU), append(tc, s.TunnelCPU)
			res.PeakRSS = max(res.PeakRSS, s.PeakRSS)
		}
		res.Median, res.ReaderCPU, res.MasterCPU, res.TunnelCPU = median(res.WallS), median(rc), median(mc), median(tc)
		if bytes > 0 {
			res.MBps = float64(bytes) / 1e6 / res.Median
		}
		byName[c.name] = res
		list = append(list, res)
	}
	return byName, list
}

func TestBenchIngest(t *testing.T) {
	txns, rows := envInt("BENCH_TXNS", 180), envInt("BENCH_ROWS", 1000)
	runs := envInt("BENCH_RUNS", 5)
	p, m := newMaster(t, "max_allowed_packet=64M")
	total := largeWorkload(t, m, txns, rows)
	file, end := m.MasterStatus()
	ReplinkBinary(t) // built before anything is timed
	tunnel := startStunnel(t, p, m.Port)

	const (
		rTLS   = "replink TLS VERIFY_IDENTITY, sync=transaction"
		rNone  = "replink TLS VERIFY_IDENTITY, sync=none"
		rPlain = "replink plaintext, sync=transaction"
		rRest  = "replink TLS VERIFY_IDENTITY, sync=transaction, at rest"
		cTLS   = "mariadb-binlog --raw TLS (verified)"
		cPlain = "mariadb-binlog --raw plaintext"
		cTun   = "mariadb-binlog --raw via stunnel (verified)"
	)
	keyFile, _ := writeKeyFile(t)
	replinkRun := func(mode, sync string, atRest bool) func(t *testing.T) sample {
		return func(t *testing.T) sample {
			m0 := procCPU(m.pid())
			t0 := time.Now()
			k := ""
			if atRest {
				k = keyFile
			}
			b := startBenchAtRest(t, p, m, mode, sync, "", k)
			waitFile(t, b.Data, file, end, 5*time.Minute)
			s := sample{Wall: time.Since(t0).Seconds(), ReaderCPU: procCPU(b.pid()), MasterCPU: procCPU(m.pid()) - m0}
			s.PeakRSS, _ = procMem(b.pid())
			b.stop(t, false)
			return s
		}
	}
	cs := []contender{
		{rTLS, replinkRun("VERIFY_IDENTITY", "transaction", false)},
		{rNone, replinkRun("VERIFY_IDENTITY", "none", false)},
		{rPlain, replinkRun("DISABLED", "transaction", false)},
		{rRest, replinkRun("VERIFY_IDENTITY", "transaction", true)},
		{cTLS, func(t *testing.T) sample { return benchMariadbBinlog(t, p, m, m.Port, true, nil) }},
		{cPlain, func(t *testing.T) sample { return benchMariadbBinlog(t, p, m, m.Port, false, nil) }},
		{cTun, func(t *testing.T) sample { return benchMariadbBinlog(t, p, m, tunnel.port, false, tunnel) }},
	}
	byName, list := interleave(t, runs, cs, total)

	r := newReport("ingest", fmt.Sprintf("Ingest: %d MB of ROW binlog (%d transactions of %d rows), %d runs each, interleaved; medians", total/1_000_000, txns, rows, runs))
	r.doc["workload"] = map[string]any{"transactions": txns, "rows": rows, "bytes": total}
	r.doc["results"] = list
	r.printf("%-46s %7s %6s %10s %10s %10s %8s\n", "reader", "wall s", "MB/s", "reader cpu", "master cpu", "tunnel cpu", "peak RSS")
	for _, x := range list {
		r.printf("%-46s %7.3f %6.0f %10.3f %10.3f %10.3f %7.1fM\n", x.Name, x.Median, x.MBps, x.ReaderCPU, x.MasterCPU, x.TunnelCPU, float64(x.PeakRSS)/(1<<20))
		r.point("ingest", x.Name, x.MBps)
	}
	over := byName[cTLS].Median / byName[rTLS].Median
	r.goal("replink_tls_over_mariadb_binlog_tls_throughput", "replink TLS durable / mariadb-binlog TLS (throughput)", over, ">= 1.2", over >= 1.2)
	r.ratio["replink_tls_none_over_mariadb_binlog_tls_throughput"] = byName[cTLS].Median / byName[rNone].Median
	r.printf("%-58s %7.3f\n", "replink TLS sync=none / mariadb-binlog TLS (throughput)", r.ratio["replink_tls_none_over_mariadb_binlog_tls_throughput"])
	tp := byName[rTLS].Median / byName[rPlain].Median
	r.goal("replink_tls_over_plain_wall", "replink TLS / plaintext (wall)", tp, "<= 1.10", tp <= 1.10)
	rw := byName[rRest].Median / byName[rTLS].Median
	r.goal("replink_at_rest_over_without_wall", "replink encrypted at rest / without (wall)", rw, "<= 1.10", rw <= 1.10)
	rc := byName[rRest].ReaderCPU / byName[rTLS].ReaderCPU
	r.goal("replink_at_rest_over_without_cpu", "replink encrypted at rest / without (replink CPU)", rc, "<= 1.15", rc <= 1.15)
	r.ratio["mariadb_binlog_tls_over_plain_wall"] = byName[cTLS].Median / byName[cPlain].Median
	r.printf("%-58s %7.3f  (baseline 1.24)\n", "mariadb-binlog TLS / plaintext (wall)", r.ratio["mariadb_binlog_tls_over_plain_wall"])
	r.ratio["replink_tls_over_stunnel_throughput"] = byName[cTun].Median / byName[rTLS].Median
	r.printf("%-58s %7.3f\n", "replink TLS durable / stunnel+mariadb-binlog (throughput)", r.ratio["replink_tls_over_stunnel_throughput"])
	r.write(t)
}

// benchMariadbBinlog runs the C client reading every binlog raw from port
// (the master, or a tunnel to it), writing the files to a temp dir.
func benchMariadbBinlog(t *testing.T, p *PKI, m *Server, port int, useTLS bool, tun *stunnel) sample {
	t.Helper()
	dir := t.TempDir()
	defer os.RemoveAll(dir)
	args := []string{"--no-defaults", "--read-from-remote-server", "--raw", "--to-last-log", "--host=127.0.0.1",
		fmt.Sprintf("--port=%d", port), "--user=repl", "--password=replpass", "--result-file=" + dir + "/", "mariadb-bin.000001"}
	if useTLS {
		args = append(args, "--ssl", "--ssl-ca="+p.CAFile, "--ssl-verify-server-cert")
	} else {
		args = append(args, "--skip-ssl")
	}
	m0, t0cpu := procCPU(m.pid()), tun.cpu()
	c, err := timeClient(exec.Command("mariadb-binlog", args...))
	if err != nil {
		t.Fatal(err)
	}
	return sample{Wall: c.wall, ReaderCPU: c.cpu, MasterCPU: procCPU(m.pid()) - m0, TunnelCPU: tun.cpu() - t0cpu, PeakRSS: c.peak}
}

// clientRun is one timed run of a client process.
type clientRun struct {
	wall, cpu float64 // seconds
	peak      int64   // peak RSS, bytes
}

// timeClient runs cmd to its end and returns its wall time, its CPU
// (rusage) and its peak RSS; an error carries what it printed.
func timeClient(cmd *exec.Cmd) (clientRun, error) {
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return clientRun{}, fmt.Errorf("%s: %v", cmd.Path, err)
	}
	// The peak RSS is sampled from /proc while it runs: rusage's maxrss
	// of an exec'd child starts from this (large) test process's.
	var peak atomic.Int64
	done := make(chan struct{})
	go func() {
		for {
			if hwm, _ := procMem(cmd.Process.Pid); hwm > peak.Load() {
				peak.Store(hwm)
			}
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	err := cmd.Wait()
	wall := time.Since(start).Seconds()
	close(done)
	if err != nil {
		return clientRun{}, fmt.Errorf("%s: %v %s", filepath.Base(cmd.Path), err, out.String())
	}
	u := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := float64(u.Utime.Sec+u.Stime.Sec) + float64(u.Utime.Usec+u.Stime.Usec)/1e6
	return clientRun{wall: wall, cpu: cpu, peak: peak.Load()}, nil
}

// stunnel is the classic tunnel: a client-side stunnel takes the
// reader's plaintext and carries it over verified TLS to a server-side
// stunnel next to the master, which forwards plaintext to mariadbd.
type stunnel struct {
	port  int // plaintext entry on the reader's side
	procs []*exec.Cmd
}

func startStunnel(t *testing.T, p *PKI, masterPort int) *stunnel {
	t.Helper()
	if _, err := exec.LookPath("stunnel4"); err != nil {
		t.Fatal("stunnel4 is not installed (scripts/setup.sh --bench installs it)")
	}
	dir := t.TempDir()
	tlsPort, plainPort := FreePort(t), FreePort(t)
	confs := map[string]string{
		"server.conf": fmt.Sprintf("foreground = yes\npid =\noutput = %s\n[mysql]\naccept = 127.0.0.1:%d\nconnect = 127.0.0.1:%d\ncert = %s\nkey = %s\n",
			filepath.Join(dir, "server.log"), tlsPort, masterPort, p.ServerCert, p.ServerKey),
		"client.conf": fmt.Sprintf("foreground = yes\npid =\noutput = %s\n[mysql]\nclient = yes\naccept = 127.0.0.1:%d\nconnect = 127.0.0.1:%d\nCAfile = %s\nverifyChain = yes\ncheckIP = 127.0.0.1\n",
			filepath.Join(dir, "client.log"), plainPort, tlsPort, p.CAFile),
	}
	s := &stunnel{port: plainPort}
	for name, c := range confs {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("stunnel4", f) // its start-up banner goes nowhere, the rest to output
		if err := cmd.Start(); err != nil {
			t.Fatalf("stunnel4 %s: %v", name, err)
		}
		s.procs = append(s.procs, cmd)
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	}
	for _, port := range []int{tlsPort, plainPort} {
		waitUntil(t, 10*time.Second, func() bool { return dialOK(port) })
	}
	return s
}

// cpu is both stunnels' CPU seconds (0 for no tunnel).
func (s *stunnel) cpu() float64 {
	if s == nil {
		return 0
	}
	var c float64
	for _, p := range s.procs {
		c += procCPU(p.Process.Pid)
	}
	return c
}

func getJSON(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func dialOK(port int) bool {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
