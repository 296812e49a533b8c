// Package grafana checks replink's Grafana dashboard, dashboards/replink.json,
// against the dashboard schema of grafana-foundation-sdk, and its queries and
// units against what the panels show. It lives in the deploy module so the
// main module does not depend on the SDK.
package grafana
