// Package status is what replink shows a person or a probe: the /status
// document, the HTML page at /, the text of `replink status`, and the
// HTTP endpoints (/metrics, /healthz, /readyz) beside them.
package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/replink/replink/binlog"
	"github.com/replink/replink/logging"
	"github.com/replink/replink/relay"
	"github.com/replink/replink/replica"
	"github.com/replink/replink/tlsutil"
)

// Doc is the /status document.
type Doc struct {
	Master replica.Status      `json:"master"`
	Relay  Relay               `json:"relay"`
	LagSec float64             `json:"lag_seconds"`
	Local  []tlsutil.CertInfo  `json:"local_certificates"`
	Slaves []relay.SlaveStatus `json:"replicas"`
	// Away are the remembered slaves not connected now, whose files
	// replink keeps for keep-for-absent-slaves.
	Away []relay.RememberedStatus `json:"away_replicas"`
	// Refusals are the connections the relay refused lately, newest
	// first (the last 20).
	Refusals []relay.Refusal `json:"recent_refusals"`
	Version  string          `json:"version"`
	Uptime   string          `json:"uptime"`
	Now      time.Time       `json:"now"`
}

// Relay is the relay log part of the document.
type Relay struct {
	DataDir  string   `json:"data_dir"`
	Position string   `json:"position"`
	Durable  string   `json:"durable"`
	Files    []string `json:"files"`
}

// Sources are the components the document is read from.
type Sources struct {
	Replica *replica.Replica
	Relay   *relay.Server // may be nil
	Log     *binlog.Log
	Local   func() []tlsutil.CertInfo
	Version string
	Started time.Time
}

// Build makes the document now.
func (s Sources) Build(now time.Time) Doc {
	d := Doc{Master: s.Replica.Status(), LagSec: s.Replica.Lag(), Version: s.Version,
		Uptime: now.Sub(s.Started).Round(time.Second).String(), Now: now, Slaves: []relay.SlaveStatus{}, Away: []relay.RememberedStatus{}, Refusals: []relay.Refusal{},
		Relay: Relay{DataDir: s.Log.Dir(), Position: s.Log.ResumePoint().String(), Durable: s.Log.Durable().String(), Files: s.Log.Files()}}
	if s.Relay != nil {
		d.Slaves = s.Relay.Slaves()
		d.Away = s.Relay.Away()
		d.Refusals = s.Relay.Refusals()
	}
	if s.Local != nil {
		seen := map[string]bool{}
		for _, c := range s.Local() {
			if k := c.Role + c.SHA256; !seen[k] { // the same CA file may serve both links
				seen[k] = true
				d.Local = append(d.Local, c)
			}
		}
	}
	return d
}

// Handler serves /, /status, /metrics, /healthz and /readyz.
func Handler(reg *prometheus.Registry, s Sources) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if ok, why := Ready(s.Replica.Status(), time.Now()); !ok {
			http.Error(w, why, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(s.Build(time.Now()))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := WriteHTML(w, s.Build(time.Now())); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	return mux
}

// Serve serves h on ln until ctx ends, then closes the server; it
// returns an error only when serving failed. webConfig, when set, is a
// Prometheus exporter-toolkit web configuration file (TLS, client
// certificates, basic auth users with bcrypt hashes), as exporters take
// with --web.config.file. lim bounds the connections and their time.
func Serve(ctx context.Context, ln net.Listener, webConfig string, lim Limits, h http.Handler, log hclog.Logger) error {
	lim = lim.orDefaults()
	cl := newConnLimiter(ln, lim.MaxConns, log)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: lim.ReadHeaderTimeout, ReadTimeout: lim.ReadTimeout,
		WriteTimeout: lim.WriteTimeout, IdleTimeout: lim.IdleTimeout, ConnState: cl.connState}
	log.Info("HTTP connections limited", "max_conns", lim.MaxConns, "idle_timeout", lim.IdleTimeout,
		"read_timeout", lim.ReadTimeout, "write_timeout", lim.WriteTimeout)
	stop := context.AfterFunc(ctx, func() { srv.Close() })
	defer stop()
	err := web.Serve(cl, srv, &web.FlagConfig{WebConfigFile: &webConfig}, logging.Slog(log))
	if errors.Is(err, http.ErrServerClosed) && ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("status server on %s: %w", ln.Addr(), err)
}

