package grafana

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
)

// query is one Prometheus target of a panel, with the unit its values
// are shown in (the panel's, or an override's for this query).
type query struct {
	panel, panelType string
	refID, expr      string
	legend           string
	unit             string
}

func (q query) String() string { return fmt.Sprintf("panel %q query %s: %s", q.panel, q.refID, q.expr) }

// queries are every target of the dashboard's panels, rows' panels
// included; each must be a Prometheus query.
func queries(t *testing.T, d dashboard.Dashboard) []query {
	t.Helper()
	var panels []dashboard.Panel
	for _, p := range d.Panels {
		if p.Panel != nil {
			panels = append(panels, *p.Panel)
		}
		if p.RowPanel != nil {
			panels = append(panels, p.RowPanel.Panels...)
		}
	}
	var qs []query
	for _, p := range panels {
		title := deref(p.Title)
		for i, tg := range p.Targets {
			pq, ok := tg.(*prometheus.Dataquery)
			if !ok {
				t.Errorf("panel %q target %d is a %T, not a Prometheus query (give it \"datasource\": {\"type\": \"prometheus\"} so it is decoded strictly)", title, i, tg)
				continue
			}
			q := query{panel: title, panelType: p.Type, refID: deref(pq.RefId), expr: pq.Expr, legend: deref(pq.LegendFormat)}
			if p.FieldConfig != nil {
				q.unit = deref(p.FieldConfig.Defaults.Unit)
				for _, o := range p.FieldConfig.Overrides {
					if o.Matcher.Id != "byFrameRefID" || o.Matcher.Options != q.refID {
						continue
					}
					for _, prop := range o.Properties {
						if u, ok := prop.Value.(string); ok && prop.Id == "unit" {
							q.unit = u
						}
					}
				}
			}
			qs = append(qs, q)
		}
	}
	if len(qs) == 0 {
		t.Fatal("the dashboard has no queries")
	}
	return qs
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// aggregation is the start of a PromQL aggregation: its operator and what
// follows it (a by/without clause or the opening parenthesis).
var aggregation = regexp.MustCompile(`\b(sum|avg|min|max|count|group|stddev|stdvar|topk|bottomk|quantile|count_values|limitk|limit_ratio)\s*(by\b|without\b|\()`)

// matching is a binary operation's vector matching clause.
var matching = regexp.MustCompile(`\b(on|ignoring)\s*\(([^)]*)\)`)

// labelList parses the "(a, b)" at the start of s: the labels, and the
// length of the list.
func labelList(s string) ([]string, int) {
	open := strings.Index(s, "(")
	end := strings.Index(s, ")")
	if open < 0 || end < open || strings.TrimSpace(s[:open]) != "" {
		return nil, 0
	}
	var labels []string
	for _, l := range strings.Split(s[open+1:end], ",") {
		if l = strings.TrimSpace(l); l != "" {
			labels = append(labels, l)
		}
	}
	return labels, end + 1
}

// closing is the index just past the parenthesis that closes the one
// opened at s[open].
func closing(s string, open int) int {
	depth := 0
	for i := open; i < len(s); i++ {
		switch s[i] {
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return i + 1
			}
		}
	}
	return len(s)
}

// droppedInstance lists the parts of a PromQL expression whose result
// has no instance label: an aggregation without instance among its by
// labels (or with it among its without labels, or with neither clause),
// and vector matching on labels that leave instance out.
func droppedInstance(expr string) []string {
	var bad []string
	keeps := func(kind string, labels []string) bool {
		has := slices.Contains(labels, "instance")
		return (kind == "by" || kind == "on") == has
	}
	for _, m := range aggregation.FindAllStringSubmatchIndex(expr, -1) {
		op, next := expr[m[2]:m[3]], expr[m[4]:m[5]]
		rest := expr[m[5]:]
		if next == "(" {
			// The clause may follow the operand: sum(x) by (l).
			end := closing(expr, m[5]-1)
			after := strings.TrimSpace(expr[end:])
			kind, _, ok := strings.Cut(after, " ")
			if kind = strings.TrimRight(kind, "("); ok || strings.HasPrefix(after, "by(") || strings.HasPrefix(after, "without(") {
				if kind == "by" || kind == "without" {
					labels, _ := labelList(after[len(kind):])
					if !keeps(kind, labels) {
						bad = append(bad, fmt.Sprintf("%s(...) %s (%s)", op, kind, strings.Join(labels, ", ")))
					}
					continue
				}
			}
			bad = append(bad, op+"(...) with no by clause")
			continue
		}
		labels, _ := labelList(rest)
		if !keeps(next, labels) {
			bad = append(bad, fmt.Sprintf("%s %s (%s)", op, next, strings.Join(labels, ", ")))
		}
	}
	for _, m := range matching.FindAllStringSubmatch(expr, -1) {
		var labels []string
		for _, l := range strings.Split(m[2], ",") {
			labels = append(labels, strings.TrimSpace(l))
		}
		if !keeps(m[1], labels) {
			bad = append(bad, m[0])
		}
	}
	return bad
}

