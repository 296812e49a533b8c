package atrest

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/replink/replink/binlog"
)

// TestMariadbdFixtures checks the scheme against binlog files mariadbd
// 10.11.19 wrote with encrypt_binlog=ON and the key file in testdata
// (file_key_management_encryption_algorithm AES_CBC and AES_CTR), and
// against what its dump sent for them (mariadb-binlog --raw
// --read-from-remote-server, the .stream files), without a server:
// test/TestAtRestMatchesMariadbdEncryptedBinlog makes fresh ones.
func TestMariadbdFixtures(t *testing.T) {
	keyText, err := os.ReadFile("testdata/keys.txt")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := ParseKeys("testdata/keys.txt", keyText, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		file string
		alg  Algorithm
	}{
		{"mariadb-10.11-AES_CBC.000001", AESCBC},
		{"mariadb-10.11-AES_CTR.000001", AESCTR},
	} {
		t.Run(tc.alg.String(), func(t *testing.T) {
			onDisk, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			stream, err := os.ReadFile(filepath.Join("testdata", tc.file+".stream"))
			if err != nil {
				t.Fatal(err)
			}
			marker := []byte("fixture-marker")
			if bytes.Contains(onDisk, marker) || !bytes.Contains(stream, marker) {
				t.Fatal("fixture: the marker should be in the stream only")
			}
			alg, ok, err := DetectAlgorithm(onDisk, keys)
			if err != nil || !ok || alg != tc.alg {
				t.Fatalf("DetectAlgorithm = %v, %v, %v; want %v", alg, ok, err, tc.alg)
			}
			plain, err := DecryptMasterFile(onDisk, keys, tc.alg)
			if err != nil {
				t.Fatal(err)
			}
			// The stream's Start_encryption carries the ignorable flag.
			h, err := ReadHead(stream)
			if err != nil {
				t.Fatal(err)
			}
			want := bytes.Clone(stream)
			copy(want[h.StartAt:], InFile(binlog.Event(stream[h.StartAt:h.Encrypted]), h.Checksum))
			if !bytes.Equal(plain, want) {
				t.Fatalf("decrypted file differs from the dump stream")
			}
			again, err := EncryptMasterFile(plain, keys, tc.alg)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, onDisk) {
				t.Fatal("re-encrypted differs from mariadbd's file")
			}
			other := map[Algorithm]Algorithm{AESCBC: AESCTR, AESCTR: AESCBC}[tc.alg]
			if _, err := DecryptMasterFile(onDisk, keys, other); err == nil {
				t.Fatalf("decrypts and verifies as %v too", other)
			}
			wrong := Keys{1: bytes.Repeat([]byte{1}, 32)}
			if _, err := DecryptMasterFile(onDisk, wrong, tc.alg); err == nil {
				t.Fatal("decrypts and verifies with the wrong key")
			}
		})
	}
}