// ValidateWebConfig checks an exporter-toolkit web configuration file
// (empty: none).
func ValidateWebConfig(path string) error {
	if path == "" {
		return nil
	}
	if err := web.Validate(path); err != nil {
		return fmt.Errorf("web config %s: %w", path, err)
	}
	return nil
}

// WriteText prints the document for a terminal (`replink status`).
func WriteText(w io.Writer, d Doc, now time.Time) {
	m := d.Master
	fmt.Fprintf(w, "master:     %s since %s (%s)\n", m.State, m.Since.Format(time.RFC3339), now.Sub(m.Since).Round(time.Second))
	if m.Master != "" {
		fmt.Fprintf(w, "following:  %s\n", m.Master)
	}
	for _, sw := range m.Switches {
		fmt.Fprintf(w, "switched:   %s from %s to %s (server_id %d)\n", sw.Time.Format(time.RFC3339), sw.From, sw.To, sw.ServerID)
	}
	if m.ServerVersion != "" {
		fmt.Fprintf(w, "server:     %s (%s)\n", m.ServerVersion, m.Flavor)
	}
	switch {
	case m.TLSVersion != "":
		fmt.Fprintf(w, "tls:        %s %s\n", m.TLSVersion, m.Cipher)
	case m.State == "streaming":
		fmt.Fprintf(w, "tls:        none (plaintext)\n")
	}
	for i, c := range m.PeerChain {
		fmt.Fprintf(w, "  cert[%d]   %s  issuer %s  expires %s (%.0f days)\n", i, c.Subject, c.Issuer, c.NotAfter.Format("2006-01-02"), c.DaysLeft(now))
	}
	fmt.Fprintf(w, "position:   %s (durable %s)\nlag:        %.1fs\nreconnects: %d\n", d.Relay.Position, d.Relay.Durable, d.LagSec, m.Reconnects)
	if m.LastError != "" {
		fmt.Fprintf(w, "last error: %s (reason %s)\n", m.LastError, m.LastReason)
	}
	for _, f := range m.Failures {
		fmt.Fprintf(w, "  %s %s: %s\n    fix: %s\n", f.Time.Format(time.RFC3339), f.Reason, f.Error, f.Hint)
	}
	fmt.Fprintf(w, "slaves:     %d\n", len(d.Slaves))
	for _, r := range d.Slaves {
		fmt.Fprintf(w, "  server_id %d  %s  %s  at %s  %d bytes behind  tls %s\n", r.ServerID, r.User, r.Peer, r.Position, r.LagBytes, r.TLS)
	}
	for _, r := range d.Away {
		fmt.Fprintf(w, "  server_id %d  %s  %s  away since %s  at %s  %d bytes behind  kept until %s\n", r.ServerID, r.User, r.Peer,
			r.AwaySince.Format(time.RFC3339), r.Position, r.LagBytes, r.KeptUntil.Format(time.RFC3339))
	}
	if len(d.Refusals) > 0 {
		fmt.Fprintf(w, "refusals:   %d recent\n", len(d.Refusals))
	}
	for _, r := range d.Refusals {
		user := r.User
		if user == "" {
			user = "-"
		}
		fmt.Fprintf(w, "  %s  %s  user %s  %s: %s\n", r.Time.Format(time.RFC3339), r.Peer, user, r.Reason, r.Message)
	}
	for _, c := range d.Local {
		fmt.Fprintf(w, "local %-6s %s expires %s (%.0f days)\n", c.Role, c.Subject, c.NotAfter.Format("2006-01-02"), c.DaysLeft(now))
	}
}
