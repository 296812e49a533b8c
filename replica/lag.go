package replica

import (
	"sync/atomic"
	"time"
)

// timestampResolution is how finely binlog events and heartbeats tell the
// master's time: whole seconds. transitSlack is allowed on top of it for
// the way from the master and a busy machine.
const (
	timestampResolution = time.Second
	transitSlack        = 500 * time.Millisecond
)

// lagClock knows how far behind the master the stream is: the master
// time it is known complete up to (the last event's timestamp, or what
// the last heartbeat said), and whether the stream is caught up.
//
// Caught up means the master last said, or showed, that it had nothing
// newer (a heartbeat, an event written as it arrived) and the link has
// not been silent for longer than a master stays silent when it has
// nothing to send: a master sends a heartbeat after each heartbeat
// period without events. Until that heartbeat is overdue, nothing
// newer exists that replink does not hold, so the lag is 0, not the
// time since the last heartbeat (which would rise and fall with every
// period on an idle master). Once it is overdue, or the stream ends,
// the lag is counted from the last master time known complete.
type lagClock struct {
	// period is the heartbeat period asked of the master (0: none, so
	// the stream is never known caught up between events).
	period time.Duration
	// mark is the master time (unix nanoseconds) the stream is known
	// complete up to; 0 before anything arrived.
	mark atomic.Int64
	// live is when (unix nanoseconds) the stream was last known caught
	// up; 0 while it is not.
	live atomic.Int64
}

// overdue is how long the link may be silent after the master last said
// it was caught up before replink stops taking its word: one heartbeat
// period, and as much again for the heartbeat's way and a busy machine.
func (c *lagClock) overdue() time.Duration { return 2 * c.period }

// heard records a heartbeat or a stored event, received at now, that
// says the stream is complete up to the master time mark. It is caught
// up when mark is now to the resolution of binlog timestamps, give or
// take transitSlack: a master's heartbeat says "as of now"; a replink
// upstream's carries the master time it is complete up to, which is now
// while it is itself caught up; an event that arrives within a second
// of its timestamp was sent as the master wrote it.
func (c *lagClock) heard(mark, now time.Time) {
	c.mark.Store(mark.UnixNano())
	if c.period > 0 && now.Sub(mark) < timestampResolution+transitSlack {
		c.live.Store(now.UnixNano())
	} else {
		c.live.Store(0)
	}
}

// down records that the stream ended: nothing says it is caught up any
// more.
func (c *lagClock) down() { c.live.Store(0) }

// completeTo is the master time the stream is known complete up to at
// now: now itself while it is caught up; zero before anything arrived.
func (c *lagClock) completeTo(now time.Time) time.Time {
	m := c.mark.Load()
	if m == 0 {
		return time.Time{}
	}
	if l := c.live.Load(); l != 0 && now.Sub(time.Unix(0, l)) <= c.overdue() {
		return now
	}
	return time.Unix(0, m)
}

// lag is now minus completeTo, in seconds: 0 while caught up or before
// anything arrived, never negative (a master clock ahead of this one).
func (c *lagClock) lag(now time.Time) float64 {
	t := c.completeTo(now)
	if t.IsZero() || !now.After(t) {
		return 0
	}
	return now.Sub(t).Seconds()
}
