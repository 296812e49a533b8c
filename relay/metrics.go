package relay

import (
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the slave-facing metrics.
type Metrics struct {
	connected prometheus.Gauge
	lagDesc   *prometheus.Desc
	replicas  atomic.Pointer[func() []ReplicaStatus]
}

// NewMetrics registers them on reg. The per-slave lag is computed when
// scraped, so a slave blocked on a full socket shows its real lag.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		connected: prometheus.NewGauge(prometheus.GaugeOpts{Name: "replink_replicas_connected", Help: "Slaves currently dumping from replink."}),
		lagDesc: prometheus.NewDesc("replink_replica_lag_bytes", "Bytes of durable relay log a slave has yet to receive.",
			[]string{"server_id"}, nil),
	}
	reg.MustRegister(m.connected, m)
	return m
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) { ch <- m.lagDesc }

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	f := m.replicas.Load()
	if f == nil {
		return
	}
	// Two connections with one server_id (a slave reconnecting before the
	// old dump noticed) must not make two series: keep the larger lag.
	lag := map[uint32]int64{}
	for _, r := range (*f)() {
		if l, ok := lag[r.ServerID]; !ok || r.LagBytes > l {
			lag[r.ServerID] = r.LagBytes
		}
	}
	for id, l := range lag {
		ch <- prometheus.MustNewConstMetric(m.lagDesc, prometheus.GaugeValue, float64(l), strconv.FormatUint(uint64(id), 10))
	}
}
