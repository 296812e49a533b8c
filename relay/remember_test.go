package relay

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/replink/replink/binlog"
	"github.com/replink/replink/tlsutil"
)

// rotateTo ends the relay's current file with a ROTATE and starts name
// with an FDE and one transaction.
func (rl *relay) rotateTo(t *testing.T, name string, seq uint64) {
	t.Helper()
	n := len(rl.file.events)
	rl.file.add(binlog.TypeRotate, append(binary.LittleEndian.AppendUint64(nil, 4), name...))
	rl.appendAll(t, n)
	if err := rl.rlog.StartFile(name); err != nil {
		t.Fatal(err)
	}
	rl.file = relayFile{}
	rl.file.add(binlog.TypeFormatDescription, fdeBody())
	rl.file.add(binlog.TypeMariaGTIDList, gtidListBody())
	rl.file.addGroup(seq)
	rl.appendAll(t, 0)
}

// served has a slave dump the relay's first file to its end and leave.
func (rl *relay) served(t *testing.T) {
	t.Helper()
	conn := rl.slave(t)
	exec(t, conn, "SET @master_binlog_checksum = @@global.binlog_checksum", "SET @master_heartbeat_period = 50000000")
	r := dump(t, conn, testFile, 4)
	for range len(rl.file.events) + 1 {
		mustNext(t, r)
	}
	checkHeartbeat(t, mustNext(t, r), testFile, rl.file.off, true)
	conn.Close()
	for deadline := time.Now().Add(5 * time.Second); len(rl.srv.Slaves()) > 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the slave is still listed after it left")
		}
	}
}

// A slave that left is remembered, in the data-dir: the files it needs
// outlive retain for keep-for-absent-slaves, unless the disk is short of
// min-free-space; then it is forgotten and they go.
func TestRememberedSlavesKeepTheirFiles(t *testing.T) {
	const keep = time.Hour
	cases := []struct {
		name      string
		after     time.Duration // since the slave left
		lowSpace  bool
		kept      bool
		forgotten bool
		reason    string // what the purge is counted as
	}{
		{"away within keep-for-absent-slaves", keep / 2, false, true, false, ""},
		{"away past keep-for-absent-slaves", keep + time.Minute, false, false, true, "retain"},
		{"disk below min-free-space", keep / 2, true, false, false, "free_space"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rl := startRelay(t, func(cfg *Config) {
				cfg.Retain, cfg.KeepForAbsentSlaves, cfg.MinFreeSpace = time.Minute, keep, FreeSpace{Percent: 5}
				cfg.FreeSpace = func() (uint64, uint64, error) {
					if c.lowSpace {
						return 4, 100, nil
					}
					return 50, 100, nil
				}
			})
			rl.served(t)
			stopped := testFile + ":" + strconv.Itoa(int(rl.file.off))
			rl.rotateTo(t, "mariadb-bin.000002", 3)
			rl.rotateTo(t, "mariadb-bin.000003", 4)
			rl.rotateTo(t, "mariadb-bin.000004", 5)

			away := rl.srv.Away()
			if len(away) != 1 || away[0].ServerID != testSlaveID || away[0].Position != stopped || away[0].LagBytes <= 0 ||
				away[0].KeptUntil.Sub(away[0].AwaySince) != keep {
				t.Fatalf("Away() = %+v, want slave %d at %s, behind, kept for %v", away, testSlaveID, stopped, keep)
			}
			rl.srv.Housekeep(time.Now().Add(c.after))
			files := rl.rlog.Files()
			if got := slices.Contains(files, testFile); got != c.kept {
				t.Fatalf("after %v: files %v; want %s kept: %v", c.after, files, testFile, c.kept)
			}
			if got := len(rl.srv.Away()) == 0; got != c.forgotten {
				t.Fatalf("after %v: Away() = %+v, want forgotten: %v", c.after, rl.srv.Away(), c.forgotten)
			}
			if c.reason != "" {
				if n := metricValue(t, rl.reg, "replink_relay_purged_files_total", "reason", c.reason); n < 1 {
					t.Fatalf("purges counted as %s: %v, want at least 1", c.reason, n)
				}
			}
			if c.kept && files[0] != testFile {
				t.Fatalf("files %v: nothing before the slave's file should be left", files)
			}
			if c.kept && len(files) != 4 {
				t.Fatalf("files %v: the slave's file and all after it must be kept", files)
			}
		})
	}
}

