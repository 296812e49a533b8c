package test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/replink/replink/binlog"
	"github.com/replink/replink/replica"
	"github.com/replink/replink/tlsutil"
)

// waitCaughtUp waits until the relay log's durable end (what slaves may
// see) equals the master's position.
func waitCaughtUp(t *testing.T, m *Server, s *Replink, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		file, pos := m.MasterStatus()
		got := s.Log.Durable()
		if binlog.MasterName(got.File) == file && got.Offset == pos {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("relay log at %s, master at %s:%d after %s", got, file, pos, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// compareWithMaster checks each relay file byte for byte against the
// master's file of the same name. Only the in-use flag of the format
// description event (file offset 21) may differ.
func compareWithMaster(t *testing.T, m *Server, relayDir string, files []string) {
	t.Helper()
	if len(files) == 0 {
		t.Fatal("relay log has no files")
	}
	for _, name := range files {
		got, err := os.ReadFile(filepath.Join(relayDir, name))
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(filepath.Join(m.DataDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: relay file has %d bytes, master's %d", name, len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i] && i != 21 {
				t.Fatalf("%s: first difference at offset %d (relay %02x, master %02x)", name, i, got[i], want[i])
			}
		}
		t.Logf("%s: %d bytes identical to the master's", name, len(got))
	}
}

func TestStreamMirrorsMasterBinlog(t *testing.T) {
	p, m := newMaster(t)
	s := StartReplink(t, p, m.Port, ReplinkOptions{})

	m.Exec("CREATE DATABASE app",
		"CREATE TABLE app.t (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(100), amount DECIMAL(10,2), at DATETIME(6), doc JSON, data BLOB)")
	for i := 0; i < 50; i++ {
		m.Exec(fmt.Sprintf("INSERT INTO app.t (name, amount, at, doc, data) VALUES ('row-%d', %d.25, NOW(6), '{\"k\": %d}', REPEAT('x', %d))", i, i, i, i*100))
	}
	m.Exec("BEGIN", "UPDATE app.t SET amount = amount * 2 WHERE id % 3 = 0", "DELETE FROM app.t WHERE id % 7 = 0",
		"INSERT INTO app.t (name) VALUES ('marker-in-multi-statement')", "COMMIT")
	m.Exec("FLUSH BINARY LOGS")
	m.Exec("ALTER TABLE app.t ADD COLUMN extra INT DEFAULT 7", "INSERT INTO app.t (name) VALUES ('after-rotate')")
	waitCaughtUp(t, m, s, 30*time.Second)

	files, dir := s.Log.Files(), s.Dir
	s.Stop()
	if len(files) < 2 {
		t.Fatalf("expected the rotation to show as a second file, got %v", files)
	}
	compareWithMaster(t, m, dir, files)

	for _, f := range files {
		out, err := exec.Command("mariadb-binlog", "-v", filepath.Join(dir, f)).CombinedOutput()
		if err != nil {
			t.Fatalf("mariadb-binlog %s: %v\n%s", f, err, tail(out, 2000))
		}
		if bytes.Contains(out, []byte("marker-in-multi-statement")) {
			t.Logf("mariadb-binlog found the marker row in %s", f)
		}
	}
	out, _ := exec.Command("mariadb-binlog", "-v", filepath.Join(dir, files[0])).CombinedOutput()
	if !bytes.Contains(out, []byte("marker-in-multi-statement")) {
		t.Fatalf("mariadb-binlog -v of %s does not show the marker row", files[0])
	}
}

func TestStallDetectedAndResumed(t *testing.T) {
	p, m := newMaster(t)
	m.Exec("CREATE DATABASE app", "CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(64))")
	proxy := StartProxy(t, m.Addr())
	const hb = 300 * time.Millisecond
	s := StartReplink(t, p, m.Port, ReplinkOptions{MasterPort: proxy.Port(), Heartbeat: hb})

	for i := 0; i < 100; i++ {
		m.Exec(fmt.Sprintf("INSERT INTO app.t VALUES (%d, 'before-%d')", i, i))
	}
	waitCaughtUp(t, m, s, 30*time.Second)

	stalledAt := time.Now()
	proxy.Stall()
	// Transactions keep coming while the link is silently dead.
	for i := 100; i < 200; i++ {
		m.Exec(fmt.Sprintf("INSERT INTO app.t VALUES (%d, 'during-%d')", i, i))
	}
	detected := waitStall(t, s, stalledAt, 3*hb+5*time.Second)
	t.Logf("stall detected after %s (heartbeat period %s, limit %s)", detected.Round(time.Millisecond), hb, 3*hb)
	if detected > 3*hb+2*time.Second {
		t.Fatalf("stall detected after %s, want about 3 heartbeat periods (%s)", detected, 3*hb)
	}
	for i := 200; i < 300; i++ {
		m.Exec(fmt.Sprintf("INSERT INTO app.t VALUES (%d, 'after-%d')", i, i))
	}
	waitCaughtUp(t, m, s, 30*time.Second)
	if r := counterValue(t, s.Reg, "replink_master_reconnects_total", map[string]string{"reason": "stall"}); r < 1 {
		t.Fatalf("reconnects{reason=stall} = %v", r)
	}
	files, dir := s.Log.Files(), s.Dir
	s.Stop()
	// Byte identity with the master's binlog proves no transaction was lost or duplicated.
	compareWithMaster(t, m, dir, files)
}

func TestStartPointsAndResumeAfterRestart(t *testing.T) {
	p, m := newMaster(t)
	m.Exec("CREATE DATABASE app", "CREATE TABLE app.t (id INT PRIMARY KEY, v TEXT)", "INSERT INTO app.t VALUES (1, 'a')")
	m.Exec("FLUSH BINARY LOGS")
	m.Exec("INSERT INTO app.t VALUES (2, 'b')")
	gtid := m.Query("SELECT @@gtid_binlog_pos")[0][0]
	m.Exec("INSERT INTO app.t VALUES (3, 'c')")

	for _, c := range []struct {
		name  string
		start string
	}{
		{"gtid in the second file", "gtid:" + gtid},
		{"file and position", "file:mariadb-bin.000002:400"},
	} {
		t.Run(c.name, func(t *testing.T) {
			st, err := replica.ParseStart(c.start)
			if err != nil {
				t.Fatal(err)
			}
			s := StartReplink(t, p, m.Port, ReplinkOptions{Start: st})
			waitCaughtUp(t, m, s, 20*time.Second)
			files := s.Log.Files()
			s.Stop()
			if files[0] != "mariadb-bin.000002" {
				t.Fatalf("start %s fetched %v, want mariadb-bin.000002 from its start", c.start, files)
			}
			compareWithMaster(t, m, s.Dir, files)
		})
	}

	t.Run("resume after restart", func(t *testing.T) {
		dir := t.TempDir()
		s := StartReplink(t, p, m.Port, ReplinkOptions{Dir: dir})
		waitCaughtUp(t, m, s, 20*time.Second)
		s.Stop()
		// Written while replink is down, across a rotation.
		for i := 10; i < 40; i++ {
			m.Exec(fmt.Sprintf("INSERT INTO app.t VALUES (%d, 'while-down')", i))
		}
		m.Exec("FLUSH BINARY LOGS", "INSERT INTO app.t VALUES (100, 'new file')")
		s = StartReplink(t, p, m.Port, ReplinkOptions{Dir: dir})
		waitCaughtUp(t, m, s, 20*time.Second)
		files := s.Log.Files()
		s.Stop()
		if len(files) != 2 {
			t.Fatalf("files %v, want the current file and the one rotated to", files)
		}
		compareWithMaster(t, m, dir, files)
	})
}

// TestLargeEventsMirrored sends events larger than replink's read buffer
// (300 KB) and larger than one MySQL packet (17 MB: the master splits them
// at 16 MB) through replink to a native slave: the relay file stays
// byte-identical to the master's and the slave's table matches.
func TestLargeEventsMirrored(t *testing.T) {
	p, m := newMaster(t, "max_allowed_packet=64M")
	s := StartReplink(t, p, m.Port, ReplinkOptions{Users: slaveUsers()})
	m.Exec("CREATE DATABASE app", "CREATE TABLE app.big (id INT PRIMARY KEY, body LONGTEXT)")
	slave := startSlave(t, p, s.Port, "max_allowed_packet=64M")
	for i, size := range []int{300 << 10, 17 << 20, 100} {
		// A literal, not REPEAT(): the statement itself is as large as the
		// row, so the Annotate_rows event is too.
		m.Exec(fmt.Sprintf("INSERT INTO app.big VALUES (%d, '%s')", i, strings.Repeat(string(rune('a'+i)), size)))
	}
	waitCaughtUp(t, m, s, time.Minute)
	waitSlaveCaughtUp(t, m, slave, time.Minute)
	if got, want := slave.Checksum("app.big"), m.Checksum("app.big"); got != want {
		t.Fatalf("slave checksum %s, master %s", got, want)
	}
	files, dir := s.Log.Files(), s.Dir
	s.Stop()
	compareWithMaster(t, m, dir, files)
}

// TestSameServerIDNamed: without REPLICATION MASTER ADMIN replink cannot
// look at SHOW SLAVE HOSTS before it registers, and two replinks with one
// server-id end each other's dump (ERROR 4052): the failure is named
// duplicate_server_id, with the fix, and the one ended comes back only
// after the backoff's maximum, not at once.
func TestSameServerIDNamed(t *testing.T) {
	p, m := newMaster(t)
	m.Exec("CREATE USER 'replonly'@'%' IDENTIFIED BY 'replpass'", "GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'replonly'@'%'")
	tc, err := tlsutil.NewClient(tlsutil.ClientOptions{Mode: "VERIFY_IDENTITY", CA: p.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	ep := &replica.Endpoint{Host: "127.0.0.1", Port: m.Port, User: "replonly", Password: "replpass", TLS: tc, ConnectTimeout: 5 * time.Second}
	a := StartReplink(t, p, m.Port, ReplinkOptions{Master: ep, MaxBackoff: 5 * time.Second})
	waitCaughtUp(t, m, a, 10*time.Second)
	b := StartReplink(t, p, m.Port, ReplinkOptions{Master: ep, MaxBackoff: 5 * time.Second}) // the same server-id, 4001
	waitUntil(t, 20*time.Second, func() bool {
		for _, r := range []*Replink{a, b} {
			for _, f := range r.Replica.Status().Failures {
				if f.Reason == "duplicate_server_id" && strings.Contains(f.Error, "4052") && strings.Contains(f.Hint, "server-id 4001") {
					t.Logf("failure: %s; hint: %s", f.Error, f.Hint)
					return true
				}
			}
		}
		return false
	})
	// Ended dumps come back after the backoff's maximum (5s here): a few
	// reconnects in 6s between the two, not one every half second.
	n0 := counterValue(t, a.Reg, "replink_master_reconnects_total", nil) + counterValue(t, b.Reg, "replink_master_reconnects_total", nil)
	time.Sleep(6 * time.Second)
	n1 := counterValue(t, a.Reg, "replink_master_reconnects_total", nil) + counterValue(t, b.Reg, "replink_master_reconnects_total", nil)
	t.Logf("reconnects of the two in 6s: %v", n1-n0)
	if n1-n0 > 4 {
		t.Fatalf("%v reconnects in 6s between two replinks with one server-id: flapping", n1-n0)
	}
}