// TestDroppedInstance pins what droppedInstance takes for an aggregation
// or a vector matching that loses instance.
func TestDroppedInstance(t *testing.T) {
	for _, c := range []struct {
		expr string
		bad  int
	}{
		{`replink_master_up{job=~"$job"}`, 0},
		{`sum by (instance, reason) (rate(x_total[5m]))`, 0},
		{`sum by(reason,instance)(rate(x_total[5m]))`, 0},
		{`sum by (reason) (rate(x_total[5m]))`, 1},
		{`sum(rate(x_total[5m]))`, 1},
		{`sum(rate(x_total[5m])) by (instance)`, 0},
		{`sum(rate(x_total[5m])) by (le)`, 1},
		{`sum without (reason) (x_total)`, 0},
		{`sum without (instance) (x_total)`, 1},
		{`histogram_quantile(0.99, sum by (le, link) (rate(x_bucket[5m])))`, 1},
		{`histogram_quantile(0.99, sum by (instance, le) (rate(x_bucket[5m])))`, 0},
		{`min by (instance) (x) - time()`, 0},
		{`max_over_time(x[1h])`, 0},
		{`count(x)`, 1},
		{`a / on (link) b`, 1},
		{`a / on (instance, link) b`, 0},
		{`a / ignoring (instance) b`, 1},
		{`sum by (instance, link) (a) / sum by (link) (b)`, 1},
	} {
		if got := droppedInstance(c.expr); len(got) != c.bad {
			t.Errorf("%s: %d parts that drop instance (%q), want %d", c.expr, len(got), got, c.bad)
		}
	}
}

// fleetWide are queries that sum over instances on purpose, by panel
// title and refId, with the reason. None today: a pair's two replinks
// are never one line.
var fleetWide = map[string]string{}

// TestDashboardKeepsInstance: no query merges the series of different
// replinks (a pair's two lines into one), and every panel that draws a
// line or a value per series names the instance in its legend.
func TestDashboardKeepsInstance(t *testing.T) {
	for _, q := range queries(t, loadDashboard(t)) {
		if reason, ok := fleetWide[q.panel+"/"+q.refID]; ok {
			t.Logf("%s: fleet-wide: %s", q, reason)
			continue
		}
		if bad := droppedInstance(q.expr); len(bad) > 0 {
			t.Errorf("%s\n\tdrops the instance label: %s", q, strings.Join(bad, "; "))
		}
		if q.panelType != "table" && !strings.Contains(q.legend, "{{instance}}") {
			t.Errorf("%s\n\tlegend %q does not name {{instance}}: two replinks' series would read the same", q, q.legend)
		}
	}
}

var (
	rateOf      = regexp.MustCompile(`\brate\(\s*([a-z_:][a-z0-9_:]*)`)
	metricNames = regexp.MustCompile(`\b(replink_[a-z0-9_]+|process_[a-z0-9_]+)`)
)

