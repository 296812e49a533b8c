package binlog

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the relay log's own metrics.
type Metrics struct {
	fsync prometheus.Histogram
}

// NewMetrics registers the relay log metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		fsync: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "replink_relay_log_fsync_duration_seconds",
			Help: "Relay log fsync latency.", Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 12)}),
	}
	reg.MustRegister(m.fsync)
	return m
}
