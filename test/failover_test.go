package test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/replink/replink/diagnose"
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
	ft.m2.Exec("STOP SLAVE", "RESET SLAVE ALL", "SET GLOBAL read_only = OFF")
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
