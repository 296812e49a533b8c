// Package daemon is the running replink: the replica streaming from the
// master into the relay log, the relay server serving it to slaves, and
// the status endpoints, built once, run and stopped as one, reloaded as one.
package daemon

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/replink/replink/binlog"
	"github.com/replink/replink/config"
	"github.com/replink/replink/relay"
	"github.com/replink/replink/replica"
	"github.com/replink/replink/status"
	"github.com/replink/replink/tlsutil"
)

// Config is everything the daemon runs with, parsed and checked.
type Config struct {
	Master  replica.Config
	Relay   relay.Config
	DataDir string
	Sync    binlog.SyncPolicy
	// AtRest encrypts the relay log at rest (nil: it does not);
	// ReloadAtRest reads its keys again on a reload (SIGHUP), nil when
	// there is nothing to read again.
	AtRest       binlog.AtRest
	ReloadAtRest func() (binlog.AtRest, error)
	// HTTP is the [metrics] section: /metrics, /status and the probes.
	HTTP struct {
		Listen        string
		WebConfigFile string
		// Limits bound the HTTP clients; zero: status.LimitsFor the
		// process's open files limit.
		Limits status.Limits
	}
	// CertWatchInterval is how often the TLS files of both sides are
	// read to see whether they changed (0: DefaultCertWatchInterval;
	// negative: never, only SIGHUP reloads).
	CertWatchInterval time.Duration
	// ShutdownTimeout bounds stopping (0: DefaultShutdownTimeout): a part
	// still running after it is named in the log, and Run returns an error.
	ShutdownTimeout time.Duration
	Version         string
	// File is the configuration file, named in configuration errors.
	File string
	// Notify, when set, tells the service manager of the daemon's state
	// in sd_notify's words: READY=1 once the listeners are bound and the
	// relay log is open (not waiting for the master), STATUS= lines as the
	// master link changes, STOPPING=1 on shutdown.
	Notify func(state string)
}

// FromConfig checks a configuration file's sections and loads what they
// name (passwords, certificates and keys).
func FromConfig(c *config.Config, version string) (Config, error) {
	var dc Config
	var err error
	if dc.Master, err = c.ReplicaConfig(); err != nil {
		return dc, err
	}
	if dc.DataDir, dc.Sync, err = c.RelayLog(); err != nil {
		return dc, err
	}
	if dc.Relay, err = c.RelayConfig(); err != nil {
		return dc, err
	}
	rest, err := c.AtRest()
	if err != nil {
		return dc, err
	}
	if rest != nil {
		dc.AtRest = rest
		dc.Master.RelayEncrypted = true
	}
	if c.File != "" {
		// key-file and key-id as the file says them at the reload: a new
		// key id for new files, a key file with one more key.
		file := c.File
		dc.ReloadAtRest = func() (binlog.AtRest, error) {
			nc := config.Defaults()
			if err := nc.LoadFile(file); err != nil {
				return nil, err
			}
			s, err := nc.AtRest()
			if s == nil || err != nil {
				return nil, err // a nil *Sealer is no AtRest at all
			}
			return s, nil
		}
	}
	if err := status.ValidateWebConfig(c.Metrics.WebConfigFile); err != nil {
		return dc, &config.Error{File: c.File, Key: "metrics.web-config-file", Err: err}
	}
	dc.HTTP.Listen, dc.HTTP.WebConfigFile = c.Metrics.Listen, c.Metrics.WebConfigFile
	dc.Version, dc.File = version, c.File
	return dc, nil
}

// DefaultShutdownTimeout is how long replink may take to stop once told
// to or once a part failed.
const DefaultShutdownTimeout = 30 * time.Second

// Daemon is one running replink.
type Daemon struct {
	cfg  Config
	log  hclog.Logger
	m    *metrics
	tlsm *tlsutil.Metrics

	rlog    *binlog.Log
	rep     *replica.Replica
	srv     *relay.Server
	relayLn net.Listener
	httpLn  net.Listener
	handler *status.Sources
	// parts run together in Run, each until its context ends.
	parts []part
	// nofile is the open files limit the HTTP limits were chosen for.
	nofile uint64

	watch certWatch

	closeOnce sync.Once
	closeErr  error
}

// part is one component Run runs, named in the log if it does not stop.
type part struct {
	name string
	run  func(context.Context) error
}

