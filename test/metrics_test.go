package test

import (
	"fmt"
	"testing"
	"time"

	"github.com/replink/replink/tlsutil"
)

// TestMetricsMoveWithTheLink checks the SPEC metrics against what really
// happens between a real master, replink and a real slave.
func TestMetricsMoveWithTheLink(t *testing.T) {
	p, m := newMaster(t, "performance_schema=ON")
	proxy := StartProxy(t, m.Addr())
	r := StartReplink(t, p, m.Port, ReplinkOptions{Users: slaveUsers(), MasterPort: proxy.Port(), Heartbeat: 300 * time.Millisecond})
	m.Exec("CREATE DATABASE app", "CREATE TABLE app.t (id INT PRIMARY KEY, v LONGBLOB)")
	for i := 0; i < 20; i++ {
		m.Exec(fmt.Sprintf("INSERT INTO app.t VALUES (%d, REPEAT('x', 50000))", i))
	}
	slave := startSlave(t, p, r.Port)
	waitSlaveCaughtUp(t, m, slave, 30*time.Second)
	get := func(name string, labels map[string]string) float64 { return counterValue(t, r.Reg, name, labels) }

	// Handshakes on both links are counted, with their duration.
	for _, link := range []string{"master", "replica"} {
		ok := map[string]string{"link": link, "result": "ok"}
		if get("replink_tls_handshakes_total", ok) < 1 || get("replink_tls_handshake_duration_seconds", ok) < 1 {
			t.Errorf("%s link: handshakes_total %v, duration count %v", link, get("replink_tls_handshakes_total", ok), get("replink_tls_handshake_duration_seconds", ok))
		}
	}
	if get("replink_replicas_connected", nil) != 1 {
		t.Errorf("replicas_connected = %v", get("replink_replicas_connected", nil))
	}
	// MariaDB 10.11 writes version 1 row events.
	rowsEvents := get("replink_binlog_events_total", map[string]string{"type": "write_rows_v1"}) + get("replink_binlog_events_total", map[string]string{"type": "write_rows"})
	if get("replink_master_up", nil) != 1 || rowsEvents < 20 {
		t.Errorf("master_up %v, write rows events %v", get("replink_master_up", nil), rowsEvents)
	}

	// The cipher label reads as the master's Ssl_cipher for replink's own session.
	rows, err := m.TryQuery(`SELECT s.VARIABLE_VALUE FROM performance_schema.status_by_thread s JOIN performance_schema.threads th USING (THREAD_ID)
		WHERE th.PROCESSLIST_COMMAND = 'Binlog Dump' AND th.PROCESSLIST_USER = 'repl' AND s.VARIABLE_NAME = 'Ssl_cipher'`)
	if err != nil || len(rows) == 0 {
		t.Fatalf("master's Ssl_cipher for replink's session: %v %v", rows, err)
	}
	if v := get("replink_tls_connection_info", map[string]string{"link": "master", "cipher": rows[0][0]}); v != 1 {
		t.Fatalf("replink_tls_connection_info has no master series with cipher %q (the master's Ssl_cipher for replink's session)", rows[0][0])
	}
	t.Logf("master says replink's session uses %s; so does replink", rows[0][0])

	// Under TLS the wire carries more than the payload.
	wireIn := get("replink_link_wire_bytes_total", map[string]string{"link": "master", "direction": "in"})
	payIn := get("replink_link_payload_bytes_total", map[string]string{"link": "master", "direction": "in"})
	if !(wireIn > payIn && payIn > 900_000) {
		t.Fatalf("master link: wire in %v, payload in %v; want wire > payload > 900 kB", wireIn, payIn)
	}
	t.Logf("TLS: wire/payload in = %.0f/%.0f = %.4f", wireIn, payIn, wireIn/payIn)
	if c := get("replink_tls_crypto_seconds_total", map[string]string{"link": "master", "direction": "in"}); c <= 0 {
		t.Fatalf("crypto seconds in = %v", c)
	}

	// An idle master: heartbeats keep the lag at ~0 although the last
	// event grows old.
	time.Sleep(2 * time.Second)
	if lag := get("replink_replication_lag_seconds", nil); lag > 1 {
		t.Fatalf("lag %.2fs on an idle master with 300ms heartbeats", lag)
	}
	if age := float64(time.Now().Unix()) - get("replink_last_event_timestamp_seconds", nil); age < 1.5 {
		t.Fatalf("last event is %.1fs old after 2s idle", age)
	}

	// Cut the link (a stall, and new connections get nowhere): lag rises.
	before := get("replink_replication_lag_seconds", nil)
	proxy.Hold()
	proxy.Stall()
	waitUntil(t, 15*time.Second, func() bool { return get("replink_replication_lag_seconds", nil) > 2 })
	t.Logf("lag %.1fs before the cut, %.1fs after", before, get("replink_replication_lag_seconds", nil))
	if get("replink_master_up", nil) != 0 || get("replink_link_stalls_total", nil) < 1 {
		t.Fatalf("after the cut: master_up %v, stalls %v", get("replink_master_up", nil), get("replink_link_stalls_total", nil))
	}

	// A bad master certificate: the next handshake fails with its reason.
	m.InstallCert(p.ExpiredCert, p.ExpiredKey)
	proxy.Release()
	reason := map[string]string{"link": "master", "reason": string(tlsutil.ReasonCertExpired)}
	waitUntil(t, 30*time.Second, func() bool { return get("replink_tls_handshake_failures_total", reason) >= 1 })
	if get("replink_tls_handshakes_total", map[string]string{"link": "master", "result": "failed"}) < 1 {
		t.Fatal("failed handshake not counted in handshakes_total{result=failed}")
	}
	m.InstallCert(p.ServerCert, p.ServerKey)
	waitUntil(t, 60*time.Second, func() bool { return get("replink_master_up", nil) == 1 })
	waitUntil(t, 10*time.Second, func() bool { return get("replink_replication_lag_seconds", nil) < 2 })
}

