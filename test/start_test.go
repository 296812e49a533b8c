package test

import (
	"testing"
	"time"

	"github.com/replink/replink/replica"
)

// TestStartOldestServesANewSlave: with start = "oldest" (the default)
// replink mirrors every file the master still has, so a new GTID slave
// with an empty position, which the master would serve, replink serves
// too (with "current" it got ERR 1236 "Could not find GTID state").
func TestStartOldestServesANewSlave(t *testing.T) {
	p, m := newMaster(t)
	m.Exec("CREATE DATABASE app", "CREATE TABLE app.t (id INT PRIMARY KEY)", "INSERT INTO app.t VALUES (1)", "FLUSH BINARY LOGS",
		"INSERT INTO app.t VALUES (2)", "FLUSH BINARY LOGS", "INSERT INTO app.t VALUES (3)")
	start, err := replica.ParseStart("")
	if err != nil || start.Kind != "oldest" {
		t.Fatalf("the default start is %+v (%v), want oldest", start, err)
	}
	r := StartReplink(t, p, m.Port, ReplinkOptions{Users: slaveUsers(), Start: start})
	waitCaughtUp(t, m, r, 20*time.Second)
	if files := r.Log.Files(); len(files) != 3 || files[0] != "mariadb-bin.000001" {
		t.Fatalf("relay log %v, want the master's three files from mariadb-bin.000001", files)
	}
	slave := StartServer(t, "slave", ServerOptions{ServerID: 3})
	changeMaster(t, slave, p, r.Port, "slave1", "mariadb-bin.000001", "")
	slave.Exec("SET GLOBAL gtid_slave_pos = ''", "CHANGE MASTER TO MASTER_USE_GTID=slave_pos", "START SLAVE")
	waitRows(t, slave, 3, 30*time.Second)
	if a, b := m.Checksum("app.t"), slave.Checksum("app.t"); a != b {
		t.Fatalf("checksum master %s, slave %s", a, b)
	}
}
