package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/replink/replink/binlog"
	"github.com/replink/replink/config"
	"github.com/replink/replink/logging"
	"github.com/replink/replink/relay"
	"github.com/replink/replink/replica"
	"github.com/replink/replink/tlsutil"
)

func cmdRun(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlagSet("run", stderr)
	mf := config.AddMasterFlags(fs)
	if err := fs.Parse(args); err != nil {
		return usageErr("%v", err)
	}
	if mf.ConfigFile == "" {
		return usageErr("run needs -c FILE")
	}
	cfg, err := mf.Load()
	if err != nil {
		return err
	}
	log, err := logging.New(stderr, cfg.Log.Level, cfg.Log.Format)
	if err != nil {
		return &config.Error{File: cfg.File, Key: "log", Err: err}
	}
	rc, err := cfg.ReplicaConfig()
	if err != nil {
		return err
	}
	for _, w := range rc.TLS.Warnings() {
		log.Warn(w, "section", "master")
	}
	if cfg.Relay.DataDir == "" {
		return &config.Error{File: cfg.File, Key: "relay.data-dir", Err: errors.New("is required")}
	}
	policy, err := binlog.ParseSyncPolicy(cfg.Relay.Sync)
	if err != nil {
		return &config.Error{File: cfg.File, Key: "relay.sync", Err: err}
	}
	if _, err := config.Duration(cfg.File, "relay.retain", cfg.Relay.Retain); err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "replink_build_info", Help: "Build information (1)."}, []string{"version", "goversion"})
	build.WithLabelValues(version, runtime.Version()).Set(1)
	reloads := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "replink_cert_reloads_total", Help: "Certificate reloads on SIGHUP, by result."}, []string{"result"})
	reloads.WithLabelValues("ok")
	reloads.WithLabelValues("failed")
	lastReload := prometheus.NewGauge(prometheus.GaugeOpts{Name: "replink_config_last_reload_successful", Help: "1 when the last reload of certificates and keys succeeded."})
	lastReload.Set(1)
	fsyncs := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "replink_relay_log_fsync_duration_seconds", Help: "Relay log fsync latency.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 12)})
	reg.MustRegister(build, reloads, lastReload, fsyncs)
	tlsm := tlsutil.NewMetrics(reg)
	tlsm.SetLocalCerts(rc.TLS.Certificates())
	rm := replica.NewMetrics(reg)

	relayLog, err := binlog.OpenLog(cfg.Relay.DataDir, policy, log.Named("binlog"))
	if err != nil {
		return err
	}
	relayLog.FsyncObserver = func(d time.Duration) { fsyncs.Observe(d.Seconds()) }
	defer func() {
		if err := relayLog.Close(); err != nil {
			log.Error("closing relay log", "error", err)
		}
	}()
	rep := replica.New(rc, relayLog, log.Named("replica"), rm, tlsm)
	relayCfg, err := cfg.RelayConfig()
	if err != nil {
		return err
	}
	relayCfg.ServerVersion = func() string { return rep.Status().ServerVersion }
	if relayCfg.TLS != nil {
		tlsm.SetLocalCerts(append(rc.TLS.Certificates(), relayCfg.TLS.Certificates()...))
	}
	relaySrv, err := relay.New(relayCfg, relayLog, log.Named("relay"), tlsm, relay.NewMetrics(reg))
	if err != nil {
		return &config.Error{File: cfg.File, Key: "relay", Err: err}
	}
	relayLn, err := net.Listen("tcp", relayCfg.Listen)
	if err != nil {
		return &config.Error{File: cfg.File, Key: "relay.listen", Err: err}
	}

	srv, err := serveHTTP(cfg.Metrics.Listen, reg, rep, relaySrv, relayLog, log.Named("http"))
	if err != nil {
		return &config.Error{File: cfg.File, Key: "metrics.listen", Err: err}
	}
	defer srv.Close()

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				err := rc.TLS.Reload()
				if err == nil && relayCfg.TLS != nil {
					err = relayCfg.TLS.Reload()
				}
				if err != nil {
					reloads.WithLabelValues("failed").Inc()
					lastReload.Set(0)
					log.Error("certificate reload failed; keeping the old certificates", "error", err)
					continue
				}
				reloads.WithLabelValues("ok").Inc()
				lastReload.Set(1)
				local := rc.TLS.Certificates()
				if relayCfg.TLS != nil {
					local = append(local, relayCfg.TLS.Certificates()...)
				}
				tlsm.SetLocalCerts(local)
				log.Info("certificates reloaded")
			}
		}
	}()

	log.Info("replink starting", "version", version, "master", rc.Addr(), "ssl_mode", rc.TLS.Mode().String(),
		"data_dir", cfg.Relay.DataDir, "sync", string(policy), "metrics", cfg.Metrics.Listen)
	relayDone := make(chan error, 1)
	go func() { relayDone <- relaySrv.Serve(ctx, relayLn) }()
	err = rep.Run(ctx)
	if rerr := <-relayDone; err == nil {
		err = rerr
	}
	log.Info("replink stopping", "position", relayLog.ResumePoint())
	return err
}

