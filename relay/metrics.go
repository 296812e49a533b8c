package relay

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the slave-facing metrics.
type Metrics struct {
	connected prometheus.Gauge
	lag       *prometheus.GaugeVec
}

// NewMetrics registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		connected: prometheus.NewGauge(prometheus.GaugeOpts{Name: "replink_replicas_connected", Help: "Slaves currently dumping from replink."}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "replink_replica_lag_bytes",
			Help: "Bytes of relay log a slave has yet to receive."}, []string{"server_id"}),
	}
	reg.MustRegister(m.connected, m.lag)
	return m
}