// TestPlaintextWireEqualsPayload: without TLS the wire and payload counts
// differ only by the login exchange.
func TestPlaintextWireEqualsPayload(t *testing.T) {
	p := NewPKI(t)
	m := StartServer(t, "plain", ServerOptions{ServerID: 1})
	m.SetupReplUsers()
	r := StartReplink(t, p, m.Port, ReplinkOptions{SSLMode: "DISABLED"})
	m.Exec("CREATE DATABASE app", "CREATE TABLE app.t (id INT PRIMARY KEY, v LONGBLOB)")
	for i := 0; i < 10; i++ {
		m.Exec(fmt.Sprintf("INSERT INTO app.t VALUES (%d, REPEAT('x', 50000))", i))
	}
	waitUntil(t, 20*time.Second, func() bool {
		f, pos := m.MasterStatus()
		d := r.Log.ResumePoint()
		return d.File == f && d.Offset == pos
	})
	w := counterValue(t, r.Reg, "replink_link_wire_bytes_total", map[string]string{"link": "master", "direction": "in"})
	pl := counterValue(t, r.Reg, "replink_link_payload_bytes_total", map[string]string{"link": "master", "direction": "in"})
	t.Logf("plaintext: wire in %.0f, payload in %.0f", w, pl)
	if pl < 400_000 || w < pl || w-pl > 4096 {
		t.Fatalf("plaintext: wire %v, payload %v: want equal but for the login exchange", w, pl)
	}
	if c := counterValue(t, r.Reg, "replink_tls_crypto_seconds_total", map[string]string{"link": "master"}); c != 0 {
		t.Fatalf("crypto seconds %v without TLS", c)
	}
	if v := counterValue(t, r.Reg, "replink_tls_connection_info", map[string]string{"link": "master", "version": "none"}); v != 1 {
		t.Fatal("plaintext link not shown as version none")
	}
}
