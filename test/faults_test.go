package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/replink/replink/binlog"
	"github.com/replink/replink/binlog/atrest"
)

// writer runs single-row inserts on the master until stopped, tolerating
// the master being down; it counts the commits that succeeded.
type writer struct {
	stop chan struct{}
	wg   sync.WaitGroup
	ok   atomic.Int64
}

func startWriter(m *Server, table string) *writer {
	w := &writer{stop: make(chan struct{})}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		for i := 0; ; i++ {
			select {
			case <-w.stop:
				return
			default:
			}
			rows, err := m.TryQuery(fmt.Sprintf("INSERT INTO %s VALUES (%d, REPEAT('v', 300))", table, i))
			_ = rows
			if err == nil {
				w.ok.Add(1)
			} else {
				time.Sleep(20 * time.Millisecond)
			}
		}
	}()
	return w
}

func (w *writer) Stop() int64 { close(w.stop); w.wg.Wait(); return w.ok.Load() }

func TestMasterRestartAndKill9(t *testing.T) {
	p, m := newMaster(t, "sync_binlog=1", "innodb_flush_log_at_trx_commit=1")
	m.Exec("CREATE DATABASE app", "CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(400))")
	r := StartReplink(t, p, m.Port, ReplinkOptions{Users: slaveUsers(), Heartbeat: 300 * time.Millisecond})
	slave := startSlave(t, p, r.Port)

	w := startWriter(m, "app.t")
	time.Sleep(time.Second)
	m.Restart() // clean shutdown: the master writes a STOP event, starts a new binlog
	time.Sleep(time.Second)
	m.Kill() // kill -9: the binlog ends without ROTATE or STOP
	m.Start()
	time.Sleep(time.Second)
	n := w.Stop()
	t.Logf("%d commits across a master restart and a master kill -9", n)

	st := waitSlaveCaughtUp(t, m, slave, 60*time.Second)
	if st["Last_SQL_Errno"] != "0" {
		t.Fatalf("slave SQL error: %s", st["Last_SQL_Error"])
	}
	if a, b := m.Checksum("app.t"), slave.Checksum("app.t"); a != b {
		t.Fatalf("CHECKSUM TABLE master %s, slave %s", a, b)
	}
	files := r.Log.Files()
	if len(files) < 3 {
		t.Fatalf("relay files %v: want a new file after each master start", files)
	}
	t.Logf("relay log files %v; checksums match", files)
	r.Stop()
	compareWithMaster(t, m, r.Dir, files)
}

// TestCorruptRelayLogNeverServed flips one byte inside an event of a
// complete relay file: a slave reading it gets ERR 1236 naming the
// corruption, nothing past it is applied, and the log says so.
func TestCorruptRelayLogNeverServed(t *testing.T) {
	t.Run("plaintext", func(t *testing.T) { corruptRelayLogNeverServed(t, nil) })
	// Encrypted at rest: the flipped byte flips a byte of the decrypted
	// event, whose CRC32 then fails.
	t.Run("encrypted at rest", func(t *testing.T) {
		_, keys := writeKeyFile(t)
		s, err := atrest.NewSealer(keys, 1)
		if err != nil {
			t.Fatal(err)
		}
		corruptRelayLogNeverServed(t, s)
	})
}

func corruptRelayLogNeverServed(t *testing.T, rest binlog.AtRest) {
	p, m := newMaster(t)
	r := StartReplink(t, p, m.Port, ReplinkOptions{Users: slaveUsers(), AtRest: rest})
	m.Exec("CREATE DATABASE app", "CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(100))")
	for i := 0; i < 50; i++ {
		m.Exec(fmt.Sprintf("INSERT INTO app.t VALUES (%d, 'row-%d')", i, i))
	}
	m.Exec("FLUSH BINARY LOGS", "INSERT INTO app.t VALUES (1000, 'in the next file')")
	waitCaughtUp(t, m, r, 20*time.Second)

	// Flip a byte in the middle of the first file's data.
	name := filepath.Join(r.Dir, "mariadb-bin.000001")
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	at := len(data) * 3 / 4
	f, _ := os.OpenFile(name, os.O_WRONLY, 0)
	f.WriteAt([]byte{data[at] ^ 0x10}, int64(at))
	f.Close()

	slave := startSlave(t, p, r.Port)
	var st map[string]string
	waitUntil(t, 20*time.Second, func() bool { st = slave.SlaveStatus(); return st["Last_IO_Errno"] == "1236" })
	if !strings.Contains(st["Last_IO_Error"], "corrupt relay log") {
		t.Fatalf("slave error %q does not name the corruption", st["Last_IO_Error"])
	}
	t.Logf("slave says: %s", st["Last_IO_Error"])
	if !strings.Contains(r.Logs(), "corrupt relay log") {
		t.Fatal("replink's log does not report the corruption")
	}
	// Nothing from the next file (after the corruption) reached the slave.
	waitUntil(t, 10*time.Second, func() bool { return slave.SlaveStatus()["Slave_SQL_Running_State"] != "" })
	if rows, err := slave.TryQuery("SELECT COUNT(*) FROM app.t WHERE id = 1000"); err == nil && rows[0][0] != "0" {
		t.Fatal("an event past the corruption was served")
	}
}

