package relay

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"slices"
	"testing"
	"time"
)

// What a replink downstream, and diagnose, need of a replink upstream.

// Heartbeats carry the master time the relay log is complete up to, so a
// replink downstream measures its lag against the master; only a client
// that set @replink_master_clock gets it, every other one gets the
// master's timestamp 0.
func TestHeartbeatsCarryTheMasterClockWhenAsked(t *testing.T) {
	const caughtUp = 1700000123
	for _, c := range []struct {
		name string
		set  []string
		want uint32
	}{
		{"a replink downstream", []string{"SET @replink_master_clock = 1"}, caughtUp},
		{"any other client", nil, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			rl := startRelay(t, func(c *Config) { c.CaughtUpTo = func() time.Time { return time.Unix(caughtUp, 0) } })
			conn := rl.slave(t)
			exec(t, conn, append([]string{"SET @master_binlog_checksum = @@global.binlog_checksum", "SET @master_heartbeat_period = 50000000"}, c.set...)...)
			r := dump(t, conn, testFile, rl.file.off)
			checkRotate(t, mustNext(t, r), testFile, uint64(rl.file.off))
			mustNext(t, r) // the FDE, resent
			hb := mustNext(t, r)
			checkHeartbeat(t, hb, testFile, rl.file.off, true) // its CRC32 matches too
			if hb.Timestamp() != c.want {
				t.Fatalf("heartbeat timestamp %d, want %d", hb.Timestamp(), c.want)
			}
		})
	}
}

// registerSlave is a COM_REGISTER_SLAVE body with report_host and report_port.
func registerSlave(id uint32, host string, port uint16) []byte {
	b := binary.LittleEndian.AppendUint32(nil, id)
	b = append(append(b, byte(len(host))), host...)
	b = append(b, 4, 'r', 'e', 'p', 'l', 0) // user, empty password
	b = binary.LittleEndian.AppendUint16(b, port)
	return binary.LittleEndian.AppendUint64(b, 0) // rank, master id
}

// SHOW SLAVE HOSTS lists the dumping slaves as they registered; SHOW
// GRANTS says what a relay account may do (diagnose checks it).
func TestShowSlaveHostsAndGrants(t *testing.T) {
	s := queryServer(t, 4001, "5.5.5-10.11.19-MariaDB")
	s.slaves = map[*session]struct{}{}
	for _, r := range []struct {
		id   uint32
		host string
		port uint16
	}{{12, "db12.example", 3306}, {7, "", 0}} {
		ss := &session{s: s, vars: map[string]string{}}
		if err := ss.HandleOtherCommand(0x15, registerSlave(r.id, r.host, r.port)); err != nil {
			t.Fatal(err)
		}
		s.slaves[ss] = struct{}{}
	}
	ss := &session{s: s, user: "slave1", vars: map[string]string{}}
	for _, c := range []struct {
		q    string
		rows [][]string
	}{
		{"SHOW SLAVE HOSTS", [][]string{{"7", "", "0", "4001"}, {"12", "db12.example", "3306", "4001"}}},
		{"SHOW GRANTS", [][]string{{"GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO `slave1`@`%`"}}},
		{"SHOW GRANTS FOR CURRENT_USER()", [][]string{{"GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO `slave1`@`%`"}}},
	} {
		res, err := ss.HandleQuery(c.q)
		if err != nil {
			t.Fatalf("%s: %v", c.q, err)
		}
		if len(res.RowDatas) != len(c.rows) {
			t.Fatalf("%s: %d rows, want %d", c.q, len(res.RowDatas), len(c.rows))
		}
		for i, want := range c.rows {
			if got := textRow(t, res.RowDatas[i]); !slices.Equal(got, want) {
				t.Errorf("%s: row %d = %q, want %q", c.q, i, got, want)
			}
		}
	}
	// A registration cut short keeps what it has.
	short := &session{s: s, vars: map[string]string{}}
	if err := short.HandleOtherCommand(0x15, registerSlave(9, "db9", 1)[:7]); err != nil || short.serverID != 9 || short.reportHost != "" {
		t.Fatalf("short registration: %v, server_id %d host %q", err, short.serverID, short.reportHost)
	}
}

// A second dump with a server_id already dumping ends the older one, as a
// master does: it is the same slave back after its connection died
// unseen (a firewall that dropped the state).
func TestNewDumpOfAServerIDEndsTheOlder(t *testing.T) {
	rl := startRelay(t)
	first := rl.slave(t)
	exec(t, first, "SET @master_binlog_checksum = @@global.binlog_checksum")
	r1 := dump(t, first, testFile, 4)
	for range len(rl.file.events) + 1 {
		mustNext(t, r1)
	}
	second := rl.slave(t)
	exec(t, second, "SET @master_binlog_checksum = @@global.binlog_checksum")
	r2 := dump(t, second, testFile, 4)
	checkRotate(t, mustNext(t, r2), testFile, 4)
	var err error
	for err == nil {
		_, err = next(r1)
	}
	var ne net.Error
	if !errors.Is(err, io.EOF) && !errors.As(err, &ne) {
		t.Fatalf("the older dump ended with %v, want its connection closed", err)
	}
	if ne != nil && ne.Timeout() {
		t.Fatal("the older dump was not ended")
	}
	for deadline := time.Now().Add(5 * time.Second); len(rl.srv.Slaves()) != 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("Slaves() = %+v, want the newer dump only", rl.srv.Slaves())
		}
	}
}
