package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	sd "github.com/coreos/go-systemd/v22/daemon"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/replink/replink/config"
	"github.com/replink/replink/daemon"
	"github.com/replink/replink/logging"
)

// cmdRun is `replink run`: the daemon until SIGINT/SIGTERM, reloading
// certificates on SIGHUP.
func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("run")
	mf := config.AddMasterFlags(fs)
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
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
	dc, err := daemon.FromConfig(cfg, version)
	if err != nil {
		return err
	}
	for _, w := range dc.Master.TLS.Warnings() {
		log.Warn(w, "section", "master")
	}
	dc.Notify = systemdNotify(log.Named("systemd"))
	d, err := daemon.New(dc, log, prometheus.NewRegistry())
	if err != nil {
		return err
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				_ = d.Reload() // logged and counted by the daemon
			}
		}
	}()
	return d.Run(ctx)
}

// systemdNotify sends sd_notify messages to $NOTIFY_SOCKET (Type=notify);
// nil when there is none, so nothing is tried outside systemd.
func systemdNotify(log hclog.Logger) func(string) {
	if os.Getenv("NOTIFY_SOCKET") == "" {
		return nil
	}
	return func(state string) {
		if _, err := sd.SdNotify(false, state); err != nil {
			log.Warn("cannot notify the service manager", "error", err)
		}
	}
}
