package test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestSlaveAwayPastRetainResumes: a real slave stopped for maintenance
// while the master rotates on and replink's retain passes comes back to
// the files it needs (replink remembered it) and catches up without
// error; the files before it are purged, so retention still works.
func TestSlaveAwayPastRetainResumes(t *testing.T) {
	p, m := newMaster(t)
	const retain = 2 * time.Second
	r := StartReplink(t, p, m.Port, ReplinkOptions{Users: slaveUsers(), Retain: retain, KeepForAbsent: time.Hour})
	m.Exec("CREATE DATABASE app", "CREATE TABLE app.r (id INT PRIMARY KEY, note VARCHAR(40))")
	for f := 0; f < 3; f++ {
		m.Exec("FLUSH BINARY LOGS", fmt.Sprintf("INSERT INTO app.r VALUES (%d, 'before')", f))
	}
	// The slave starts at the third file and has the table already (the
	// CREATE is in file 1): files 1 and 2 are needed by nobody.
	slave := StartServer(t, "slave", ServerOptions{ServerID: 3})
	slave.Exec("CREATE DATABASE app", "CREATE TABLE app.r (id INT PRIMARY KEY, note VARCHAR(40))", "INSERT INTO app.r VALUES (0, 'before')")
	changeMaster(t, slave, p, r.Port, "slave1", "mariadb-bin.000003", "")
	slave.Exec("START SLAVE")
	waitSlaveCaughtUp(t, m, slave, 30*time.Second)
	slave.Exec("STOP SLAVE")
	deadline := time.Now().Add(10 * time.Second)
	for len(r.Relay.Away()) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("replink does not list the stopped slave as away: %+v", r.Relay.Away())
		}
		time.Sleep(20 * time.Millisecond)
	}
	away := r.Relay.Away()[0]
	t.Logf("away: %+v", away)

	// Maintenance: the master writes and rotates on, past retain.
	for f := 0; f < 4; f++ {
		m.Exec("FLUSH BINARY LOGS", fmt.Sprintf("INSERT INTO app.r VALUES (%d, 'while away')", 100+f))
	}
	waitCaughtUp(t, m, r, 20*time.Second)
	time.Sleep(retain + 500*time.Millisecond)
	r.Relay.Housekeep(time.Now())
	files := r.Log.Files()
	stoppedIn, _, _ := strings.Cut(away.Position, ":")
	if !slices.Contains(files, stoppedIn) || slices.Contains(files, "mariadb-bin.000001") || slices.Contains(files, "mariadb-bin.000002") {
		t.Fatalf("relay log after retain: %v; want the files before the slave's purged and the away slave's %s kept", files, stoppedIn)
	}
	if a := r.Relay.Away(); len(a) != 1 || a[0].LagBytes <= away.LagBytes {
		t.Fatalf("while away: %+v; want its lag to grow past %d", a, away.LagBytes)
	}

	slave.Exec("START SLAVE")
	waitSlaveCaughtUp(t, m, slave, 30*time.Second)
	if want, got := m.Checksum("app.r"), slave.Checksum("app.r"); want != got {
		t.Fatalf("checksum master %s, slave %s", want, got)
	}
	if st := slave.SlaveStatus(); st["Last_IO_Error"] != "" || st["Last_SQL_Error"] != "" {
		t.Fatalf("slave errors: IO %q SQL %q", st["Last_IO_Error"], st["Last_SQL_Error"])
	}
	t.Logf("relay log while the slave was away: %v", files)
}

// TestLaggingGTIDSlaveResumes: a GTID slave whose SQL thread lags what
// it received (MASTER_DELAY) is stopped. Its next request is what it
// applied, not what replink sent it; replink keeps the files that
// request needs past retain, and the slave resumes without 1236.
func TestLaggingGTIDSlaveResumes(t *testing.T) {
	p, m := newMaster(t)
	const retain = 2 * time.Second
	r := StartReplink(t, p, m.Port, ReplinkOptions{Users: slaveUsers(), Retain: retain, KeepForAbsent: time.Hour})
	m.Exec("CREATE DATABASE app", "CREATE TABLE app.r (id INT PRIMARY KEY, note VARCHAR(40))", "INSERT INTO app.r VALUES (0, 'first')")
	slave := StartServer(t, "slave", ServerOptions{ServerID: 3})
	changeMaster(t, slave, p, r.Port, "slave1", "mariadb-bin.000001", "")
	slave.Exec("CHANGE MASTER TO MASTER_USE_GTID=slave_pos", "START SLAVE")
	waitSlaveCaughtUp(t, m, slave, 30*time.Second)
	// From here the SQL thread applies an event only 30 s after the master
	// wrote it; the IO thread receives at once.
	slave.Exec("STOP SLAVE", "CHANGE MASTER TO MASTER_DELAY=30", "START SLAVE")
	for f := 0; f < 4; f++ {
		m.Exec("FLUSH BINARY LOGS", fmt.Sprintf("INSERT INTO app.r VALUES (%d, 'lagging')", 100+f))
	}
	want := m.Query("SELECT @@gtid_binlog_pos")[0][0]
	for deadline := time.Now().Add(20 * time.Second); slave.SlaveStatus()["Gtid_IO_Pos"] != want; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the slave's IO thread never received %s: %v", want, slave.SlaveStatus()["Gtid_IO_Pos"])
		}
	}
	slave.Exec("STOP SLAVE")
	applied := slave.Query("SELECT @@gtid_slave_pos")[0][0]
	if applied == want {
		t.Fatalf("the slave applied everything (%s): no lag to test", applied)
	}
	t.Logf("stopped: received %s, applied %s", want, applied)

	// Maintenance: the master goes on past retain.
	for f := 0; f < 2; f++ {
		m.Exec("FLUSH BINARY LOGS", fmt.Sprintf("INSERT INTO app.r VALUES (%d, 'while away')", 200+f))
	}
	waitCaughtUp(t, m, r, 20*time.Second)
	time.Sleep(retain + 500*time.Millisecond)
	r.Relay.Housekeep(time.Now())
	t.Logf("relay log after retain: %v, away %+v", r.Log.Files(), r.Relay.Away())

	slave.Exec("CHANGE MASTER TO MASTER_DELAY=0", "START SLAVE")
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		st := slave.SlaveStatus()
		if st["Last_IO_Error"] != "" || st["Last_SQL_Error"] != "" {
			t.Fatalf("slave errors after START SLAVE: IO %q SQL %q", st["Last_IO_Error"], st["Last_SQL_Error"])
		}
		if slave.Query("SELECT @@gtid_slave_pos")[0][0] == m.Query("SELECT @@gtid_binlog_pos")[0][0] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the slave never caught up: %v", st)
		}
	}
	if want, got := m.Checksum("app.r"), slave.Checksum("app.r"); want != got {
		t.Fatalf("checksum master %s, slave %s", want, got)
	}
}
