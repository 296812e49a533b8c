package kubernetes

import (
	"encoding/json"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

const alertmanagerFile = "../../dashboards/alertmanager.yml"

// alertmanagerConfig is the Prometheus Operator's AlertmanagerConfig
// (monitoring.coreos.com/v1alpha1) with the fields and JSON names of its
// Go type for what the manifest uses: inhibit rules. decodeStrict refuses
// any other field.
type alertmanagerConfig struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              struct {
		InhibitRules []struct {
			TargetMatch []amcMatcher `json:"targetMatch,omitempty"`
			SourceMatch []amcMatcher `json:"sourceMatch,omitempty"`
			Equal       []string     `json:"equal,omitempty"`
		} `json:"inhibitRules,omitempty"`
	} `json:"spec"`
}

// amcMatcher is the operator's v1alpha1 Matcher.
type amcMatcher struct {
	Name      string `json:"name"`
	Value     string `json:"value"`
	MatchType string `json:"matchType,omitempty"` // =, !=, =~, !~; empty is =
}

// amMatcher is one Alertmanager matcher, `name op "value"`.
var amMatcher = regexp.MustCompile(`^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*$`)

// inhibitRule is an inhibit rule in one form for both files.
type inhibitRule struct {
	Source, Target []string // "name op value"
	Equal          []string
}

// alertmanagerInhibitRules reads dashboards/alertmanager.yml strictly (its
// route and receivers are not looked at here; amtool check-config checks
// the whole file in make rules).
func alertmanagerInhibitRules(t *testing.T) []inhibitRule {
	t.Helper()
	data, err := os.ReadFile(alertmanagerFile)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Route        json.RawMessage `json:"route"`
		Receivers    json.RawMessage `json:"receivers"`
		InhibitRules []struct {
			SourceMatchers []string `json:"source_matchers"`
			TargetMatchers []string `json:"target_matchers"`
			Equal          []string `json:"equal"`
		} `json:"inhibit_rules"`
	}
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		t.Fatalf("%s: %v", alertmanagerFile, err)
	}
	parse := func(ms []string) []string {
		var out []string
		for _, m := range ms {
			p := amMatcher.FindStringSubmatch(m)
			if p == nil {
				t.Fatalf("%s: matcher %q is not name op \"value\"", alertmanagerFile, m)
			}
			out = append(out, p[1]+" "+p[2]+" "+p[3])
		}
		return out
	}
	var out []inhibitRule
	for _, r := range f.InhibitRules {
		out = append(out, inhibitRule{Source: parse(r.SourceMatchers), Target: parse(r.TargetMatchers), Equal: r.Equal})
	}
	if len(out) == 0 {
		t.Fatalf("%s: no inhibit_rules", alertmanagerFile)
	}
	return out
}

// TestAlertmanagerConfigMatchesInhibitRules: the AlertmanagerConfig holds
// the inhibit rules of dashboards/alertmanager.yml, and every alert name
// they match is one of dashboards/alerts.yml's.
func TestAlertmanagerConfigMatchesInhibitRules(t *testing.T) {
	want := alertmanagerInhibitRules(t)
	cfgs := ofType[*alertmanagerConfig](loadManifests(t))
	if len(cfgs) != 1 {
		t.Fatalf("%d AlertmanagerConfigs, want 1", len(cfgs))
	}
	var got []inhibitRule
	form := func(ms []amcMatcher) []string {
		var out []string
		for _, m := range ms {
			op := m.MatchType
			switch op {
			case "":
				op = "="
			case "=", "!=", "=~", "!~":
			default:
				t.Errorf("AlertmanagerConfig: matcher %s has matchType %q, not =, !=, =~ or !~", m.Name, op)
			}
			out = append(out, m.Name+" "+op+" "+m.Value)
		}
		return out
	}
	for _, r := range cfgs[0].Spec.InhibitRules {
		got = append(got, inhibitRule{Source: form(r.SourceMatch), Target: form(r.TargetMatch), Equal: r.Equal})
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("AlertmanagerConfig inhibit rules\n%v\n%s has\n%v", got, alertmanagerFile, want)
	}

	data, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	var rules alertRules
	if err := yaml.UnmarshalStrict(data, &rules); err != nil {
		t.Fatalf("%s: %v", alertsFile, err)
	}
	names := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			names[r.Alert] = true
		}
	}
	for i, r := range want {
		for _, m := range append(append([]string(nil), r.Source...), r.Target...) {
			name, rest, _ := strings.Cut(m, " ")
			if name != "alertname" {
				continue
			}
			op, value, _ := strings.Cut(rest, " ")
			alts := []string{value}
			if op == "=~" {
				alts = strings.Split(value, "|")
			}
			for _, a := range alts {
				if !names[a] {
					t.Errorf("%s: inhibit rule %d matches alert %q, which %s does not have", alertmanagerFile, i, a, alertsFile)
				}
			}
		}
	}
}
