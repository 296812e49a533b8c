package binlog

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the relay log's own metrics.
type Metrics struct {
	fsync            prometheus.Histogram
	encrypt, decrypt prometheus.Counter // replink_relay_crypto_seconds_total by op
}

// NewMetrics registers the relay log metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	crypto := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "replink_relay_crypto_seconds_total",
		Help: "Time spent encrypting relay files at rest (encrypt) and decrypting them for reading (decrypt)."}, []string{"op"})
	m := &Metrics{
		fsync: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "replink_relay_log_fsync_duration_seconds",
			Help: "Relay log fsync latency.", Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 12)}),
		encrypt: crypto.WithLabelValues("encrypt"),
		decrypt: crypto.WithLabelValues("decrypt"),
	}
	reg.MustRegister(m.fsync, crypto)
	return m
}

// crypt adds the time since start to c.
func crypt(c prometheus.Counter, start time.Time) { c.Add(time.Since(start).Seconds()) }
