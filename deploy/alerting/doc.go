// Package alerting holds no code: its test checks replink's alert rules
// (dashboards/alerts.yml) against their promtool tests (alerts_test.yml)
// and their runbook (docs/runbook.md): every alert has a case where it
// fires and one where it stays silent, a runbook_url to a section the
// runbook has, and a say in the master-outage test.
package alerting
