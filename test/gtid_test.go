package test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/replink/replink/binlog"
	"github.com/replink/replink/replica"
)

// gtidDumpAnswer logs in to port as user, asks for a MariaDB GTID dump
// from state as a slave with gtid_strict_mode does, and returns the
// error the server answers with, or nil when it starts sending events.
func gtidDumpAnswer(t *testing.T, p *PKI, port int, user, password, state string) *mysql.MyError {
	t.Helper()
	// With @slave_connect_state set, the dump's file and position are ignored.
	c := openDumpWith(t, port, p, user, password, true, "", 4, 77, "SET @mariadb_slave_capability=4",
		fmt.Sprintf("SET @slave_connect_state='%s'", state), "SET @slave_gtid_strict_mode=1")
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	data, err := c.ReadPacket()
	var me *mysql.MyError
	if errors.As(err, &me) {
		return me
	}
	if err != nil {
		t.Fatalf("GTID dump from %s on port %d: %v", state, port, err)
	}
	if data[0] == 0xff && len(data) >= 9 {
		return &mysql.MyError{Code: uint16(data[1]) | uint16(data[2])<<8, State: string(data[4:9]), Message: string(data[9:])}
	}
	return nil
}

// TestGTIDStartAsTheMasterAnswers: a GTID slave asking for a position the
// binlog does not hold gets what the master answers: ERR 1236 with its
// words, "diverged" when the domain went past the slave's sequence number;
// a position the binlog holds, or a domain it has nothing of, is served.
// (replink used to compare sequence numbers only, and served a diverged
// slave at 0-5-150 from 0-1-151.)
func TestGTIDStartAsTheMasterAnswers(t *testing.T) {
	p, m := newMaster(t)
	m.Exec("CREATE DATABASE app", "CREATE TABLE app.t (id INT PRIMARY KEY)")
	for i := 0; i < 5; i++ {
		m.Exec(fmt.Sprintf("INSERT INTO app.t VALUES (%d)", i))
	}
	m.Exec("FLUSH BINARY LOGS", "INSERT INTO app.t VALUES (100)")
	last := m.Query("SELECT @@gtid_binlog_pos")[0][0] // 0-1-N
	r := StartReplink(t, p, m.Port, ReplinkOptions{Users: slaveUsers(), Start: replica.Start{Kind: "file", Pos: mustPos(t, "mariadb-bin.000001:4")}})
	waitCaughtUp(t, m, r, 20*time.Second)

	for _, state := range []string{
		"0-5-3",       // another server id in domain 0, below the last sequence number: diverged
		"0-5-99999",   // beyond anything logged
		"0-1-99999",   // the master's own server id, a sequence number never logged
		"0-1-3",       // held: served
		last,          // the newest: served
		"0-1-3,9-9-9", // a domain the binlog has nothing of: served
	} {
		t.Run(state, func(t *testing.T) {
			want := gtidDumpAnswer(t, p, m.Port, "repl", "replpass", state)
			got := gtidDumpAnswer(t, p, r.Port, "plainslave", "slavepass", state)
			switch {
			case want == nil && got == nil:
			case want == nil || got == nil:
				t.Fatalf("master answered %v, replink %v", want, got)
			case want.Code != got.Code || want.Message != got.Message:
				t.Fatalf("master answered %d %q,\nreplink %d %q", want.Code, want.Message, got.Code, got.Message)
			}
		})
	}
}

func mustPos(t *testing.T, s string) binlog.Pos {
	t.Helper()
	p, err := binlog.ParsePos(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
