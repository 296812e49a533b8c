package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestAlertmanagerInhibitsToOnePage loads dashboards/alertmanager.yml in a
// real Alertmanager (Debian's prometheus-alertmanager, installed by
// scripts/setup.sh), posts the alerts of a few incidents, and reads which
// ones it would notify: a pair's master outage is ReplinkDown alone (its
// warnings inhibited, with or without a namespace label), a blocked
// failover is ReplinkFailoverBlocked alone, and what does not follow from
// the incident (another pair, another handshake reason) stays active.
func TestAlertmanagerInhibitsToOnePage(t *testing.T) {
	bin, err := exec.LookPath("prometheus-alertmanager")
	if err != nil {
		t.Fatalf("prometheus-alertmanager not found (%v): run scripts/setup.sh (make test does)", err)
	}
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	logs := &lockedBuffer{}
	cmd := exec.Command(bin, "--config.file="+filepath.Join(repoRoot(), "dashboards", "alertmanager.yml"),
		"--storage.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr, "--cluster.listen-address=")
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("alertmanager (pid %d) did not exit in 10s after SIGKILL", cmd.Process.Pid)
		}
		if t.Failed() {
			t.Logf("alertmanager log:\n%s", logs.String())
		}
	})
	client := &http.Client{Timeout: 5 * time.Second}
	waitUntil(t, 20*time.Second, func() bool {
		resp, err := client.Get("http://" + addr + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	type alert struct {
		labels     map[string]string
		suppressed bool // what Alertmanager should make of it
	}
	pods := map[string]string{"namespace": "db", "job": "replink-pods"}
	with := func(base map[string]string, kv ...string) map[string]string {
		out := map[string]string{}
		for k, v := range base {
			out[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}
	alerts := []alert{
		// A master outage of the Kubernetes pair: one page.
		{with(pods, "alertname", "ReplinkDown", "severity", "critical"), false},
		{with(pods, "alertname", "ReplinkNotStreaming", "severity", "warning", "instance", "a"), true},
		{with(pods, "alertname", "ReplinkReplicationLag", "severity", "warning", "instance", "b"), true},
		{with(pods, "alertname", "ReplinkReconnectStorm", "severity", "warning", "instance", "a"), true},
		{with(pods, "alertname", "ReplinkHandshakeFailures", "severity", "warning", "instance", "a", "link", "master", "reason", "connection_refused"), true},
		// A reason that says more than "the master is gone" is still told.
		{with(pods, "alertname", "ReplinkHandshakeFailures", "severity", "warning", "instance", "b", "link", "master", "reason", "cert_expired"), false},
		// Another pair in the namespace is another incident.
		{with(pods, "alertname", "ReplinkTargetDown", "severity", "warning", "job", "replink-other", "instance", "c"), false},
		// compose: no namespace label on either side.
		{map[string]string{"alertname": "ReplinkDown", "severity": "critical", "job": "replink"}, false},
		{map[string]string{"alertname": "ReplinkLinkStalled", "severity": "warning", "job": "replink", "instance": "replink:9105"}, true},
		// A blocked failover: the page that says why.
		{map[string]string{"alertname": "ReplinkFailoverBlocked", "severity": "critical", "job": "replink-fo", "result": "diverged"}, false},
		{map[string]string{"alertname": "ReplinkDown", "severity": "critical", "job": "replink-fo"}, true},
		// Certificate tiers: the critical one alone.
		{map[string]string{"alertname": "ReplinkCertExpiringCritical", "severity": "critical", "job": "replink", "role": "server"}, false},
		{map[string]string{"alertname": "ReplinkCertExpiringSoon", "severity": "warning", "job": "replink", "role": "server"}, true},
		{map[string]string{"alertname": "ReplinkCertExpiringSoon", "severity": "warning", "job": "replink", "role": "client"}, false},
	}
	var post []map[string]any
	for _, a := range alerts {
		post = append(post, map[string]any{"labels": a.labels, "startsAt": time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)})
	}
	body, _ := json.Marshal(post)
	resp, err := client.Post("http://"+addr+"/api/v2/alerts", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /api/v2/alerts: %s", resp.Status)
	}

	key := func(ls map[string]string) string {
		var kv []string
		for k, v := range ls {
			kv = append(kv, k+"="+v)
		}
		sort.Strings(kv)
		return strings.Join(kv, ",")
	}
	var why string
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := client.Get("http://" + addr + "/api/v2/alerts")
		if err != nil {
			t.Fatal(err)
		}
		var got []struct {
			Labels map[string]string `json:"labels"`
			Status struct {
				State       string   `json:"state"`
				InhibitedBy []string `json:"inhibitedBy"`
			} `json:"status"`
		}
		err = json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		state := map[string]string{}
		for _, g := range got {
			state[key(g.Labels)] = fmt.Sprintf("%s %v", g.Status.State, g.Status.InhibitedBy)
		}
		var wrong []string
		for _, a := range alerts {
			s := state[key(a.labels)]
			want := "active"
			if a.suppressed {
				want = "suppressed"
			}
			if !strings.HasPrefix(s, want+" ") {
				wrong = append(wrong, fmt.Sprintf("%s{%s}: %q, want %s", a.labels["alertname"], key(a.labels), s, want))
			}
		}
		if len(wrong) == 0 {
			break
		}
		why = strings.Join(wrong, "\n")
		if time.Now().After(deadline) {
			t.Fatalf("Alertmanager with dashboards/alertmanager.yml:\n%s", why)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("%d alerts posted; the pair's outage, the compose outage and the blocked failover each left one active page", len(alerts))
}
