package grafana

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

const dashboardFile = "../../dashboards/replink.json"

// registerPlugins makes the SDK decode each panel's options and field
// config by its plugin's schema (stat, timeseries, table...) and each
// query by its data source's (prometheus), not as untyped maps.
var registerPlugins = sync.OnceFunc(plugins.RegisterDefaultPlugins)

// decodeStrictly decodes a dashboard with the SDK's strict decoder (every
// required field present, no unknown field, every value of the schema's
// type) and runs the schema's validation on it. It returns every error,
// each with its path in the JSON.
func decodeStrictly(data []byte) (dashboard.Dashboard, []string) {
	registerPlugins()
	var d dashboard.Dashboard
	var errs []string
	collect := func(stage string, err error) {
		if err == nil {
			return
		}
		var build cog.BuildErrors
		if errors.As(err, &build) {
			for _, e := range build {
				errs = append(errs, stage+": "+e.Error())
			}
			return
		}
		errs = append(errs, stage+": "+err.Error())
	}
	var strict dashboard.Dashboard
	collect("decode", strict.UnmarshalJSONStrict(data))
	// The strict decoder reports every error but keeps no panel: in
	// v0.0.22 PanelOrRowPanel takes the nil cog.BuildErrors a panel's
	// strict decode returns for "no error" as an error, and drops the
	// panel. So the value, and the validation that walks its panels, come
	// from the ordinary decode of the same bytes.
	if err := json.Unmarshal(data, &d); err != nil {
		collect("decode", err)
	}
	collect("validate", d.Validate())
	return d, errs
}

// loadDashboard is dashboards/replink.json, decoded strictly.
func loadDashboard(t *testing.T) dashboard.Dashboard {
	t.Helper()
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	d, errs := decodeStrictly(data)
	if len(errs) > 0 {
		t.Fatalf("%s: %d errors against grafana-foundation-sdk's dashboard schema:\n%s",
			dashboardFile, len(errs), strings.Join(errs, "\n"))
	}
	return d
}

// TestDashboardDecodesStrictly: the dashboard has no error against the
// schema of grafana-foundation-sdk (the Grafana version it is generated
// for); any error fails the test, and all of them are listed.
func TestDashboardDecodesStrictly(t *testing.T) {
	d := loadDashboard(t)
	if len(d.Panels) == 0 {
		t.Fatalf("%s: no panels", dashboardFile)
	}
}

// TestStrictDecodeRejects: the decoder used above does fail on what it
// is there to catch, each named by its path.
func TestStrictDecodeRejects(t *testing.T) {
	for _, c := range []struct {
		name, json, want string
	}{
		{"a required field missing", `{"title":"x","templating":{"list":[]},"annotations":{"list":[]}}`,
			"schemaVersion: required field is missing"},
		{"an unknown field", `{"schemaVersion":39,"templating":{"list":[]},"annotations":{"list":[]},"titel":"x"}`,
			"unexpected field 'titel'"},
		{"a stat panel's required option missing", `{"schemaVersion":39,"templating":{"list":[]},"annotations":{"list":[]},
			"panels":[{"type":"stat","title":"x","options":{}}]}`,
			"panels[0].options.graphMode: required field is missing"},
		{"an unknown field in a Prometheus query", `{"schemaVersion":39,"templating":{"list":[]},"annotations":{"list":[]},
			"panels":[{"type":"timeseries","targets":[{"datasource":{"type":"prometheus","uid":"p"},"refId":"A","expr":"up","legend":"x"}]}]}`,
			"unexpected field 'legend'"},
		{"a value of the wrong type", `{"schemaVersion":"39","templating":{"list":[]},"annotations":{"list":[]}}`,
			"schemaVersion"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, errs := decodeStrictly([]byte(c.json))
			if !strings.Contains(strings.Join(errs, "\n"), c.want) {
				t.Fatalf("errors %q, want one with %q", errs, c.want)
			}
		})
	}
}
