package replica

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/replink/replink/binlog"
	"github.com/replink/replink/tlsutil"
)

// stream runs one replication connection from pos until it fails.
func (r *Replica) stream(ctx context.Context, from binlog.Pos, useTLS bool) (progressed bool, err error) {
	c, a, err := r.cfg.connect(ctx, "master", r.tlsm, useTLS)
	if err != nil {
		return false, err
	}
	defer c.Close()
	d, err := r.startDump(c, from, nil)
	if err != nil {
		return false, wrapConnectErr(r.cfg.Addr(), a, err)
	}
	_ = c.SetDeadline(time.Time{})
	if down, attempts := r.outage.back(time.Now()); attempts > 0 {
		r.log.Info("master link back; streaming from master", "master", r.cfg.Addr(), "down_for", down.Round(time.Millisecond), "attempts", attempts,
			"from", from, "tls", useTLS, "flavor", r.flavor)
	} else {
		r.log.Info("streaming from master", "master", r.cfg.Addr(), "from", from, "tls", useTLS, "flavor", r.flavor)
	}
	r.setState(func(s *Status) {
		s.State, s.Since, s.LastError, s.LastReason = "streaming", time.Now(), "", ""
		s.TLSVersion, s.Cipher, s.PeerChain = "", "", nil
		if cs := a.State(); cs != nil {
			s.TLSVersion, s.Cipher = tlsutil.VersionName(cs.Version), tlsutil.CipherName(cs.CipherSuite)
			s.PeerChain = tlsutil.DescribeChain(cs.PeerCertificates)
		}
	})
	r.m.up.Set(1)
	r.m.following(r.cfg.Addr(), r.masterID.Load())
	r.fo.downSince = time.Time{}

	// The stall watchdog: a link on which replink has waited to read for
	// 3 heartbeat periods with nothing arriving is dead even if its socket
	// looks open (a firewall that lost its state). Only time spent waiting
	// in a read counts: while the handler is busy in the sink (a slow
	// fsync, a rotation) the master's bytes wait in the socket buffer, and
	// the master is not to blame. Stopping closes the socket too, which
	// ends the read below.
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
				if silent := a.Wire.ReadBlocked(now); silent > limit {
					r.log.Warn("master link stalled; closing it", "silent", silent.Round(time.Millisecond), "limit", limit)
					r.m.stalls.Inc()
					close(stalled)
					_ = a.Wire.Close()
					return
				}
			}
		}
	}()

	// With candidates, a master read-only for failover-wait ends the
	// stream: a failover manager is at work (failover.go).
	readOnly := make(chan struct{})
	var watch sync.WaitGroup
	if r.watching() {
		watch.Add(1)
		go func() {
			defer watch.Done()
			r.watchReadOnly(ctx, r.cfg.Endpoint, r.cfg.FailoverWait, useTLS, func() {
				close(readOnly)
				_ = a.Wire.Close()
			})
		}()
	}
	// The watch ends before the stream returns: the next master may be
	// another server.
	defer func() { cancel(); watch.Wait() }()

	h := &handler{r: r, file: from.File, done: ctx.Done()}
	err = h.run(d)
	// The link is down from here: say so before ending the dump thread,
	// which may take up to connect-timeout over a dead path.
	r.m.up.Set(0)
	r.lag.down()
	cancel()
	if !peerClosed(err) {
		r.killDump(c.GetConnectionID(), useTLS)
	}
	progressed = h.events > 0
	select {
	case <-stalled:
		return progressed, errStall
	case <-readOnly:
		return progressed, errReadOnly
	default:
	}
	if parent.Err() != nil {
		return progressed, nil // stopping
	}
	if errors.Is(h.err, errUpstreamSwitched) {
		return progressed, errUpstreamSwitched
	}
	if h.err != nil {
		return progressed, &sinkError{h.err}
	}
	return progressed, &streamError{err: err}
}

// handler hands each raw event to the sink.
type handler struct {
	r    *Replica
	file string // the master's binlog file the events belong to
	// started: the dump has sent its first event.
	started bool
	events  int
	err     error
	done    <-chan struct{}
}

// run hands each event of the dump to the sink until the stream or the
// sink fails, acknowledging the events the master asks semi-sync ACKs for
// once they are durable. It returns the stream's error; the sink's is kept
// in h.err.
func (h *handler) run(d *dumpStream) error {
	for {
		raw, ack, err := d.next()
		if err != nil {
			return err
		}
		file := h.file // an ACK names the event's own file
		ev, err := h.handle(raw)
		if err == nil && ack {
			err = h.r.sink.WaitDurable(h.done)
		}
		if err != nil {
			h.err = err
			return err
		}
		if ack {
			if err := d.ackSemiSync(file, ev.LogPos()); err != nil {
				return err
			}
		}
	}
}

// startFile follows a ROTATE to the file it names.
func (h *handler) startFile(ev binlog.Event) error {
	name, _, err := binlog.RotateTarget(ev)
	if err != nil {
		return err
	}
	h.file = name
	return h.r.sink.StartFile(name)
}

func (h *handler) handle(raw []byte) (binlog.Event, error) {
	r := h.r
	ev, err := binlog.ParseEvent(raw)
	if err != nil {
		return ev, fmt.Errorf("master %s: bad event: %w", r.cfg.Addr(), err)
	}
	started := h.started
	h.started = true
	if !ev.InFile() {
		switch ev.Type() {
		case binlog.TypeHeartbeat, binlog.TypeHeartbeatV2:
			// The master had nothing newer than what we hold.
			now := time.Now()
			r.lag.heard(heartbeatMark(ev.Timestamp(), now), now)
		case binlog.TypeRotate: // the fake ROTATE that names the file a dump starts in
			if _, pos, err := binlog.RotateTarget(ev); err == nil && started && pos > 4 {
				// Mid-stream, past a file's start: a replink upstream
				// crossed to a new master's files (relay/dump.go). This
				// relay log follows with a sequence of its own, each file
				// fetched from its start.
				return ev, errUpstreamSwitched
			}
			return ev, h.startFile(ev)
		}
		return ev, nil
	}
	written, err := r.sink.Append(ev)
	if err != nil || !written {
		return ev, err
	}
	h.events++
	r.m.countEvent(ev)
	if ts := ev.Timestamp(); ts != 0 {
		r.lastEventTS.Store(int64(ts))
		r.lag.heard(time.Unix(int64(ts), 0), time.Now())
	}
	if ev.Type() == binlog.TypeRotate {
		return ev, h.startFile(ev)
	}
	return ev, nil
}

// heartbeatMark is the master time that a heartbeat with timestamp ts,
// received at now, says the stream is complete up to.
// A master's heartbeats carry timestamp 0: it had nothing newer, as of
// now. A heartbeat with a timestamp carries the master's clock: the
// master time its sender (a replink upstream, itself a replica) is
// complete up to; "now" would be the intermediate's word, and a replink
// behind a lagging one would show no lag.
func heartbeatMark(ts uint32, now time.Time) time.Time {
	if ts == 0 {
		return now
	}
	return time.Unix(int64(ts), 0)
}
