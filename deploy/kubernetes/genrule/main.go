// Command genrule writes the PrometheusRule manifest for a Prometheus rule
// file (go generate in deploy/kubernetes, or make deploy-generate):
//
//	go run ./genrule ../../dashboards/alerts.yml monitoring/prometheusrule.yaml
package main

import (
	"fmt"
	"os"

	"github.com/replink/replink/deploy/kubernetes"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: genrule ALERTS.yml OUT.yaml")
		os.Exit(2)
	}
	if err := generate(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintf(os.Stderr, "genrule: %v\n", err)
		os.Exit(1)
	}
}

func generate(in, out string) error {
	alerts, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	manifest, err := kubernetes.PrometheusRule(alerts)
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	if err := os.WriteFile(out, manifest, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	return nil
}
