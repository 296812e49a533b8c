package kubernetes

import (
	"bytes"
	"os"
	"reflect"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"sigs.k8s.io/yaml"
)

const (
	alertsFile = "../../dashboards/alerts.yml"
	ruleFile   = "monitoring/prometheusrule.yaml"
)

// TestPrometheusRuleIsGenerated: the committed PrometheusRule is what the
// generator makes of dashboards/alerts.yml today.
func TestPrometheusRuleIsGenerated(t *testing.T) {
	alerts, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	want, err := PrometheusRule(alerts)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(ruleFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is not what %s generates: run make deploy-generate", ruleFile, alertsFile)
	}
}

// alertRules is a Prometheus rule file as this test reads it, apart from
// the generator. It is decoded strictly: a key it does not know (record,
// keep_firing_for, interval...) fails the test until it is compared too.
type alertRules struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Alert       string            `json:"alert"`
			Expr        string            `json:"expr"`
			For         string            `json:"for"`
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		} `json:"rules"`
	} `json:"groups"`
}

// TestPrometheusRuleMatchesAlerts: the PrometheusRule holds the same
// groups and alerts as dashboards/alerts.yml, with the same expressions,
// for, labels and annotations.
func TestPrometheusRuleMatchesAlerts(t *testing.T) {
	data, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	var want alertRules
	if err := yaml.UnmarshalStrict(data, &want); err != nil {
		t.Fatalf("%s: %v", alertsFile, err)
	}
	rules := ofType[*monitoringv1.PrometheusRule](loadManifests(t))
	if len(rules) != 1 {
		t.Fatalf("%d PrometheusRules, want 1", len(rules))
	}
	got := rules[0].Spec.Groups
	if len(got) != len(want.Groups) || len(got) == 0 {
		t.Fatalf("%d groups, %s has %d", len(got), alertsFile, len(want.Groups))
	}
	for i, wg := range want.Groups {
		g := got[i]
		if g.Name != wg.Name || len(g.Rules) != len(wg.Rules) {
			t.Errorf("group %d: %q with %d rules, want %q with %d", i, g.Name, len(g.Rules), wg.Name, len(wg.Rules))
			continue
		}
		for j, w := range wg.Rules {
			r := g.Rules[j]
			var forGot string
			if r.For != nil {
				forGot = string(*r.For)
			}
			for _, c := range []struct {
				field     string
				got, want any
			}{
				{"alert", r.Alert, w.Alert},
				{"record", r.Record, ""},
				{"expr", r.Expr.String(), w.Expr},
				{"for", forGot, w.For},
				{"labels", nonNil(r.Labels), nonNil(w.Labels)},
				{"annotations", nonNil(r.Annotations), nonNil(w.Annotations)},
			} {
				if !reflect.DeepEqual(c.got, c.want) {
					t.Errorf("group %q, rule %d (%s): %s is %q, %s has %q", wg.Name, j, w.Alert, c.field, c.got, alertsFile, c.want)
				}
			}
		}
	}
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
