package tlsutil

import (
	"crypto/tls"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Links are the values of the link label.
var Links = []string{"master", "replica"}

// Metrics are the TLS and link metrics, shared by the master link and the
// replica (slave-facing) link.
type Metrics struct {
	handshakeDuration *prometheus.HistogramVec
	handshakes        *prometheus.CounterVec
	failures          *prometheus.CounterVec
	connInfo          *prometheus.GaugeVec
	peerNotAfter      *prometheus.GaugeVec
	localNotAfter     *prometheus.GaugeVec

	traffic map[string]*linkTraffic // by link, resolved once for the meters

	mu       sync.Mutex
	lastInfo map[string][2]string
	peers    map[string][]string
}

// direction is one way of a link's traffic: bytes on the socket, bytes
// of the protocol above TLS, and time in TLS record processing.
type direction struct{ wire, payload, crypto prometheus.Counter }

type linkTraffic struct{ in, out direction }

// NewMetrics registers the TLS metrics on reg, every series initialised.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		handshakeDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "replink_tls_handshake_duration_seconds",
			Help:    "Time from the SSL request to the end of the TLS handshake.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"link", "result"}),
		handshakes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "replink_tls_handshakes_total", Help: "TLS handshakes, by result.",
		}, []string{"link", "result"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "replink_tls_handshake_failures_total", Help: "Failed connection handshakes, by reason.",
		}, []string{"link", "reason"}),
		connInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "replink_tls_connection_info", Help: "TLS version and cipher of the current connection (1), as MySQL's Ssl_version and Ssl_cipher; none for plaintext or no connection.",
		}, []string{"link", "version", "cipher"}),
		peerNotAfter: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "replink_tls_peer_cert_not_after_timestamp_seconds", Help: "Expiry of each certificate in the peer's chain.",
		}, []string{"link", "subject"}),
		localNotAfter: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "replink_tls_local_cert_not_after_timestamp_seconds", Help: "Expiry of the certificates replink loaded (earliest per role).",
		}, []string{"role"}),
		lastInfo: map[string][2]string{},
		peers:    map[string][]string{},
	}
	wire := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "replink_link_wire_bytes_total", Help: "Bytes on the socket, below TLS.",
	}, []string{"link", "direction"})
	payload := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "replink_link_payload_bytes_total", Help: "MySQL protocol bytes, above TLS.",
	}, []string{"link", "direction"})
	crypto := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "replink_tls_crypto_seconds_total", Help: "Time spent in TLS record processing, not counting time waiting on the socket.",
	}, []string{"link", "direction"})
	m.traffic = map[string]*linkTraffic{}
	for _, l := range Links {
		dir := func(d string) direction {
			return direction{wire: wire.WithLabelValues(l, d), payload: payload.WithLabelValues(l, d), crypto: crypto.WithLabelValues(l, d)}
		}
		m.traffic[l] = &linkTraffic{in: dir("in"), out: dir("out")}
		for _, res := range []string{"ok", "failed"} {
			m.handshakeDuration.WithLabelValues(l, res)
			m.handshakes.WithLabelValues(l, res)
		}
		for _, r := range Reasons {
			m.failures.WithLabelValues(l, string(r))
		}
		m.setInfo(l, "none", "none")
	}
	reg.MustRegister(m.handshakeDuration, m.handshakes, m.failures, m.connInfo, m.peerNotAfter, m.localNotAfter, wire, payload, crypto)
	return m
}

func (m *Metrics) setInfo(link, version, cipher string) {
	if old, ok := m.lastInfo[link]; ok {
		m.connInfo.DeleteLabelValues(link, old[0], old[1])
	}
	m.lastInfo[link] = [2]string{version, cipher}
	m.connInfo.WithLabelValues(link, version, cipher).Set(1)
}

// HandshakeOK records a successful handshake. cs is nil for plaintext.
func (m *Metrics) HandshakeOK(link string, d time.Duration, cs *tls.ConnectionState) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if cs == nil {
		m.setInfo(link, "none", "none")
		return
	}
	m.handshakeDuration.WithLabelValues(link, "ok").Observe(d.Seconds())
	m.handshakes.WithLabelValues(link, "ok").Inc()
	m.setInfo(link, VersionName(cs.Version), CipherName(cs.CipherSuite))
	m.setPeersLocked(link, cs)
}

// HandshakeFailed records a failed connection attempt. tlsStarted says
// whether a TLS handshake was under way (only those feed the handshake
// histogram and counter); the reason counter counts every failure.
func (m *Metrics) HandshakeFailed(link string, d time.Duration, tlsStarted bool, reason Reason, cs *tls.ConnectionState) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if tlsStarted {
		m.handshakeDuration.WithLabelValues(link, "failed").Observe(d.Seconds())
		m.handshakes.WithLabelValues(link, "failed").Inc()
	}
	m.failures.WithLabelValues(link, string(reason)).Inc()
	if cs != nil {
		m.setPeersLocked(link, cs)
	}
}

// Disconnected marks the link as having no connection.
func (m *Metrics) Disconnected(link string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.setInfo(link, "none", "none")
}

func (m *Metrics) setPeersLocked(link string, cs *tls.ConnectionState) {
	if link != "master" {
		return // slave chains are many and come and go; they are in /status
	}
	for _, s := range m.peers[link] {
		m.peerNotAfter.DeleteLabelValues(link, s)
	}
	m.peers[link] = m.peers[link][:0]
	for _, c := range cs.PeerCertificates {
		s := OneLine(c.RawSubject)
		m.peers[link] = append(m.peers[link], s)
		m.peerNotAfter.WithLabelValues(link, s).Set(float64(c.NotAfter.Unix()))
	}
}

// SetLocalCerts exports the expiry of the loaded certificates, the
// earliest per role.
func (m *Metrics) SetLocalCerts(certs []CertInfo) {
	earliest := map[string]time.Time{}
	for _, c := range certs {
		if t, ok := earliest[c.Role]; !ok || c.NotAfter.Before(t) {
			earliest[c.Role] = c.NotAfter
		}
	}
	m.localNotAfter.Reset()
	for role, t := range earliest {
		m.localNotAfter.WithLabelValues(role).Set(float64(t.Unix()))
	}
}
