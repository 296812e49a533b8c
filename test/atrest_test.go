package test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/replink/replink/binlog"
	"github.com/replink/replink/binlog/atrest"
)

// TestAtRestMatchesMariadbdEncryptedBinlog proves binlog/atrest against
// files mariadbd itself wrote with encrypt_binlog=ON: the master's file
// holds no marker; atrest reads the master's key file (plain, and
// encrypted with openssl as file_key_management_filekey=FILE: reads it),
// finds the algorithm, decrypts every event after Start_encryption into
// exactly what the master's dump stream carries (mariadb-binlog --raw,
// the Start_encryption event aside, which the dump flags ignorable), with
// every checksum right; and encrypting that plaintext again gives the
// master's file byte for byte.
func TestAtRestMatchesMariadbdEncryptedBinlog(t *testing.T) {
	cases := []struct {
		name         string
		alg          atrest.Algorithm
		extra        []string
		encryptedKey bool
		checksum     byte
	}{
		{name: "aes_cbc", alg: atrest.AESCBC, checksum: binlog.ChecksumCRC32},
		{name: "aes_ctr", alg: atrest.AESCTR, extra: []string{"file_key_management_encryption_algorithm=AES_CTR"}, checksum: binlog.ChecksumCRC32},
		{name: "aes_cbc_encrypted_key_file_no_checksum", alg: atrest.AESCBC, encryptedKey: true,
			extra: []string{"binlog_checksum=NONE"}, checksum: binlog.ChecksumOff},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			keyFile, passFile := writeMasterKeyFile(t, dir, tc.encryptedKey)
			extra := append([]string{
				"plugin_load_add=file_key_management",
				"file_key_management_filename=" + keyFile,
				"encrypt_binlog=ON",
			}, tc.extra...)
			if passFile != "" {
				extra = append(extra, "file_key_management_filekey=FILE:"+passFile)
			}
			m := StartServer(t, "atrest-"+tc.name, ServerOptions{ServerID: 1, Extra: extra})
			m.SetupReplUsers()

			marker := "atrest-marker-" + hex.EncodeToString(randomBytes(t, 8))
			blob := strings.Repeat("x", 70001) + marker + strings.Repeat("y", 33)
			m.Exec(
				"CREATE DATABASE d",
				fmt.Sprintf("CREATE TABLE d.t (id INT PRIMARY KEY, s VARCHAR(200), b LONGBLOB) COMMENT '%s'", marker),
				fmt.Sprintf("INSERT INTO d.t VALUES (1, '%s', NULL)", marker),
				fmt.Sprintf("INSERT INTO d.t VALUES (2, 'short', '%s')", blob),
				"INSERT INTO d.t VALUES (3, 'a', 'b')",
				"UPDATE d.t SET s = 'c' WHERE id = 3",
				"FLUSH BINARY LOGS",
			)
			file := filepath.Join(m.DataDir, "mariadb-bin.000001")
			onDisk, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if n := bytes.Count(onDisk, []byte(marker)); n != 0 {
				t.Fatalf("the master's own file holds the marker %d times: the server did not encrypt its binlog", n)
			}

			keys, err := atrest.LoadKeys(keyFile, passFile)
			if err != nil {
				t.Fatal(err)
			}
			head, err := atrest.ReadHead(onDisk)
			if err != nil {
				t.Fatal(err)
			}
			if head.Checksum != tc.checksum {
				t.Fatalf("FDE says checksum %d, want %d", head.Checksum, tc.checksum)
			}
			alg, ok, err := atrest.DetectAlgorithm(onDisk, keys)
			if err != nil || !ok || alg != tc.alg {
				t.Fatalf("DetectAlgorithm = %v, %v, %v; want %v", alg, ok, err, tc.alg)
			}
			plain, err := atrest.DecryptMasterFile(onDisk, keys, tc.alg)
			if err != nil {
				t.Fatalf("decrypt the master's file: %v", err)
			}
			if n := bytes.Count(plain, []byte(marker)); n < 2 {
				t.Fatalf("decrypted file holds the marker %d times, want at least 2 (row, DDL comment)", n)
			}

			stream := remoteRawBinlog(t, m, "mariadb-bin.000001")
			want := streamAsFile(t, stream, head.Checksum)
			if !bytes.Equal(plain, want) {
				t.Fatalf("decrypted file (%d bytes) differs from the dump stream (%d bytes, Start_encryption as in the file):\n%s",
					len(plain), len(want), firstDiff(plain, want))
			}

			again, err := atrest.EncryptMasterFile(plain, keys, tc.alg)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, onDisk) {
				t.Fatalf("re-encrypted plaintext differs from the master's file:\n%s", firstDiff(again, onDisk))
			}
			t.Logf("%s: %d bytes, %d events after Start_encryption at %d, decrypted = stream, re-encrypted = file",
				tc.alg, len(onDisk), len(binlogEvents(onDisk))-2, head.Encrypted)
		})
	}
}

