package test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/replink/replink/diagnose"
	"github.com/replink/replink/relay"
	"github.com/replink/replink/replica"
	"github.com/replink/replink/tlsutil"
)

// verifiedEndpoint is a link to host:port over VERIFY_IDENTITY with the
// PKI's CA, and its client certificate when cert is true.
func verifiedEndpoint(t *testing.T, p *PKI, port int, user, password string, cert bool) replica.Endpoint {
	t.Helper()
	o := tlsutil.ClientOptions{Mode: "VERIFY_IDENTITY", CA: p.CAFile}
	if cert {
		o.Cert, o.Key = p.ClientCert, p.ClientKey
	}
	tc, err := tlsutil.NewClient(o)
	if err != nil {
		t.Fatal(err)
	}
	return replica.Endpoint{Host: "127.0.0.1", Port: port, User: user, Password: password, TLS: tc, ConnectTimeout: 3 * time.Second}
}

// compareAllWithMaster checks that a relay data-dir holds every binlog
// file the master has, each byte-identical to the master's.
func compareAllWithMaster(t *testing.T, m *Server, r *Replink, tierName string) {
	t.Helper()
	var want []string
	for _, row := range m.Query("SHOW BINARY LOGS") {
		want = append(want, row[0])
	}
	if got := r.Log.Files(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("%s holds %v, the master %v", tierName, got, want)
	}
	t.Logf("%s:", tierName)
	compareWithMaster(t, m, r.Dir, want)
}

// lagOf is a tier's replink_replication_lag_seconds.
func lagOf(t *testing.T, r *Replink) float64 {
	return counterValue(t, r.Reg, "replink_replication_lag_seconds", nil)
}

