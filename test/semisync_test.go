package test

import (
	"fmt"
	"strconv"
	"testing"
	"time"
)

// TestSemiSyncAcksAfterFsync: the master waits for replink's ACK on every
// commit; replink sends it only after the transaction is fsynced.
func TestSemiSyncAcksAfterFsync(t *testing.T) {
	p, m := newMaster(t)
	// Enabled after set-up: with no semi-sync slave yet, each commit would
	// wait out the timeout.
	m.Exec("SET GLOBAL rpl_semi_sync_master_timeout=10000", "SET GLOBAL rpl_semi_sync_master_enabled=ON")
	r := StartReplink(t, p, m.Port, ReplinkOptions{SemiSync: true})
	deadline := time.Now().Add(20 * time.Second)
	for statusInt(t, m, "Rpl_semi_sync_master_clients") < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("replink never registered as a semi-sync slave")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("replink registered as a semi-sync slave after %s", time.Since(deadline.Add(-20*time.Second)).Round(time.Millisecond))
	yes0, no0 := statusInt(t, m, "Rpl_semi_sync_master_yes_tx"), statusInt(t, m, "Rpl_semi_sync_master_no_tx")
	m.Exec("CREATE DATABASE app", "CREATE TABLE app.t (id INT PRIMARY KEY)")
	const n = 50
	start := time.Now()
	for i := 0; i < n; i++ {
		m.Exec(fmt.Sprintf("INSERT INTO app.t VALUES (%d)", i))
	}
	elapsed := time.Since(start)
	yes, no := statusInt(t, m, "Rpl_semi_sync_master_yes_tx")-yes0, statusInt(t, m, "Rpl_semi_sync_master_no_tx")-no0
	t.Logf("%d commits in %s; master counts %d acknowledged, %d not", n, elapsed.Round(time.Millisecond), yes, no)
	if no != 0 || yes < n {
		t.Fatalf("semi-sync: yes_tx=%d no_tx=%d, want every commit acknowledged", yes, no)
	}
	// Everything acknowledged is durable in the relay log.
	file, pos := m.MasterStatus()
	if d := r.Log.Durable(); d.File != file || d.Offset != pos {
		t.Fatalf("durable %v, master at %s:%d", d, file, pos)
	}
	t0 := time.Now()
	r.Stop()
	t.Logf("stop took %s", time.Since(t0))
}

func statusInt(t *testing.T, s *Server, name string) int {
	t.Helper()
	rows := s.Query("SHOW GLOBAL STATUS LIKE '" + name + "'")
	if len(rows) == 0 {
		t.Fatalf("no status %s", name)
	}
	n, _ := strconv.Atoi(rows[0][1])
	return n
}
