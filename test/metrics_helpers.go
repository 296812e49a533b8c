package test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// counterValue sums the samples of a metric family whose labels include want.
// waitStall waits, up to limit from since, until r has counted a stalled
// master link, and returns how long after since that was.
func waitStall(t testing.TB, r *Replink, since time.Time, limit time.Duration) time.Duration {
	t.Helper()
	for counterValue(t, r.Reg, "replink_link_stalls_total", nil) < 1 {
		if time.Since(since) > limit {
			t.Fatalf("no stall of the master link detected %s after it went silent", limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(since)
}

func counterValue(t testing.TB, g prometheus.Gatherer, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.Metric {
			for k, v := range want {
				found := false
				for _, lp := range m.Label {
					if lp.GetName() == k && lp.GetValue() == v {
						found = true
					}
				}
				if !found {
					continue metric
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			case m.Histogram != nil:
				sum += float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return sum
}