// writeMasterKeyFile writes a key file in file_key_management's format
// (mode 0600), and when encrypted, encrypts it with the openssl binary
// as the plugin's documentation says and returns the password file too.
func writeMasterKeyFile(t *testing.T, dir string, encrypted bool) (keyFile, passFile string) {
	t.Helper()
	text := fmt.Sprintf("# replink test keys\n1;%s\n\n2;%s\n", hex.EncodeToString(randomBytes(t, 32)), hex.EncodeToString(randomBytes(t, 16)))
	keyFile = filepath.Join(dir, "keys.txt")
	if err := os.WriteFile(keyFile, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if !encrypted {
		return keyFile, ""
	}
	passFile = filepath.Join(dir, "keys.pass")
	if err := os.WriteFile(passFile, []byte(hex.EncodeToString(randomBytes(t, 16))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	enc := filepath.Join(dir, "keys.enc")
	out, err := exec.Command("openssl", "enc", "-aes-256-cbc", "-md", "sha1", "-pass", "file:"+passFile,
		"-in", keyFile, "-out", enc).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl enc: %v\n%s", err, out)
	}
	if err := os.Chmod(enc, 0o600); err != nil {
		t.Fatal(err)
	}
	return enc, passFile
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// remoteRawBinlog fetches one binlog file through the master's dump
// (mariadb-binlog --read-from-remote-server --raw), which is plaintext.
func remoteRawBinlog(t *testing.T, m *Server, name string) []byte {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("mariadb-binlog", "--no-defaults", "--read-from-remote-server", "--raw", "--skip-ssl",
		"--protocol=tcp", "--host=127.0.0.1", fmt.Sprintf("--port=%d", m.Port), "--user=repl", "--password=replpass",
		"--result-file="+dir+"/", name).CombinedOutput()
	if err != nil {
		t.Fatalf("mariadb-binlog: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// streamAsFile returns the dump stream's copy of a file with its
// Start_encryption event as the file holds it (ignorable flag clear,
// checksum recomputed); every other event is compared as sent.
func streamAsFile(t *testing.T, stream []byte, checksum byte) []byte {
	t.Helper()
	out := bytes.Clone(stream)
	found := 0
	for _, ev := range binlogEvents(out) {
		e := binlog.Event(out[ev.off:ev.end])
		if e.Type() == atrest.TypeStartEncryption {
			copy(e, atrest.InFile(e, checksum))
			found++
		}
	}
	if found != 1 {
		t.Fatalf("the dump stream holds %d Start_encryption events, want 1", found)
	}
	return out
}

func firstDiff(a, b []byte) string {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			lo := max(0, i-8)
			return fmt.Sprintf("first difference at byte %d: % x vs % x", i, a[lo:min(len(a), i+8)], b[lo:min(len(b), i+8)])
		}
	}
	return fmt.Sprintf("lengths %d and %d, equal up to the shorter", len(a), len(b))
}
