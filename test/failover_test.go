package test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/replink/replink/binlog"
	"github.com/replink/replink/diagnose"
	"github.com/replink/replink/relay"
	"github.com/replink/replink/replica"
	"github.com/replink/replink/tlsutil"
)

// failoverTopology is M1, the master, and M2 and M3 replicating from it
// by GTID with log_slave_updates, read-only, all over TLS with the PKI's
// server certificate, as docs/failover.md's proof wants it.
type failoverTopology struct {
	p          *PKI
	m1, m2, m3 *Server
}

func newFailoverTopology(t *testing.T) *failoverTopology {
	t.Helper()
	p, m1 := newMaster(t)
	ft := &failoverTopology{p: p, m1: m1}
	for i, s := range []**Server{&ft.m2, &ft.m3} {
		*s = StartSSLServer(t, fmt.Sprintf("m%d", i+2), p, i+2, "log_slave_updates=ON", "read_only=ON")
		(*s).Exec(fmt.Sprintf(`CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='repl', MASTER_PASSWORD='replpass',
			MASTER_SSL=1, MASTER_SSL_CA='%s', MASTER_SSL_VERIFY_SERVER_CERT=1, MASTER_CONNECT_RETRY=1, MASTER_USE_GTID=slave_pos`, m1.Port, p.CAFile),
			"START SLAVE")
	}
	return ft
}

// waitHas waits until s has applied every GTID of m's binlog.
func waitHas(t *testing.T, m, s *Server) {
	t.Helper()
	want := m.Query("SELECT @@gtid_binlog_pos")[0][0]
	if got := s.Query(fmt.Sprintf("SELECT MASTER_GTID_WAIT('%s', 30)", want))[0][0]; got != "0" {
		t.Fatalf("%s did not reach %s in 30 s (MASTER_GTID_WAIT %s): %v", s.Name, want, got, s.SlaveStatus()["Last_IO_Error"])
	}
}

// promote makes s the master as a failover manager does (its
// replication stopped and forgotten, writable) and points the servers in
// move at it; it returns when s became writable.
func promote(s *Server, move ...*Server) time.Time {
	s.Exec("STOP SLAVE", "RESET SLAVE ALL", "SET GLOBAL read_only = OFF")
	at := time.Now()
	for _, o := range move {
		o.Exec("STOP SLAVE", fmt.Sprintf("CHANGE MASTER TO MASTER_PORT=%d", s.Port), "START SLAVE")
	}
	return at
}

