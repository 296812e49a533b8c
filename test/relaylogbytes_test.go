package test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// gauge is the value of an unlabelled gauge, and whether r exports it.
func gauge(t *testing.T, g prometheus.Gatherer, name string) (float64, bool) {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.Metric) == 1 && mf.Metric[0].Gauge != nil {
			return mf.Metric[0].Gauge.GetValue(), true
		}
	}
	return 0, false
}

// diskBytes is the size on disk of the relay files r lists, from the
// file system: all of them, and all but the newest (the one written).
func diskBytes(t *testing.T, r *Replink) (all, closed int64) {
	t.Helper()
	files := r.Log.Files()
	for i, name := range files {
		st, err := os.Stat(filepath.Join(r.Log.Dir(), name))
		if err != nil {
			t.Fatal(err)
		}
		all += st.Size()
		if i < len(files)-1 {
			closed += st.Size()
		}
	}
	return all, closed
}

// TestRelayLogBytesGauges: replink_relay_log_bytes is the relay files'
// bytes on disk and replink_relay_log_absent_slaves_bytes what retain
// keeps only for a slave that is away, from start-up on, following
// rotations, purges, and the slave leaving and coming back.
func TestRelayLogBytesGauges(t *testing.T) {
	const (
		total  = "replink_relay_log_bytes"
		absent = "replink_relay_log_absent_slaves_bytes"
	)
	p, m := newMaster(t)
	const retain = 2 * time.Second
	r := StartReplink(t, p, m.Port, ReplinkOptions{Users: slaveUsers(), Retain: retain, KeepForAbsent: time.Hour})
	// equal waits until the gauges are what the data-dir holds now.
	equal := func(what string, wantAbsent func(closed int64) int64) (int64, int64) {
		t.Helper()
		var why string
		deadline := time.Now().Add(10 * time.Second)
		for {
			all, closed := diskBytes(t, r)
			gotAll, ok1 := gauge(t, r.Reg, total)
			gotAbsent, ok2 := gauge(t, r.Reg, absent)
			want := wantAbsent(closed)
			if ok1 && ok2 && int64(gotAll) == all && int64(gotAbsent) == want {
				t.Logf("%s: %s %d, %s %d (files %v)", what, total, all, absent, want, r.Log.Files())
				return all, want
			}
			why = fmt.Sprintf("%s %v (exported %v), want %d; %s %v (exported %v), want %d; files %v",
				total, gotAll, ok1, all, absent, gotAbsent, ok2, want, r.Log.Files())
			if time.Now().After(deadline) {
				t.Fatalf("%s: %s", what, why)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	none := func(int64) int64 { return 0 }

	start, _ := equal("at start-up", none)
	m.Exec("CREATE DATABASE app", "CREATE TABLE app.r (id INT PRIMARY KEY, note VARCHAR(40))")
	for f := 0; f < 3; f++ {
		m.Exec("FLUSH BINARY LOGS", fmt.Sprintf("INSERT INTO app.r VALUES (%d, 'before')", f))
	}
	waitCaughtUp(t, m, r, 20*time.Second)
	grown, _ := equal("after three rotations", none)
	if grown <= start {
		t.Errorf("%s %d after three rotations, %d at start", total, grown, start)
	}

	slave := StartServer(t, "slave", ServerOptions{ServerID: 3})
	slave.Exec("CREATE DATABASE app", "CREATE TABLE app.r (id INT PRIMARY KEY, note VARCHAR(40))", "INSERT INTO app.r VALUES (0, 'before')")
	changeMaster(t, slave, p, r.Port, "slave1", "mariadb-bin.000003", "")
	slave.Exec("START SLAVE")
	waitSlaveCaughtUp(t, m, slave, 30*time.Second)
	equal("with the slave connected", none)
	slave.Exec("STOP SLAVE")
	waitUntil(t, 10*time.Second, func() bool { return len(r.Relay.Away()) == 1 })

	// Away past retain while the master rotates on: the files from the
	// one before where the slave stopped are kept for it alone, every
	// closed file; the ones before are purged.
	for f := 0; f < 4; f++ {
		m.Exec("FLUSH BINARY LOGS", fmt.Sprintf("INSERT INTO app.r VALUES (%d, 'while away')", 100+f))
	}
	waitCaughtUp(t, m, r, 20*time.Second)
	before, _ := diskBytes(t, r)
	time.Sleep(retain + 500*time.Millisecond)
	r.Relay.Housekeep(time.Now())
	after, held := equal("with the slave away past retain", func(closed int64) int64 { return closed })
	if held == 0 || after >= before {
		t.Errorf("away: %s %d (was %d before the purge), %s %d: want a purge and bytes held for the slave", total, after, before, absent, held)
	}

	// Back: nothing is held for an absent slave any more.
	slave.Exec("START SLAVE")
	waitSlaveCaughtUp(t, m, slave, 30*time.Second)
	r.Relay.Housekeep(time.Now())
	equal("with the slave back", none)
}
