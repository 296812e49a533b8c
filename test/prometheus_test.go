package test

import (
	"crypto/x509/pkix"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/replink/replink/tlsutil"
)

// TestAlertsFireInPrometheus runs the shipped alert rules in a real
// Prometheus scraping a running replink: the certificate alerts fire for
// a relay certificate that expires in 3 days, ReplinkDown pages when the
// master link of this replink (a pair of one) is cut and resolves when it
// is back, and the stall that ended the link is told once it streams
// again.
//
// The rules Prometheus loads are dashboards/alerts.yml with only the
// `for:` durations shortened (to a few seconds, see ShortenAlertHolds):
// the expressions, labels and annotations are exactly the shipped ones.
// promtool's unit tests (alerts_test.yml) cover the real hold times.
func TestAlertsFireInPrometheus(t *testing.T) {
	p, m := newMaster(t)
	proxy := StartProxy(t, m.Addr())

	// Slaves see a relay certificate from the same CA that expires in 3
	// days: under both the 21-day and the 7-day tier. The CA (365 days)
	// and the master's certificate stay out of both.
	short, err := p.CA.Issue(tlsutil.CertSpec{Subject: pkix.Name{Organization: []string{"replink-test"}, CommonName: "localhost"},
		Hosts: []string{"localhost", "127.0.0.1", "::1"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(72 * time.Hour), Server: true})
	if err != nil {
		t.Fatal(err)
	}
	rp := *p // the master keeps p's certificates
	if rp.ServerCert, rp.ServerKey, err = short.Write(t.TempDir(), "relay-3days"); err != nil {
		t.Fatal(err)
	}
	r := StartReplink(t, &rp, m.Port, ReplinkOptions{MasterPort: proxy.Port(), Heartbeat: 300 * time.Millisecond, MaxBackoff: 300 * time.Millisecond})

	const hold = 3 * time.Second
	rules := filepath.Join(t.TempDir(), "alerts.yml")
	if n := ShortenAlertHolds(t, filepath.Join(repoRoot(), "dashboards", "alerts.yml"), rules, hold); n == 0 {
		t.Fatal("dashboards/alerts.yml has no for: lines; is it the rules file?")
	}
	// ReplinkTargetDown matches job=~".*replink.*".
	prom := StartPrometheus(t, PrometheusOptions{Job: "replink", Targets: []string{r.MetricsAddr}, RuleFiles: []string{rules}})
	inst := r.MetricsAddr

	// value returns the value of q's single sample, and what it saw.
	value := func(q string) (float64, string) {
		s, err := prom.Query(q)
		if err != nil {
			return 0, err.Error()
		}
		if len(s) != 1 {
			return 0, fmt.Sprintf("%s: %d samples %v", q, len(s), s)
		}
		return s[0].Value, fmt.Sprintf("%s = %v", q, s[0].Value)
	}
	// alerts returns the active alerts named name for replink's instance,
	// or for its pair (job replink) when the alert is per pair.
	alerts := func(name string) ([]PromAlert, string) {
		all, err := prom.Alerts()
		if err != nil {
			return nil, err.Error()
		}
		var out []PromAlert
		for _, a := range all {
			if a.Labels["alertname"] == name && (a.Labels["instance"] == inst || a.Labels["instance"] == "" && a.Labels["job"] == "replink") {
				out = append(out, a)
			}
		}
		return out, fmt.Sprintf("%s: %v", name, out)
	}
	firing := func(name string, labels map[string]string) func() (bool, string) {
		return func() (bool, string) {
			as, why := alerts(name)
			for _, a := range as {
				match := a.State == "firing"
				for k, v := range labels {
					match = match && a.Labels[k] == v
				}
				if match {
					return true, why
				}
			}
			return false, why
		}
	}

	// Prometheus scrapes replink, which streams from the master.
	prom.WaitFor(20*time.Second, "up{job=replink} == 1", func() (bool, string) {
		v, why := value(fmt.Sprintf(`up{job="replink",instance=%q}`, inst))
		return v == 1, why
	})
	prom.WaitFor(20*time.Second, "replink_master_up == 1 in Prometheus", func() (bool, string) {
		v, why := value(fmt.Sprintf(`replink_master_up{job="replink",instance=%q}`, inst))
		return v == 1, why
	})

	// The relay certificate: both tiers fire for role server, with the
	// shipped annotations rendered from real labels.
	prom.WaitFor(15*time.Second, "ReplinkCertExpiringSoon and ReplinkCertExpiringCritical firing for role server", func() (bool, string) {
		ok1, why1 := firing("ReplinkCertExpiringSoon", map[string]string{"role": "server", "severity": "warning", "job": "replink"})()
		ok2, why2 := firing("ReplinkCertExpiringCritical", map[string]string{"role": "server", "severity": "critical", "job": "replink"})()
		return ok1 && ok2, why1 + "; " + why2
	})
	crit, _ := alerts("ReplinkCertExpiringCritical")
	if want := "replink: replink's server certificate expires in 2d 23h "; len(crit) != 1 || !strings.HasPrefix(crit[0].Annotations["summary"], want) {
		t.Errorf("ReplinkCertExpiringCritical: %v, want one alert whose summary starts %q", crit, want)
	}
	for _, name := range []string{"ReplinkCertExpiringSoon", "ReplinkCertExpiringCritical"} {
		as, _ := alerts(name)
		for _, a := range as {
			if a.Labels["role"] != "server" {
				t.Errorf("%s fires for role %s (a 365-day certificate)", name, a.Labels["role"])
			}
		}
	}
	// Silent while all is well: the master's 365-day certificate, the link, the target.
	for _, name := range []string{"ReplinkMasterCertExpiringSoon", "ReplinkMasterCertExpiringCritical", "ReplinkDown", "ReplinkNotStreaming", "ReplinkTargetDown", "ReplinkLinkStalled"} {
		if as, why := alerts(name); len(as) != 0 {
			t.Errorf("before the cut, %s", why)
		}
	}
	t.Logf("certificate alerts firing; nothing else")

	// Cut the master link: open connections stall, new ones get nowhere.
	proxy.Hold()
	proxy.Stall()
	cut := time.Now()
	prom.WaitFor(30*time.Second, "ReplinkDown firing after the cut", firing("ReplinkDown", map[string]string{"severity": "critical", "job": "replink"}))
	down, why := alerts("ReplinkDown")
	if len(down) != 1 {
		t.Fatalf("want one ReplinkDown alert, got %s", why)
	}
	if want := "none of the 1 replinks of replink streams from the master"; down[0].Annotations["summary"] != want {
		t.Errorf("ReplinkDown summary %q, want %q", down[0].Annotations["summary"], want)
	}
	if held := time.Since(down[0].ActiveAt); held < hold {
		t.Errorf("ReplinkDown firing %s after it became active, want at least the for: %s", held, hold)
	}
	// The stall that ended the link, and what follows from the master
	// being gone, wait until replink streams again: one page now.
	for _, name := range []string{"ReplinkLinkStalled", "ReplinkNotStreaming", "ReplinkTargetDown", "ReplinkReconnectStorm", "ReplinkHandshakeFailures"} {
		if as, why := alerts(name); len(as) != 0 {
			t.Errorf("while the master link is cut, %s", why)
		}
	}
	t.Logf("ReplinkDown firing %s after the cut, alone", time.Since(cut).Round(100*time.Millisecond))

	// Restore the link: the alert resolves (neither firing nor pending).
	proxy.Release()
	restored := time.Now()
	prom.WaitFor(30*time.Second, "ReplinkDown resolved after the link is back", func() (bool, string) {
		as, why := alerts("ReplinkDown")
		return len(as) == 0, why
	})
	if v, why := value(fmt.Sprintf(`replink_master_up{job="replink",instance=%q}`, inst)); v != 1 {
		t.Errorf("ReplinkDown resolved but %s", why)
	}
	t.Logf("ReplinkDown resolved %s after the link was restored", time.Since(restored).Round(100*time.Millisecond))
	// Streaming again: the stall that ended the link is told now.
	prom.WaitFor(15*time.Second, "ReplinkLinkStalled firing once the link is back", firing("ReplinkLinkStalled", map[string]string{"severity": "warning"}))
	if as, why := alerts("ReplinkTargetDown"); len(as) != 0 {
		t.Errorf("replink was scraped throughout, yet %s", why)
	}
}
