package test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

func repoRoot() string {
	_, here, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(here))
}

type grafanaPanel struct {
	Type        string `json:"type"`
	Title       string `json:"title"`
	Description string `json:"description"`
	FieldConfig struct {
		Defaults struct {
			Unit string `json:"unit"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

// dashboardExprs reads every query of the dashboards and checks the
// panels carry a title, a description and a unit.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(repoRoot(), "dashboards", "*.json"))
	if len(files) == 0 {
		t.Fatal("no dashboards")
	}
	var exprs []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			Panels     []grafanaPanel `json:"panels"`
			Templating struct {
				List []struct {
					Name string `json:"name"`
				} `json:"list"`
			} `json:"templating"`
		}
		if err := json.Unmarshal(data, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		vars := map[string]bool{}
		for _, v := range d.Templating.List {
			vars[v.Name] = true
		}
		for _, v := range []string{"datasource", "job", "instance"} {
			if !vars[v] {
				t.Errorf("%s: no $%s variable", f, v)
			}
		}
		for _, p := range d.Panels {
			if p.Type == "row" {
				continue
			}
			if p.Title == "" || p.Description == "" || p.FieldConfig.Defaults.Unit == "" {
				t.Errorf("%s: panel %q lacks a title, description or unit", f, p.Title)
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s: panel %q has no query", f, p.Title)
			}
			for _, tg := range p.Targets {
				if !strings.Contains(tg.Expr, `job=~"$job"`) || !strings.Contains(tg.Expr, `instance=~"$instance"`) {
					t.Errorf("%s: panel %q query does not filter by $job and $instance: %s", f, p.Title, tg.Expr)
				}
				if strings.Contains(tg.Expr, "rate(") && !strings.Contains(tg.Expr, "$__rate_interval") && !strings.Contains(tg.Expr, "[1h]") {
					t.Errorf("%s: panel %q rate without $__rate_interval: %s", f, p.Title, tg.Expr)
				}
				exprs = append(exprs, tg.Expr)
			}
		}
	}
	return exprs
}

// TestDashboardQueriesParse runs every dashboard query through promtool.
func TestDashboardQueriesParse(t *testing.T) {
	exprs := dashboardExprs(t)
	var b strings.Builder
	b.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	r := strings.NewReplacer("$__rate_interval", "5m", "$job", "replink", "$instance", ".+")
	for i, e := range exprs {
		q, _ := json.Marshal(r.Replace(e))
		fmt.Fprintf(&b, "      - record: dashboard:q%d\n        expr: %s\n", i, q)
	}
	f := filepath.Join(t.TempDir(), "dashboard-queries.yml")
	os.WriteFile(f, []byte(b.String()), 0o644)
	out, err := exec.Command("promtool", "check", "rules", f).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules on the dashboard queries: %v\n%s", err, out)
	}
	t.Logf("%d dashboard queries parse", len(exprs))
}

var metricName = regexp.MustCompile(`replink_[a-z0-9_]+`)

// TestDashboardsAndAlertsUseExportedMetrics scrapes a running replink
// with a slave attached and checks that every replink_* metric the
// dashboards and alert rules use is one it exports.
func TestDashboardsAndAlertsUseExportedMetrics(t *testing.T) {
	used := map[string][]string{}
	for _, e := range dashboardExprs(t) {
		for _, n := range metricName.FindAllString(e, -1) {
			used[n] = append(used[n], "dashboard")
		}
	}
	rules, err := os.ReadFile(filepath.Join(repoRoot(), "dashboards", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	// An expr is its line and, for a block (expr: |-), the lines indented
	// deeper than it.
	exprIndent := -1
	for _, line := range strings.Split(string(rules), "\n") {
		indent := len(line) - len(strings.TrimLeft(line, " "))
		switch {
		case strings.HasPrefix(strings.TrimSpace(line), "expr:"):
			exprIndent = indent
		case exprIndent >= 0 && strings.TrimSpace(line) != "" && indent > exprIndent:
		default:
			exprIndent = -1
			continue
		}
		for _, n := range metricName.FindAllString(line, -1) {
			used[n] = append(used[n], "alerts.yml")
		}
	}

	stack := StartProcessStack(t)
	proc, metricsPort := stack.Proc, stack.MetricsPort

	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	exported := map[string]bool{}
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "replink_") {
			exported[metricName.FindString(line)] = true
		}
	}
	var missing []string
	for n, where := range used {
		if !exported[n] {
			missing = append(missing, n+" (used in "+strings.Join(where, ", ")+")")
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Fatalf("dashboards or alerts use metrics replink does not export:\n%s", strings.Join(missing, "\n"))
	}
	t.Logf("%d metric names used by dashboards and alerts, all exported", len(used))
	proc.Signal(syscall.SIGTERM)
	proc.Wait(20 * time.Second)
}
