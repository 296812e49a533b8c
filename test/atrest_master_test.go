package test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/replink/replink/binlog/atrest"
	"github.com/replink/replink/replica"
)

// TestAtRestAsTheMasterEncrypts: a MariaDB master that encrypts its own
// binlog (encrypt_binlog with file_key_management, AES_CBC and AES_CTR)
// and a replink given the master's key file: every relay file is byte for
// byte the master's encrypted file (the FDE's in-use flag of the file
// being written aside), no marker is in plaintext under the data-dir, a
// slave through replink gets every row, and mariadb-binlog through
// replink prints what it prints from the master.
func TestAtRestAsTheMasterEncrypts(t *testing.T) {
	for _, c := range []struct {
		name  string
		extra []string
	}{
		{"aes_cbc", nil},
		{"aes_ctr", []string{"file_key_management_encryption_algorithm=AES_CTR"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			keyFile, _ := writeMasterKeyFile(t, t.TempDir(), false)
			p, m := newMaster(t, append([]string{"plugin_load_add=file_key_management", "file_key_management_filename=" + keyFile, "encrypt_binlog=ON"}, c.extra...)...)
			keys, err := atrest.LoadKeys(keyFile, "")
			if err != nil {
				t.Fatal(err)
			}
			sealer, err := atrest.NewSealer(keys, 2)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			var markers []string
			mk := func() string { s := marker(t); markers = append(markers, s); return s }
			m.Exec("CREATE DATABASE app", "CREATE TABLE app.t (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(100), data BLOB) COMMENT '"+mk()+"'")
			r := StartReplink(t, p, m.Port, ReplinkOptions{Users: slaveUsers(), AtRest: sealer, Dir: dir, Start: replica.Start{Kind: "oldest"}})
			for i := 0; i < 10; i++ {
				m.Exec("INSERT INTO app.t (name, data) VALUES ('" + mk() + "', REPEAT('" + mk() + "', 30))")
			}
			m.Exec("FLUSH BINARY LOGS", "INSERT INTO app.t (name) VALUES ('"+mk()+"')")
			waitBinlogCheckpoint(t, m) // the master writes it up to a second after the rotation
			waitCaughtUp(t, m, r, 30*time.Second)
			slave := StartServer(t, "slave", ServerOptions{ServerID: 3})
			changeMaster(t, slave, p, r.Port, "slave1", "mariadb-bin.000001", "")
			slave.Exec("START SLAVE")
			waitSlaveCaughtUp(t, m, slave, 30*time.Second)
			if a, b := m.Checksum("app.t"), slave.Checksum("app.t"); a != b {
				t.Fatalf("checksum master %s, slave %s", a, b)
			}
			CompareClients(t, ClientRun{Command: mariadbBinlog("-v", "--to-last-log", "mariadb-bin.000001"), Collect: MariadbBinlogTextArtefacts},
				ClientEndpoint{Name: "master", Host: "127.0.0.1", Port: m.Port, User: "repl", Password: "replpass", CAFile: p.CAFile},
				ClientEndpoint{Name: "replink", Host: "127.0.0.1", Port: r.Port, User: "plainslave", Password: "slavepass", CAFile: p.CAFile})
			files := r.Log.Files()
			r.Stop()
			if found := findMarkers(t, dir, markers); len(found) > 0 {
				t.Fatalf("markers in plaintext under the data-dir: %v", found)
			}
			compareWithMaster(t, m, dir, files)
			bin := ReplinkBinary(t)
			for _, f := range files {
				// replink binlog cat: the plaintext the master's dump sends,
				// which mariadb-binlog reads from stdin.
				plain, err := exec.Command(bin, "binlog", "cat", "--key-file", keyFile, filepath.Join(dir, f)).Output()
				if err != nil {
					t.Fatalf("replink binlog cat %s: %v", f, err)
				}
				want := remoteRawBinlog(t, m, f)
				if f == files[len(files)-1] && len(want) > len(plain) {
					want = want[:len(plain)] // the master's binlog checkpoint may have come since
					want[21] = plain[21]     // and the in-use flag
				}
				if !bytes.Equal(plain, want) {
					t.Fatalf("replink binlog cat %s: %d bytes, not the %d the master's dump sends", f, len(plain), len(want))
				}
				cmd := exec.Command("mariadb-binlog", "--no-defaults", "-v", "-")
				cmd.Stdin = bytes.NewReader(plain)
				if out, err := cmd.CombinedOutput(); err != nil || !bytes.Contains(out, []byte(markers[len(markers)-1][:10])) && f == files[len(files)-1] {
					t.Fatalf("replink binlog cat %s | mariadb-binlog -v -: %v\n%s", f, err, tail(out, 2000))
				}
				rec, err := os.ReadFile(filepath.Join(dir, f) + ".replink-key")
				if err != nil || !strings.Contains(string(rec), "cipher mariadb-aes-") {
					t.Fatalf("%s's record %q (%v): want the master's format", f, rec, err)
				}
			}
		})
	}
}
