package relay

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the slave-facing metrics. NewMetrics registers the series
// that are counted as things happen; the ones read from the server when
// scraped are registered by bind when the server is made (the pattern of
// every package: built from a Registerer, passed in, never nil).
type Metrics struct {
	reg       prometheus.Registerer
	connected prometheus.Gauge
}

// NewMetrics registers the slave-facing metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		reg:       reg,
		connected: prometheus.NewGauge(prometheus.GaugeOpts{Name: "replink_replicas_connected", Help: "Slaves currently dumping from replink."}),
	}
	reg.MustRegister(m.connected)
	return m
}

// bind registers the per-slave lag, computed when scraped, so a slave
// blocked on a full socket shows its real lag. It is called once, by New:
// a Metrics serves one Server.
func (m *Metrics) bind(s *Server) {
	m.reg.MustRegister(&slaveLag{s: s, desc: prometheus.NewDesc("replink_replica_lag_bytes",
		"Bytes of durable relay log a slave has yet to receive.", []string{"server_id"}, nil)})
}

type slaveLag struct {
	s    *Server
	desc *prometheus.Desc
}

// Describe implements prometheus.Collector.
func (c *slaveLag) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *slaveLag) Collect(ch chan<- prometheus.Metric) {
	// Two connections with one server_id (a slave reconnecting before the
	// old dump noticed) must not make two series: keep the larger lag.
	lag := map[uint32]int64{}
	for _, r := range c.s.Slaves() {
		if l, ok := lag[r.ServerID]; !ok || r.LagBytes > l {
			lag[r.ServerID] = r.LagBytes
		}
	}
	for id, l := range lag {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(l), strconv.FormatUint(uint64(id), 10))
	}
}
