package alerting

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

const (
	alertsFile  = "../../dashboards/alerts.yml"
	testsFile   = "../../dashboards/alerts_test.yml"
	runbookFile = "../../docs/runbook.md"

	// runbookURL is where every alert's runbook_url points: the runbook's
	// section on the repository's main branch, which Alertmanager and
	// Grafana show as a link (a relative path would not resolve there).
	runbookURL = "https://github.com/replink/replink/blob/main/docs/runbook.md#"

	// outagePrefix names the alerts_test.yml test of a pair's master outage.
	outagePrefix = "a 20-minute master outage"
)

type rule struct {
	Alert       string            `json:"alert"`
	Expr        string            `json:"expr"`
	For         string            `json:"for"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

// alerts reads the alert rules, strictly: a key the test does not know
// fails it until it is looked at.
func alerts(t *testing.T) []rule {
	t.Helper()
	data, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []rule `json:"rules"`
		} `json:"groups"`
	}
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		t.Fatalf("%s: %v", alertsFile, err)
	}
	var out []rule
	for _, g := range f.Groups {
		out = append(out, g.Rules...)
	}
	if len(out) == 0 {
		t.Fatalf("%s: no alerts", alertsFile)
	}
	return out
}

// ruleTest is one test of a promtool rule test file, with what this test
// reads of it.
type ruleTest struct {
	Name          string `json:"name"`
	AlertRuleTest []struct {
		EvalTime  string `json:"eval_time"`
		Alertname string `json:"alertname"`
		ExpAlerts []any  `json:"exp_alerts"`
	} `json:"alert_rule_test"`
}

func ruleTests(t *testing.T) []ruleTest {
	t.Helper()
	data, err := os.ReadFile(testsFile)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Tests []ruleTest `json:"tests"`
	}
	if err := yaml.Unmarshal(data, &f); err != nil {
		t.Fatalf("%s: %v", testsFile, err)
	}
	return f.Tests
}

// TestEveryAlertFiresAndStaysSilent: each alert has, in alerts_test.yml,
// an eval where it fires and an eval where it is expected silent
// (exp_alerts: []); and no eval names an alert that does not exist.
func TestEveryAlertFiresAndStaysSilent(t *testing.T) {
	fires, silent := map[string]bool{}, map[string]bool{}
	names := map[string]bool{}
	for _, r := range alerts(t) {
		names[r.Alert] = true
	}
	for _, tc := range ruleTests(t) {
		for _, a := range tc.AlertRuleTest {
			if !names[a.Alertname] {
				t.Errorf("test %q, eval %s: alert %q is not in %s", tc.Name, a.EvalTime, a.Alertname, alertsFile)
			}
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				silent[a.Alertname] = true
			}
		}
	}
	for _, r := range alerts(t) {
		if !fires[r.Alert] {
			t.Errorf("%s: no case in %s where it fires", r.Alert, testsFile)
		}
		if !silent[r.Alert] {
			t.Errorf("%s: no case in %s where it stays silent (exp_alerts: [])", r.Alert, testsFile)
		}
	}
}

// anchors are the GitHub anchors of the runbook's headings: lower case,
// spaces to dashes, punctuation other than - and _ dropped (duplicates
// are not numbered here: a second section of one name is an error).
func anchors(t *testing.T) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(runbookFile)
	if err != nil {
		t.Fatal(err)
	}
	drop := regexp.MustCompile(`[^\p{L}\p{N} _-]`)
	out := map[string]bool{}
	inCode := false
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "```") {
			inCode = !inCode
		}
		if inCode || !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.TrimSpace(strings.TrimLeft(line, "#"))
		a := strings.ReplaceAll(drop.ReplaceAllString(strings.ToLower(h), ""), " ", "-")
		if out[a] {
			t.Errorf("%s: two headings with the anchor #%s", runbookFile, a)
		}
		out[a] = true
	}
	return out
}

// TestEveryAlertHasARunbook: each alert's runbook_url is its own section
// of docs/runbook.md on GitHub, and the runbook has that section.
func TestEveryAlertHasARunbook(t *testing.T) {
	have := anchors(t)
	for _, r := range alerts(t) {
		u, ok := r.Annotations["runbook_url"]
		if !ok {
			t.Errorf("%s: no runbook_url annotation", r.Alert)
			continue
		}
		anchor, found := strings.CutPrefix(u, runbookURL)
		if !found {
			t.Errorf("%s: runbook_url %q does not start %q", r.Alert, u, runbookURL)
			continue
		}
		if want := strings.ToLower(r.Alert); anchor != want {
			t.Errorf("%s: runbook_url anchor #%s, want #%s (the alert's own section)", r.Alert, anchor, want)
		}
		if !have[anchor] {
			t.Errorf("%s: %s has no section for #%s (a heading %q)", r.Alert, runbookFile, anchor, "## "+r.Alert)
		}
	}
}

// TestOutageNamesEveryAlert: the master-outage test names every alert at
// every eval it makes, so that it asserts the one page and that nothing
// else fires, including alerts added after it.
func TestOutageNamesEveryAlert(t *testing.T) {
	var outage *ruleTest
	tests := ruleTests(t)
	for i := range tests {
		if strings.HasPrefix(tests[i].Name, outagePrefix) {
			outage = &tests[i]
		}
	}
	if outage == nil {
		t.Fatalf("%s: no test named %q...", testsFile, outagePrefix)
	}
	named := map[string][]string{}
	for _, a := range outage.AlertRuleTest {
		named[a.EvalTime] = append(named[a.EvalTime], a.Alertname)
	}
	if len(named) == 0 {
		t.Fatalf("%q makes no eval", outage.Name)
	}
	for at, got := range named {
		for _, r := range alerts(t) {
			if !slices.Contains(got, r.Alert) {
				t.Errorf("%q, eval at %s: %s not named (exp_alerts: [] if it stays silent)", outage.Name, at, r.Alert)
			}
		}
	}
}
