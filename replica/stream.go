package replica

import (
	"context"
	"crypto/tls"
	"fmt"
	"sync"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/replink/replink/binlog"
	"github.com/replink/replink/tlsutil"
)

// linkTracker follows the connection attempts one BinlogSyncer makes
// (go-mysql's BinlogSyncer is used only to find the file of a start GTID;
// the stream itself is replink's own, in dump.go).
type linkTracker struct {
	mu  sync.Mutex
	cur *Attempt
}

func (t *linkTracker) current() *Attempt { t.mu.Lock(); defer t.mu.Unlock(); return t.cur }

// syncerConfig builds a BinlogSyncer config whose connections are metered
// and bounded, and whose replication connection is recorded in the tracker.
func (r *Replica) syncerConfig(useTLS bool) (replication.BinlogSyncerConfig, *linkTracker) {
	t := &linkTracker{}
	var tlsCfg *tls.Config
	if useTLS {
		tlsCfg = r.cfg.tlsConfig(t.current)
	}
	cfg := replication.BinlogSyncerConfig{
		ServerID:         r.cfg.ServerID,
		Flavor:           r.flavor,
		Host:             r.cfg.Host,
		Port:             uint16(r.cfg.Port),
		User:             r.cfg.User,
		Password:         r.cfg.Password,
		Localhost:        "replink",
		RawModeEnabled:   true,
		TLSConfig:        tlsCfg,
		HeartbeatPeriod:  r.cfg.HeartbeatPeriod,
		DisableRetrySync: true,
		SemiSyncEnabled:  r.cfg.SemiSync,
		Logger:           logSlog(r),
		DiscardGTIDSet:   true,
		Dialer: r.cfg.dialer("master", r.tlsm, useTLS, func(a *Attempt) {
			t.mu.Lock()
			t.cur = a
			t.mu.Unlock()
		}),
		// Option runs on the replication connection right after login.
		Option: func(c *client.Conn) error {
			adopt(r.tlsm, "master", t.current(), c)
			return nil
		},
	}
	if r.flavor == mysql.MariaDBFlavor {
		cfg.DumpCommandFlag = replication.BINLOG_SEND_ANNOTATE_ROWS_EVENT
	}
	return cfg, t
}

// stream runs one replication connection from pos until it fails.
func (r *Replica) stream(ctx context.Context, from binlog.Pos, useTLS bool) (progressed bool, err error) {
	c, a, err := r.cfg.connect(ctx, "master", r.tlsm, useTLS)
	if err != nil {
		return false, err
	}
	defer c.Close()
	d, err := r.startDump(c, from)
	if err != nil {
		return false, wrapConnectErr(r.cfg.Addr(), a, err)
	}
	_ = c.SetDeadline(time.Time{})
	r.log.Info("streaming from master", "master", r.cfg.Addr(), "from", from, "tls", useTLS, "flavor", r.flavor)
	r.setState(func(s *Status) {
		s.State, s.Since, s.LastError, s.LastReason = "streaming", time.Now(), "", ""
		s.TLSVersion, s.Cipher, s.PeerChain = "", "", nil
		if cs := a.State(); cs != nil {
			s.TLSVersion, s.Cipher = tlsutil.VersionName(cs.Version), tlsutil.CipherName(cs.CipherSuite)
			s.PeerChain = tlsutil.DescribeChain(cs.PeerCertificates)
		}
	})
	if r.m != nil {
		r.m.up.Set(1)
	}

	// The stall watchdog: a link silent for 3 heartbeat periods is dead
	// even if its socket looks open (a firewall that lost its state).
	// Stopping closes the socket too, which ends the read below.
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stalled := make(chan struct{})
	go func() {
		limit := 3 * r.cfg.HeartbeatPeriod
		tick := time.NewTicker(max(r.cfg.HeartbeatPeriod/4, 10*time.Millisecond))
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				_ = a.Wire.Close()
				return
			case now := <-tick.C:
				if silent := now.Sub(a.Wire.LastRead()); silent > limit {
					r.log.Warn("master link stalled; closing it", "silent", silent.Round(time.Millisecond), "limit", limit)
					if r.m != nil {
						r.m.stalls.Inc()
					}
					close(stalled)
					_ = a.Wire.Close()
					return
				}
			}
		}
	}()

	h := &handler{r: r, done: ctx.Done()}
	err = h.run(d, from.File)
	// The link is down from here: say so before ending the dump thread,
	// which may take up to connect-timeout over a dead path.
	if r.m != nil {
		r.m.up.Set(0)
	}
	cancel()
	if !peerClosed(err) {
		r.killDump(c.GetConnectionID(), useTLS)
	}
	progressed = h.events > 0
	select {
	case <-stalled:
		return progressed, errStall
	default:
	}
	if parent.Err() != nil {
		return progressed, nil // stopping
	}
	if h.err != nil {
		return progressed, &sinkError{h.err}
	}
	return progressed, &streamError{err: err}
}

// handler hands each raw event to the sink.
type handler struct {
	r      *Replica
	events int
	err    error
	done   <-chan struct{}
}

// run hands each event of the dump to the sink until the stream or the
// sink fails, acknowledging semi-sync events once they are durable. It
// returns the stream's error; the sink's is kept in h.err.
func (h *handler) run(d *dumpStream, file string) error {
	for {
		raw, ack, err := d.next()
		if err != nil {
			return err
		}
		ev, err := h.handle(raw)
		if err != nil {
			h.err = err
			return err
		}
		if ack {
			if err := d.ackSemiSync(file, ev.LogPos); err != nil {
				return err
			}
		}
		if ev.Type == binlog.TypeRotate {
			if name, _, err := binlog.RotateTarget(ev); err == nil {
				file = name
			}
		}
	}
}

func (h *handler) handle(raw []byte) (binlog.Event, error) {
	r := h.r
	ev, err := binlog.ParseEvent(raw)
	if err != nil {
		return ev, fmt.Errorf("master %s: bad event: %w", r.cfg.Addr(), err)
	}
	now := time.Now()
	switch {
	case ev.Type == binlog.TypeHeartbeat || ev.Type == binlog.TypeHeartbeatV2:
		// The master had nothing newer than what we hold.
		r.caughtUpTo.Store(now.UnixNano())
		return ev, nil
	case ev.Type == binlog.TypeRotate && ev.Artificial():
		name, _, err := binlog.RotateTarget(ev)
		if err != nil {
			return ev, err
		}
		return ev, r.sink.StartFile(name)
	}
	written, err := r.sink.Append(ev)
	if err != nil {
		return ev, err
	}
	if !written {
		return ev, nil
	}
	h.events++
	if r.cfg.SemiSync {
		// The semi-sync ACK goes out when this returns: only once the
		// transaction is on disk.
		if ds, ok := r.sink.(interface{ WaitDurable(<-chan struct{}) error }); ok {
			if err := ds.WaitDurable(h.done); err != nil {
				return ev, err
			}
		}
	}
	if r.m != nil {
		r.m.countEvent(ev)
	}
	if ev.Timestamp != 0 {
		r.lastEventTS.Store(int64(ev.Timestamp))
		r.caughtUpTo.Store(time.Unix(int64(ev.Timestamp), 0).UnixNano())
	}
	if ev.Type == binlog.TypeRotate {
		name, _, err := binlog.RotateTarget(ev)
		if err != nil {
			return ev, err
		}
		return ev, r.sink.StartFile(name)
	}
	return ev, nil
}