// New builds the daemon: it opens (and recovers) the relay log, makes the
// replica and the relay server, and opens both listeners, so that every
// configuration problem shows before Run. Its metrics go on reg.
func New(cfg Config, log hclog.Logger, reg *prometheus.Registry) (_ *Daemon, err error) {
	d := &Daemon{cfg: cfg, log: log, m: newMetrics(reg, cfg.Version), tlsm: tlsutil.NewMetrics(reg)}
	d.tlsm.SetLocalCerts(d.localCerts())
	if d.rlog, err = binlog.OpenLogAtRest(cfg.DataDir, cfg.Sync, log.Named("binlog"), binlog.NewMetrics(reg), cfg.AtRest); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	d.rep = replica.New(cfg.Master, d.rlog, log.Named("replica"), replica.NewMetrics(reg), d.tlsm)
	if cfg.Relay.ServerVersion == nil {
		cfg.Relay.ServerVersion = func() string { return d.rep.Status().ServerVersion }
	}
	if cfg.Relay.CaughtUpTo == nil {
		cfg.Relay.CaughtUpTo = d.rep.CaughtUpTo
	}
	if cfg.Relay.GTIDMode == nil {
		cfg.Relay.GTIDMode = func() string { return d.rep.Status().GTIDMode }
	}
	if d.srv, err = relay.New(cfg.Relay, d.rlog, log.Named("relay"), d.tlsm, relay.NewMetrics(reg)); err != nil {
		return nil, &config.Error{File: cfg.File, Key: "relay", Err: err}
	}
	if d.relayLn, err = listen(cfg.File, "relay.listen", cfg.Relay.Listen); err != nil {
		return nil, err
	}
	if d.httpLn, err = listen(cfg.File, "metrics.listen", cfg.HTTP.Listen); err != nil { // its web config was checked by FromConfig
		d.relayLn.Close()
		return nil, err
	}
	d.handler = &status.Sources{Replica: d.rep, Relay: d.srv, Log: d.rlog, Local: d.localCerts,
		Version: cfg.Version, Started: time.Now()}
	d.nofile = openFilesLimit()
	if d.cfg.HTTP.Limits == (status.Limits{}) {
		d.cfg.HTTP.Limits = status.LimitsFor(d.nofile)
	}
	if d.cfg.ShutdownTimeout <= 0 {
		d.cfg.ShutdownTimeout = DefaultShutdownTimeout
	}
	if d.cfg.CertWatchInterval == 0 {
		d.cfg.CertWatchInterval = DefaultCertWatchInterval
	}
	d.watch.loaded = d.fingerprint()
	d.parts = []part{
		{"replica", d.rep.Run},
		{"relay", func(ctx context.Context) error { return d.srv.Serve(ctx, d.relayLn) }},
		{"certificate watch", d.watchCerts},
		{"http", func(ctx context.Context) error {
			return status.Serve(ctx, d.httpLn, d.cfg.HTTP.WebConfigFile, d.cfg.HTTP.Limits, status.Handler(d.m.reg, *d.handler), d.log.Named("http"))
		}},
	}
	return d, nil
}

// Run runs the daemon until ctx ends or one of its parts fails: the first
// failure (a relay listener that died, a status server that stopped) ends
// the others and is returned. Either way the relay log is flushed, fsynced
// and closed before Run returns. Stopping is bounded by ShutdownTimeout:
// parts still running then are logged and Run returns an error, leaving
// them to the process's exit.
func (d *Daemon) Run(ctx context.Context) error {
	d.log.Info("replink starting", "version", d.cfg.Version, "master", d.cfg.Master.Addr(), "ssl_mode", d.cfg.Master.TLS.Mode().String(),
		"data_dir", d.cfg.DataDir, "sync", string(d.cfg.Sync), "relay", d.relayLn.Addr().String(), "metrics", d.httpLn.Addr().String())
	d.checkOpenFiles()
	g, ctx := errgroup.WithContext(ctx)
	var run running
	for _, p := range d.parts {
		run.start(p.name)
		g.Go(func() error {
			err := p.run(ctx)
			if run.stop(p.name, err) {
				d.log.Error("a component failed; stopping", "component", p.name, "error", err)
			}
			return err
		})
	}
	// New bound the listeners and opened the relay log: ready, whether
	// the master answers or not (an outage is the health check's, not a
	// reason to fail the service's start).
	d.notify("READY=1", "STATUS="+linkStatus(d.rep.Status()))
	watchDone := make(chan struct{})
	if d.cfg.Notify != nil {
		go d.notifyLink(ctx, watchDone)
	} else {
		close(watchDone)
	}
	stopped := make(chan error, 1)
	go func() {
		err := g.Wait()
		<-watchDone
		d.log.Info("replink stopped; closing the relay log", "position", d.rlog.ResumePoint())
		if cerr := d.close(); err == nil {
			err = cerr
		}
		stopped <- err
	}()
	select {
	case err := <-stopped:
		return err
	case <-ctx.Done():
	}
	d.log.Info("replink stopping", "within", d.cfg.ShutdownTimeout)
	d.notify("STOPPING=1", "STATUS=stopping")
	deadline := time.NewTimer(d.cfg.ShutdownTimeout)
	defer deadline.Stop()
	select {
	case err := <-stopped:
		return err
	case <-deadline.C:
	}
	still, failed := run.snapshot()
	closing := len(still) == 0 // every part returned: closing the relay log hangs
	if closing {
		still = []string{"relay log close"}
	}
	d.log.Error("replink did not stop in time; exiting with parts still running", "still_running", strings.Join(still, ","),
		"timeout", d.cfg.ShutdownTimeout)
	if !closing && !slices.Contains(still, "replica") {
		// The relay log's writer stopped: flush and fsync it, briefly.
		closed := make(chan error, 1)
		go func() { closed <- d.close() }()
		select {
		case err := <-closed:
			if err != nil {
				d.log.Error("closing the relay log", "error", err)
			}
		case <-time.After(closeGrace):
			d.log.Error("the relay log did not close in time", "waited", closeGrace)
		}
	}
	err := fmt.Errorf("stopping: %s still running %s after replink began to stop", strings.Join(still, ", "), d.cfg.ShutdownTimeout)
	if failed != nil {
		err = fmt.Errorf("%w (%w)", failed, err)
	}
	return err
}

