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
	rejected  *prometheus.CounterVec
}

// RejectReasons are the values of replink_relay_connections_rejected_total's
// reason: auth (wrong password, unknown user), require (REQUIRE or
// require-secure-transport not met), tls (TLS handshake failed), protocol
// (malformed or oversized packets, a connection that failed inside
// replink), limit (too many connections) and timeout (no login in time).
var RejectReasons = []string{"auth", "require", "tls", "protocol", "limit", "timeout"}

// NewMetrics registers the slave-facing metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		reg:       reg,
		connected: prometheus.NewGauge(prometheus.GaugeOpts{Name: "replink_replicas_connected", Help: "Slaves currently dumping from replink."}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "replink_relay_connections_rejected_total",
			Help: "Connections to the relay port refused or cut off before or during login, by reason."}, []string{"reason"}),
	}
	for _, r := range RejectReasons {
		m.rejected.WithLabelValues(r)
	}
	reg.MustRegister(m.connected, m.rejected)
	return m
}

func (m *Metrics) reject(reason string) { m.rejected.WithLabelValues(reason).Inc() }

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
