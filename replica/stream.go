package replica

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/replink/replink/binlog"
	"github.com/replink/replink/tlsutil"
)

// linkTracker follows the connection attempts one BinlogSyncer makes.
type linkTracker struct {
	mu       sync.Mutex
	cur      *Attempt
	stream   *Attempt // the replication connection, once logged in
	loggedIn bool
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
			a := t.current()
			adopt(r.tlsm, "master", a, c)
			t.mu.Lock()
			t.stream, t.loggedIn = a, true
			t.mu.Unlock()
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
	cfg, t := r.syncerConfig(useTLS)
	h := &handler{r: r, done: ctx.Done()}
	cfg.SynchronousEventHandler = h
	s := replication.NewBinlogSyncer(cfg)
	defer s.Close()

	var st *replication.BinlogStreamer
	err = recoverPanic(func() error {
		var err error
		st, err = s.StartSync(mysql.Position{Name: from.File, Pos: from.Offset})
		return err
	})
	t.mu.Lock()
	loggedIn, a := t.loggedIn, t.cur
	t.mu.Unlock()
	if err != nil {
		if !loggedIn {
			recordFailure(r.tlsm, "master", a, useTLS, err)
		}
		return false, wrapConnectErr(r.cfg.Addr(), a, err)
	}
	stream := t.stream
	r.log.Info("streaming from master", "master", r.cfg.Addr(), "from", from, "tls", useTLS, "flavor", r.flavor)
	r.setState(func(s *Status) {
		s.State, s.Since, s.LastError, s.LastReason = "streaming", time.Now(), "", ""
		s.TLSVersion, s.Cipher, s.PeerChain = "", "", nil
		if cs := stream.State(); cs != nil {
			s.TLSVersion, s.Cipher = tlsutil.VersionName(cs.Version), tlsutil.CipherName(cs.CipherSuite)
			s.PeerChain = tlsutil.DescribeChain(cs.PeerCertificates)
		}
	})
	if r.m != nil {
		r.m.up.Set(1)
	}

	// The stall watchdog: a link silent for 3 heartbeat periods is dead
	// even if its socket looks open (a firewall that lost its state).
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
				return
			case now := <-tick.C:
				if silent := now.Sub(stream.Wire.LastRead()); silent > limit {
					r.log.Warn("master link stalled; closing it", "silent", silent.Round(time.Millisecond), "limit", limit)
					if r.m != nil {
						r.m.stalls.Inc()
					}
					close(stalled)
					_ = stream.Wire.Close()
					return
				}
			}
		}
	}()

	_, err = st.GetEvent(ctx)
	// The link is down from here: say so before Close, which may take up to
	// connect-timeout to KILL the dump thread over a dead path.
	if r.m != nil {
		r.m.up.Set(0)
	}
	// Close waits for the stream goroutine, so the handler is done with h
	// (and the sink) before we look at them. It also KILLs the dump thread
	// on the master, which would otherwise linger after a stall.
	s.Close()
	progressed = h.events > 0
	select {
	case <-stalled:
		return progressed, errStall
	default:
	}
	if ctx.Err() != nil {
		return progressed, nil
	}
	if h.err != nil {
		return progressed, &sinkError{h.err}
	}
	if err == nil {
		err = errors.New("stream ended")
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

func (h *handler) HandleEvent(e *replication.BinlogEvent) error {
	if err := h.handle(e.RawData); err != nil {
		h.err = err
		return err
	}
	return nil
}

func (h *handler) handle(raw []byte) error {
	r := h.r
	ev, err := binlog.ParseEvent(raw)
	if err != nil {
		return fmt.Errorf("master %s: bad event: %w", r.cfg.Addr(), err)
	}
	now := time.Now()
	switch {
	case ev.Type == binlog.TypeHeartbeat || ev.Type == binlog.TypeHeartbeatV2:
		// The master had nothing newer than what we hold.
		r.caughtUpTo.Store(now.UnixNano())
		return nil
	case ev.Type == binlog.TypeRotate && ev.Artificial():
		name, _, err := binlog.RotateTarget(ev)
		if err != nil {
			return err
		}
		return r.sink.StartFile(name)
	}
	written, err := r.sink.Append(ev)
	if err != nil {
		return err
	}
	if !written {
		return nil
	}
	h.events++
	if r.cfg.SemiSync {
		// go-mysql sends the semi-sync ACK when this handler returns: only
		// once the transaction is on disk.
		if ds, ok := r.sink.(interface{ WaitDurable(<-chan struct{}) error }); ok {
			if err := ds.WaitDurable(h.done); err != nil {
				return err
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
			return err
		}
		return r.sink.StartFile(name)
	}
	return nil
}
