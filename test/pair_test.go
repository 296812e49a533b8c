package test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// A pair: two replink processes (own server ids, own data-dirs) mirror one
// master. Because both mirror the master's coordinates, a slave can move
// between them, and to the master and back, at the same file and position.
type pair struct {
	p        *PKI
	m        *Server
	a, b     *Process
	aPort    int
	bPort    int
	metricsA int
	metricsB int
}

func startPair(t *testing.T) *pair {
	t.Helper()
	pr := &pair{aPort: FreePort(t), bPort: FreePort(t), metricsA: FreePort(t), metricsB: FreePort(t)}
	pr.p, pr.m = newMaster(t)
	start := func(id uint32, relay, metrics int) *Process {
		conf := WriteReplinkConfigWith(t, pr.p, pr.m.Port, relay, metrics, t.TempDir(),
			ConfigOptions{ServerID: id, Start: "file:mariadb-bin.000001:4", LogLevel: "info"})
		return StartProcess(t, conf, filepath.Join(t.TempDir(), fmt.Sprintf("replink-%d.log", id)))
	}
	pr.a, pr.b = start(4001, pr.aPort, pr.metricsA), start(4002, pr.bPort, pr.metricsB)
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range []*Process{pr.a, pr.b} {
				b, _ := os.ReadFile(p.LogFile)
				t.Logf("%s:\n%s", p.LogFile, b)
			}
		}
	})
	waitReady(t, pr.metricsA)
	waitReady(t, pr.metricsB)
	return pr
}

// endpoint is where a slave replicates from: a replink of the pair, or
// the master itself.
type endpoint struct {
	name string
	port int
	user string // slave1 (X509) on a replink, repl on the master
	pass string
}

func (pr *pair) endpoints() (a, b, master endpoint) {
	return endpoint{"replink A", pr.aPort, "slave1", "slavepass"}, endpoint{"replink B", pr.bPort, "slave1", "slavepass"},
		endpoint{"the master", pr.m.Port, "repl", "replpass"}
}

// moveSlave points a running slave at e. With GTID only the host and port
// change; with file/position the slave's own executed coordinates go too
// (MariaDB resets the position when the host changes).
func moveSlave(t *testing.T, s *Server, p *PKI, e endpoint, gtid bool) string {
	t.Helper()
	s.Exec("STOP SLAVE")
	coords := ", MASTER_USE_GTID=slave_pos"
	st := s.SlaveStatus()
	if !gtid {
		coords = fmt.Sprintf(", MASTER_USE_GTID=no, MASTER_LOG_FILE='%s', MASTER_LOG_POS=%s", st["Relay_Master_Log_File"], st["Exec_Master_Log_Pos"])
	}
	s.Exec(fmt.Sprintf(`CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='%s', MASTER_PASSWORD='%s',
		MASTER_SSL=1, MASTER_SSL_CA='%s', MASTER_SSL_CERT='%s', MASTER_SSL_KEY='%s', MASTER_SSL_VERIFY_SERVER_CERT=1,
		MASTER_CONNECT_RETRY=1, MASTER_HEARTBEAT_PERIOD=1%s`, e.port, e.user, e.pass, p.CAFile, p.ClientCert, p.ClientKey, coords), "START SLAVE")
	return fmt.Sprintf("to %s, from %s:%s (gtid %s)", e.name, st["Relay_Master_Log_File"], st["Exec_Master_Log_Pos"], s.Query("SELECT @@gtid_slave_pos")[0][0])
}

