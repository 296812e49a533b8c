package test

import (
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/replink/replink/replica"
)

// clientsWorkload writes the binlog every client row reads: rows of many
// types with NULLs, a multi-statement transaction, DDL, an event over
// 16 MB (split into several packets) and two rotations, so the master
// has three files. It returns a time, as the master's clock reads it,
// between the second rotation and the third file's transactions.
// clientsStack starts a TLS master (extra lines go to its [mariadbd]
// group), runs the clients workload on it, starts a replink that mirrors
// it from its first file and waits until it caught up; it returns both
// as endpoints a client reaches over verified TLS, and the workload's
// start time.
func clientsStack(t *testing.T, extra ...string) (m *Server, master, relay ClientEndpoint, since string) {
	t.Helper()
	p, m := newMaster(t, append([]string{"max_allowed_packet=64M"}, extra...)...)
	since = clientsWorkload(t, m)
	r := StartReplink(t, p, m.Port, ReplinkOptions{Users: slaveUsers(),
		Start: replica.Start{Kind: "file", Pos: mustPos(t, "mariadb-bin.000001:4")}})
	waitCaughtUp(t, m, r, time.Minute)
	if files := r.Log.Files(); len(files) != 3 {
		t.Fatalf("relay log files %v, want the master's three", files)
	}
	master = ClientEndpoint{Name: "master", Host: "127.0.0.1", Port: m.Port, User: "repl", Password: "replpass", CAFile: p.CAFile}
	relay = ClientEndpoint{Name: "replink", Host: "127.0.0.1", Port: r.Port, User: "plainslave", Password: "slavepass", CAFile: p.CAFile}
	return m, master, relay, since
}

func clientsWorkload(t *testing.T, m *Server) string {
	t.Helper()
	m.Exec("CREATE DATABASE app",
		`CREATE TABLE app.t (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(100), amount DECIMAL(12,4),
			at DATETIME(6), doc JSON, data BLOB, kind ENUM('small','medium','large'), note TEXT, ratio DOUBLE,
			ts TIMESTAMP(3) NULL, flags BIT(5), day DATE)`)
	for i := 0; i < 20; i++ {
		if i%4 == 3 { // NULLs wherever a column allows them
			m.Exec("INSERT INTO app.t (name) VALUES (NULL)")
			continue
		}
		m.Exec(fmt.Sprintf(`INSERT INTO app.t (name, amount, at, doc, data, kind, note, ratio, ts, flags, day)
			VALUES ('row-%d', %d.1250, NOW(6), '{"k": %d, "list": [1, "two", null, {"deep": true}]}', UNHEX(REPEAT('00ff', %d)),
			%d, REPEAT('é', %d), %d.5e-3, NOW(3), b'%05b', '2024-02-%02d')`, i, i*1000, i, i*10, i%3+1, i, i, i%32, i%28+1))
	}
	m.Exec("BEGIN",
		"UPDATE app.t SET amount = amount * 2, doc = JSON_SET(doc, '$.k', 'updated') WHERE id % 3 = 0",
		"DELETE FROM app.t WHERE id % 7 = 0",
		"INSERT INTO app.t (name, kind) VALUES ('marker-in-multi-statement', 'large')",
		"COMMIT")
	m.Exec("FLUSH BINARY LOGS")

	m.Exec("ALTER TABLE app.t ADD COLUMN extra INT DEFAULT 7",
		"CREATE TABLE app.big (id INT PRIMARY KEY, body LONGTEXT)",
		// A literal, not REPEAT(): the statement is as large as the row, so
		// the Annotate_rows event is over 16 MB too (TestLargeEventsMirrored).
		fmt.Sprintf("INSERT INTO app.big VALUES (1, '%s')", strings.Repeat("b", 17<<20)),
		"INSERT INTO app.t (name, extra) VALUES ('after-ddl', 8)")
	// The third file's events are a second later than everything before
	// (for --start-datetime).
	time.Sleep(1100 * time.Millisecond)
	m.Exec("FLUSH BINARY LOGS")
	since := m.Query("SELECT NOW()")[0][0]
	m.Exec("UPDATE app.t SET note = NULL, doc = NULL WHERE id < 5", "INSERT INTO app.t (name) VALUES ('in-third-file')")
	// The master writes a file's own Binlog_checkpoint once InnoDB has
	// flushed (up to a second with innodb_flush_log_at_trx_commit=2):
	// until then the binlog still grows, and a row's master and replink
	// runs could see different ends.
	waitBinlogCheckpoint(t, m)
	return since
}