// statusDoc is the /status document.
type statusDoc struct {
	Master   replica.Status        `json:"master"`
	Relay    relayStatus           `json:"relay"`
	LagSec   float64               `json:"lag_seconds"`
	Local    []tlsutil.CertInfo    `json:"local_certificates"`
	Version  string                `json:"version"`
	Uptime   string                `json:"uptime"`
	Replicas []relay.ReplicaStatus `json:"replicas"`
}

type relayStatus struct {
	DataDir  string   `json:"data_dir"`
	Position string   `json:"position"`
	Files    []string `json:"files"`
}

func (s statusDoc) WriteText(w io.Writer, now time.Time) {
	m := s.Master
	fmt.Fprintf(w, "master:   %s since %s (%s)\n", m.State, m.Since.Format(time.RFC3339), now.Sub(m.Since).Round(time.Second))
	if m.ServerVersion != "" {
		fmt.Fprintf(w, "server:   %s (%s)\n", m.ServerVersion, m.Flavor)
	}
	if m.TLSVersion != "" {
		fmt.Fprintf(w, "tls:      %s %s\n", m.TLSVersion, m.Cipher)
	} else if m.State == "streaming" {
		fmt.Fprintf(w, "tls:      none (plaintext)\n")
	}
	for i, c := range m.PeerChain {
		fmt.Fprintf(w, "  cert[%d] %s  issuer %s  expires %s (%.0f days)\n", i, c.Subject, c.Issuer, c.NotAfter.Format("2006-01-02"), c.DaysLeft(now))
	}
	fmt.Fprintf(w, "position: %s\nlag:      %.1fs\nreconnects: %d\n", s.Relay.Position, s.LagSec, m.Reconnects)
	if m.LastError != "" {
		fmt.Fprintf(w, "last error: %s (reason %s)\n", m.LastError, m.LastReason)
	}
	for _, f := range m.Failures {
		fmt.Fprintf(w, "  %s %s: %s\n    fix: %s\n", f.Time.Format(time.RFC3339), f.Reason, f.Error, f.Hint)
	}
	for _, c := range s.Local {
		fmt.Fprintf(w, "local %-6s %s expires %s (%.0f days)\n", c.Role, c.Subject, c.NotAfter.Format("2006-01-02"), c.DaysLeft(now))
	}
}

func serveHTTP(addr string, reg *prometheus.Registry, rep *replica.Replica, rs *relay.Server, l *binlog.Log, log hclog.Logger) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	started := time.Now()
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if st := rep.Status(); st.State != "streaming" {
			http.Error(w, "not streaming: "+st.State+" "+st.LastError, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/status", func(w http.ResponseWriter, _ *http.Request) {
		doc := statusDoc{Master: rep.Status(), LagSec: rep.Lag(), Version: version, Uptime: time.Since(started).Round(time.Second).String(),
			Relay: relayStatus{DataDir: l.Dir(), Position: l.ResumePoint().String(), Files: l.Files()}, Replicas: rs.Replicas()}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(doc)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server", "error", err)
		}
	}()
	return srv, nil
}
