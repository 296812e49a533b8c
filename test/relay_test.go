package test

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/replink/replink/relay"
)

// slaveUsers are the relay accounts the relay tests use.
func slaveUsers() []relay.User {
	return []relay.User{
		{Name: "slave1", Password: "slavepass", Require: relay.RequireX509, Subject: ClientSubject},
		{Name: "plainslave", Password: "slavepass", Require: relay.RequireNone},
	}
}

// changeMaster points a mariadbd slave at replink with TLS and the
// client certificate, file/position from the start of file.
func changeMaster(t *testing.T, s *Server, p *PKI, port int, user, file string, extra string) {
	t.Helper()
	s.Exec(fmt.Sprintf(`CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='%s', MASTER_PASSWORD='slavepass',
		MASTER_SSL=1, MASTER_SSL_CA='%s', MASTER_SSL_CERT='%s', MASTER_SSL_KEY='%s', MASTER_SSL_VERIFY_SERVER_CERT=1,
		MASTER_CONNECT_RETRY=1, MASTER_HEARTBEAT_PERIOD=1, MASTER_USE_GTID=no, MASTER_LOG_FILE='%s', MASTER_LOG_POS=4%s`,
		port, user, p.CAFile, p.ClientCert, p.ClientKey, file, extra))
}

// startSlave starts a mariadbd slave (server-id 3, extra my.cnf lines)
// replicating through replink's relay on port as slave1, from the first
// binlog.
func startSlave(t *testing.T, p *PKI, port int, extra ...string) *Server {
	t.Helper()
	slave := StartServer(t, "slave", ServerOptions{ServerID: 3, Extra: extra})
	changeMaster(t, slave, p, port, "slave1", "mariadb-bin.000001", "")
	slave.Exec("START SLAVE")
	return slave
}