// TestDiskFull puts the relay log on a 4 MB tmpfs and writes more than
// that on the master: replink stops storing (and so serving) past what is
// durable, says why in its log and metrics, leaves no corrupt file, and
// carries on by itself when the filesystem grows.
func TestDiskFull(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "relay")
	os.MkdirAll(dir, 0o750)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount a 4 MB tmpfs (the test runs as root, as make test does here): %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })

	p, m := newMaster(t)
	r := StartReplink(t, p, m.Port, ReplinkOptions{Dir: dir, Users: slaveUsers(), MaxBackoff: 300 * time.Millisecond})
	m.Exec("CREATE DATABASE app", "CREATE TABLE app.t (id INT PRIMARY KEY, v LONGBLOB)")
	slave := startSlave(t, p, r.Port)
	for i := 0; i < 40; i++ { // ~8 MB of binlog
		m.Exec(fmt.Sprintf("INSERT INTO app.t VALUES (%d, REPEAT(MD5(%d), 6400))", i, i))
	}
	full := map[string]string{"reason": "relay_log"}
	waitUntil(t, 30*time.Second, func() bool { return counterValue(t, r.Reg, "replink_master_reconnects_total", full) >= 2 })
	if !strings.Contains(r.Logs(), "no space left on device") {
		t.Fatal("the log does not say the disk is full")
	}
	// What is on disk is whole: every file scans to its end, and mariadb-binlog reads it.
	for _, f := range r.Log.Files() {
		fh, err := os.Open(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		end, _, err := binlog.ScanComplete(fh)
		st, _ := fh.Stat()
		fh.Close()
		if err != nil || end != st.Size() {
			t.Fatalf("%s while the disk is full: complete to %d of %d bytes (%v)", f, end, st.Size(), err)
		}
		if out, err := exec.Command("mariadb-binlog", filepath.Join(dir, f)).CombinedOutput(); err != nil {
			t.Fatalf("mariadb-binlog %s: %v %s", f, err, tail(out, 500))
		}
	}
	durable := r.Log.Durable()
	if f, pos := m.MasterStatus(); durable.File == f && durable.Offset == pos {
		t.Fatal("the relay log holds everything although the disk is too small")
	}
	t.Logf("disk full: relay log durable at %s, %v reconnects with reason relay_log", durable, counterValue(t, r.Reg, "replink_master_reconnects_total", full))

	// Space returns: replink carries on by itself.
	if out, err := exec.Command("mount", "-o", "remount,size=64m", dir).CombinedOutput(); err != nil {
		t.Fatalf("grow the tmpfs: %v %s", err, out)
	}
	waitSlaveCaughtUp(t, m, slave, 60*time.Second)
	if a, b := m.Checksum("app.t"), slave.Checksum("app.t"); a != b {
		t.Fatalf("CHECKSUM TABLE master %s, slave %s", a, b)
	}
	files := r.Log.Files()
	r.Stop()
	compareWithMaster(t, m, dir, files)
}