// waitBinlogCheckpoint waits until the master's current binlog file holds
// its own Binlog_checkpoint event, which it writes once InnoDB has flushed
// (up to a second after a rotation): until then the file still grows.
func waitBinlogCheckpoint(t *testing.T, m *Server) {
	t.Helper()
	file, _ := m.MasterStatus()
	waitUntil(t, 10*time.Second, func() bool {
		for _, ev := range showBinlogEvents(t, m, file) {
			if ev.Type == "Binlog_checkpoint" && strings.HasSuffix(ev.Info, file) {
				return true
			}
		}
		return false
	})
}

// binlogEvent is one row of SHOW BINLOG EVENTS.
type binlogEvent struct {
	Pos, End uint32
	Type     string
	Info     string
}

func showBinlogEvents(t *testing.T, m *Server, file string) []binlogEvent {
	t.Helper()
	var out []binlogEvent
	for _, row := range m.Query("SHOW BINLOG EVENTS IN '" + file + "'") {
		pos, _ := strconv.ParseUint(row[1], 10, 32)
		end, _ := strconv.ParseUint(row[4], 10, 32)
		out = append(out, binlogEvent{Pos: uint32(pos), End: uint32(end), Type: row[2], Info: row[5]})
	}
	return out
}

// mariadbBinlog builds a mariadb-binlog command reading from the
// endpoint over verified TLS (--raw files go under outDir/, text to
// stdout).
func mariadbBinlog(args ...string) func(e ClientEndpoint, outDir string) *exec.Cmd {
	return func(e ClientEndpoint, outDir string) *exec.Cmd {
		all := []string{"--no-defaults", "--read-from-remote-server", "--protocol=tcp",
			"--host=" + e.Host, fmt.Sprintf("--port=%d", e.Port), "--user=" + e.User, "--password=" + e.Password,
			"--ssl-ca=" + e.CAFile, "--ssl-verify-server-cert"}
		if slices.Contains(args, "--raw") {
			all = append(all, "--result-file="+outDir+"/") // a prefix: the files are named as the server's
		}
		return exec.Command("mariadb-binlog", append(all, args...)...)
	}
}

