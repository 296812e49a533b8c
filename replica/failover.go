package replica

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/replink/replink/tlsutil"
)

// Following a failover (docs/failover.md). With [master] candidates set,
// the replica watches the server it follows: unreachable, or read-only,
// for FailoverWait, it probes host and every candidate and follows the one
// writable server whose binlog holds every GTID in the relay log (Choose).
// Diverged or ambiguous, it stays unattached and looks again every
// FailoverWait until that changes.

// errUpstreamSwitched ends a stream from a replink upstream that crossed
// to a new master's files: this relay log starts a sequence too.
var errUpstreamSwitched = errors.New("the replink upstream follows a new master")

// errReadOnly ends a stream whose master has been read-only for
// FailoverWait: a failover manager is at work.
var errReadOnly = errors.New("the master has been read-only for failover-wait")

// failover is the replica's watch over the server it follows.
type failover struct {
	// downSince is when the link was last lost without a stream starting
	// again since (zero while streaming).
	downSince time.Time
	// blocked is the last look's refusal ("" when none): a diverged or
	// ambiguous choice, logged and counted once per incident.
	blocked string
}

// watching reports whether the replica follows failovers at all.
func (r *Replica) watching() bool {
	return len(r.cfg.Candidates) > 0 && r.flavor != mysql.MySQLFlavor
}

// servers are host and the candidates, each once, the followed one first.
func (r *Replica) servers() []Endpoint {
	out := []Endpoint{r.cfg.Endpoint}
	for _, e := range append([]Endpoint{r.home}, r.cfg.Candidates...) {
		dup := false
		for _, o := range out {
			dup = dup || o.Addr() == e.Addr()
		}
		if !dup {
			out = append(out, e)
		}
	}
	return out
}

// resumeMaster makes the replica follow the master of the relay log's
// newest sequence: after a restart that came after a switch, it is not
// necessarily host.
func (r *Replica) resumeMaster() {
	seqs := r.sink.Sequences()
	addr := seqs[len(seqs)-1].Master
	if addr == "" || addr == r.cfg.Addr() {
		return
	}
	for _, e := range r.servers() {
		if e.Addr() == addr {
			r.log.Info("following the master the relay log switched to before the restart", "master", addr)
			r.cfg.Endpoint = e
			return
		}
	}
	r.log.Warn("the relay log's newest files are of a master that is neither host nor a candidate now; following host",
		"relay_log_master", addr, "host", r.cfg.Addr())
}

// lookDue reports whether, after a session that ended with err, it is
// time to look for the master.
func (r *Replica) lookDue(err error, now time.Time) bool {
	if !r.watching() {
		return false
	}
	if errors.Is(err, errReadOnly) || r.fo.blocked != "" {
		return true
	}
	return !r.fo.downSince.IsZero() && now.Sub(r.fo.downSince) >= r.cfg.FailoverWait
}