// waitSlaveCaughtUp waits until the slave has executed everything the
// master wrote, failing on an SQL or IO thread error.
func waitSlaveCaughtUp(t *testing.T, m, s *Server, timeout time.Duration) map[string]string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		file, pos := m.MasterStatus()
		st := s.SlaveStatus()
		if st["Last_SQL_Error"] != "" {
			t.Fatalf("slave SQL thread error: %s", st["Last_SQL_Error"])
		}
		if st["Relay_Master_Log_File"] == file && st["Exec_Master_Log_Pos"] == fmt.Sprint(pos) && st["Slave_SQL_Running"] == "Yes" {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("slave not caught up after %s: master %s:%d, slave IO=%s SQL=%s (%s) at %s:%s, read to %s:%s, IO error %q, last error %q",
				timeout, file, pos, st["Slave_IO_Running"], st["Slave_SQL_Running"], st["Slave_SQL_Running_State"], st["Relay_Master_Log_File"], st["Exec_Master_Log_Pos"],
				st["Master_Log_File"], st["Read_Master_Log_Pos"], st["Last_IO_Error"], st["Last_Error"])
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func writeWorkload(m *Server, prefix string, n int) {
	m.Exec("CREATE DATABASE IF NOT EXISTS app",
		"CREATE TABLE IF NOT EXISTS app.orders (id INT PRIMARY KEY AUTO_INCREMENT, item VARCHAR(100), qty INT, price DECIMAL(10,2), at DATETIME(6), doc JSON, blob_col MEDIUMBLOB)")
	for i := 0; i < n; i++ {
		m.Exec(fmt.Sprintf("INSERT INTO app.orders (item, qty, price, at, doc, blob_col) VALUES ('%s-%d', %d, %d.99, NOW(6), '{\"n\": %d}', REPEAT('b', %d))", prefix, i, i, i, i, i*37))
	}
	m.Exec("BEGIN", "UPDATE app.orders SET qty = qty + 1 WHERE id % 2 = 0", "DELETE FROM app.orders WHERE id % 11 = 0",
		fmt.Sprintf("INSERT INTO app.orders (item) VALUES ('%s-multi')", prefix), "COMMIT")
}

func TestSlaveReplicatesThroughReplink(t *testing.T) {
	p, m := newMaster(t)
	r := StartReplink(t, p, m.Port, ReplinkOptions{Users: slaveUsers()})
	slave := StartServer(t, "slave", ServerOptions{ServerID: 3})
	// A second slave at the same time: GTID, an account without REQUIRE, TLS without a client certificate.
	slave2 := StartServer(t, "slave2", ServerOptions{ServerID: 4})
	slave2.Exec(fmt.Sprintf(`CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='plainslave', MASTER_PASSWORD='slavepass',
		MASTER_SSL=1, MASTER_SSL_CA='%s', MASTER_SSL_VERIFY_SERVER_CERT=1, MASTER_CONNECT_RETRY=1, MASTER_USE_GTID=slave_pos`, r.Port, p.CAFile), "START SLAVE")

	writeWorkload(m, "before", 30)
	m.Exec("ALTER TABLE app.orders ADD COLUMN note VARCHAR(20) DEFAULT 'n'")
	// A large transaction, then a rotation.
	m.Exec("CREATE TABLE app.big (id INT PRIMARY KEY, payload LONGBLOB)")
	m.Exec("BEGIN", "INSERT INTO app.big VALUES (1, REPEAT('x', 2000000))", "INSERT INTO app.big VALUES (2, REPEAT('y', 2000000))", "COMMIT")
	m.Exec("FLUSH BINARY LOGS")
	changeMaster(t, slave, p, r.Port, "slave1", "mariadb-bin.000001", "")
	slave.Exec("START SLAVE")
	writeWorkload(m, "after", 30)

	st := waitSlaveCaughtUp(t, m, slave, 60*time.Second)
	if st["Master_SSL_Allowed"] != "Yes" {
		t.Fatalf("slave did not use SSL: %v", st["Master_SSL_Allowed"])
	}
	for _, tbl := range []string{"app.orders", "app.big"} {
		if a, b := m.Checksum(tbl), slave.Checksum(tbl); a != b {
			t.Fatalf("CHECKSUM TABLE %s: master %s, slave %s", tbl, a, b)
		}
	}
	waitSlaveCaughtUp(t, m, slave2, 60*time.Second)
	for _, tbl := range []string{"app.orders", "app.big"} {
		if a, b := m.Checksum(tbl), slave2.Checksum(tbl); a != b {
			t.Fatalf("second slave: CHECKSUM TABLE %s: master %s, slave %s", tbl, a, b)
		}
	}
	if n := len(r.Relay.Slaves()); n != 2 {
		t.Fatalf("relay lists %d replicas, want 2", n)
	}
	if v := counterValue(t, r.Reg, "replink_replicas_connected", nil); v != 2 {
		t.Fatalf("replink_replicas_connected = %v", v)
	}
	// mariadb-binlog reads every relay file replink wrote.
	for _, f := range r.Log.Files() {
		out, err := exec.Command("mariadb-binlog", "-v", filepath.Join(r.Dir, f)).CombinedOutput()
		if err != nil {
			t.Fatalf("mariadb-binlog %s: %v\n%s", f, err, tail(out, 2000))
		}
	}
	t.Logf("slave caught up at %s:%s, checksums match", st["Relay_Master_Log_File"], st["Exec_Master_Log_Pos"])

	// STOP SLAVE / START SLAVE resumes at the right place.
	slave.Exec("STOP SLAVE")
	writeWorkload(m, "while-stopped", 10)
	slave.Exec("START SLAVE")
	waitSlaveCaughtUp(t, m, slave, 30*time.Second)
	if a, b := m.Checksum("app.orders"), slave.Checksum("app.orders"); a != b {
		t.Fatalf("after STOP/START SLAVE: master %s, slave %s", a, b)
	}
}

func TestSlaveRefusals(t *testing.T) {
	p, m := newMaster(t)
	users := append(slaveUsers(), relay.User{Name: "wrongsubject", Password: "slavepass", Require: relay.RequireX509, Subject: "/CN=someone-else"})
	r := StartReplink(t, p, m.Port, ReplinkOptions{Users: users})
	slave := StartServer(t, "slave", ServerOptions{ServerID: 3})
	cases := []struct {
		name, change, logPart string
	}{
		{"wrong password", fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='slave1', MASTER_PASSWORD='nope', MASTER_SSL=1, MASTER_SSL_CA='%s', MASTER_SSL_CERT='%s', MASTER_SSL_KEY='%s', MASTER_CONNECT_RETRY=1, MASTER_USE_GTID=no, MASTER_LOG_FILE='mariadb-bin.000001', MASTER_LOG_POS=4", r.Port, p.CAFile, p.ClientCert, p.ClientKey), "wrong password"},
		{"no TLS for an X509 account", fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='slave1', MASTER_PASSWORD='slavepass', MASTER_SSL=0, MASTER_CONNECT_RETRY=1, MASTER_USE_GTID=no, MASTER_LOG_FILE='mariadb-bin.000001', MASTER_LOG_POS=4", r.Port), "not encrypted"},
		{"no client certificate", fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='slave1', MASTER_PASSWORD='slavepass', MASTER_SSL=1, MASTER_SSL_CA='%s', MASTER_SSL_CERT='', MASTER_SSL_KEY='', MASTER_CONNECT_RETRY=1, MASTER_USE_GTID=no, MASTER_LOG_FILE='mariadb-bin.000001', MASTER_LOG_POS=4", r.Port, p.CAFile), "none was presented"},
		{"subject mismatch", fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='wrongsubject', MASTER_PASSWORD='slavepass', MASTER_SSL=1, MASTER_SSL_CA='%s', MASTER_SSL_CERT='%s', MASTER_SSL_KEY='%s', MASTER_CONNECT_RETRY=1, MASTER_USE_GTID=no, MASTER_LOG_FILE='mariadb-bin.000001', MASTER_LOG_POS=4", r.Port, p.CAFile, p.ClientCert, p.ClientKey), "REQUIRE SUBJECT mismatch"},
		{"client certificate from another CA", fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='slave1', MASTER_PASSWORD='slavepass', MASTER_SSL=1, MASTER_SSL_CA='%s', MASTER_SSL_CERT='%s', MASTER_SSL_KEY='%s', MASTER_CONNECT_RETRY=1, MASTER_USE_GTID=no, MASTER_LOG_FILE='mariadb-bin.000001', MASTER_LOG_POS=4", r.Port, p.CAFile, p.OtherClientCert, p.OtherClientKey), "slave handshake failed"},
		// A file past replink's newest waits (the master may have it); one
		// before the first, or of another binlog, is refused at once.
		{"unknown file", fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='slave1', MASTER_PASSWORD='slavepass', MASTER_SSL=1, MASTER_SSL_CA='%s', MASTER_SSL_CERT='%s', MASTER_SSL_KEY='%s', MASTER_CONNECT_RETRY=1, MASTER_USE_GTID=no, MASTER_LOG_FILE='other-bin.000001', MASTER_LOG_POS=4", r.Port, p.CAFile, p.ClientCert, p.ClientKey), "Could not find first log file name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			slave.Exec("STOP SLAVE", "RESET SLAVE ALL")
			slave.Exec(c.change, "START SLAVE")
			wantErr := "1045"
			switch {
			case strings.Contains(c.name, "unknown file"):
				wantErr = "1236"
			case strings.Contains(c.name, "another CA"):
				// The TLS handshake itself is refused, as mysqld does: under TLS 1.3
				// the slave sees the lost connection (2013), under 1.2 an SSL error (2026).
				wantErr = "2013|2026"
			}
			deadline := time.Now().Add(20 * time.Second)
			for {
				st := slave.SlaveStatus()
				if st["Last_IO_Errno"] != "" && st["Last_IO_Errno"] != "0" && strings.Contains("|"+wantErr+"|", "|"+st["Last_IO_Errno"]+"|") {
					t.Logf("slave says: %s", st["Last_IO_Error"])
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("slave IO state %q errno %q %q, want errno %s", st["Slave_IO_Running"], st["Last_IO_Errno"], st["Last_IO_Error"], wantErr)
				}
				time.Sleep(100 * time.Millisecond)
			}
			if !strings.Contains(r.Logs(), c.logPart) {
				t.Fatalf("replink's log does not say %q", c.logPart)
			}
		})
	}
	if n := len(r.Relay.Slaves()); n != 0 {
		t.Fatalf("a refused slave is listed as dumping")
	}
}

func TestGTIDSlaveReplicatesAndReconnects(t *testing.T) {
	p, m := newMaster(t)
	r := StartReplink(t, p, m.Port, ReplinkOptions{Users: slaveUsers()})
	slave := StartServer(t, "gtidslave", ServerOptions{ServerID: 3})
	writeWorkload(m, "first", 20)
	m.Exec("FLUSH BINARY LOGS")
	writeWorkload(m, "second", 20)

	slave.Exec(fmt.Sprintf(`CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='slave1', MASTER_PASSWORD='slavepass',
		MASTER_SSL=1, MASTER_SSL_CA='%s', MASTER_SSL_CERT='%s', MASTER_SSL_KEY='%s', MASTER_SSL_VERIFY_SERVER_CERT=1,
		MASTER_CONNECT_RETRY=1, MASTER_USE_GTID=slave_pos`, r.Port, p.CAFile, p.ClientCert, p.ClientKey), "START SLAVE")
	st := waitSlaveCaughtUp(t, m, slave, 60*time.Second)
	if st["Using_Gtid"] != "Slave_Pos" {
		t.Fatalf("Using_Gtid = %q", st["Using_Gtid"])
	}
	check := func(when string) {
		t.Helper()
		if a, b := m.Checksum("app.orders"), slave.Checksum("app.orders"); a != b {
			t.Fatalf("%s: CHECKSUM TABLE master %s, slave %s", when, a, b)
		}
		if gm, gs := m.Query("SELECT @@gtid_binlog_pos")[0][0], slave.Query("SELECT @@gtid_slave_pos")[0][0]; gm != gs {
			t.Fatalf("%s: master gtid_binlog_pos %s, slave gtid_slave_pos %s", when, gm, gs)
		}
	}
	check("first catch-up")

	// Reconnect with a GTID position in the older file, then after a rotation.
	slave.Exec("STOP SLAVE")
	writeWorkload(m, "stopped", 10)
	m.Exec("FLUSH BINARY LOGS")
	writeWorkload(m, "rotated", 5)
	slave.Exec("START SLAVE")
	waitSlaveCaughtUp(t, m, slave, 30*time.Second)
	check("after STOP/START SLAVE")

	t0 := time.Now()
	slave.Restart()
	t.Logf("slave restart took %s", time.Since(t0))
	writeWorkload(m, "restarted", 5)
	slave.Exec("START SLAVE")
	waitSlaveCaughtUp(t, m, slave, 30*time.Second)
	check("after slave restart")
}

func TestRetentionAndPurgedPosition(t *testing.T) {
	p, m := newMaster(t)
	r := StartReplink(t, p, m.Port, ReplinkOptions{Users: slaveUsers()})
	slave := StartServer(t, "slave", ServerOptions{ServerID: 3})
	m.Exec("CREATE DATABASE app", "CREATE TABLE app.r (id INT PRIMARY KEY)")
	slave.Exec("CREATE DATABASE app", "CREATE TABLE app.r (id INT PRIMARY KEY)")
	for f := 0; f < 3; f++ {
		if f > 0 {
			m.Exec("FLUSH BINARY LOGS")
		}
		for i := 0; i < 5; i++ {
			m.Exec(fmt.Sprintf("INSERT INTO app.r VALUES (%d)", f*10+i))
		}
	}
	// The slave reads from the second file on: what it reads must stay.
	changeMaster(t, slave, p, r.Port, "slave1", "mariadb-bin.000002", "")
	slave.Exec("START SLAVE")
	waitSlaveCaughtUp(t, m, slave, 30*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for len(r.Relay.Slaves()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("slave not dumping")
		}
		time.Sleep(20 * time.Millisecond)
	}
	reading := strings.Split(r.Relay.Slaves()[0].Position, ":")[0]
	r.Relay.PurgeNow(time.Now().Add(24 * time.Hour))
	files := r.Log.Files()
	if files[0] != reading && reading != "" {
		t.Fatalf("after purge the relay log holds %v; want it to start at %s, the file the slave reads", files, reading)
	}
	t.Logf("slave reads %s; relay log after purge: %v", reading, files)
	waitSlaveCaughtUp(t, m, slave, 30*time.Second)
	// A slave asking for the purged file is told so.
	slave.Exec("STOP SLAVE")
	changeMaster(t, slave, p, r.Port, "slave1", "mariadb-bin.000001", "")
	slave.Exec("START SLAVE")
	deadline = time.Now().Add(20 * time.Second)
	for {
		st := slave.SlaveStatus()
		if st["Last_IO_Errno"] == "1236" {
			t.Logf("slave asking for a purged file: %s", st["Last_IO_Error"])
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slave state %v", st["Last_IO_Error"])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSlaveAheadOfReplinkWaits: a slave that replicated from the master
// and moves to a replink several files behind (its link to the master
// was cut while the master rotated on) waits for replink to catch up
// instead of failing with "Could not find first log file name".
func TestSlaveAheadOfReplinkWaits(t *testing.T) {
	p, m := newMaster(t)
	proxy := StartProxy(t, m.Addr())
	r := StartReplink(t, p, m.Port, ReplinkOptions{Users: slaveUsers(), MasterPort: proxy.Port(), Heartbeat: 500 * time.Millisecond})
	writeWorkload(m, "before", 10)
	waitCaughtUp(t, m, r, 20*time.Second)
	// replink's path to the master goes down; the master rotates on.
	proxy.Hold()
	proxy.Stall()
	for i := 0; i < 3; i++ {
		m.Exec("FLUSH BINARY LOGS")
		writeWorkload(m, fmt.Sprintf("while-replink-cut-%d", i), 5)
	}
	// The slave replicates from the master itself, then moves to replink.
	slave := StartServer(t, "slave", ServerOptions{ServerID: 3})
	slave.Exec(fmt.Sprintf(`CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='repl', MASTER_PASSWORD='replpass',
		MASTER_SSL=1, MASTER_SSL_CA='%s', MASTER_CONNECT_RETRY=1, MASTER_USE_GTID=no, MASTER_LOG_FILE='mariadb-bin.000001', MASTER_LOG_POS=4`, m.Port, p.CAFile), "START SLAVE")
	st := waitSlaveCaughtUp(t, m, slave, 30*time.Second)
	slave.Exec("STOP SLAVE")
	if have := r.Log.Durable().File; have != "mariadb-bin.000001" {
		t.Fatalf("replink reached %s while cut off; the test needs it files behind", have)
	}
	slave.Exec(fmt.Sprintf(`CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='slave1', MASTER_PASSWORD='slavepass',
		MASTER_SSL=1, MASTER_SSL_CA='%s', MASTER_SSL_CERT='%s', MASTER_SSL_KEY='%s', MASTER_CONNECT_RETRY=1, MASTER_HEARTBEAT_PERIOD=0.5,
		MASTER_USE_GTID=no, MASTER_LOG_FILE='%s', MASTER_LOG_POS=%s`, r.Port, p.CAFile, p.ClientCert, p.ClientKey,
		st["Relay_Master_Log_File"], st["Exec_Master_Log_Pos"]), "START SLAVE")
	beats := statusInt(t, slave, "Slave_received_heartbeats")
	writeWorkload(m, "while-replink-behind", 10)
	// It waits: replink says so, and the slave's link stays up, fed
	// heartbeats, with no error.
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(r.Logs(), "slave is ahead of replink") ||
		statusInt(t, slave, "Slave_received_heartbeats") < beats+2; time.Sleep(50 * time.Millisecond) {
		if st := slave.SlaveStatus(); st["Last_IO_Errno"] != "0" || time.Now().After(deadline) {
			t.Fatalf("slave ahead of replink is not waiting: IO %s %q; replink logged the wait: %v",
				st["Last_IO_Errno"], st["Last_IO_Error"], strings.Contains(r.Logs(), "slave is ahead of replink"))
		}
	}
	if st := slave.SlaveStatus(); st["Last_IO_Errno"] != "0" || st["Last_SQL_Errno"] != "0" {
		t.Fatalf("slave ahead of replink failed instead of waiting: IO %s %q, SQL %s", st["Last_IO_Errno"], st["Last_IO_Error"], st["Last_SQL_Error"])
	}
	if !strings.Contains(r.Logs(), "slave is ahead of replink") {
		t.Fatal("replink did not log that the slave waits")
	}
	t.Logf("slave waits at %s:%s on a replink at %s", st["Relay_Master_Log_File"], st["Exec_Master_Log_Pos"], r.Log.Durable())
	proxy.Release()
	waitSlaveCaughtUp(t, m, slave, 60*time.Second)
	if a, b := m.Checksum("app.orders"), slave.Checksum("app.orders"); a != b {
		t.Fatalf("CHECKSUM TABLE: master %s, slave %s", a, b)
	}
}