// probeAll probes M1, M2 and M3 as replink's master link would.
func (ft *failoverTopology) probeAll(t *testing.T) []replica.ServerState {
	t.Helper()
	tc, err := tlsutil.NewClient(tlsutil.ClientOptions{Mode: "VERIFY_IDENTITY", CA: ft.p.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	var out []replica.ServerState
	for _, s := range []*Server{ft.m1, ft.m2, ft.m3} {
		ep := replica.Endpoint{Host: "127.0.0.1", Port: s.Port, User: "repl", Password: "replpass", TLS: tc, ConnectTimeout: 5 * time.Second}
		st := replica.Probe(context.Background(), ep, unmetered())
		if st.Err != nil {
			t.Fatalf("probe %s: %v", s.Name, st.Err)
		}
		out = append(out, st)
	}
	return out
}

// TestChoosingTheMaster: against real servers, the master replink would
// follow is the one writable server whose binlog holds all replink has:
// M1 while it is the master; M2 once promoted as a failover manager
// promotes it; nobody while M2 and M3 are both writable; nobody when the
// only writable server lacks transactions replink has, naming them.
func TestChoosingTheMaster(t *testing.T) {
	ft := newFailoverTopology(t)
	r := StartReplink(t, ft.p, ft.m1.Port, ReplinkOptions{Users: slaveUsers()})
	ft.m1.Exec("CREATE DATABASE app", "CREATE TABLE app.t (id INT PRIMARY KEY)", "INSERT INTO app.t VALUES (1), (2)")
	waitCaughtUp(t, ft.m1, r, 20*time.Second)
	waitHas(t, ft.m1, ft.m2)
	waitHas(t, ft.m1, ft.m3)
	if v := counterValue(t, r.Reg, "replink_master_info", map[string]string{"address": ft.m1.Addr(), "server_id": "1"}); v != 1 {
		t.Fatalf("replink_master_info{address=%q,server_id=\"1\"} = %v, want 1", ft.m1.Addr(), v)
	}
	for _, result := range replica.SwitchResults {
		if v := counterValue(t, r.Reg, "replink_master_switches_total", map[string]string{"result": result}); v != 0 {
			t.Fatalf("replink_master_switches_total{result=%q} = %v at start, want 0", result, v)
		}
	}
	have := func() replica.Choice {
		st, err := r.Log.State()
		if err != nil {
			t.Fatal(err)
		}
		return replica.Choose(st.Maria, ft.probeAll(t))
	}
	check := func(step string, c replica.Choice, result, master, missing string) {
		t.Helper()
		got := ""
		for _, g := range c.Missing {
			got += g.String()
		}
		if c.Result != result || c.Master.Addr != master || got != missing {
			t.Fatalf("%s: %s (%s %q missing %q), want %s %q missing %q", step, c, c.Result, c.Master.Addr, got, result, master, missing)
		}
		t.Logf("%s: %s", step, c)
	}
	check("steady", have(), "ok", ft.m1.Addr(), "")
	states := ft.probeAll(t)
	if !states[1].ReadOnly || !states[1].LogSlaveUpdates || !states[1].LogBin || states[1].ServerID != 2 {
		t.Fatalf("M2 probed as %+v, want read-only, log_slave_updates, log_bin, server_id 2", states[1])
	}

	// A planned switchover, as orchestrator does it.
	ft.m1.Exec("SET GLOBAL read_only = ON")
	waitHas(t, ft.m1, ft.m2)
	promote(ft.m2)
	check("M2 promoted", have(), "ok", ft.m2.Addr(), "")

	ft.m3.Exec("SET GLOBAL read_only = OFF")
	if c := have(); c.Result != "ambiguous" || len(c.Writable) != 2 || c.Writable[0] != ft.m2.Addr() || c.Writable[1] != ft.m3.Addr() {
		t.Fatalf("M2 and M3 writable: %s, want ambiguous naming both", c)
	}
	ft.m3.Exec("SET GLOBAL read_only = ON")

	// M1 takes one more write that replink stores and M2, promoted, never
	// had; with M1 read-only again, M2 is writable and lacks it.
	ft.m1.Exec("SET GLOBAL read_only = OFF", "INSERT INTO app.t VALUES (3)", "SET GLOBAL read_only = ON")
	waitCaughtUp(t, ft.m1, r, 20*time.Second)
	check("M2 lacking M1's last write", have(), "diverged", ft.m2.Addr(), ft.m1.Query("SELECT @@gtid_binlog_pos")[0][0])
}

// TestDiagnoseCandidates: diagnose checks every candidate as replink
// would follow it: reached and verified by its own name, allowed to
// replicate, with log_slave_updates, and not writable beside the master.
func TestDiagnoseCandidates(t *testing.T) {
	ft := newFailoverTopology(t)
	m4 := StartSSLServer(t, "m4", ft.p, 4) // binary logging, but not what it replicates
	m4.SetupReplUsers()
	waitHas(t, ft.m1, ft.m3)
	ft.m3.Exec("REVOKE REPLICATION SLAVE ON *.* FROM 'repl'@'%'")
	gone := FreePort(t)
	tc, err := tlsutil.NewClient(tlsutil.ClientOptions{Mode: "VERIFY_IDENTITY", CA: ft.p.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	ep := func(port int) replica.Endpoint {
		return replica.Endpoint{Host: "127.0.0.1", Port: port, User: "repl", Password: "replpass", TLS: tc, ConnectTimeout: 5 * time.Second}
	}
	cfg := replica.Config{Endpoint: ep(ft.m1.Port), ServerID: 4001,
		Candidates: []replica.Endpoint{ep(ft.m2.Port), ep(ft.m3.Port), ep(m4.Port), ep(gone)}}
	want := []struct {
		ok     bool
		reason tlsutil.Reason
		hint   string
	}{
		{true, "", ""},
		{false, tlsutil.ReasonAccessDenied, "GRANT REPLICATION SLAVE"},
		{false, "other", "log_slave_updates=ON"},
		{false, tlsutil.ReasonConnectionRefused, ""},
	}
	check := func(step string) {
		t.Helper()
		rep := diagnose.Run(context.Background(), cfg)
		var b strings.Builder
		rep.WriteText(&b)
		t.Logf("%s:\n%s", step, b.String())
		var got []diagnose.Step
		for _, s := range rep.Steps {
			if s.Step == "candidate" {
				got = append(got, s)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d candidate steps, want %d", step, len(got), len(want))
		}
		for i, w := range want {
			if got[i].OK != w.ok || got[i].Reason != w.reason || !strings.Contains(got[i].Hint, w.hint) ||
				!strings.Contains(got[i].Detail, cfg.Candidates[i].Addr()) {
				t.Fatalf("%s: candidate %d: %+v, want ok %v reason %q hint with %q", step, i, got[i], w.ok, w.reason, w.hint)
			}
		}
		if rep.OK {
			t.Fatalf("%s: the report passed with failed candidates", step)
		}
	}
	check("M2 fit, M3 without the grant, M4 without log_slave_updates, one not listening")
	// M2 writable beside the master: two masters.
	ft.m2.Exec("SET GLOBAL read_only = OFF")
	want[0] = struct {
		ok     bool
		reason tlsutil.Reason
		hint   string
	}{false, "other", "two writable servers"}
	check("M2 writable beside M1")
}

// failoverStack is the topology with replink following M1 (candidates
// M2 and M3) and, behind replink, a GTID slave and a file/position slave
// over TLS.
type failoverStack struct {
	*failoverTopology
	r            *Replink
	gtid, byFile *Server
}

func newFailoverStack(t *testing.T) *failoverStack {
	t.Helper()
	ft := newFailoverTopology(t)
	ft.m1.Exec("CREATE DATABASE app", "CREATE TABLE app.t (id INT PRIMARY KEY, note VARCHAR(40))")
	r := StartReplink(t, ft.p, ft.m1.Port, ReplinkOptions{Users: slaveUsers(), Candidates: []int{ft.m2.Port, ft.m3.Port},
		Start: replica.Start{Kind: "file", Pos: binlog.Pos{File: "mariadb-bin.000001", Offset: 4}}})
	fs := &failoverStack{failoverTopology: ft, r: r}
	fs.gtid = StartServer(t, "gtidslave", ServerOptions{ServerID: 11})
	changeMaster(t, fs.gtid, ft.p, r.Port, "slave1", "mariadb-bin.000001", "")
	fs.gtid.Exec("CHANGE MASTER TO MASTER_USE_GTID=slave_pos", "START SLAVE")
	fs.byFile = StartServer(t, "fileslave", ServerOptions{ServerID: 12})
	changeMaster(t, fs.byFile, ft.p, r.Port, "slave1", "mariadb-bin.000001", "")
	fs.byFile.Exec("START SLAVE")
	return fs
}

// write inserts n rows on m from id on.
func write(m *Server, from, n int, note string) {
	for i := from; i < from+n; i++ {
		m.Exec(fmt.Sprintf("INSERT INTO app.t VALUES (%d, '%s')", i, note))
	}
}

// waitRows waits until s has the row id, failing on a slave error.
func waitRows(t *testing.T, s *Server, id int, limit time.Duration) time.Duration {
	t.Helper()
	return waitRowsIO(t, s, id, limit, true)
}

// waitRowsIO is waitRows that takes an IO thread error (the slave
// reconnecting to a replink that restarts) as fatal only when ioFatal.
func waitRowsIO(t *testing.T, s *Server, id int, limit time.Duration, ioFatal bool) time.Duration {
	t.Helper()
	start := time.Now()
	for deadline := start.Add(limit); ; time.Sleep(20 * time.Millisecond) {
		if st := s.SlaveStatus(); ioFatal && st["Last_IO_Error"] != "" || st["Last_SQL_Error"] != "" {
			t.Fatalf("%s: IO error %q, SQL error %q", s.Name, st["Last_IO_Error"], st["Last_SQL_Error"])
		}
		if rows, err := s.TryQuery(fmt.Sprintf("SELECT 1 FROM app.t WHERE id = %d", id)); err == nil && len(rows) == 1 {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not have row %d after %s: %v", s.Name, id, limit, s.SlaveStatus())
		}
	}
}

// sameBytes checks that replink's relay file path is the server's file
// name, or its prefix while the server writes on.
func sameBytes(t *testing.T, r *Replink, path string, s *Server) {
	t.Helper()
	got, err := os.ReadFile(filepath.Join(r.Dir, path))
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(s.DataDir, binlog.MasterName(path)))
	if err != nil {
		t.Fatal(err)
	}
	// The FDE's in-use flag may differ (a file still open on its server).
	const flags = 4 + 17
	if len(got) > len(want) || !bytes.Equal(got[:flags], want[:flags]) || !bytes.Equal(got[flags+2:], want[flags+2:len(got)]) {
		t.Fatalf("relay file %s (%d bytes) is not %s's %s (%d bytes)", path, len(got), s.Name, binlog.MasterName(path), len(want))
	}
}

// TestPlannedSwitchover: a switchover as orchestrator runs it (M1
// read-only, M2 caught up, M2 promoted, M3 and the writer moved to M2)
// under a writer. replink follows M2 by itself; its GTID slave and its
// file/position slave go on with no CHANGE MASTER and no error, with
// every row once; M1's files in replink are M1's bytes, M2's M2's.
func TestPlannedSwitchover(t *testing.T) {
	fs := newFailoverStack(t)
	write(fs.m1, 1, 50, "on m1")
	waitRows(t, fs.gtid, 50, 30*time.Second)
	waitRows(t, fs.byFile, 50, 30*time.Second)

	fs.m1.Exec("SET GLOBAL read_only = ON")
	waitHas(t, fs.m1, fs.m2)
	waitHas(t, fs.m1, fs.m3)
	promoted := promote(fs.m2, fs.m3)
	write(fs.m2, 51, 50, "on m2")
	for _, s := range []*Server{fs.gtid, fs.byFile} {
		waitRows(t, s, 51, 60*time.Second)
		t.Logf("%s streams again %s after M2's promotion", s.Name, time.Since(promoted).Round(10*time.Millisecond))
	}
	write(fs.m2, 101, 50, "on m2, later")
	want := fs.m2.Checksum("app.t")
	for _, s := range []*Server{fs.gtid, fs.byFile} {
		waitRows(t, s, 150, 30*time.Second)
		if got := s.Checksum("app.t"); got != want {
			t.Fatalf("%s: checksum %s, M2 %s", s.Name, got, want)
		}
		if n := s.Query("SELECT COUNT(*) FROM app.t")[0][0]; n != "150" {
			t.Fatalf("%s has %s rows, want 150", s.Name, n)
		}
	}
	if st := fs.byFile.SlaveStatus(); st["Master_Host"] != "127.0.0.1" || st["Master_Port"] != fmt.Sprint(fs.r.Port) {
		t.Fatalf("the file/position slave's master changed: %v", st)
	}
	t.Logf("file/position slave at %s:%s", fs.byFile.SlaveStatus()["Master_Log_File"], fs.byFile.SlaveStatus()["Read_Master_Log_Pos"])
	if v := counterValue(t, fs.r.Reg, "replink_master_switches_total", map[string]string{"result": "ok"}); v != 1 {
		t.Fatalf("replink_master_switches_total{result=\"ok\"} = %v, want 1", v)
	}
	if v := counterValue(t, fs.r.Reg, "replink_master_info", map[string]string{"address": fs.m2.Addr(), "server_id": "2"}); v != 1 {
		t.Fatalf("replink_master_info for M2 = %v, want 1", v)
	}
	waitCaughtUp(t, fs.m2, fs.r, 20*time.Second)
	seqs := fs.r.Log.Sequences()
	if len(seqs) != 2 || seqs[1].Master != fs.m2.Addr() || seqs[1].CrossFile == "" {
		t.Fatalf("sequences %+v, want M2's after M1's with a crossing point", seqs)
	}
	for _, f := range fs.r.Log.Files() {
		if strings.HasPrefix(f, seqs[1].Dir+"/") {
			sameBytes(t, fs.r, f, fs.m2)
		} else {
			sameBytes(t, fs.r, f, fs.m1)
		}
	}
	t.Logf("relay log: %v, crossing at %s:%d", fs.r.Log.Files(), seqs[1].CrossFile, seqs[1].CrossPos)
}

// TestCrashFailover: M1 is killed (-9) and a caught-up M2 promoted:
// replink, its master unreachable for failover-wait, follows M2, and its
// slaves go on with no error and every row once.
func TestCrashFailover(t *testing.T) {
	fs := newFailoverStack(t)
	write(fs.m1, 1, 50, "on m1")
	waitRows(t, fs.gtid, 50, 30*time.Second)
	waitRows(t, fs.byFile, 50, 30*time.Second)
	waitHas(t, fs.m1, fs.m2)
	waitHas(t, fs.m1, fs.m3)
	fs.m1.Kill()
	promoted := promote(fs.m2, fs.m3)
	write(fs.m2, 51, 50, "on m2")
	for _, s := range []*Server{fs.gtid, fs.byFile} {
		waitRows(t, s, 100, 60*time.Second)
		t.Logf("%s has M2's rows %s after its promotion (M1 killed at the promotion; failover-wait 1s)", s.Name, time.Since(promoted).Round(10*time.Millisecond))
	}
	want := fs.m2.Checksum("app.t")
	for _, s := range []*Server{fs.gtid, fs.byFile} {
		if got, n := s.Checksum("app.t"), s.Query("SELECT COUNT(*) FROM app.t")[0][0]; got != want || n != "100" {
			t.Fatalf("%s: checksum %s with %s rows, M2 %s with 100", s.Name, got, n, want)
		}
	}
	if v := counterValue(t, fs.r.Reg, "replink_master_switches_total", map[string]string{"result": "ok"}); v != 1 {
		t.Fatalf("replink_master_switches_total{result=\"ok\"} = %v, want 1", v)
	}
}

// TestFailoverRefusals: replink never follows a server that lacks what it
// has, nor chooses between two writable servers. M2, cut off from M1
// before M1's last writes, is promoted: replink stays unattached naming
// the GTIDs M2 lacks, and serves nothing of M2's; M3, which has them, is
// promoted instead: replink follows it. Then two servers writable at once:
// no switch.
func TestFailoverRefusals(t *testing.T) {
	fs := newFailoverStack(t)
	write(fs.m1, 1, 20, "on m1")
	waitHas(t, fs.m1, fs.m2)
	fs.m2.Exec("STOP SLAVE")
	write(fs.m1, 21, 10, "m2 never gets these")
	waitHas(t, fs.m1, fs.m3)
	waitRows(t, fs.gtid, 30, 30*time.Second)
	waitRows(t, fs.byFile, 30, 30*time.Second)
	missing := fs.m1.Query("SELECT @@gtid_binlog_pos")[0][0]

	fs.m1.Exec("SET GLOBAL read_only = ON")
	fs.m2.Exec("RESET SLAVE ALL", "SET GLOBAL read_only = OFF")
	waitUntil(t, 20*time.Second, func() bool {
		return counterValue(t, fs.r.Reg, "replink_master_switches_total", map[string]string{"result": "diverged"}) == 1
	})
	st := fs.r.Replica.Status()
	if st.State != "unattached" || st.LastReason != "diverged" || !strings.Contains(st.LastError, missing) || st.Master != fs.m1.Addr() {
		t.Fatalf("status %+v, want unattached, diverged, naming %s, still on M1", st, missing)
	}
	if !strings.Contains(fs.r.Logs(), "missing="+missing) {
		t.Fatalf("the log does not name the missing GTID %s", missing)
	}
	fs.m2.Exec("INSERT INTO app.t VALUES (1000, 'written on the diverged m2')")
	time.Sleep(3 * time.Second) // three failover-waits: replink must stay away from M2
	for _, s := range []*Server{fs.gtid, fs.byFile} {
		if rows := s.Query("SELECT COUNT(*) FROM app.t WHERE id = 1000")[0][0]; rows != "0" {
			t.Fatalf("%s got a row of the diverged M2", s.Name)
		}
	}
	if v := counterValue(t, fs.r.Reg, "replink_master_switches_total", map[string]string{"result": "diverged"}); v != 1 {
		t.Fatalf("diverged counted %v times for one incident, want 1", v)
	}

	// The failover manager sets it right: M2 read-only, M3 promoted.
	fs.m2.Exec("SET GLOBAL read_only = ON")
	promote(fs.m3)
	write(fs.m3, 31, 10, "on m3")
	for _, s := range []*Server{fs.gtid, fs.byFile} {
		waitRows(t, s, 40, 30*time.Second)
	}
	if fs.r.Replica.Status().Master != fs.m3.Addr() {
		t.Fatalf("following %s, want M3", fs.r.Replica.Status().Master)
	}

	// Two writable servers: no switch.
	fs.m3.Exec("SET GLOBAL read_only = ON")
	fs.m1.Exec("SET GLOBAL read_only = OFF")
	fs.m2.Exec("SET GLOBAL read_only = OFF")
	waitUntil(t, 20*time.Second, func() bool {
		return counterValue(t, fs.r.Reg, "replink_master_switches_total", map[string]string{"result": "ambiguous"}) == 1
	})
	if st := fs.r.Replica.Status(); st.State != "unattached" || st.Master != fs.m3.Addr() ||
		!strings.Contains(st.LastError, fs.m1.Addr()) || !strings.Contains(st.LastError, fs.m2.Addr()) {
		t.Fatalf("status %+v, want unattached, still M3, naming M1 and M2", st)
	}
	want := fs.m3.Checksum("app.t")
	for _, s := range []*Server{fs.gtid, fs.byFile} {
		if got := s.Checksum("app.t"); got != want {
			t.Fatalf("%s: checksum %s, M3 %s", s.Name, got, want)
		}
	}
}

// TestKilledDuringASwitch: the replink binary, configured with
// candidates in its TOML, is killed (-9) the moment it has started the
// new master's files during a switchover, and started again: it goes on
// with the new master (not host, which is read-only), and its slave gets
// every row once.
func TestKilledDuringASwitch(t *testing.T) {
	ft := newFailoverTopology(t)
	ft.m1.Exec("CREATE DATABASE app", "CREATE TABLE app.t (id INT PRIMARY KEY, note VARCHAR(40))")
	relayPort, metricsPort := FreePort(t), FreePort(t)
	conf := WriteReplinkConfigWith(t, ft.p, ft.m1.Port, relayPort, metricsPort, t.TempDir(),
		ConfigOptions{Start: "file:mariadb-bin.000001:4", Candidates: []int{ft.m2.Port, ft.m3.Port}})
	logFile := filepath.Join(t.TempDir(), "replink.log")
	proc := StartProcess(t, conf, logFile)
	slave := StartServer(t, "slave", ServerOptions{ServerID: 11})
	changeMaster(t, slave, ft.p, relayPort, "slave1", "mariadb-bin.000001", "")
	slave.Exec("START SLAVE")
	write(ft.m1, 1, 30, "on m1")
	waitRows(t, slave, 30, 30*time.Second)

	ft.m1.Exec("SET GLOBAL read_only = ON")
	waitHas(t, ft.m1, ft.m2)
	promote(ft.m2)
	waitUntil(t, 20*time.Second, func() bool {
		b, _ := os.ReadFile(logFile)
		return bytes.Contains(b, []byte("a new master's files follow"))
	})
	proc.Signal(syscall.SIGKILL)
	if !proc.Wait(10 * time.Second) {
		t.Fatal("replink survived SIGKILL")
	}
	write(ft.m2, 31, 30, "on m2")
	proc.Restart()
	waitRowsIO(t, slave, 60, 60*time.Second, false)
	if got, want := slave.Checksum("app.t"), ft.m2.Checksum("app.t"); got != want {
		t.Fatalf("checksum slave %s, M2 %s", got, want)
	}
	if n := slave.Query("SELECT COUNT(*) FROM app.t")[0][0]; n != "60" {
		t.Fatalf("slave has %s rows, want 60", n)
	}
	b, _ := os.ReadFile(logFile)
	if !bytes.Contains(b, []byte("following the master the relay log switched to before the restart")) {
		t.Fatalf("after the restart replink did not say it follows M2:\n%s", b)
	}
}

// TestChainAcrossASwitchover: master → replink A → replink B → slave,
// A with the candidates. A follows M2 after a planned switchover; B sees
// A cross to M2's files and follows with a sequence of its own (each of
// M2's files fetched from its start), and the slave of B goes on with
// every row once.
func TestChainAcrossASwitchover(t *testing.T) {
	ft := newFailoverTopology(t)
	ft.m1.Exec("CREATE DATABASE app", "CREATE TABLE app.t (id INT PRIMARY KEY, note VARCHAR(40))")
	start := replica.Start{Kind: "file", Pos: binlog.Pos{File: "mariadb-bin.000001", Offset: 4}}
	a := StartReplink(t, ft.p, ft.m1.Port, ReplinkOptions{ServerID: 4001, Start: start, Candidates: []int{ft.m2.Port, ft.m3.Port},
		Users: []relay.User{{Name: "replinkb", Password: "chainpass", Require: relay.RequireX509, Subject: ClientSubject}}})
	toA := verifiedEndpoint(t, ft.p, a.Port, "replinkb", "chainpass", true)
	b := StartReplink(t, ft.p, 0, ReplinkOptions{Master: &toA, ServerID: 4002, Start: start, MaxBackoff: 300 * time.Millisecond, Users: slaveUsers()})
	slave := StartServer(t, "slave", ServerOptions{ServerID: 11})
	changeMaster(t, slave, ft.p, b.Port, "slave1", "mariadb-bin.000001", "")
	slave.Exec("START SLAVE")
	write(ft.m1, 1, 30, "on m1")
	waitRows(t, slave, 30, 30*time.Second)

	ft.m1.Exec("SET GLOBAL read_only = ON")
	waitHas(t, ft.m1, ft.m2)
	promoted := promote(ft.m2)
	write(ft.m2, 31, 30, "on m2")
	waitRows(t, slave, 60, 60*time.Second)
	t.Logf("the slave of B has M2's rows %s after the promotion", time.Since(promoted).Round(10*time.Millisecond))
	if got, want := slave.Checksum("app.t"), ft.m2.Checksum("app.t"); got != want {
		t.Fatalf("checksum slave of B %s, M2 %s", got, want)
	}
	if n := slave.Query("SELECT COUNT(*) FROM app.t")[0][0]; n != "60" {
		t.Fatalf("slave of B has %s rows, want 60", n)
	}
	waitCaughtUp(t, ft.m2, b, 20*time.Second)
	for _, r := range []*Replink{a, b} {
		seqs := r.Log.Sequences()
		if len(seqs) != 2 || seqs[1].CrossFile == "" {
			t.Fatalf("sequences %+v, want two with a crossing point", seqs)
		}
		for _, f := range r.Log.Files() {
			if strings.HasPrefix(f, seqs[1].Dir+"/") {
				sameBytes(t, r, f, ft.m2)
			} else {
				sameBytes(t, r, f, ft.m1)
			}
		}
	}
	t.Logf("A: %v; B: %v", a.Log.Files(), b.Log.Files())
}

// TestPairFollowsTogether: both replinks of a pair, each choosing alone,
// follow M2 after a switchover, and hold the same files.
func TestPairFollowsTogether(t *testing.T) {
	ft := newFailoverTopology(t)
	ft.m1.Exec("CREATE DATABASE app", "CREATE TABLE app.t (id INT PRIMARY KEY, note VARCHAR(40))")
	start := replica.Start{Kind: "file", Pos: binlog.Pos{File: "mariadb-bin.000001", Offset: 4}}
	var pair []*Replink
	for _, id := range []uint32{4001, 4002} {
		pair = append(pair, StartReplink(t, ft.p, ft.m1.Port, ReplinkOptions{ServerID: id, Start: start, Users: slaveUsers(),
			Candidates: []int{ft.m2.Port, ft.m3.Port}}))
	}
	write(ft.m1, 1, 20, "on m1")
	ft.m1.Exec("SET GLOBAL read_only = ON")
	waitHas(t, ft.m1, ft.m2)
	promote(ft.m2)
	write(ft.m2, 21, 20, "on m2")
	for _, r := range pair {
		waitCaughtUp(t, ft.m2, r, 30*time.Second)
		if v := counterValue(t, r.Reg, "replink_master_info", map[string]string{"address": ft.m2.Addr(), "server_id": "2"}); v != 1 {
			t.Fatalf("replink %s does not follow M2", r.Dir)
		}
	}
	a, b := pair[0].Log.Files(), pair[1].Log.Files()
	if !slices.Equal(a, b) {
		t.Fatalf("the pair's files differ: %v and %v", a, b)
	}
	for _, f := range a {
		x, err := os.ReadFile(filepath.Join(pair[0].Dir, f))
		if err != nil {
			t.Fatal(err)
		}
		y, err := os.ReadFile(filepath.Join(pair[1].Dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(x[:21], y[:21]) || !bytes.Equal(x[23:], y[23:]) {
			t.Fatalf("%s differs between the pair", f)
		}
	}
	if x, y := pair[0].Log.Sequences()[1], pair[1].Log.Sequences()[1]; x != y {
		t.Fatalf("the pair's sequences differ: %+v and %+v", x, y)
	}
}
