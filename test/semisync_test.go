package test

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/replink/replink/binlog"
	"github.com/replink/replink/replica"
	"github.com/replink/replink/tlsutil"
)

// TestSemiSyncAcksAfterFsync: the master waits for replink's ACK on every
// commit; replink sends it only once the relay log says the transaction
// is durable. With the relay log's durability held back (a slow fsync),
// a commit on the master must not return until it is let through.
func TestSemiSyncAcksAfterFsync(t *testing.T) {
	p, m := newMaster(t)
	// Enabled after set-up: with no semi-sync slave yet, each commit would
	// wait out the timeout.
	m.Exec("SET GLOBAL rpl_semi_sync_master_timeout=10000", "SET GLOBAL rpl_semi_sync_master_enabled=ON")
	sink := startSemiSyncReplica(t, p, m.Port)
	start := time.Now()
	waitUntil(t, 20*time.Second, func() bool { return statusInt(t, m, "Rpl_semi_sync_master_clients") >= 1 })
	t.Logf("replink registered as a semi-sync slave after %s", time.Since(start).Round(time.Millisecond))
	yes0, no0 := statusInt(t, m, "Rpl_semi_sync_master_yes_tx"), statusInt(t, m, "Rpl_semi_sync_master_no_tx")
	m.Exec("CREATE DATABASE app", "CREATE TABLE app.t (id INT PRIMARY KEY)")
	const n = 50
	start = time.Now()
	for i := 0; i < n; i++ {
		m.Exec(fmt.Sprintf("INSERT INTO app.t VALUES (%d)", i))
	}
	elapsed := time.Since(start)
	yes, no := statusInt(t, m, "Rpl_semi_sync_master_yes_tx")-yes0, statusInt(t, m, "Rpl_semi_sync_master_no_tx")-no0
	t.Logf("%d commits in %s; master counts %d acknowledged, %d not", n, elapsed.Round(time.Millisecond), yes, no)
	if no != 0 || yes < n {
		t.Fatalf("semi-sync: yes_tx=%d no_tx=%d, want every commit acknowledged", yes, no)
	}
	// Everything acknowledged is durable in the relay log.
	file, pos := m.MasterStatus()
	if d := sink.Durable(); d.File != file || d.Offset != pos {
		t.Fatalf("durable %v, master at %s:%d", d, file, pos)
	}

	// The order: hold durability back and commit once more. The commit
	// returns only after the ACK, which must wait for the release.
	sink.hold()
	committed := make(chan error, 1)
	go func() { _, err := m.TryQuery("INSERT INTO app.t VALUES (1000)"); committed <- err }()
	select {
	case <-sink.waiting:
	case err := <-committed:
		t.Fatalf("the commit returned (error %v) before replink waited for the relay log to be durable", err)
	case <-time.After(10 * time.Second):
		t.Fatalf("replink never waited for the commit to be durable")
	}
	const held = 500 * time.Millisecond
	select {
	case err := <-committed:
		t.Fatalf("the commit returned (error %v) while its fsync was held: replink acknowledged what was not durable", err)
	case <-time.After(held):
	}
	sink.release()
	select {
	case err := <-committed:
		if err != nil {
			t.Fatalf("commit after the release: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the commit did not return after the relay log was let through")
	}
	if no := statusInt(t, m, "Rpl_semi_sync_master_no_tx") - no0; no != 0 {
		t.Fatalf("no_tx=%d after the held commit: the master timed out waiting for the ACK", no)
	}
	file, pos = m.MasterStatus()
	if d := sink.Durable(); d.File != file || d.Offset != pos {
		t.Fatalf("durable %v after the held commit, master at %s:%d", d, file, pos)
	}
	t.Logf("the commit waited out a %s hold on durability", held)
}

// heldSink is the relay log with a gate in front of WaitDurable: while
// held, durability is not reported, as if fsync were slow.
type heldSink struct {
	*binlog.Log
	mu      sync.Mutex
	gate    chan struct{} // nil when not held
	waiting chan struct{} // signalled when a WaitDurable stops at the gate
}

func (s *heldSink) hold() {
	s.mu.Lock()
	s.gate = make(chan struct{})
	s.mu.Unlock()
}

func (s *heldSink) release() {
	s.mu.Lock()
	close(s.gate)
	s.gate = nil
	s.mu.Unlock()
}

func (s *heldSink) WaitDurable(done <-chan struct{}) error {
	s.mu.Lock()
	gate := s.gate
	s.mu.Unlock()
	if gate != nil {
		select {
		case s.waiting <- struct{}{}:
		default:
		}
		select {
		case <-gate:
		case <-done:
			return errors.New("held sink: stopped while held")
		}
	}
	return s.Log.WaitDurable(done)
}

// startSemiSyncReplica runs a semi-sync replica against the master on
// masterPort into a fresh relay log behind a heldSink.
func startSemiSyncReplica(t *testing.T, p *PKI, masterPort int) *heldSink {
	t.Helper()
	tc, err := tlsutil.NewClient(tlsutil.ClientOptions{Mode: "VERIFY_IDENTITY", CA: p.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	_, sink, _ := runReplica(t, replica.Config{
		Endpoint: replica.Endpoint{Host: "127.0.0.1", Port: masterPort, User: "repl", Password: "replpass", TLS: tc, ConnectTimeout: 5 * time.Second},
		ServerID: 4001, Start: replica.Start{Kind: "current"}, HeartbeatPeriod: 500 * time.Millisecond, SemiSync: true,
	}, func(l *binlog.Log) replica.Sink { return &heldSink{Log: l, waiting: make(chan struct{}, 1)} })
	return sink.(*heldSink)
}

func statusInt(t *testing.T, s *Server, name string) int {
	t.Helper()
	rows := s.Query("SHOW GLOBAL STATUS LIKE '" + name + "'")
	if len(rows) == 0 {
		t.Fatalf("no status %s", name)
	}
	n, _ := strconv.Atoi(rows[0][1])
	return n
}
