package test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Prometheus is a real Prometheus server (Debian's `prometheus`, installed
// by scripts/setup.sh) started by a test: it scrapes replink and evaluates
// alert rules, and the test reads the outcome from its HTTP API.
type Prometheus struct {
	t    testing.TB
	Addr string // host:port of its web/API listener
	cmd  *exec.Cmd
	done chan struct{}
	logs *lockedBuffer
	http *http.Client
}

// PrometheusOptions shape the server's configuration.
type PrometheusOptions struct {
	Job       string   // scrape job name
	Targets   []string // host:port, scraped at /metrics
	RuleFiles []string
	// Interval is both the scrape and the evaluation interval (1s when zero).
	Interval time.Duration
}

// StartPrometheus writes a configuration in a temp dir, starts Prometheus
// on a free loopback port with its TSDB in a temp dir, and waits until it
// is ready. It is killed when the test ends.
func StartPrometheus(t testing.TB, o PrometheusOptions) *Prometheus {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatalf("prometheus not found (%v): run scripts/setup.sh (make test does); Debian's prometheus package provides it", err)
	}
	if o.Interval == 0 {
		o.Interval = time.Second
	}
	dir := t.TempDir()
	var targets, rules []string
	for _, tg := range o.Targets {
		targets = append(targets, strconv.Quote(tg))
	}
	for _, r := range o.RuleFiles {
		rules = append(rules, "  - "+strconv.Quote(r))
	}
	// scrape_timeout may not exceed scrape_interval.
	conf := fmt.Sprintf(`global:
  scrape_interval: %s
  scrape_timeout: %s
  evaluation_interval: %s
rule_files:
%s
scrape_configs:
  - job_name: %q
    static_configs:
      - targets: [%s]
`, promDuration(o.Interval), promDuration(o.Interval*9/10), promDuration(o.Interval), strings.Join(rules, "\n"), o.Job, strings.Join(targets, ", "))
	confFile := filepath.Join(dir, "prometheus.yml")
	writeFile(t, confFile, []byte(conf))

	p := &Prometheus{t: t, Addr: fmt.Sprintf("127.0.0.1:%d", FreePort(t)), done: make(chan struct{}), logs: &lockedBuffer{},
		http: &http.Client{Timeout: 5 * time.Second}}
	p.cmd = exec.Command(bin, "--config.file="+confFile, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+p.Addr, "--log.level=info")
	p.cmd.Dir = dir // its default console paths are relative
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			t.Errorf("prometheus (pid %d) did not exit in 10s after SIGKILL", p.cmd.Process.Pid)
		}
		if t.Failed() {
			t.Logf("prometheus configuration:\n%s\nprometheus log:\n%s", conf, p.logs.String())
		}
	})

	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-p.done:
			t.Fatalf("prometheus exited at start-up: %v\n%s", p.cmd.ProcessState, p.logs.String())
		default:
		}
		if resp, err := p.http.Get("http://" + p.Addr + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready on %s after 20s\n%s", p.Addr, p.logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// promDuration writes d in Prometheus' duration syntax (whole milliseconds).
func promDuration(d time.Duration) string { return fmt.Sprintf("%dms", d.Milliseconds()) }

// PromAlert is one active alert as /api/v1/alerts reports it.
type PromAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	State       string            `json:"state"` // pending | firing
	ActiveAt    time.Time         `json:"activeAt"`
	Value       string            `json:"value"`
}

func (a PromAlert) String() string {
	return fmt.Sprintf("%s%v %s since %s", a.Labels["alertname"], a.Labels, a.State, a.ActiveAt.Format("15:04:05.000"))
}

// PromSample is one element of an instant vector.
type PromSample struct {
	Metric map[string]string
	Value  float64
}

// api GETs path from the API and decodes its data member into v.
func (p *Prometheus) api(path string, v any) error {
	resp, err := p.http.Get("http://" + p.Addr + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var env struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("GET %s: %s: %v: %.200s", path, resp.Status, err, body)
	}
	if env.Status != "success" {
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, env.Error)
	}
	return json.Unmarshal(env.Data, v)
}

// Alerts returns the pending and firing alerts.
func (p *Prometheus) Alerts() ([]PromAlert, error) {
	var d struct {
		Alerts []PromAlert `json:"alerts"`
	}
	err := p.api("/api/v1/alerts", &d)
	return d.Alerts, err
}

// Query evaluates an instant query that yields a vector.
func (p *Prometheus) Query(q string) ([]PromSample, error) {
	var d struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	}
	if err := p.api("/api/v1/query?query="+url.QueryEscape(q), &d); err != nil {
		return nil, err
	}
	if d.ResultType != "vector" {
		return nil, fmt.Errorf("query %q: result type %s, want vector", q, d.ResultType)
	}
	out := make([]PromSample, 0, len(d.Result))
	for _, r := range d.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("query %q: value %v: %v", q, r.Value[1], err)
		}
		out = append(out, PromSample{Metric: r.Metric, Value: v})
	}
	return out, nil
}

// WaitFor polls cond every 250ms until it holds, for at most d; on timeout
// the test fails with what, cond's last word and the active alerts.
func (p *Prometheus) WaitFor(d time.Duration, what string, cond func() (bool, string)) time.Duration {
	p.t.Helper()
	start := time.Now()
	var last string
	for {
		ok, why := cond()
		if ok {
			return time.Since(start)
		}
		last = why
		if time.Since(start) > d {
			alerts, err := p.Alerts()
			p.t.Fatalf("%s: not so after %s (last: %s); active alerts %v (%v)", what, d, last, alerts, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// forLine is a rule's `for:` line in an alert rules file.
var forLine = regexp.MustCompile(`^(\s*)for:\s*(\S+)\s*$`)

// ShortenAlertHolds copies an alert rules file to dst with every rule's
// `for:` duration replaced by hold, and nothing else changed, so that a
// test sees the shipped expressions, labels and annotations fire in
// seconds rather than minutes. It returns how many `for:` lines it
// rewrote and fails the test if the copy differs anywhere else.
func ShortenAlertHolds(t testing.TB, src, dst string, hold time.Duration) int {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	out := make([]string, len(lines))
	n := 0
	for i, l := range lines {
		if m := forLine.FindStringSubmatch(l); m != nil {
			out[i] = m[1] + "for: " + promDuration(hold)
			n++
			continue
		}
		out[i] = l
	}
	// A "for:" the line rewrite cannot see (flow style, {for: 2m}) would
	// keep its minutes and make the test wait for nothing.
	if c := strings.Count(string(data), "for:"); c != n {
		t.Fatalf("%s has %d \"for:\" but only %d are block-style rule hold lines: the rewrite would miss some", src, c, n)
	}
	writeFile(t, dst, []byte(strings.Join(out, "\n")))
	return n
}