// wantUnits is the units a query's values may be shown in, by what the
// query computes, and that kind's name.
func wantUnits(expr string) (kind string, units []string) {
	rates := rateOf.FindAllStringSubmatch(expr, -1)
	metrics := metricNames.FindAllString(expr, -1)
	all := func(suffix string, names []string) bool {
		for _, n := range names {
			if !strings.HasSuffix(n, suffix) {
				return false
			}
		}
		return len(names) > 0
	}
	var rated []string
	for _, r := range rates {
		rated = append(rated, r[1])
	}
	switch {
	case strings.Contains(expr, "histogram_quantile(") && all("_seconds_bucket", metrics):
		return "a latency quantile", []string{"s"}
	case strings.Contains(expr, "increase("):
		return "a count (increase)", []string{"short", "none"}
	case len(rated) == 2 && strings.Contains(expr, ") / "):
		return "a ratio of two rates", []string{"percentunit", "none"}
	case all("_seconds_total", rated):
		return "seconds per second (a share of a CPU)", []string{"percentunit"}
	case all("_bytes_total", rated):
		return "bytes per second", []string{"Bps", "binBps"}
	case len(rated) > 0:
		return "events per second", []string{"ops", "reqps", "cps"}
	case strings.Contains(expr, "time()") && all("_timestamp_seconds", metrics):
		if strings.Contains(expr, "/ 86400") {
			return "a time until or since, in days", []string{"d"}
		}
		return "a time until or since", []string{"s", "dtdurations"}
	case all("_timestamp_seconds", metrics):
		return "a timestamp (show the time until or since it, not the date as a number)", nil
	case all("_seconds", metrics):
		return "a duration", []string{"s"}
	case all("_bytes", metrics):
		return "bytes", []string{"bytes", "decbytes"}
	default:
		return "a count or state", []string{"short", "none"}
	}
}

// TestDashboardUnits: each query is shown in the unit of what it
// computes: counters as rates per second (ops, Bps), increase() as counts,
// durations in seconds, bytes as bytes, timestamps as the time until or
// since them.
func TestDashboardUnits(t *testing.T) {
	for _, q := range queries(t, loadDashboard(t)) {
		kind, units := wantUnits(q.expr)
		if !slices.Contains(units, q.unit) {
			t.Errorf("%s\n\tis %s, shown in unit %q; want one of %q", q, kind, q.unit, units)
		}
	}
}

// TestWantUnits pins the kinds a query falls in.
func TestWantUnits(t *testing.T) {
	for _, c := range []struct {
		expr string
		want string
	}{
		{`sum by (instance, reason) (increase(replink_relay_purged_files_total[5m])) > 0`, "short"},
		{`sum by (instance, reason) (rate(replink_master_reconnects_total[5m]))`, "ops"},
		{`sum by (instance) (rate(replink_binlog_bytes_total[5m]))`, "Bps"},
		{`sum by (instance) (rate(replink_tls_crypto_seconds_total[5m]))`, "percentunit"},
		{`rate(process_cpu_seconds_total[5m])`, "percentunit"},
		{`sum by (instance) (rate(replink_relay_log_fsync_duration_seconds_count[5m]))`, "ops"},
		{`histogram_quantile(0.99, sum by (instance, le) (rate(replink_relay_log_fsync_duration_seconds_bucket[5m])))`, "s"},
		{`sum by (instance, link) (rate(replink_link_wire_bytes_total[5m])) / sum by (instance, link) (rate(replink_link_payload_bytes_total[5m])) - 1`, "percentunit"},
		{`(replink_tls_peer_cert_not_after_timestamp_seconds - time()) / 86400`, "d"},
		{`time() - replink_last_event_timestamp_seconds`, "s"},
		{`replink_replication_lag_seconds`, "s"},
		{`replink_replica_lag_bytes`, "bytes"},
		{`replink_master_up`, "none"},
	} {
		kind, units := wantUnits(c.expr)
		if !slices.Contains(units, c.want) {
			t.Errorf("%s: %s in %q, want %q among them", c.expr, kind, units, c.want)
		}
	}
	for _, expr := range []string{`increase(replink_relay_purged_files_total[5m])`, `sum by (instance) (increase(replink_link_stalls_total[1h]))`} {
		if _, units := wantUnits(expr); slices.Contains(units, "ops") || slices.Contains(units, "reqps") {
			t.Errorf("%s: increase() may be shown as a rate (%q)", expr, units)
		}
	}
	if _, units := wantUnits(`replink_tls_local_cert_not_after_timestamp_seconds`); len(units) != 0 {
		t.Errorf("a bare timestamp may be shown in %q", units)
	}
}
