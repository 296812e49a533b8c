package test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/replink/replink/binlog"
	"github.com/replink/replink/binlog/atrest"
	"github.com/replink/replink/replica"
)

// writeKeyFile writes a file_key_management key file with keys 1 and 2
// (mode 0600) and returns its path and the keys.
func writeKeyFile(t *testing.T) (string, atrest.Keys) {
	t.Helper()
	var lines []string
	for _, id := range []string{"1", "2"} {
		k := make([]byte, 32)
		rand.Read(k)
		lines = append(lines, id+";"+hex.EncodeToString(k))
	}
	path := filepath.Join(t.TempDir(), "keys.txt")
	if err := os.WriteFile(path, []byte("# replink test keys\n"+strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	keys, err := atrest.LoadKeys(path, "")
	if err != nil {
		t.Fatal(err)
	}
	return path, keys
}

func marker(t *testing.T) string {
	b := make([]byte, 12)
	rand.Read(b)
	return "MK" + hex.EncodeToString(b)
}

// findMarkers returns the files under dir holding any of markers.
func findMarkers(t *testing.T, dir string, markers []string) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range markers {
			if bytes.Contains(b, []byte(m)) {
				found = append(found, path+": "+m)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// TestRelayLogEncryptedAtRest: with [relay] key-file set and a master
// that does not encrypt, no marker (in a row, a BLOB, a DDL comment) is
// anywhere under the data-dir; every relay file has the master's size and
// `replink binlog cat` gives the master's file byte for byte; a slave
// through replink gets the rows, also after replink restarts on the same
// data-dir.
func TestRelayLogEncryptedAtRest(t *testing.T) {
	keyFile, keys := writeKeyFile(t)
	sealer, err := atrest.NewSealer(keys, 1)
	if err != nil {
		t.Fatal(err)
	}
	p, m := newMaster(t)
	dir := t.TempDir()
	r := StartReplink(t, p, m.Port, ReplinkOptions{Users: slaveUsers(), AtRest: sealer, Dir: dir, Start: replica.Start{Kind: "oldest"}})
	var markers []string
	mk := func() string { s := marker(t); markers = append(markers, s); return s }
	m.Exec("CREATE DATABASE app",
		"CREATE TABLE app.t (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(100), data BLOB) COMMENT '"+mk()+"'")
	for i := 0; i < 20; i++ {
		m.Exec("INSERT INTO app.t (name, data) VALUES ('" + mk() + "', REPEAT('" + mk() + "', 50))")
	}
	m.Exec("FLUSH BINARY LOGS")
	m.Exec("INSERT INTO app.t (name) VALUES ('" + mk() + "')")
	waitCaughtUp(t, m, r, 30*time.Second)

	slave := StartServer(t, "slave", ServerOptions{ServerID: 3})
	changeMaster(t, slave, p, r.Port, "slave1", "mariadb-bin.000001", "")
	slave.Exec("START SLAVE")
	waitSlaveCaughtUp(t, m, slave, 30*time.Second)

	// A restart on the same data-dir goes on with the same files.
	r.Stop()
	r = StartReplink(t, p, m.Port, ReplinkOptions{Users: slaveUsers(), AtRest: sealer, Dir: dir, Port: r.Port})
	m.Exec("INSERT INTO app.t (name) VALUES ('"+mk()+"')", "FLUSH BINARY LOGS", "INSERT INTO app.t (name) VALUES ('"+mk()+"')")
	waitCaughtUp(t, m, r, 30*time.Second)
	waitSlaveCaughtUp(t, m, slave, 30*time.Second)
	if a, b := m.Checksum("app.t"), slave.Checksum("app.t"); a != b {
		t.Fatalf("checksum master %s, slave %s", a, b)
	}
	files := r.Log.Files()
	if n := counterValue(t, r.Reg, "replink_relay_crypto_seconds_total", map[string]string{"op": "encrypt"}); n <= 0 {
		t.Errorf("replink_relay_crypto_seconds_total{op=encrypt} = %v after writing encrypted files", n)
	}
	r.Stop()

	if found := findMarkers(t, dir, markers); len(found) > 0 {
		t.Fatalf("%d markers in plaintext under the data-dir: %v", len(found), found)
	}
	if found := findMarkers(t, m.DataDir, markers[:1]); len(found) == 0 {
		t.Fatalf("the master's binlog does not hold the marker in plaintext: the test proves nothing")
	}
	// Sizes are the master's, and replink binlog cat gives its bytes.
	compareDecryptedWithMaster(t, m, dir, files, keyFile)
	for _, name := range files {
		if _, err := os.Stat(filepath.Join(dir, name) + binlog.SideSuffix); err != nil {
			t.Fatalf("%s has no record: %v", name, err)
		}
	}
	t.Logf("%d relay files: no marker under the data-dir, sizes and decrypted bytes the master's", len(files))
}

// TestAtRestTurnedOnAndRotated: a data-dir written in plaintext goes on
// encrypted once a key file is given (what was plaintext stays so until
// purged, with a warning); a new key id (SIGHUP's SetAtRest) encrypts the
// next files while older ones keep theirs; a key file without a key some
// file needs is an error at start naming the file and the key id.
func TestAtRestTurnedOnAndRotated(t *testing.T) {
	_, keys := writeKeyFile(t)
	p, m := newMaster(t)
	dir := t.TempDir()
	m.Exec("CREATE DATABASE app", "CREATE TABLE app.t (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(100))")
	r := StartReplink(t, p, m.Port, ReplinkOptions{Dir: dir, Start: replica.Start{Kind: "oldest"}})
	before := marker(t)
	m.Exec("INSERT INTO app.t (name) VALUES ('" + before + "')")
	waitCaughtUp(t, m, r, 30*time.Second)
	r.Stop()

	s1, _ := atrest.NewSealer(keys, 1)
	r = StartReplink(t, p, m.Port, ReplinkOptions{Dir: dir, AtRest: s1})
	after := marker(t)
	m.Exec("INSERT INTO app.t (name) VALUES ('" + after + "')")
	waitCaughtUp(t, m, r, 30*time.Second)
	if !strings.Contains(r.Logs(), "written before encryption at rest was on") {
		t.Errorf("no warning about the plaintext head of the file being written")
	}
	s2, _ := atrest.NewSealer(keys, 2)
	if err := r.Log.SetAtRest(s2); err != nil {
		t.Fatal(err)
	}
	rotated := marker(t)
	m.Exec("FLUSH BINARY LOGS", "INSERT INTO app.t (name) VALUES ('"+rotated+"')")
	waitCaughtUp(t, m, r, 30*time.Second)
	files := r.Log.Files()
	r.Stop()

	if found := findMarkers(t, dir, []string{after, rotated}); len(found) > 0 {
		t.Fatalf("markers written with encryption on are in plaintext: %v", found)
	}
	if found := findMarkers(t, dir, []string{before}); len(found) != 1 {
		t.Fatalf("the marker written before encryption was on: found %v, want it in the first file only", found)
	}
	for i, want := range []string{"key-id 1", "key-id 2"} {
		rec, err := os.ReadFile(filepath.Join(dir, files[i]) + binlog.SideSuffix)
		if err != nil || !strings.Contains(string(rec), want) {
			t.Fatalf("%s's record: %q, %v; want %s", files[i], rec, err, want)
		}
	}
	// Start without key 1: named with the file that needs it.
	only2 := atrest.Keys{2: keys[2]}
	s, _ := atrest.NewSealer(only2, 2)
	_, err := binlog.OpenLogAtRest(dir, binlog.SyncTransaction, hclog.NewNullLogger(), binlog.NewMetrics(prometheus.NewRegistry()), s)
	if err == nil || !strings.Contains(err.Error(), files[0]) || !strings.Contains(err.Error(), "key id 1") {
		t.Fatalf("OpenLogAtRest without key 1: %v; want an error naming %s and key id 1", err, files[0])
	}
	// Without any key file: named too.
	_, err = binlog.OpenLog(dir, binlog.SyncTransaction, hclog.NewNullLogger(), binlog.NewMetrics(prometheus.NewRegistry()))
	if err == nil || !strings.Contains(err.Error(), "key-file") {
		t.Fatalf("OpenLog of an encrypted relay log without keys: %v; want an error naming key-file", err)
	}
	// With both keys a slave gets every row.
	r = StartReplink(t, p, m.Port, ReplinkOptions{Dir: dir, AtRest: s2, Users: slaveUsers()})
	slave := StartServer(t, "slave", ServerOptions{ServerID: 3})
	changeMaster(t, slave, p, r.Port, "slave1", "mariadb-bin.000001", "")
	slave.Exec("START SLAVE")
	waitSlaveCaughtUp(t, m, slave, 30*time.Second)
	if a, b := m.Checksum("app.t"), slave.Checksum("app.t"); a != b {
		t.Fatalf("checksum master %s, slave %s", a, b)
	}
}

// TestAtRestRotationUnderLoad: under a steady write load, a key file that
// gains key 2, key-id = 2 in the configuration and SIGHUP: the files made
// from then on are encrypted with key 2, the older ones keep key 1, the
// slave never stops, and every file decrypts to the master's.
func TestAtRestRotationUnderLoad(t *testing.T) {
	keyFile, _ := writeKeyFile(t)
	p, m := newMaster(t)
	m.Exec("CREATE DATABASE app", "CREATE TABLE app.t (id INT PRIMARY KEY AUTO_INCREMENT, v VARCHAR(200))")
	relayPort, metricsPort := FreePort(t), FreePort(t)
	data := t.TempDir()
	conf := WriteReplinkConfigWith(t, p, m.Port, relayPort, metricsPort, data, ConfigOptions{KeyFile: keyFile, Start: "oldest"})
	proc := StartProcess(t, conf, filepath.Join(t.TempDir(), "replink.log"))
	waitReady(t, metricsPort)
	slave := StartServer(t, "slave", ServerOptions{ServerID: 3})
	changeMaster(t, slave, p, relayPort, "slave1", "mariadb-bin.000001", "")
	slave.Exec("START SLAVE")

	stop := make(chan struct{})
	done := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				done <- n
				return
			default:
			}
			m.Exec("INSERT INTO app.t (v) VALUES (REPEAT('r', 150))")
			n++
		}
	}()
	time.Sleep(time.Second)
	b, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, []byte(strings.Replace(string(b), "[relay]\n", "[relay]\nkey-id = 2\n", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	proc.Signal(syscall.SIGHUP)
	time.Sleep(500 * time.Millisecond)
	m.Exec("FLUSH BINARY LOGS")
	time.Sleep(time.Second)
	m.Exec("FLUSH BINARY LOGS")
	time.Sleep(time.Second)
	close(stop)
	t.Logf("%d transactions written across the rotation", <-done)
	waitBinlogCheckpoint(t, m)
	st := waitSlaveCaughtUp(t, m, slave, 30*time.Second)
	if st["Last_IO_Errno"] != "0" || st["Last_SQL_Errno"] != "0" {
		t.Fatalf("slave errors: IO %s %s, SQL %s %s", st["Last_IO_Errno"], st["Last_IO_Error"], st["Last_SQL_Errno"], st["Last_SQL_Error"])
	}
	if a, b := m.Checksum("app.t"), slave.Checksum("app.t"); a != b {
		t.Fatalf("checksum master %s, slave %s", a, b)
	}
	proc.Signal(syscall.SIGTERM)
	if !proc.Wait(20*time.Second) || proc.Exit != nil {
		t.Fatalf("replink did not stop cleanly: %v", proc.Exit)
	}
	files := readIndex(t, data)
	if len(files) != 3 {
		t.Fatalf("relay files %v, want 3", files)
	}
	for i, want := range []string{"key-id 1", "key-id 2", "key-id 2"} {
		rec, err := os.ReadFile(filepath.Join(data, files[i]) + binlog.SideSuffix)
		if err != nil || !strings.Contains(string(rec), want) {
			t.Fatalf("%s's record %q (%v), want %s", files[i], rec, err, want)
		}
	}
	compareDecryptedWithMaster(t, m, data, files, keyFile)
}