// notify sends sd_notify lines, when the service manager listens.
func (d *Daemon) notify(lines ...string) {
	if d.cfg.Notify != nil {
		d.cfg.Notify(strings.Join(lines, "\n"))
	}
}

// notifyLink sends a STATUS= line each time the master link changes
// state, until ctx ends; then it closes done.
func (d *Daemon) notifyLink(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	last := d.rep.Status().State
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if st := d.rep.Status(); st.State != last {
			last = st.State
			d.notify("STATUS=" + linkStatus(st))
		}
	}
}

// linkStatus is the master link's state in one line, for systemctl status.
func linkStatus(st replica.Status) string {
	s := st.State + " " + st.Master
	if st.State != "streaming" && st.LastReason != "" {
		s += " (" + string(st.LastReason) + ")"
	}
	return s
}

// closeGrace is how long a relay log whose writer stopped may take to
// close once the shutdown deadline passed.
const closeGrace = 5 * time.Second

// running are the parts of a running daemon not returned yet, and the
// first failure.
type running struct {
	mu     sync.Mutex
	parts  []string
	failed error
}

func (r *running) start(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.parts = append(r.parts, name)
}

// stop notes that name returned err; it reports whether err is the first
// failure.
func (r *running) stop(name string, err error) (first bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.parts = slices.DeleteFunc(r.parts, func(p string) bool { return p == name })
	if err != nil && r.failed == nil {
		r.failed = err
		return true
	}
	return false
}

func (r *running) snapshot() ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.parts), r.failed
}

// checkOpenFiles logs the open files limit the HTTP cap was chosen for,
// and warns when the limit leaves too few for the slaves.
func (d *Daemon) checkOpenFiles() {
	httpMax := d.cfg.HTTP.Limits.MaxConns
	d.log.Info("open files", "limit", d.nofile, "http_max_conns", httpMax)
	slaves := d.cfg.Relay.MaxConnections
	if slaves == 0 {
		slaves = relay.DefaultMaxConnections
	}
	// A slave holds its socket and a relay log file; the master link,
	// the listeners, the relay log being written, its index and the
	// state files a few more.
	if need := uint64(2*slaves + httpMax + 2 + 16); d.nofile > 0 && d.nofile < need {
		d.log.Warn("the open files limit is low: slaves may be refused or the relay log fail to open a file",
			"limit", d.nofile, "want", need, "relay_max_connections", slaves, "http_max_conns", httpMax)
	}
}

// close releases what New opened, once.
func (d *Daemon) close() error {
	d.closeOnce.Do(func() { d.closeErr = d.doClose() })
	return d.closeErr
}

func (d *Daemon) doClose() error {
	for _, ln := range []net.Listener{d.relayLn, d.httpLn} {
		if ln != nil {
			ln.Close()
		}
	}
	if err := d.rlog.Close(); err != nil {
		return fmt.Errorf("closing relay log: %w", err)
	}
	return nil
}

// localCerts are the certificates loaded on both sides, for the expiry
// metrics and /status.
func (d *Daemon) localCerts() []tlsutil.CertInfo {
	return append(d.cfg.Master.TLS.Certificates(), d.cfg.Relay.TLS.Certificates()...)
}

// RelayAddr is where slaves connect; MetricsAddr serves /metrics and /status.
func (d *Daemon) RelayAddr() net.Addr   { return d.relayLn.Addr() }
func (d *Daemon) MetricsAddr() net.Addr { return d.httpLn.Addr() }

// RelayLog, Replica and Relay are the parts, for tests and tools that
// look inside a running daemon.
func (d *Daemon) RelayLog() *binlog.Log     { return d.rlog }
func (d *Daemon) Replica() *replica.Replica { return d.rep }
func (d *Daemon) Relay() *relay.Server      { return d.srv }

// listen opens the listener of the config key key. An address that is
// not host:port is bad configuration (exit 2); one that cannot be bound
// now (in use, not this host's) is a runtime failure (exit 1), which a
// service manager retries: the port may be free in a moment.
func listen(file, key, addr string) (net.Listener, error) {
	_, port, err := net.SplitHostPort(addr)
	if err == nil {
		if _, perr := net.LookupPort("tcp", port); perr != nil {
			err = perr
		}
	}
	if err != nil {
		return nil, &config.Error{File: file, Key: key, Err: fmt.Errorf("%q: want host:port: %w", addr, err)}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		where := key
		if file != "" {
			where = file + ": " + key
		}
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	return ln, nil
}
