package replica

import (
	"testing"
	"time"
)

// TestLagClock: the lag is 0 while the master's word that nothing is
// newer holds (a heartbeat or an event sent as it was written, no older
// than the master's silence allows), and counted from the last master
// time known complete once that word is overdue, the stream ended, or
// the event or heartbeat was an old one.
func TestLagClock(t *testing.T) {
	const period = time.Second
	t0 := time.Unix(1_800_000_000, 300_000_000) // receipt of the first heartbeat or event
	sec := func(s int64) time.Time { return time.Unix(t0.Unix()+s, 0) }
	type heard struct {
		mark time.Time // what it says the stream is complete up to
		at   time.Duration
	}
	for _, c := range []struct {
		name   string
		period time.Duration
		heard  []heard
		down   bool          // the stream ended after them
		at     time.Duration // reading, after t0
		want   float64
	}{
		{"nothing yet", period, nil, false, 5 * time.Second, 0},
		{"master heartbeat, read at once", period, []heard{{t0, 0}}, false, 0, 0},
		{"master heartbeat, read a period later", period, []heard{{t0, 0}}, false, period, 0},
		{"master heartbeat, read just before it is overdue", period, []heard{{t0, 0}}, false, 2 * period, 0},
		{"master heartbeat overdue", period, []heard{{t0, 0}}, false, 3 * period, 3},
		{"heartbeats keep coming", period, []heard{{t0, 0}, {t0.Add(period), period}, {t0.Add(2 * period), 2 * period}}, false, 4 * period, 0},
		{"stream ended", period, []heard{{t0, 0}}, true, 500 * time.Millisecond, 0.5},
		{"event written as it arrived", period, []heard{{sec(0), 0}}, false, 1500 * time.Millisecond, 0},
		{"event an hour old (catching up)", period, []heard{{sec(-3600), 0}}, false, 0, 3600.3},
		{"master heartbeat after an old event", period, []heard{{sec(-3600), 0}, {t0.Add(period), period}}, false, period, 0},
		{"old event after a heartbeat", period, []heard{{t0, 0}, {sec(-60), 100 * time.Millisecond}}, false, 100 * time.Millisecond, 60.4},
		{"upstream 30s behind the master", period, []heard{{sec(-30), 0}}, false, 0, 30.3},
		{"upstream caught up (its heartbeat in this second)", period, []heard{{sec(0), 0}}, false, 900 * time.Millisecond, 0},
		{"upstream clock ahead", period, []heard{{sec(60), 0}}, false, 0, 0},
		{"no heartbeats asked", 0, []heard{{t0, 0}}, false, 700 * time.Millisecond, 0.7},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := &lagClock{period: c.period}
			for _, h := range c.heard {
				l.heard(h.mark, t0.Add(h.at))
			}
			if c.down {
				l.down()
			}
			if got := l.lag(t0.Add(c.at)); got < c.want-0.001 || got > c.want+0.001 {
				t.Fatalf("lag %.3fs, want %.3fs", got, c.want)
			}
		})
	}
}
