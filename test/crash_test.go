package test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestKill9UnderLoad(t *testing.T) {
	t.Run("plaintext", func(t *testing.T) { kill9UnderLoad(t, "", false) })
	// Encrypted at rest: recovery decrypts to find the torn tail, and a
	// cut gets fresh keystream; the files still decrypt to the master's.
	t.Run("encrypted at rest", func(t *testing.T) {
		keyFile, _ := writeKeyFile(t)
		kill9UnderLoad(t, keyFile, false)
	})
	// A master that encrypts its binlog, and replink with its key file:
	// recovery reads the master's format event by event, and the files
	// stay the master's byte for byte.
	t.Run("as the master encrypts", func(t *testing.T) {
		keyFile, _ := writeMasterKeyFile(t, t.TempDir(), false)
		kill9UnderLoad(t, keyFile, true)
	})
}

func kill9UnderLoad(t *testing.T, keyFile string, masterEncrypts bool) {
	var extra []string
	if masterEncrypts {
		extra = []string{"plugin_load_add=file_key_management", "file_key_management_filename=" + keyFile, "encrypt_binlog=ON"}
	}
	p, m := newMaster(t, extra...)
	m.Exec("CREATE DATABASE app", "CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(200), n INT)")
	relayPort := FreePort(t)
	data := t.TempDir()
	logFile := filepath.Join(t.TempDir(), "replink.log")
	proc := StartProcess(t, WriteReplinkConfigWith(t, p, m.Port, relayPort, FreePort(t), data, ConfigOptions{KeyFile: keyFile}), logFile)
	slave := StartServer(t, "slave", ServerOptions{ServerID: 3})
	// Wait for the first relay file to exist, then point the slave at it.
	deadline := time.Now().Add(20 * time.Second)
	for {
		if b, err := os.ReadFile(filepath.Join(data, "replink.index")); err == nil && len(b) > 0 {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logFile)
			t.Fatalf("replink made no relay file:\n%s", log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	changeMaster(t, slave, p, relayPort, "slave1", "mariadb-bin.000001", "")
	slave.Exec("START SLAVE")

	// A steady write load: single-row and multi-row transactions.
	var wg sync.WaitGroup
	var written atomic.Int64
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if i%5 == 0 {
				m.Exec("BEGIN",
					fmt.Sprintf("INSERT INTO app.t VALUES (%d, REPEAT('m', 150), %d)", 1_000_000+i, i),
					fmt.Sprintf("INSERT INTO app.t VALUES (%d, REPEAT('n', 150), %d)", 2_000_000+i, i),
					fmt.Sprintf("UPDATE app.t SET n = n + 1 WHERE id = %d", i-1),
					"COMMIT")
			} else {
				m.Exec(fmt.Sprintf("INSERT INTO app.t VALUES (%d, 'row %d', %d)", i, i, i))
			}
			written.Add(1)
		}
	}()
	const kills = 5
	for k := 0; k < kills; k++ {
		time.Sleep(time.Duration(700+200*k) * time.Millisecond)
		proc.Signal(syscall.SIGKILL)
		if !proc.Wait(10 * time.Second) {
			t.Fatal("replink did not die on SIGKILL")
		}
		proc.Restart()
	}
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	t.Logf("%d transactions written through %d kill -9 of replink", written.Load(), kills)

	t.Cleanup(func() {
		if t.Failed() {
			log, _ := os.ReadFile(logFile)
			t.Logf("replink log:\n%s", tail(log, 6000))
		}
	})
	st := waitSlaveCaughtUp(t, m, slave, 60*time.Second)
	if st["Last_SQL_Errno"] != "0" {
		t.Fatalf("slave SQL error %s: %s", st["Last_SQL_Errno"], st["Last_SQL_Error"])
	}
	if a, b := m.Checksum("app.t"), slave.Checksum("app.t"); a != b {
		log, _ := os.ReadFile(logFile)
		t.Fatalf("CHECKSUM TABLE master %s, slave %s\n%s", a, b, tail(log, 5000))
	}
	rows := m.Query("SELECT COUNT(*) FROM app.t")[0][0]
	t.Logf("slave caught up: %s rows, checksums match, SQL thread without error", rows)
	proc.Signal(syscall.SIGTERM)
	if !proc.Wait(20 * time.Second) {
		t.Fatal("replink did not stop on SIGTERM")
	}
	if proc.Exit != nil {
		t.Fatalf("replink exited with %v after SIGTERM", proc.Exit)
	}
	if keyFile == "" || masterEncrypts {
		compareWithMaster(t, m, data, readIndex(t, data))
		return
	}
	compareDecryptedWithMaster(t, m, data, readIndex(t, data), keyFile)
}

// compareDecryptedWithMaster checks that encrypted relay files decrypt
// (replink binlog cat) to the master's files, byte for byte but the FDE's
// in-use flag, and that none is plaintext.
func compareDecryptedWithMaster(t *testing.T, m *Server, dir string, files []string, keyFile string) {
	t.Helper()
	bin := ReplinkBinary(t)
	for _, name := range files {
		got, err := exec.Command(bin, "binlog", "cat", "--key-file", keyFile, filepath.Join(dir, name)).Output()
		if err != nil {
			t.Fatalf("replink binlog cat %s: %v", name, err)
		}
		want, err := os.ReadFile(filepath.Join(m.DataDir, name))
		if err != nil {
			t.Fatal(err)
		}
		stored, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) || len(got) < 22 {
			t.Fatalf("%s: %d bytes decrypted, the master's file %d", name, len(got), len(want))
		}
		got[21] = want[21]
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: decrypted relay file differs from the master's", name)
		}
		if bytes.Equal(stored[100:], want[100:]) {
			t.Fatalf("%s: stored in plaintext", name)
		}
		t.Logf("%s: %d bytes, decrypted identical to the master's", name, len(got))
	}
}

func readIndex(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "replink.index"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range splitLines(string(b)) {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

// TestSecondReplinkOnADataDirExits: a data-dir is used by one replink at a
// time; a second one exits 1 naming the holder, and the first goes on.
func TestSecondReplinkOnADataDirExits(t *testing.T) {
	p, m := newMaster(t)
	data := t.TempDir()
	metricsPort := FreePort(t)
	first := StartProcess(t, WriteReplinkConfig(t, p, m.Port, FreePort(t), metricsPort, data), filepath.Join(t.TempDir(), "first.log"))
	waitReady(t, metricsPort)
	logFile := filepath.Join(t.TempDir(), "second.log")
	second := StartProcess(t, WriteReplinkConfig(t, p, m.Port, FreePort(t), FreePort(t), data), logFile)
	if !second.Wait(20 * time.Second) {
		t.Fatal("a second replink on the same data-dir kept running")
	}
	var ee *exec.ExitError
	if !errors.As(second.Exit, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("second replink exited with %v, want status 1", second.Exit)
	}
	log, _ := os.ReadFile(logFile)
	want := fmt.Sprintf("data-dir is in use by another replink (pid %d on host", first.cmd.Process.Pid)
	if !strings.Contains(string(log), want) {
		t.Fatalf("second replink's output does not name the holder (%q):\n%s", want, log)
	}
	if first.Wait(time.Second) {
		t.Fatal("the first replink stopped")
	}
	waitReady(t, metricsPort)
}
