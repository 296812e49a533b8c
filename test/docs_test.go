package test

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/replink/replink/relay"
	"github.com/replink/replink/replica"
	"github.com/replink/replink/tlsutil"
)

// TestMetricsAreDocumented: every metric a running replink exports (with
// a slave connected, so the per-slave series exist too), each of its
// labels, and every value of a reason label is described in
// docs/metrics.md, the reference a clone carries.
func TestMetricsAreDocumented(t *testing.T) {
	doc := readDoc(t, "../docs/metrics.md")
	p, m := newMaster(t)
	m.Exec("CREATE DATABASE app", "CREATE TABLE app.t (id INT PRIMARY KEY)", "INSERT INTO app.t VALUES (1)")
	r := StartReplink(t, p, m.Port, ReplinkOptions{Users: slaveUsers(), KeepForAbsent: time.Hour})
	waitCaughtUp(t, m, r, 20*time.Second)
	slave := StartServer(t, "slave", ServerOptions{ServerID: 3})
	file, _ := m.MasterStatus()
	changeMaster(t, slave, p, r.Port, "slave1", file, "")
	slave.Exec("START SLAVE")
	waitUntil(t, 20*time.Second, func() bool { return counterValue(t, r.Reg, "replink_replicas_connected", nil) == 1 })

	mfs, err := r.Reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sections := docSections(doc, "### ")
	for _, mf := range mfs {
		name := mf.GetName()
		if strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_") || strings.HasPrefix(name, "promhttp_") {
			continue
		}
		sec, ok := sections[name]
		if !ok {
			t.Errorf("metric %s is exported but has no \"### %s\" in docs/metrics.md", name, name)
			continue
		}
		for _, mt := range mf.Metric {
			for _, l := range mt.Label {
				if !strings.Contains(sec, "`"+l.GetName()+"`") {
					t.Errorf("metric %s: label %s is not described under its heading in docs/metrics.md", name, l.GetName())
				}
			}
		}
	}
	// Reason values: the handshake failure reasons in the table below,
	// the others under their metric's heading.
	handshake := map[string]bool{}
	for _, v := range tlsutil.Reasons {
		handshake[string(v)] = true
	}
	for _, rs := range []struct {
		metric string
		values []string
	}{
		{"replink_master_reconnects_total", replica.ReconnectReasons()},
		{"replink_relay_connections_rejected_total", relay.RejectReasons},
	} {
		for _, v := range rs.values {
			if !handshake[v] && !strings.Contains(sections[rs.metric], "`"+v+"`") {
				t.Errorf("metric %s: reason %s is not described under its heading in docs/metrics.md", rs.metric, v)
			}
		}
	}
	// Every handshake failure reason has its fix in the reasons table.
	reasons := docSections(doc, "## ")["Failure reasons"]
	for _, v := range tlsutil.Reasons {
		if !regexp.MustCompile("(?m)^\\| `" + string(v) + "` \\|.+\\|.+\\|$").MatchString(reasons) {
			t.Errorf("reason %s has no row (reason | what it means | the fix) in docs/metrics.md's \"Failure reasons\"", v)
		}
	}
}

func readDoc(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// docSections splits a markdown document at headings starting with
// prefix: heading text (without backquotes) to the text up to the next.
func docSections(doc, prefix string) map[string]string {
	out := map[string]string{}
	var cur string
	for _, line := range strings.Split(doc, "\n") {
		if h, ok := strings.CutPrefix(line, prefix); ok {
			cur = strings.Trim(strings.TrimSpace(h), "`")
			continue
		}
		if strings.HasPrefix(line, "#") && len(strings.TrimLeft(line, "#")) < len(line)-len(prefix)+1 {
			// a higher heading ends the section
			cur = ""
			continue
		}
		if cur != "" {
			out[cur] += line + "\n"
		}
	}
	return out
}
