package replica

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/replink/replink/binlog"
)

// Metrics are the master link's replication metrics. NewMetrics registers
// the series counted as things happen; the ones read from the replica when
// scraped are registered by bind when the replica is made.
type Metrics struct {
	up         prometheus.Gauge
	master     *prometheus.GaugeVec
	switches   *prometheus.CounterVec
	reconnects *prometheus.CounterVec
	stalls     prometheus.Counter
	events     *prometheus.CounterVec
	bytes      prometheus.Counter
	reg        prometheus.Registerer
	typeNames  map[byte]prometheus.Counter
}

// NewMetrics registers the replica metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		up: prometheus.NewGauge(prometheus.GaugeOpts{Name: "replink_master_up", Help: "1 while streaming from the master."}),
		reconnects: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "replink_master_reconnects_total",
			Help: "Reconnections to the master, by reason."}, []string{"reason"}),
		stalls: prometheus.NewCounter(prometheus.CounterOpts{Name: "replink_link_stalls_total",
			Help: "Times the master link was silent past 3 heartbeat periods and was closed."}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "replink_binlog_events_total",
			Help: "Binlog events stored, by type."}, []string{"type"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "replink_binlog_bytes_total",
			Help: "Binlog bytes stored."}),
		master: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "replink_master_info",
			Help: "1 for the server replink follows now (address, server_id); server_id 0 until it was reached."}, []string{"address", "server_id"}),
		switches: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "replink_master_switches_total",
			Help: "Looks for a new master after a failover, by result: ok (switched), diverged (the writable server lacks transactions replink has), ambiguous (more than one writable server)."},
			[]string{"result"}),
		reg:       reg,
		typeNames: map[byte]prometheus.Counter{},
	}
	for _, r := range ReconnectReasons() {
		m.reconnects.WithLabelValues(r)
	}
	for _, r := range SwitchResults {
		m.switches.WithLabelValues(r)
	}
	reg.MustRegister(m.up, m.master, m.switches, m.reconnects, m.stalls, m.events, m.bytes)
	return m
}

// bind registers the series read from r when scraped. It is called once,
// by New: a Metrics serves one Replica.
func (m *Metrics) bind(r *Replica) {
	m.following(r.cfg.Addr(), 0)
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "replink_replication_lag_seconds",
			Help: "Now minus the master timestamp of the last event; 0 while caught up (from heartbeats); grows while the link is down."}, r.Lag),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "replink_last_event_timestamp_seconds",
			Help: "Master timestamp of the last real event stored."}, func() float64 { return float64(r.lastEventTS.Load()) }))
}

// SwitchResults are the values of replink_master_switches_total's result.
var SwitchResults = []string{"ok", "diverged", "ambiguous"}

// following says which server replink follows now.
func (m *Metrics) following(addr string, serverID uint32) {
	m.master.Reset()
	m.master.WithLabelValues(addr, strconv.FormatUint(uint64(serverID), 10)).Set(1)
}

func (m *Metrics) countEvent(ev binlog.Event) {
	c, ok := m.typeNames[ev.Type()]
	if !ok {
		c = m.events.WithLabelValues(binlog.TypeName(ev.Type()))
		m.typeNames[ev.Type()] = c
	}
	c.Inc()
	m.bytes.Add(float64(len(ev)))
}