// TestClientsMariadbBinlog: mariadb-binlog --read-from-remote-server, in
// each of its modes, gets from replink what it gets from the master on the
// same binlog (SPEC "replink is a master to its clients"): the same raw
// files, the same text (up to the server id of artificial events), ending
// the same way. Each row reports exactly how the two differ.
func TestClientsMariadbBinlog(t *testing.T) {
	if _, err := exec.LookPath("mariadb-binlog"); err != nil {
		t.Fatal("mariadb-binlog is not installed: run scripts/setup.sh (make test does)")
	}
	m, master, relay, since := clientsStack(t)

	// Event boundaries inside the first file: from the second
	// transaction's GTID event to the fifth's, and GTIDs in that file.
	const file1 = "mariadb-bin.000001"
	var gtidPos []uint32
	var gtids []string
	for _, ev := range showBinlogEvents(t, m, file1) {
		if ev.Type == "Gtid" {
			gtidPos = append(gtidPos, ev.Pos)
			// Info: "BEGIN GTID 0-1-5" or "GTID 0-1-1".
			f := strings.Fields(ev.Info)
			gtids = append(gtids, f[len(f)-1])
		}
	}
	if len(gtidPos) < 8 {
		t.Fatalf("%s has %d transactions, want at least 8", file1, len(gtidPos))
	}
	startPos, stopPos := gtidPos[1], gtidPos[4]
	t.Logf("positions in %s: start %d, stop %d; GTIDs %s .. %s; start datetime %s", file1, startPos, stopPos, gtids[0], gtids[len(gtids)-1], since)

	for _, row := range []struct {
		name string
		run  ClientRun
	}{
		{"raw", ClientRun{Command: mariadbBinlog("--raw", file1), Collect: RawFileArtefacts}},
		{"raw stop-never", ClientRun{Command: mariadbBinlog("--raw", "--stop-never", file1), Collect: RawFileArtefacts}},
		{"raw to-last-log", ClientRun{Command: mariadbBinlog("--raw", "--to-last-log", file1), Collect: RawFileArtefacts}},
		{"raw start position", ClientRun{Command: mariadbBinlog("--raw", "--to-last-log", fmt.Sprintf("--start-position=%d", startPos), file1),
			Collect: RawFileArtefacts}},
		{"verbose", ClientRun{Command: mariadbBinlog("-v", file1), Collect: MariadbBinlogTextArtefacts}},
		{"verbose to-last-log", ClientRun{Command: mariadbBinlog("-v", "--to-last-log", file1), Collect: MariadbBinlogTextArtefacts}},
		{"start and stop position", ClientRun{Command: mariadbBinlog("-v",
			fmt.Sprintf("--start-position=%d", startPos), fmt.Sprintf("--stop-position=%d", stopPos), file1),
			Collect: MariadbBinlogTextArtefacts}},
		{"start datetime", ClientRun{Command: mariadbBinlog("-v", "--to-last-log", "--start-datetime="+since, file1),
			Collect: MariadbBinlogTextArtefacts}},
		{"gtid start", ClientRun{Command: mariadbBinlog("-v", "--to-last-log", "--start-position="+gtids[3], file1),
			Collect: MariadbBinlogTextArtefacts}},
		{"raw gtid start", ClientRun{Command: mariadbBinlog("--raw", "--to-last-log", "--start-position="+gtids[3], file1),
			Collect: RawFileArtefacts}},
		{"gtid start and stop", ClientRun{Command: mariadbBinlog("-v", "--start-position="+gtids[2], "--stop-position="+gtids[6], file1),
			Collect: MariadbBinlogTextArtefacts}},
	} {
		t.Run(row.name, func(t *testing.T) {
			CompareClients(t, row.run, master, relay)
		})
	}
}

// TestClientsHarnessCompares: the harness takes out only the server id
// (and CRC32) of artificial events, and reports every other difference.
func TestClientsHarnessCompares(t *testing.T) {
	epoch := epochStamp()
	text := func(rotateID, fdeID string) []byte {
		return []byte("# at 4\n" +
			"#" + epoch + " server id " + rotateID + "  end_log_pos 0 CRC32 0x0000000" + rotateID[:1] + " \tRotate to mariadb-bin.000002  pos: 4\n" +
			"#261130 17:46:17 server id " + fdeID + "  end_log_pos 256 CRC32 0x418f4b5c \tStart: binlog v 4\n")
	}
	run := func(stdout []byte) ClientOutput { return ClientOutput{Ended: "exit 0", Stdout: stdout} }
	for _, c := range []struct {
		name     string
		m, r     ClientOutput
		wantDiff string // "" for none
	}{
		{"artificial server id and CRC32", run(text("1", "1")), run(text("4001", "1")), ""},
		{"server id of a binlog event", run(text("1", "1")), run(text("1", "4001")), "at master line 3, replink line 3"},
		{"how it ended", run(text("1", "1")), ClientOutput{Ended: "killed: waiting (output stable for 2s)", Stdout: text("1", "1")}, `ended: master "exit 0"`},
		{"a line missing", run([]byte("a\nb\nc\nd\ne\n")), run([]byte("a\nc\nd\ne\n")), "at master line 2, replink line 2:\n      a\n    - b\n    + (nothing from the replink)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			diffs := strings.Join(DiffClientOutputs(c.m, c.r, MariadbBinlogTextArtefacts), "\n")
			if c.wantDiff == "" && diffs != "" || !strings.Contains(diffs, c.wantDiff) {
				t.Fatalf("differences:\n%s\nwant %q", diffs, c.wantDiff)
			}
		})
	}
	raw := func(data string) ClientOutput {
		return ClientOutput{Ended: "exit 0", Files: map[string][]byte{"mariadb-bin.000001": []byte(data)}}
	}
	diffs := strings.Join(DiffClientOutputs(raw("\xfebinABCD"), raw("\xfebinABXD"), RawFileArtefacts), "\n")
	if !strings.Contains(diffs, "first difference at byte 6: master [43 44], replink [58 44]") {
		t.Fatalf("raw difference reported as %q", diffs)
	}
}
