package test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/replink/replink/binlog"
	"github.com/replink/replink/daemon"
	"github.com/replink/replink/relay"
	"github.com/replink/replink/replica"
	"github.com/replink/replink/tlsutil"
)

// Replink is an in-process replink: the daemon the binary runs
// (replica → relay log → relay server, and the status endpoints).
type Replink struct {
	t       testing.TB
	Log     *binlog.Log
	Replica *replica.Replica
	Relay   *relay.Server
	Reg     *prometheus.Registry
	Port    int
	Dir     string
	// MetricsAddr serves /metrics, /status and the probes.
	MetricsAddr string
	cancel      context.CancelFunc
	done        chan struct{}
	err         error // what Run returned
	logs        *lockedBuffer
}

// ReplinkOptions shape the in-process replink.
type ReplinkOptions struct {
	Dir       string // relay data-dir; a temp dir when empty
	Sync      binlog.SyncPolicy
	Heartbeat time.Duration
	Users     []relay.User
	Port      int // relay port; free when 0
	SemiSync  bool
	Retain    time.Duration
	// KeepForAbsent is [relay] keep-for-absent-slaves (0: slaves that
	// leave are not remembered).
	KeepForAbsent time.Duration
	// MasterPort overrides the port replink dials (a proxy in front of the master).
	MasterPort int
	// Master replaces the whole upstream endpoint (another replink's
	// relay port, as one of its users).
	Master *replica.Endpoint
	// ServerID is replink's [master] and [relay] server-id (4001 when zero).
	ServerID uint32
	// AtRest encrypts the relay log at rest (nil: plaintext).
	AtRest binlog.AtRest
	// Start is where to begin with an empty relay log ("current" when zero).
	Start replica.Start
	// SSLMode for the master link; VERIFY_IDENTITY when empty.
	SSLMode string
	// MaxBackoff caps the wait between reconnects (replica default when zero).
	MaxBackoff time.Duration
	// Relay limits (relay defaults when zero).
	HandshakeTimeout time.Duration
	MaxConnections   int
	// Candidates are the ports of servers that may be promoted, reached
	// as the master is; FailoverWait is [master] failover-wait (1s when
	// zero and there are candidates).
	Candidates   []int
	FailoverWait time.Duration
	// MasterUser is the account replink logs in to the master with (repl
	// when empty); MasterCert and MasterKey, when set, its client
	// certificate ([master] ssl-cert, ssl-key).
	MasterUser, MasterCert, MasterKey string
	// ServerCert and ServerKey are the relay's certificate ([relay]
	// ssl-cert, ssl-key; the PKI's server certificate when empty).
	ServerCert, ServerKey string
	// CertWatch is how often the TLS files are checked for changes
	// (daemon.DefaultCertWatchInterval when zero, never when negative).
	CertWatch time.Duration
}

// StartReplink runs replink against the master on masterPort over
// VERIFY_IDENTITY, serving slaves with the PKI's server certificate.
func StartReplink(t testing.TB, p *PKI, masterPort int, o ReplinkOptions) *Replink {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	if o.Sync == "" {
		o.Sync = binlog.SyncTransaction
	}
	if o.Heartbeat == 0 {
		o.Heartbeat = 500 * time.Millisecond
	}
	if o.Port == 0 {
		o.Port = FreePort(t)
	}
	if o.Start.Kind == "" {
		o.Start = replica.Start{Kind: "current"}
	}
	if o.MasterPort != 0 {
		masterPort = o.MasterPort
	}
	if o.SSLMode == "" {
		o.SSLMode = "VERIFY_IDENTITY"
	}
	if o.ServerID == 0 {
		o.ServerID = 4001
	}
	if o.MasterUser == "" {
		o.MasterUser = "repl"
	}
	if o.Master == nil {
		tc, err := tlsutil.NewClient(tlsutil.ClientOptions{Mode: o.SSLMode, CA: p.CAFile, Cert: o.MasterCert, Key: o.MasterKey})
		if err != nil {
			t.Fatal(err)
		}
		o.Master = &replica.Endpoint{Host: "127.0.0.1", Port: masterPort, User: o.MasterUser, Password: "replpass", TLS: tc, ConnectTimeout: 5 * time.Second}
	}
	if o.ServerCert == "" {
		o.ServerCert, o.ServerKey = p.ServerCert, p.ServerKey
	}
	ts, err := tlsutil.NewServer(tlsutil.ServerOptions{CA: p.CAFile, Cert: o.ServerCert, Key: o.ServerKey})
	if err != nil {
		t.Fatal(err)
	}
	var candidates []replica.Endpoint
	for _, port := range o.Candidates {
		c := *o.Master
		c.Port = port
		candidates = append(candidates, c)
	}
	if o.FailoverWait == 0 {
		o.FailoverWait = time.Second
	}
	cfg := daemon.Config{
		Master: replica.Config{
			Endpoint:        *o.Master,
			ServerID:        o.ServerID,
			ReportPort:      uint16(o.Port),
			Start:           o.Start,
			HeartbeatPeriod: o.Heartbeat,
			SemiSync:        o.SemiSync,
			MaxBackoff:      o.MaxBackoff,
			Candidates:      candidates,
			FailoverWait:    o.FailoverWait,
			RelayEncrypted:  o.AtRest != nil,
		},
		AtRest: o.AtRest,
		Relay: relay.Config{Listen: "127.0.0.1:" + itoa(o.Port), ServerID: o.ServerID, TLS: ts, Users: o.Users, Retain: o.Retain, KeepForAbsentSlaves: o.KeepForAbsent,
			HandshakeTimeout: o.HandshakeTimeout, MaxConnections: o.MaxConnections},
		DataDir:           o.Dir,
		Sync:              o.Sync,
		Version:           "test",
		CertWatchInterval: o.CertWatch,
	}
	cfg.HTTP.Listen = "127.0.0.1:0"
	logs := &lockedBuffer{}
	logger := hclog.New(&hclog.LoggerOptions{Name: fmt.Sprintf("replink-%d", o.ServerID), Level: hclog.Debug, Output: logs})
	reg := prometheus.NewRegistry()
	d, err := daemon.New(cfg, logger, reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Replink{t: t, Log: d.RelayLog(), Replica: d.Replica(), Relay: d.Relay(), Reg: reg, Port: o.Port, Dir: o.Dir,
		MetricsAddr: d.MetricsAddr().String(), cancel: cancel, done: make(chan struct{}), logs: logs}
	go func() { r.err = d.Run(ctx); close(r.done) }()
	t.Cleanup(r.Stop)
	return r
}

// Stop stops replink and closes its relay log, as SIGTERM does.
func (r *Replink) Stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		r.t.Errorf("replink did not stop in 30s")
	}
	if r.err != nil {
		r.t.Errorf("replink ended with %v", r.err)
	}
	if r.t.Failed() {
		r.t.Logf("replink log:\n%s", r.logs.String())
	}
}

// Logs returns what replink logged.
func (r *Replink) Logs() string { return r.logs.String() }

func itoa(n int) string {
	return fmtInt(n)
}