// startLoad writes up to n rows into table on the master (rotating every
// 150) until the returned function is called; that returns how many.
func startLoad(m *Server, table string, n int) (end func() int) {
	stop, done := make(chan struct{}), make(chan struct{})
	written := 0
	go func() {
		defer close(done)
		for i := 1; i <= n; i++ {
			select {
			case <-stop:
				return
			default:
			}
			m.Exec(fmt.Sprintf("INSERT INTO %s (id, note) VALUES (%d, 'row %d')", table, i, i))
			written = i
			if i%150 == 0 {
				m.Exec("FLUSH BINARY LOGS")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	var once sync.Once
	return func() int {
		once.Do(func() { close(stop) })
		<-done
		return written
	}
}

// slaveRows counts table's rows on the slave.
func slaveRows(s *Server, table string) int {
	var n int
	fmt.Sscan(s.Query("SELECT COUNT(*) FROM " + table)[0][0], &n)
	return n
}

// waitSlaveRows waits until the slave has n rows in table, failing on an
// SQL thread error.
func waitSlaveRows(t *testing.T, s *Server, table string, n int) {
	t.Helper()
	waitUntil(t, 30*time.Second, func() bool {
		if st := s.SlaveStatus(); st["Last_SQL_Error"] != "" {
			t.Fatalf("slave SQL error: %s", st["Last_SQL_Error"])
		}
		return slaveRows(s, table) >= n
	})
}

// TestSlaveMovesAcrossAPair: under load, a real slave replicating from
// replink A moves to B after a kill -9 of A, then to the master, then back
// to A (restarted), by GTID and by file/position. The table was made
// outside the binlog on both sides, so a slave replayed from an earlier
// position stops on a duplicate key, and one that skipped rows ends with
// a different checksum.
func TestSlaveMovesAcrossAPair(t *testing.T) {
	pr := startPair(t)
	a, b, master := pr.endpoints()
	for i, mode := range []struct {
		name string
		gtid bool
	}{{"gtid", true}, {"file and position", false}} {
		t.Run(mode.name, func(t *testing.T) {
			table := fmt.Sprintf("app.p%d", i)
			create := fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s (id INT PRIMARY KEY, note VARCHAR(40))", table)
			pr.m.Exec("SET SESSION sql_log_bin = 0", "CREATE DATABASE IF NOT EXISTS app", create, "SET SESSION sql_log_bin = 1")
			s := StartServer(t, "slave", ServerOptions{ServerID: 10 + i})
			s.Exec("CREATE DATABASE app", create)
			// The slave starts where the master is now: what came before
			// (the other subtest's rows) it does not have and must not get.
			file, pos := pr.m.MasterStatus()
			coords := fmt.Sprintf(", MASTER_USE_GTID=no, MASTER_LOG_FILE='%s', MASTER_LOG_POS=%d", file, pos)
			if mode.gtid {
				s.Exec(fmt.Sprintf("SET GLOBAL gtid_slave_pos = '%s'", pr.m.Query("SELECT @@gtid_binlog_pos")[0][0]))
				coords = ", MASTER_USE_GTID=slave_pos"
			}
			s.Exec(fmt.Sprintf(`CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='slave1', MASTER_PASSWORD='slavepass',
				MASTER_SSL=1, MASTER_SSL_CA='%s', MASTER_SSL_CERT='%s', MASTER_SSL_KEY='%s', MASTER_SSL_VERIFY_SERVER_CERT=1,
				MASTER_CONNECT_RETRY=1, MASTER_HEARTBEAT_PERIOD=1%s`, a.port, pr.p.CAFile, pr.p.ClientCert, pr.p.ClientKey, coords), "START SLAVE")

			endLoad := startLoad(pr.m, table, 600)
			defer endLoad()
			rows := func() int { return slaveRows(s, table) }
			waitRows := func(n int) { t.Helper(); waitSlaveRows(t, s, table, n) }
			waitRows(50)
			// kill -9 of the replink the slave is on, mid-load.
			pr.a.Signal(syscall.SIGKILL)
			pr.a.Wait(10 * time.Second)
			t.Logf("A killed; the slave moves %s", moveSlave(t, s, pr.p, b, mode.gtid))
			waitRows(rows() + 100)
			t.Logf("the slave moves %s", moveSlave(t, s, pr.p, master, mode.gtid))
			waitRows(rows() + 100)
			pr.a.Restart()
			waitReady(t, pr.metricsA)
			t.Logf("the slave moves %s", moveSlave(t, s, pr.p, a, mode.gtid))
			written := endLoad()
			waitSlaveCaughtUp(t, pr.m, s, 60*time.Second)
			if w, got := pr.m.Checksum(table), s.Checksum(table); w != got {
				t.Fatalf("%s: checksum master %s, slave %s", table, w, got)
			}
			if st := s.SlaveStatus(); st["Last_IO_Error"] != "" || st["Last_SQL_Error"] != "" {
				t.Fatalf("slave errors: IO %q SQL %q", st["Last_IO_Error"], st["Last_SQL_Error"])
			}
			t.Logf("%d rows written, slave has %d, checksums equal", written, rows())
		})
	}
}

// service stands for a Kubernetes Service in front of a pair: each new
// connection goes to the first backend that accepts it.
func service(t *testing.T, backends ...int) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				for _, port := range backends {
					b, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
					if err != nil {
						continue
					}
					defer b.Close()
					go func() { io.Copy(b, c); b.Close() }()
					io.Copy(c, b)
					return
				}
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestSlaveBehindAServiceFailsOverByItself: a slave pointed at a Service
// over the pair (file/position, no GTID) needs nobody when the replink it
// is on dies: its IO thread reconnects to the same address, lands on the
// other replink, and asks for the same file and position, which that one
// has too. Then back, when the first returns and the second dies.
func TestSlaveBehindAServiceFailsOverByItself(t *testing.T) {
	pr := startPair(t)
	svc := service(t, pr.aPort, pr.bPort)
	pr.m.Exec("SET SESSION sql_log_bin = 0", "CREATE DATABASE app", "CREATE TABLE app.s (id INT PRIMARY KEY, note VARCHAR(40))", "SET SESSION sql_log_bin = 1")
	s := StartServer(t, "slave", ServerOptions{ServerID: 20})
	s.Exec("CREATE DATABASE app", "CREATE TABLE app.s (id INT PRIMARY KEY, note VARCHAR(40))")
	changeMaster(t, s, pr.p, svc, "slave1", "mariadb-bin.000001", "")
	s.Exec("START SLAVE")
	endLoad := startLoad(pr.m, "app.s", 600)
	defer endLoad()
	rows := func() int { return slaveRows(s, "app.s") }
	waitRows := func(n int) { t.Helper(); waitSlaveRows(t, s, "app.s", n) }
	waitRows(50)
	pr.a.Signal(syscall.SIGKILL)
	pr.a.Wait(10 * time.Second)
	killed := time.Now()
	at := rows()
	waitRows(at + 50)
	if !serves(t, pr.metricsB, 20) {
		t.Fatal("replink B does not list the slave")
	}
	t.Logf("A killed at %d rows; the slave went on through B by itself (%d rows %v later)", at, rows(), time.Since(killed).Round(time.Millisecond))
	pr.a.Restart()
	waitReady(t, pr.metricsA)
	pr.b.Signal(syscall.SIGKILL)
	pr.b.Wait(10 * time.Second)
	waitRows(rows() + 50)
	if !serves(t, pr.metricsA, 20) {
		t.Fatal("replink A, restarted, does not list the slave after B died")
	}
	written := endLoad()
	waitSlaveCaughtUp(t, pr.m, s, 60*time.Second)
	if w, got := pr.m.Checksum("app.s"), s.Checksum("app.s"); w != got {
		t.Fatalf("checksum master %s, slave %s", w, got)
	}
	t.Logf("%d rows written, slave has %d, checksums equal; no CHANGE MASTER", written, rows())
}

// serves reports whether the replink with /status on metricsPort lists a
// dumping slave with serverID.
func serves(t *testing.T, metricsPort, serverID int) bool {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/status", metricsPort))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Replicas []struct {
			ServerID int `json:"server_id"`
		} `json:"replicas"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	for _, r := range doc.Replicas {
		if r.ServerID == serverID {
			return true
		}
	}
	return false
}
