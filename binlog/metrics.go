package binlog

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the relay log's own metrics.
type Metrics struct {
	fsync  prometheus.Histogram
	crypto *prometheus.CounterVec
}

// NewMetrics registers the relay log metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		fsync: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "replink_relay_log_fsync_duration_seconds",
			Help: "Relay log fsync latency.", Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 12)}),
		crypto: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "replink_relay_crypto_seconds_total",
			Help: "Time spent encrypting relay files at rest (encrypt) and decrypting them for reading (decrypt)."}, []string{"op"}),
	}
	for _, op := range []string{"encrypt", "decrypt"} {
		m.crypto.WithLabelValues(op)
	}
	reg.MustRegister(m.fsync, m.crypto)
	return m
}

// crypt counts the time since start as op's.
func (m *Metrics) crypt(op string, start time.Time) {
	m.crypto.WithLabelValues(op).Add(time.Since(start).Seconds())
}