// waitSaved waits until the data-dir's list of remembered slaves holds
// n records (the housekeeping goroutine writes it within saveEvery of a
// change).
func waitSaved(t *testing.T, dir string, n int) []Remembered {
	t.Helper()
	var list []Remembered
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		b, err := os.ReadFile(filepath.Join(dir, SlavesName))
		if err == nil && json.Unmarshal(b, &list) == nil && len(list) == n {
			return list
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never held %d slaves (%v, %s)", SlavesName, n, err, b)
		}
	}
}

// The remembered slaves survive a restart (a new Server on the same
// data-dir).
func TestRememberedSlavesSurviveARestart(t *testing.T) {
	rl := startRelay(t)
	rl.served(t)
	waitSaved(t, rl.rlog.Dir(), 1)
	reg := prometheus.NewRegistry()
	srv, err := New(rl.srv.cfg, rl.rlog, hclog.NewNullLogger(), tlsutil.NewMetrics(reg), NewMetrics(reg))
	if err != nil {
		t.Fatal(err)
	}
	away := srv.Away()
	if len(away) != 1 || away[0].ServerID != testSlaveID || away[0].User != "slave1" || away[0].Position != testFile+":"+strconv.Itoa(int(rl.file.off)) {
		t.Fatalf("after a restart, Away() = %+v, want slave %d at %s:%d", away, testSlaveID, testFile, rl.file.off)
	}
	if v := metricValue(t, reg, "replink_replica_last_seen_timestamp_seconds", "server_id", strconv.Itoa(testSlaveID)); int64(v) != away[0].AwaySince.Unix() {
		t.Fatalf("last seen %v, want %v", v, away[0].AwaySince.Unix())
	}
}

// An unreadable list of remembered slaves does not stop replink (the
// unit would keep it down on exit 2): it is kept aside, and until
// keep-for-absent-slaves has passed nothing the lost records might have
// protected is purged, unless the disk is short of min-free-space.
func TestUnreadableRememberedSlaves(t *testing.T) {
	const keep = time.Hour
	for _, lowSpace := range []bool{false, true} {
		t.Run(fmt.Sprintf("low space %v", lowSpace), func(t *testing.T) {
			rl := startRelay(t, func(cfg *Config) {
				cfg.Retain, cfg.KeepForAbsentSlaves, cfg.MinFreeSpace = time.Minute, keep, FreeSpace{Percent: 5}
				cfg.FreeSpace = func() (uint64, uint64, error) {
					if lowSpace {
						return 4, 100, nil
					}
					return 50, 100, nil
				}
			})
			rl.rotateTo(t, "mariadb-bin.000002", 3)
			rl.rotateTo(t, "mariadb-bin.000003", 4)
			path := filepath.Join(rl.rlog.Dir(), SlavesName)
			if err := os.WriteFile(path, []byte(`[{"server_id": 7, "user": "slave1", "fi`), 0o640); err != nil {
				t.Fatal(err)
			}
			reg := prometheus.NewRegistry()
			var logged strings.Builder
			log := hclog.New(&hclog.LoggerOptions{Output: &logged, Level: hclog.Error})
			cfg := rl.srv.cfg
			srv, err := New(cfg, rl.rlog, log, tlsutil.NewMetrics(reg), NewMetrics(reg))
			if err != nil {
				t.Fatalf("New with a broken %s: %v; want a start with none remembered", SlavesName, err)
			}
			if aside, _ := filepath.Glob(path + ".bad-*"); len(aside) != 1 {
				t.Fatalf("the broken list kept aside as %v, want one %s.bad-*", aside, SlavesName)
			}
			if !strings.Contains(logged.String(), "[ERROR]") || !strings.Contains(logged.String(), path) {
				t.Fatalf("logged %q, want an error naming %s", logged.String(), path)
			}
			srv.PurgeNow(time.Now().Add(keep / 2))
			if files := rl.rlog.Files(); lowSpace != (len(files) == 1) {
				t.Fatalf("low space %v: files %v after a purge within keep-for-absent-slaves of the loss", lowSpace, files)
			}
			// A restart in the window, on the good (empty) list written
			// since, still purges nothing.
			if err := srv.memory.save(); err != nil {
				t.Fatal(err)
			}
			reg = prometheus.NewRegistry()
			again, err := New(cfg, rl.rlog, hclog.NewNullLogger(), tlsutil.NewMetrics(reg), NewMetrics(reg))
			if err != nil {
				t.Fatal(err)
			}
			again.PurgeNow(time.Now().Add(keep / 2))
			if files := rl.rlog.Files(); lowSpace != (len(files) == 1) {
				t.Fatalf("low space %v: files %v after a restart within keep-for-absent-slaves of the loss", lowSpace, files)
			}
			srv.PurgeNow(time.Now().Add(keep + time.Minute))
			if files := rl.rlog.Files(); len(files) != 1 {
				t.Fatalf("files %v after keep-for-absent-slaves: want only the current one", files)
			}
		})
	}
}

