package relay

import (
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/replink/replink/binlog"
)

func TestHandleQuery(t *testing.T) {
	s := queryServer(t, 4001, "5.5.5-10.11.19-MariaDB")
	ss := &session{s: s, vars: map[string]string{}}
	cases := []struct {
		q       string
		want    []string // first row, "" for OK packets
		wantErr bool
	}{
		{"SELECT UNIX_TIMESTAMP()", []string{"*"}, false},
		{"SHOW VARIABLES LIKE 'SERVER_ID'", []string{"server_id", "4001"}, false},
		{"show global variables like 'server_id'", []string{"server_id", "4001"}, false},
		{"SET @master_heartbeat_period= 1000000000", nil, false},
		{"SET @master_binlog_checksum= @@global.binlog_checksum", nil, false},
		{"SELECT @master_binlog_checksum", []string{"CRC32"}, false},
		{"SET @mariadb_slave_capability=4", nil, false},
		{"SELECT @@GLOBAL.gtid_domain_id", []string{"0"}, false},
		{"SET @slave_connect_state='0-1-42'", nil, false},
		{"SET @slave_gtid_strict_mode=0", nil, false},
		{"SELECT binlog_gtid_pos('mariadb-bin.000001',4)", []string{"NULL"}, false},
		{"SHOW VARIABLES LIKE 'rpl_semi_sync_master_enabled'", nil, false},
		// MySQL 8 replica.
		{"SELECT @@GLOBAL.SERVER_ID", []string{"4001"}, false},
		{"SET @master_heartbeat_period = 30000000000, @source_heartbeat_period = 30000000000", nil, false},
		{"SET @master_binlog_checksum = @@global.binlog_checksum, @source_binlog_checksum = @@global.binlog_checksum", nil, false},
		{"SELECT @source_binlog_checksum", []string{"CRC32"}, false},
		{"SELECT @@GLOBAL.GTID_MODE", nil, true}, // MariaDB has none: ERROR 1193, as the master
		{"SET @slave_uuid = 'a-b', @replica_uuid = 'a-b'", nil, false},
		{"SET NAMES utf8mb4", nil, false},
		{"DROP TABLE t", nil, true},
		{"SELECT * FROM mysql.user", nil, true},
	}
	for _, c := range cases {
		res, err := ss.HandleQuery(c.q)
		if c.wantErr {
			if err == nil {
				t.Errorf("%q: no error", c.q)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.q, err)
			continue
		}
		if c.want == nil {
			if res != nil && res.Resultset != nil && len(res.RowDatas) > 0 {
				t.Errorf("%q: unexpected rows", c.q)
			}
			continue
		}
		if res == nil || res.Resultset == nil || len(res.RowDatas) != 1 {
			t.Errorf("%q: want one row", c.q)
			continue
		}
		row, err := res.RowDatas[0].ParseText(res.Fields, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i, w := range c.want {
			if w == "NULL" {
				if v := row[i].Value(); v != nil {
					t.Errorf("%q: column %d = %v, want NULL", c.q, i, v)
				}
				continue
			}
			got := fmt.Sprint(row[i].Value())
			if b, ok := row[i].Value().([]byte); ok {
				got = string(b)
			}
			if w != "*" && !strings.EqualFold(got, w) {
				t.Errorf("%q: column %d = %q, want %q", c.q, i, got, w)
			}
		}
	}
	if ss.vars["@slave_connect_state"] != "0-1-42" {
		t.Errorf("connect state %q", ss.vars["@slave_connect_state"])
	}
}

func TestRequireCheck(t *testing.T) {
	for _, c := range []struct {
		u         User
		plaintext bool
		secure    bool
		ok        bool
	}{
		{User{Require: RequireNone}, true, false, true},
		{User{Require: RequireNone}, true, true, false},
		{User{Require: RequireSSL}, true, false, false},
		{User{Require: RequireX509}, true, false, false},
	} {
		err := c.u.check(nil, c.secure)
		if (err == nil) != c.ok {
			t.Errorf("%+v secure=%v: %v", c.u, c.secure, err)
		}
	}
}

// queryServer is a Server for answering queries, over an empty relay log.
func queryServer(t testing.TB, id uint32, version string) *Server {
	t.Helper()
	rlog, err := binlog.OpenLog(t.TempDir(), binlog.SyncNone, hclog.NewNullLogger(), binlog.NewMetrics(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rlog.Close() })
	return &Server{cfg: Config{ServerID: id, ServerVersion: func() string { return version }}, log: hclog.NewNullLogger(), rlog: rlog}
}

// A client's user variables are bounded; an over-long LIKE pattern
// matches nothing, without compiling it.
func TestClientInputIsBounded(t *testing.T) {
	ss := &session{s: queryServer(t, 4001, "5.5.5-10.11.19-MariaDB"), vars: map[string]string{}}
	big := strings.Repeat("x", 60<<10)
	if _, err := ss.HandleQuery("SET @a = '" + big + "'"); err != nil {
		t.Fatal(err)
	}
	if _, err := ss.HandleQuery("SET @b = '" + big + "'"); err != nil {
		t.Fatal(err)
	}
	if _, kept := ss.vars["@b"]; kept || ss.vars["@a"] != big {
		t.Fatalf("variables kept past 64 KiB: @a %d bytes, @b kept %v", len(ss.vars["@a"]), kept)
	}
	res, err := ss.HandleQuery("SHOW VARIABLES LIKE '" + strings.Repeat("%a", 400) + "'")
	if err != nil || len(res.RowDatas) != 0 {
		t.Fatalf("an 800-byte pattern: %v rows, %v", res, err)
	}
}

// One SET of many assignments past the bound costs one log line, and the
// bound follows reassignments (a variable set again frees its old size).
func TestSetPastTheBoundLogsOnce(t *testing.T) {
	var logged strings.Builder
	srv := queryServer(t, 4001, "5.5.5-10.11.19-MariaDB")
	srv.log = hclog.New(&hclog.LoggerOptions{Output: &logged, Level: hclog.Warn})
	ss := &session{s: srv, vars: map[string]string{}}
	big := strings.Repeat("x", 60<<10)
	for _, q := range []string{"SET @a = '" + big + "'", "SET @a = 'small'", "SET @b = '" + big + "'"} {
		if _, err := ss.HandleQuery(q); err != nil {
			t.Fatal(err)
		}
	}
	if ss.vars["@a"] != "small" || ss.vars["@b"] != big {
		t.Fatalf("after @a was made small, @b of 60 KiB was not kept: @a %d bytes, @b %d bytes", len(ss.vars["@a"]), len(ss.vars["@b"]))
	}
	var q strings.Builder
	q.WriteString("SET @v0 = 1")
	for i := 1; i < 20000; i++ {
		fmt.Fprintf(&q, ", @v%d = '%s'", i, strings.Repeat("y", 40))
	}
	if _, err := ss.HandleQuery(q.String()); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logged.String(), "\n"); n != 1 {
		t.Fatalf("one SET past the bound logged %d lines, want 1:\n%.500s", n, logged.String())
	}
	if ss.varsSize > maxVars {
		t.Fatalf("user variables hold %d bytes, past %d", ss.varsSize, maxVars)
	}
}

func TestTemporaryAcceptErrors(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&net.OpError{Op: "accept", Err: os.NewSyscallError("accept4", syscall.EMFILE)}, true},
		{&net.OpError{Op: "accept", Err: os.NewSyscallError("accept4", syscall.ENFILE)}, true},
		{net.ErrClosed, false},
	} {
		if got := temporary(c.err); got != c.want {
			t.Errorf("temporary(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