// look probes every server and follows the master Choose names. It
// reports whether the replica may stream (from the server it follows
// now, switched or not); false while it is unattached.
func (r *Replica) look(ctx context.Context) bool {
	servers := r.servers()
	states := make([]ServerState, len(servers))
	var wg sync.WaitGroup
	for i, e := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			states[i] = Probe(ctx, e, r.tlsm)
		}()
	}
	wg.Wait()
	have, err := r.sink.State()
	if err != nil {
		r.log.Error("cannot read the relay log's binlog state to choose a master", "error", err)
		return false
	}
	c := Choose(have.Maria, states)
	switch c.Result {
	case "none":
		for _, s := range states {
			if s.Err != nil {
				r.log.Debug("server not reachable while looking for the master", "server", s.Addr, "error", s.Err)
			}
		}
		r.log.Warn("looking for the master: no server is writable yet; going on with the one followed", "master", r.cfg.Addr())
		r.unblock()
		return true
	case "diverged", "ambiguous":
		if r.fo.blocked != c.String() {
			r.fo.blocked = c.String()
			r.m.switches.WithLabelValues(c.Result).Inc()
			args := []any{"reason", c.Result, "why", c.String()}
			if c.Result == "diverged" {
				args = append(args, "server", c.Master.Addr, "missing", gtids(c.Missing))
			} else {
				args = append(args, "writable", c.Writable)
			}
			r.log.Error("not following a new master: replink stays unattached until this changes", args...)
		}
		r.m.up.Set(0)
		r.setState(func(s *Status) {
			s.State, s.Since, s.LastError, s.LastReason = "unattached", time.Now(), c.String(), tlsutil.Reason(c.Result)
		})
		return false
	}
	r.unblock()
	if c.Master.Addr == r.cfg.Addr() {
		return true // the followed server is the master (again)
	}
	var next Endpoint
	for _, e := range servers {
		if e.Addr() == c.Master.Addr {
			next = e
		}
	}
	if err := r.sink.Rollback(); err != nil {
		r.log.Error("switching master: cutting back the partial transaction failed", "error", err)
		return false
	}
	if err := r.sink.Switch(c.Master.Addr, c.Master.ServerID); err != nil {
		r.log.Error("switching master: the relay log could not start the new master's files", "master", c.Master.Addr, "error", err)
		return false
	}
	r.log.Warn("following a new master", "from", r.cfg.Addr(), "to", c.Master.Addr, "server_id", c.Master.ServerID,
		"gtid_binlog_state", have.Maria.String())
	r.cfg.Endpoint = next
	r.masterID.Store(c.Master.ServerID)
	r.m.switches.WithLabelValues("ok").Inc()
	r.m.following(next.Addr(), c.Master.ServerID)
	r.setState(func(s *Status) {
		s.Switches = append(s.Switches, SwitchRecord{Time: time.Now(), From: s.Master, To: next.Addr(), ServerID: c.Master.ServerID})
		if len(s.Switches) > 10 {
			s.Switches = s.Switches[len(s.Switches)-10:]
		}
		s.Master = next.Addr()
	})
	return true
}

// lookUntilAttached looks for the master, and again every failover-wait
// while replink is unattached (diverged, ambiguous); false when ctx ended.
func (r *Replica) lookUntilAttached(ctx context.Context) bool {
	for !r.look(ctx) {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(r.cfg.FailoverWait):
		}
	}
	return true
}

func (r *Replica) unblock() {
	if r.fo.blocked != "" {
		r.log.Info("a master can be followed again", "was", r.fo.blocked)
		r.fo.blocked = ""
	}
}

// SwitchRecord is one switch to a new master, for /status.
type SwitchRecord struct {
	Time     time.Time `json:"time"`
	From     string    `json:"from"`
	To       string    `json:"to"`
	ServerID uint32    `json:"server_id"`
}

// watchReadOnly asks ep, the followed server, @@read_only on a
// connection of its own every period while the stream runs, and calls
// stop once it has answered read-only for wait. It returns when ctx ends.
func (r *Replica) watchReadOnly(ctx context.Context, ep Endpoint, wait time.Duration, useTLS bool, stop func()) {
	period := min(max(wait/5, 100*time.Millisecond), time.Second)
	t := time.NewTicker(period)
	defer t.Stop()
	var c *client.Conn
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	var since time.Time
	warned := false
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			// (Re)connect as needed: one failed query must not leave a
			// planned switchover unnoticed for the rest of the stream.
			if c == nil {
				var err error
				if c, _, err = ep.connect(ctx, "master", r.tlsm, useTLS); err != nil {
					if !warned {
						r.log.Warn("cannot ask the master @@read_only; a planned switchover may go unnoticed until it is unreachable", "master", ep.Addr(), "error", err)
						warned = true
					}
					c = nil
					continue
				}
			}
			_ = c.SetDeadline(now.Add(ep.ConnectTimeout))
			res, err := c.Execute("SELECT @@global.read_only")
			if err != nil {
				c.Close()
				c = nil
				continue
			}
			ro, _ := res.GetInt(0, 0)
			switch {
			case ro == 0:
				since = time.Time{}
			case since.IsZero():
				since = now
				r.log.Info("the master is read-only; a failover may be under way", "master", ep.Addr(), "failover_wait", wait)
			case now.Sub(since) >= wait:
				stop()
				return
			}
		}
	}
}
