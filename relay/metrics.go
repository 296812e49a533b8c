package relay

import (
	"strconv"
	"time"

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
	purged    *prometheus.CounterVec
}

// RejectReasons are the values of replink_relay_connections_rejected_total's
// reason: auth (wrong password, unknown user), require (REQUIRE or
// require-secure-transport not met), tls (TLS handshake failed), protocol
// (malformed or oversized packets, a connection that failed inside
// replink), limit (too many connections) and timeout (no login in time,
// or a client that stopped reading for the write timeout).
var RejectReasons = []string{"auth", "require", "tls", "protocol", "limit", "timeout"}

// NewMetrics registers the slave-facing metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		reg:       reg,
		connected: prometheus.NewGauge(prometheus.GaugeOpts{Name: "replink_replicas_connected", Help: "Slaves currently dumping from replink."}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "replink_relay_connections_rejected_total",
			Help: "Connections to the relay port refused or cut off before or during login, by reason."}, []string{"reason"}),
	}
	m.purged = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "replink_relay_purged_files_total",
		Help: "Relay log files purged: retain (older than retain, needed by no slave), free_space (a remembered slave needed them; the data-dir was below min-free-space)."},
		[]string{"reason"})
	for _, r := range RejectReasons {
		m.rejected.WithLabelValues(r)
	}
	for _, r := range []string{"retain", "free_space"} {
		m.purged.WithLabelValues(r)
	}
	reg.MustRegister(m.connected, m.rejected, m.purged)
	return m
}

func (m *Metrics) reject(reason string) { m.rejected.WithLabelValues(reason).Inc() }

// bind registers the per-slave lag, computed when scraped, so a slave
// blocked on a full socket shows its real lag. It is called once, by New:
// a Metrics serves one Server.
func (m *Metrics) bind(s *Server) {
	m.reg.MustRegister(&slaveLag{s: s,
		lag: prometheus.NewDesc("replink_replica_lag_bytes",
			"Bytes of durable relay log a slave has yet to receive; for a remembered slave while away, from where it stopped.", []string{"server_id"}, nil),
		seen: prometheus.NewDesc("replink_replica_last_seen_timestamp_seconds",
			"When a slave was last seen dumping: now while connected, when it left for a remembered slave.", []string{"server_id"}, nil)})
	m.reg.MustRegister(&relayLogBytes{s: s,
		total: prometheus.NewDesc("replink_relay_log_bytes",
			"Bytes of relay log files in the data-dir.", nil, nil),
		absent: prometheus.NewDesc("replink_relay_log_absent_slaves_bytes",
			"Bytes of relay log files kept only for absent slaves (remembered, not connected): what retain would purge if they were forgotten.", nil, nil)})
}

// relayLogBytes reads the relay log's files when scraped, so both series
// exist from start-up and follow every new file, purge, and slave that
// comes or goes.
type relayLogBytes struct {
	s             *Server
	total, absent *prometheus.Desc
}

// Describe implements prometheus.Collector.
func (c *relayLogBytes) Describe(ch chan<- *prometheus.Desc) { ch <- c.total; ch <- c.absent }

// Collect implements prometheus.Collector.
func (c *relayLogBytes) Collect(ch chan<- prometheus.Metric) {
	total, absent := c.s.relayLogBytes(time.Now())
	ch <- prometheus.MustNewConstMetric(c.total, prometheus.GaugeValue, float64(total))
	ch <- prometheus.MustNewConstMetric(c.absent, prometheus.GaugeValue, float64(absent))
}

type slaveLag struct {
	s         *Server
	lag, seen *prometheus.Desc
}

// Describe implements prometheus.Collector.
func (c *slaveLag) Describe(ch chan<- *prometheus.Desc) { ch <- c.lag; ch <- c.seen }

// Collect implements prometheus.Collector.
func (c *slaveLag) Collect(ch chan<- prometheus.Metric) {
	// Two connections with one server_id (a slave reconnecting before the
	// old dump noticed) must not make two series: keep the larger lag.
	lag := map[uint32]int64{}
	seen := map[uint32]float64{}
	now := float64(time.Now().UnixNano()) / 1e9
	for _, r := range c.s.Slaves() {
		if l, ok := lag[r.ServerID]; !ok || r.LagBytes > l {
			lag[r.ServerID] = r.LagBytes
		}
		seen[r.ServerID] = now
	}
	for _, r := range c.s.Away() {
		if _, connected := seen[r.ServerID]; !connected {
			lag[r.ServerID] = r.LagBytes
			seen[r.ServerID] = float64(r.AwaySince.UnixNano()) / 1e9
		}
	}
	for id, l := range lag {
		label := strconv.FormatUint(uint64(id), 10)
		ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, float64(l), label)
		ch <- prometheus.MustNewConstMetric(c.seen, prometheus.GaugeValue, seen[id], label)
	}
}
