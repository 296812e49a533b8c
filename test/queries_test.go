package test

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/replink/replink/replica"
)

// answer is what a server said to a query: column names and types, rows
// as text (NULL as "NULL", told apart from an empty string), or an error
// code and message.
type answer struct {
	Names []string
	Types []byte
	Rows  [][]string
	Err   string
}

func ask(t *testing.T, c *client.Conn, q string) answer {
	t.Helper()
	r, err := c.Execute(q)
	var me *mysql.MyError
	if errors.As(err, &me) {
		return answer{Err: fmt.Sprintf("%d %s", me.Code, me.Message)}
	}
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	var a answer
	if r.Resultset == nil {
		return a
	}
	for _, f := range r.Fields {
		a.Names = append(a.Names, string(f.Name))
		a.Types = append(a.Types, f.Type)
	}
	for _, data := range r.RowDatas {
		var row []string
		for len(data) > 0 {
			v, isNull, n, err := mysql.LengthEncodedString(data)
			if err != nil {
				t.Fatalf("%s: a row: %v", q, err)
			}
			if isNull {
				row = append(row, "NULL")
			} else {
				row = append(row, string(v))
			}
			data = data[n:]
		}
		a.Rows = append(a.Rows, row)
	}
	return a
}

// TestQueriesAnswerAsTheMaster: the queries binlog clients and CDC tools
// send get the master's answer from replink (column names, types and
// values), computed from the relay log.
func TestQueriesAnswerAsTheMaster(t *testing.T) {
	p, m := newMaster(t)
	m.Exec("CREATE DATABASE app", "CREATE TABLE app.t (id INT PRIMARY KEY)", "INSERT INTO app.t VALUES (1)",
		"FLUSH BINARY LOGS", "SET SESSION gtid_domain_id = 3", "INSERT INTO app.t VALUES (2)",
		"SET SESSION server_id = 7", "INSERT INTO app.t VALUES (3)", "SET SESSION gtid_domain_id = 0, server_id = 1", "INSERT INTO app.t VALUES (4)")
	r := StartReplink(t, p, m.Port, ReplinkOptions{Users: slaveUsers(), Start: replica.Start{Kind: "file", Pos: mustPos(t, "mariadb-bin.000001:4")}})
	waitCaughtUp(t, m, r, 20*time.Second)

	mc, err := client.Connect(m.Addr(), "repl", "replpass", "")
	if err != nil {
		t.Fatal(err)
	}
	defer mc.Close()
	rc, err := client.Connect(fmt.Sprintf("127.0.0.1:%d", r.Port), "plainslave", "slavepass", "")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	for _, q := range []string{
		"SELECT VERSION()", "SELECT VERSION() AS version", "select version() v", "SELECT 1 AS a, 'x' b",
		"SHOW BINARY LOGS", "SHOW MASTER STATUS", "SHOW BINLOG STATUS",
		"SELECT @@gtid_binlog_pos", "SELECT @@gtid_current_pos", "SELECT @@global.gtid_binlog_state",
		"SELECT @@GLOBAL.gtid_domain_id", "SELECT @@global.binlog_checksum", "SHOW VARIABLES LIKE 'gtid_binlog%'",
		"SHOW GLOBAL VARIABLES LIKE 'BINLOG_CHECKSUM'", "SELECT @nothing_set", "KILL 99999", "SELECT @@gtid_slave_pos",
		// What a MySQL 8 replica sends (../shared/ref/binlog-server.md),
		// as a MariaDB master answers it.
		"SET @master_heartbeat_period = 30000000000, @source_heartbeat_period = 30000000000",
		"SET @master_binlog_checksum = @@global.binlog_checksum, @source_binlog_checksum = @@global.binlog_checksum",
		"SELECT @source_binlog_checksum", "SELECT @@GLOBAL.GTID_MODE",
		"SET @slave_uuid = 'b1b2c3d4-0000-11ef-8000-000000000001', @replica_uuid = 'b1b2c3d4-0000-11ef-8000-000000000001'",
		"SELECT @@global.rpl_semi_sync_source_enabled",
	} {
		t.Run(q, func(t *testing.T) {
			want, got := ask(t, mc, q), ask(t, rc, q)
			if !reflect.DeepEqual(want, got) {
				t.Fatalf("master: %+v\nreplink: %+v", want, got)
			}
		})
	}
	// @@server_uuid is MySQL's (a MariaDB master has none): stable per
	// data-dir, so it survives a restart.
	uuid := ask(t, rc, "SELECT @@server_uuid").Rows[0][0]
	if len(uuid) != 36 {
		t.Fatalf("@@server_uuid = %q", uuid)
	}
	dir := r.Dir
	r.Stop()
	r2 := StartReplink(t, p, m.Port, ReplinkOptions{Users: slaveUsers(), Dir: dir})
	rc2, err := client.Connect(fmt.Sprintf("127.0.0.1:%d", r2.Port), "plainslave", "slavepass", "")
	if err != nil {
		t.Fatal(err)
	}
	defer rc2.Close()
	if again := ask(t, rc2, "SELECT @@GLOBAL.SERVER_UUID").Rows[0][0]; again != uuid {
		t.Fatalf("@@server_uuid changed across a restart: %s, then %s", uuid, again)
	}
}