// Records are per account and server_id, and bounded: one account
// dumping under ever new server_ids keeps at most rememberPerUser records
// (and series), forgetting its own oldest, never another account's.
func TestRememberedSlavesAreBounded(t *testing.T) {
	rl := startRelay(t, func(cfg *Config) {
		cfg.Users = append(cfg.Users, User{Name: "tool", Password: "pw2", Require: RequireNone})
	})
	rl.served(t) // slave1 as testSlaveID
	for id := uint32(9000); id < 9000+rememberPerUser+8; id++ {
		conn, err := rl.connect(t, "tool", "pw2")
		if err != nil {
			t.Fatal(err)
		}
		exec(t, conn, "SET @master_binlog_checksum = @@global.binlog_checksum")
		r := dumpAs(t, conn, testFile, 4, id)
		mustNext(t, r)
		conn.Close()
		waitUnlisted(t, rl.srv)
	}
	// The same server_id as slave1's, under the other account.
	conn, err := rl.connect(t, "tool", "pw2")
	if err != nil {
		t.Fatal(err)
	}
	exec(t, conn, "SET @master_binlog_checksum = @@global.binlog_checksum")
	mustNext(t, dumpAs(t, conn, testFile, 4, testSlaveID))
	conn.Close()
	waitUnlisted(t, rl.srv)

	users := map[string]int{}
	for _, r := range rl.srv.Away() {
		users[r.User]++
	}
	if users["slave1"] != 1 || users["tool"] != rememberPerUser {
		t.Fatalf("remembered per account %v, want slave1: 1, tool: %d", users, rememberPerUser)
	}
	list := waitSaved(t, rl.rlog.Dir(), rememberPerUser+1)
	if i := slices.IndexFunc(list, func(r Remembered) bool { return r.User == "slave1" && r.ServerID == testSlaveID }); i < 0 ||
		list[i].File != testFile || list[i].Pos != rl.file.off {
		t.Fatalf("slave1's record %v was overwritten by another account's dump as %d", list, testSlaveID)
	}
	series := 0
	mfs, err := rl.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "replink_replica_lag_bytes" {
			series = len(mf.GetMetric())
		}
	}
	if series > rememberPerUser+1 {
		t.Fatalf("replink_replica_lag_bytes has %d series, want at most %d", series, rememberPerUser+1)
	}
}

// A list written past the bounds (by an older replink) is trimmed as it
// is read, keeping the slaves seen last.
func TestRememberedSlavesTrimmedAtLoad(t *testing.T) {
	rl := startRelay(t)
	var list []Remembered
	base := time.Now().Add(-time.Minute).UTC()
	for i := range rememberPerUser + 10 {
		list = append(list, Remembered{ServerID: uint32(9000 + i), User: "tool", File: testFile, Pos: 4, LastSeen: base.Add(time.Duration(i) * time.Second)})
	}
	b, err := json.Marshal(list)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rl.rlog.Dir(), SlavesName), b, 0o640); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	srv, err := New(rl.srv.cfg, rl.rlog, hclog.NewNullLogger(), tlsutil.NewMetrics(reg), NewMetrics(reg))
	if err != nil {
		t.Fatal(err)
	}
	away := srv.Away()
	if len(away) != rememberPerUser || slices.ContainsFunc(away, func(r RememberedStatus) bool { return r.ServerID < 9010 }) {
		t.Fatalf("after loading %d records of one account: %d remembered, want the %d seen last", len(list), len(away), rememberPerUser)
	}
}

func waitUnlisted(t *testing.T, srv *Server) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); len(srv.Slaves()) > 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("a slave is still listed after it left")
		}
	}
}