// TestChain: master → replink A → replink B → a mariadbd slave, every
// link TLS with the certificate checked (VERIFY_IDENTITY), B logging in to
// A's relay as one of its users with a client certificate (REQUIRE X509),
// as across an untrusted WAN. Every tier's files are the master's byte for
// byte; a stall of the B→A link is detected at B within 3 heartbeat
// periods; lag at each tier is measured against the master's clock; and
// `diagnose` passes against A as against a master.
func TestChain(t *testing.T) {
	const hb = time.Second // B's heartbeat period (asked of A)
	p, m := newMaster(t)

	// A reaches the master through a proxy, so that A alone can be cut off.
	toMaster := StartProxy(t, m.Addr())
	toMasterEnd := verifiedEndpoint(t, p, toMaster.Port(), "repl", "replpass", false)
	a := StartReplink(t, p, 0, ReplinkOptions{Master: &toMasterEnd, ServerID: 4001, Heartbeat: hb, MaxBackoff: 300 * time.Millisecond,
		Users: []relay.User{{Name: "replinkb", Password: "chainpass", Require: relay.RequireX509, Subject: ClientSubject}}})
	// B reaches A's relay port through a proxy that can stall.
	toA := StartProxy(t, fmt.Sprintf("127.0.0.1:%d", a.Port))
	bMaster := verifiedEndpoint(t, p, toA.Port(), "replinkb", "chainpass", true)
	b := StartReplink(t, p, 0, ReplinkOptions{Master: &bMaster, ServerID: 4002, Heartbeat: hb, MaxBackoff: 300 * time.Millisecond, Users: slaveUsers()})
	slave := startSlave(t, p, b.Port)

	// A workload with two rotations.
	writeWorkload(m, "first", 20)
	m.Exec("FLUSH BINARY LOGS")
	m.Exec("CREATE TABLE app.big (id INT PRIMARY KEY, payload LONGBLOB)",
		"INSERT INTO app.big VALUES (1, REPEAT('x', 3000000))")
	writeWorkload(m, "second", 20)
	m.Exec("FLUSH BINARY LOGS")
	writeWorkload(m, "third", 10)
	waitCaughtUp(t, m, a, 30*time.Second)
	waitCaughtUp(t, m, b, 30*time.Second)

	// The slave has the master's rows; every tier has the master's files.
	st := waitSlaveCaughtUp(t, m, slave, 30*time.Second)
	if st["Last_SQL_Errno"] != "0" || st["Master_SSL_Allowed"] != "Yes" {
		t.Fatalf("slave of B: SQL errno %s %q, SSL %s", st["Last_SQL_Errno"], st["Last_SQL_Error"], st["Master_SSL_Allowed"])
	}
	for _, tbl := range []string{"app.orders", "app.big"} {
		if cm, cs := m.Checksum(tbl), slave.Checksum(tbl); cm != cs {
			t.Fatalf("CHECKSUM TABLE %s: master %s, slave of B %s", tbl, cm, cs)
		}
	}
	compareAllWithMaster(t, m, a, "replink A")
	compareAllWithMaster(t, m, b, "replink B")
	bs := b.Replica.Status()
	if bs.TLSVersion == "" || len(bs.PeerChain) == 0 {
		t.Fatalf("B's link to A: TLS %q, peer chain %v", bs.TLSVersion, bs.PeerChain)
	}
	t.Logf("B → A: %s %s, A presents %s; B's slave at %s:%s, checksums equal",
		bs.TLSVersion, bs.Cipher, bs.PeerChain[0].Subject, st["Relay_Master_Log_File"], st["Exec_Master_Log_Pos"])
	// The tiers hold the same last event: the master's.
	if ta, tb := counterValue(t, a.Reg, "replink_last_event_timestamp_seconds", nil), counterValue(t, b.Reg, "replink_last_event_timestamp_seconds", nil); ta != tb || ta == 0 {
		t.Fatalf("last event timestamp: A %v, B %v", ta, tb)
	}

	// diagnose against A, with B's settings, as against a master.
	t.Run("diagnose", func(t *testing.T) {
		cfg := replica.Config{Endpoint: bMaster, ServerID: 4002, ReportPort: uint16(b.Port)} // as B's config says: B's own registration
		cfg.Port = a.Port
		rep := diagnose.Run(context.Background(), cfg)
		var out strings.Builder
		rep.WriteText(&out)
		t.Logf("replink diagnose against replink A:\n%s", out.String())
		for _, s := range rep.Steps {
			if !s.OK || s.Warning {
				t.Errorf("step %s: ok=%v warning=%v reason=%s: %s", s.Step, s.OK, s.Warning, s.Reason, s.Detail)
			}
		}
		if !rep.OK {
			t.Errorf("diagnose against replink A failed (reason %q)", rep.Reason)
			for _, l := range splitLines(a.Logs()) {
				if strings.Contains(l, "unknown statement") {
					t.Logf("A: %s", l)
				}
			}
		}
	})

	// Lag: about 0 and not growing while the master is idle, small
	// while the master writes. Idle, a caught-up tier reads 0
	// (TestLagZeroWhileCaughtUp); the bounds here are the older, looser
	// ones: a saw up to the next heartbeat, at B also A's own heartbeat
	// period and the whole seconds of a binlog timestamp.
	idleBound := (2*hb + time.Second + 750*time.Millisecond).Seconds()
	sample := func(d time.Duration) (maxA, maxB float64) {
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
			la, lb := lagOf(t, a), lagOf(t, b)
			maxA, maxB = max(maxA, la), max(maxB, lb)
		}
		return
	}
	// Sampled for longer than the bound: a lag that grew would cross it.
	time.Sleep(2 * hb) // the last event's lag until the first heartbeat after it
	idleA, idleB := sample(5 * hb)
	t.Logf("lag with the master idle: A at most %.2fs, B at most %.2fs (heartbeat %s)", idleA, idleB, hb)
	if idleA > hb.Seconds()+0.5 || idleB > idleBound {
		t.Fatalf("lag with the master idle: A %.2fs, B %.2fs; want about 0 (A under %.2fs, B under %.2fs)",
			idleA, idleB, hb.Seconds()+0.5, idleBound)
	}
	m.Exec("CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(400))")
	w := startWriter(m, "app.t")
	busyA, busyB := sample(3 * time.Second)
	t.Logf("lag while the master writes: A at most %.2fs, B at most %.2fs", busyA, busyB)
	if busyA > 3 || busyB > 3 {
		t.Fatalf("lag while the master writes: A %.2fs, B %.2fs; want under 3s", busyA, busyB)
	}

	// Stall B → A (the path stops forwarding, nothing is closed): B
	// notices within 3 heartbeat periods, reconnects and resumes.
	if n := counterValue(t, b.Reg, "replink_link_stalls_total", nil); n != 0 {
		t.Fatalf("B counted %v stalls before any", n)
	}
	stalledAt := time.Now()
	toA.Stall()
	detected := waitStall(t, b, stalledAt, 3*hb+10*time.Second)
	t.Logf("B detected the stalled link to A after %s (heartbeat %s, limit %s)", detected.Round(time.Millisecond), hb, 3*hb)
	if detected > 3*hb+750*time.Millisecond {
		t.Errorf("B detected the stall after %s; want within 3 heartbeat periods (%s)", detected, 3*hb)
	}
	waitUntil(t, 10*time.Second, func() bool { return counterValue(t, b.Reg, "replink_master_up", nil) == 1 })
	if n := counterValue(t, b.Reg, "replink_master_reconnects_total", map[string]string{"reason": "stall"}); n != 1 {
		t.Errorf("B: reconnects{reason=stall} = %v, want 1", n)
	}
	// In B's /status: the stall, last. (B may have started before A held
	// anything: its first attempts found A's SHOW MASTER STATUS empty.)
	var stalls int
	fs := b.Replica.Status().Failures
	for _, f := range fs {
		if f.Reason == "stall" {
			stalls++
			t.Logf("B's /status: %s: %s; hint: %s", f.Reason, f.Error, f.Hint)
		} else {
			t.Logf("B's /status also lists: %s: %s", f.Reason, f.Error)
		}
	}
	if stalls != 1 || fs[len(fs)-1].Reason != "stall" {
		t.Errorf("B's /status recent failures %+v, want the stall last and once", fs)
	}
	if n := counterValue(t, a.Reg, "replink_link_stalls_total", nil); n != 0 {
		t.Errorf("A counted %v stalls of its own link to the master", n)
	}
	// B ended its orphaned dump on A (KILL): A serves B once.
	waitUntil(t, 10*time.Second, func() bool { return len(a.Relay.Slaves()) == 1 })

	// Lag again, A cut off from the master while the master writes. A falls
	// behind; B, which has everything A has and no more, is at least as
	// far behind the master, whatever A's heartbeats say.
	t.Run("lag behind a lagging intermediate", func(t *testing.T) {
		toMaster.Hold()
		toMaster.Stall()
		defer toMaster.Release()
		deadline := time.Now().Add(20 * time.Second)
		for lagOf(t, a) < 6 {
			if time.Now().After(deadline) {
				t.Fatalf("A's lag %.2fs 20s after losing the master", lagOf(t, a))
			}
			time.Sleep(50 * time.Millisecond)
		}
		la, lb := lagOf(t, a), lagOf(t, b)
		t.Logf("A cut off from the master: lag A %.2fs, B %.2fs", la, lb)
		if lb < la-1 {
			t.Errorf("B's lag is %.2fs while A, which it replicates from, is %.2fs behind the master: "+
				"B takes A's heartbeats as the master's word that nothing is newer", lb, la)
		}
	})
	n := w.Stop()
	waitCaughtUp(t, m, a, 30*time.Second)
	waitCaughtUp(t, m, b, 30*time.Second)
	time.Sleep(2 * hb)
	_, backB := sample(3 * hb)
	if backB > idleBound {
		t.Errorf("B's lag %.2fs after catching up, want under %.1fs", backB, idleBound)
	}
	t.Logf("%d commits through the stall and the outage; B's lag back to at most %.2fs", n, backB)

	// Everything arrived once: rows on the slave, files on both tiers.
	waitSlaveCaughtUp(t, m, slave, 30*time.Second)
	for _, tbl := range []string{"app.orders", "app.big", "app.t"} {
		if cm, cs := m.Checksum(tbl), slave.Checksum(tbl); cm != cs {
			t.Fatalf("after the stall: CHECKSUM TABLE %s: master %s, slave of B %s", tbl, cm, cs)
		}
	}
	b.Stop()
	a.Stop()
	compareAllWithMaster(t, m, a, "replink A")
	compareAllWithMaster(t, m, b, "replink B")
}
