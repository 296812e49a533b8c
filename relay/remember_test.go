package relay

import (
	"encoding/binary"
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

// The remembered slaves survive a restart (a new Server on the same
// data-dir), and a file that cannot be read stops the start, naming it.
func TestRememberedSlavesSurviveARestart(t *testing.T) {
	rl := startRelay(t)
	rl.served(t)
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
	path := filepath.Join(rl.rlog.Dir(), SlavesName)
	if err := os.WriteFile(path, []byte("{not json"), 0o640); err != nil {
		t.Fatal(err)
	}
	reg2 := prometheus.NewRegistry()
	if _, err := New(rl.srv.cfg, rl.rlog, hclog.NewNullLogger(), tlsutil.NewMetrics(reg2), NewMetrics(reg2)); err == nil ||
		!strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "move it away") {
		t.Fatalf("a broken %s: got %v, want an error naming it", SlavesName, err)
	}
}