// TestStallMidEvent: the link dies half-way through a 6 MB event without
// closing. replink notices within 3 heartbeat periods, reconnects and
// resumes at the last complete transaction; the relay file ends up
// byte-identical. A native slave behind the same kind of stall is timed
// for comparison: it notices after its slave_net_timeout, not before
// (the link was stalled, not closed), and it too ends up with the rows.
func TestStallMidEvent(t *testing.T) {
	p, m := newMaster(t, "max_allowed_packet=64M")
	m.Exec("CREATE DATABASE app", "CREATE TABLE app.t (id INT PRIMARY KEY, v LONGBLOB)")
	proxy := StartProxy(t, m.Addr())
	const hb = time.Second
	r := StartReplink(t, p, m.Port, ReplinkOptions{MasterPort: proxy.Port(), Heartbeat: hb, MaxBackoff: 300 * time.Millisecond})
	waitCaughtUp(t, m, r, 20*time.Second)

	// The next connection will stall after 1 MB; push replink onto it.
	proxy.StallAfter(1 << 20)
	proxy.Stall()
	stalls := func() float64 { return counterValue(t, r.Reg, "replink_link_stalls_total", nil) }
	waitUntil(t, 10*time.Second, func() bool { return stalls() == 1 && counterValue(t, r.Reg, "replink_master_up", nil) == 1 })
	start := time.Now()
	m.Exec("INSERT INTO app.t VALUES (1, REPEAT('x', 6000000))")
	waitUntil(t, 10*time.Second, func() bool { return stalls() == 2 })
	replinkDetect := time.Since(start)
	m.Exec("INSERT INTO app.t VALUES (2, 'after')")
	waitCaughtUp(t, m, r, 30*time.Second)
	t.Logf("replink: stall in the middle of a 6 MB event detected after %s (heartbeat %s)", replinkDetect.Round(10*time.Millisecond), hb)

	// A native slave, straight from the master through its own proxy.
	const netTimeout = 3 * time.Second
	sp := StartProxy(t, m.Addr())
	slave := StartServer(t, "slave", ServerOptions{ServerID: 3})
	slave.Exec(fmt.Sprintf("SET GLOBAL slave_net_timeout=%d", int(netTimeout/time.Second)), fmt.Sprintf(`CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='repl', MASTER_PASSWORD='replpass',
		MASTER_SSL=1, MASTER_SSL_CA='%s', MASTER_CONNECT_RETRY=1, MASTER_USE_GTID=no, MASTER_LOG_FILE='mariadb-bin.000001', MASTER_LOG_POS=4`, sp.Port(), p.CAFile), "START SLAVE")
	waitSlaveCaughtUp(t, m, slave, 30*time.Second)
	// Stall the slave's link; it reconnects, and that new connection will
	// stall 1 MB into the next big event.
	conns := sp.Accepted()
	sp.StallAfter(1 << 20)
	sp.Stall()
	waitUntil(t, 20*time.Second, func() bool { return sp.Accepted() > conns })
	waitUntil(t, 10*time.Second, func() bool { return slave.SlaveStatus()["Slave_IO_Running"] == "Yes" })
	// The slave gives up on a stalled link by opening a new connection.
	conns = sp.Accepted()
	start = time.Now()
	m.Exec("INSERT INTO app.t VALUES (3, REPEAT('y', 6000000))")
	waitUntil(t, 30*time.Second, func() bool { return sp.Accepted() > conns })
	nativeDetect := time.Since(start)
	t.Logf("native slave (slave_net_timeout=%s, heartbeat %s): same stall detected after %s; replink: %s",
		netTimeout, netTimeout/2, nativeDetect.Round(10*time.Millisecond), replinkDetect.Round(10*time.Millisecond))
	// Sooner than its timeout, the slave saw the link close: the stall
	// replink was timed against did not happen.
	if nativeDetect < netTimeout-500*time.Millisecond {
		t.Fatalf("the native slave reconnected after %s, before its slave_net_timeout (%s): its link was not stalled", nativeDetect, netTimeout)
	}
	// The stall cost the slave time, not data.
	if st := waitSlaveCaughtUp(t, m, slave, 30*time.Second); st["Slave_IO_Running"] != "Yes" {
		t.Fatalf("native slave caught up but its I/O thread is %q (%s)", st["Slave_IO_Running"], st["Last_IO_Error"])
	}
	if a, b := m.Checksum("app.t"), slave.Checksum("app.t"); a != b {
		t.Fatalf("after the stall: CHECKSUM TABLE master %s, native slave %s", a, b)
	}

	if replinkDetect > 3*hb+2*time.Second {
		t.Fatalf("replink took %s, want about 3 heartbeat periods (%s)", replinkDetect, 3*hb)
	}
	files := r.Log.Files()
	r.Stop()
	compareWithMaster(t, m, r.Dir, files)
}
