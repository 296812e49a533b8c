package test

import (
	"strings"
	"testing"
	"time"
)

// TestDuplicateServerIDDoesNotFlap: a second replink started with the
// server-id of a healthy one must not knock it off the master. The master
// keeps one dump per server-id and drops the older one (ERROR 4052); two
// replinks with the same id used to take it from each other every few
// seconds, both flapping. Now the newcomer sees the id registered by
// another replica (SHOW SLAVE HOSTS), does not dump, and says why.
func TestDuplicateServerIDDoesNotFlap(t *testing.T) {
	p, m := newMaster(t)
	m.Exec("CREATE DATABASE app", "CREATE TABLE app.t (id INT PRIMARY KEY)", "INSERT INTO app.t VALUES (1)")
	a := StartReplink(t, p, m.Port, ReplinkOptions{ServerID: 4001, MaxBackoff: 500 * time.Millisecond})
	waitUntil(t, 20*time.Second, func() bool { return counterValue(t, a.Reg, "replink_master_up", nil) == 1 })

	b := StartReplink(t, p, m.Port, ReplinkOptions{ServerID: 4001, MaxBackoff: 500 * time.Millisecond})
	waitUntil(t, 20*time.Second, func() bool {
		return counterValue(t, b.Reg, "replink_master_reconnects_total", map[string]string{"reason": "duplicate_server_id"}) >= 1
	})
	for i := 0; i < 30; i++ {
		m.Exec("INSERT INTO app.t VALUES (" + itoa(100+i) + ")")
		time.Sleep(100 * time.Millisecond)
	}
	waitCaughtUp(t, m, a, 10*time.Second)
	if n := counterValue(t, a.Reg, "replink_master_reconnects_total", nil); n != 0 {
		t.Errorf("the healthy replink reconnected %v times after a second one started with its server-id", n)
	}
	if up := counterValue(t, b.Reg, "replink_master_up", nil); up != 0 {
		t.Errorf("the second replink streams (replink_master_up %v) with a server-id another replica holds", up)
	}
	st := b.Replica.Status()
	if st.LastReason != "duplicate_server_id" || !strings.Contains(st.Failures[len(st.Failures)-1].Hint, "server-id") {
		t.Errorf("the second replink's status says reason %q, hint %q; want duplicate_server_id and a fix naming server-id", st.LastReason, st.Failures[len(st.Failures)-1].Hint)
	}
	// Once the first one is gone, the id is free: the second one takes over.
	a.Stop()
	waitUntil(t, 30*time.Second, func() bool { return counterValue(t, b.Reg, "replink_master_up", nil) == 1 })
	waitCaughtUp(t, m, b, 10*time.Second)
}
