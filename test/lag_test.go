package test

import (
	"fmt"
	"testing"
	"time"

	"github.com/replink/replink/relay"
)

// TestLagZeroWhileCaughtUp: with the master idle and its heartbeats
// arriving, replink_replication_lag_seconds is 0 (SPEC: "0 while caught
// up, from heartbeats"), every time it is read, not a saw rising to a
// heartbeat period between heartbeats; and the same at a replink behind
// that one, whose heartbeats carry the master's clock. Once the master
// link is gone, the lag grows again.
func TestLagZeroWhileCaughtUp(t *testing.T) {
	const hb = time.Second
	p, m := newMaster(t)
	proxy := StartProxy(t, m.Addr())
	a := StartReplink(t, p, m.Port, ReplinkOptions{MasterPort: proxy.Port(), Heartbeat: hb, MaxBackoff: 300 * time.Millisecond,
		Users: []relay.User{{Name: "replinkb", Password: "chainpass", Require: relay.RequireX509, Subject: ClientSubject}}})
	bMaster := verifiedEndpoint(t, p, a.Port, "replinkb", "chainpass", true)
	b := StartReplink(t, p, 0, ReplinkOptions{Master: &bMaster, ServerID: 4002, Heartbeat: hb, MaxBackoff: 300 * time.Millisecond})

	m.Exec("CREATE DATABASE app", "CREATE TABLE app.t (id INT PRIMARY KEY)")
	for i := 0; i < 10; i++ {
		m.Exec(fmt.Sprintf("INSERT INTO app.t VALUES (%d)", i))
	}
	for _, r := range []*Replink{a, b} {
		waitUntil(t, 30*time.Second, func() bool {
			f, pos := m.MasterStatus()
			d := r.Log.ResumePoint()
			return d.File == f && d.Offset == pos
		})
	}

	// Idle for a few heartbeat periods, then read the gauge every 100ms
	// for 3s (6 periods): every reading is 0.
	time.Sleep(3 * hb)
	var nonZero []string
	samples := 0
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		for name, r := range map[string]*Replink{"A (from the master)": a, "B (from A)": b} {
			samples++
			if lag := lagOf(t, r); lag != 0 {
				nonZero = append(nonZero, fmt.Sprintf("%s %.3fs at %s", name, lag, time.Now().Format("15:04:05.000")))
			}
		}
	}
	if len(nonZero) > 0 {
		t.Fatalf("master idle, heartbeats every %s: %d of %d lag readings are not 0:\n%v", hb, len(nonZero), samples, nonZero)
	}
	t.Logf("master idle: %d lag readings, all 0", samples)

	// The master link cut (nothing gets through, nothing is closed): A is
	// no longer caught up, and its lag grows with the silence.
	proxy.Hold()
	proxy.Stall()
	defer proxy.Release()
	waitUntil(t, 10*time.Second, func() bool { return lagOf(t, a) > 3*hb.Seconds() })
	t.Logf("A cut off from the master: lag %.2fs", lagOf(t, a))
}
