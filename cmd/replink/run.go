package main

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/replink/replink/binlog"
	"github.com/replink/replink/config"
	"github.com/replink/replink/logging"
	"github.com/replink/replink/relay"
	"github.com/replink/replink/replica"
	"github.com/replink/replink/status"
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
	relayCfg, err := cfg.RelayConfig()
	if err != nil {
		return err
	}
	if err := status.ValidateWebConfig(cfg.Metrics.WebConfigFile); err != nil {
		return &config.Error{File: cfg.File, Key: "metrics.web-config-file", Err: err}
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
	local := func() []tlsutil.CertInfo {
		certs := rc.TLS.Certificates()
		if relayCfg.TLS != nil {
			certs = append(certs, relayCfg.TLS.Certificates()...)
		}
		return certs
	}
	tlsm.SetLocalCerts(local())
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
	relayCfg.ServerVersion = func() string { return rep.Status().ServerVersion }

	relaySrv, err := relay.New(relayCfg, relayLog, log.Named("relay"), tlsm, relay.NewMetrics(reg))
	if err != nil {
		return &config.Error{File: cfg.File, Key: "relay", Err: err}
	}
	relayLn, err := net.Listen("tcp", relayCfg.Listen)
	if err != nil {
		return &config.Error{File: cfg.File, Key: "relay.listen", Err: err}
	}

	srv, err := status.Serve(cfg.Metrics.Listen, cfg.Metrics.WebConfigFile, status.Handler(reg, status.Sources{Replica: rep, Relay: relaySrv, Log: relayLog,
		Local: local, Version: version, Started: time.Now()}), log.Named("http"))
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
				tlsm.SetLocalCerts(local())
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
