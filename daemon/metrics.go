package daemon

import (
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the daemon's own: what it is and how its reloads went,
// beside the Go and process collectors.
type metrics struct {
	reg        *prometheus.Registry
	reloads    *prometheus.CounterVec
	lastReload prometheus.Gauge
}

func newMetrics(reg *prometheus.Registry, version string) *metrics {
	m := &metrics{
		reg: reg,
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "replink_cert_reloads_total",
			Help: "Certificate reloads (on SIGHUP, or because the files changed), by result."}, []string{"result"}),
		lastReload: prometheus.NewGauge(prometheus.GaugeOpts{Name: "replink_config_last_reload_successful",
			Help: "1 when the last reload of certificates and keys succeeded."}),
	}
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "replink_build_info", Help: "Build information (1)."}, []string{"version", "goversion"})
	build.WithLabelValues(version, runtime.Version()).Set(1)
	m.reloads.WithLabelValues("ok")
	m.reloads.WithLabelValues("failed")
	m.lastReload.Set(1)
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		build, m.reloads, m.lastReload)
	return m
}

func (m *metrics) reloadOK() {
	m.reloads.WithLabelValues("ok").Inc()
	m.lastReload.Set(1)
}

func (m *metrics) reloadFailed() {
	m.reloads.WithLabelValues("failed").Inc()
	m.lastReload.Set(0)
}
