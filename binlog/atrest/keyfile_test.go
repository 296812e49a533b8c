package atrest

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const (
	k16 = "F5502320F8429037B8DAEF761B189D12"
	k24 = "F5502320F8429037B8DAEF761B189D12F5502320F8429037"
	k32 = "770A8A65DA156D24EE2A093277530142770A8A65DA156D24EE2A093277530142"
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func TestParseKeys(t *testing.T) {
	cases := []struct {
		name string
		text string
		want Keys
		err  string // the whole error, MariaDB's words with replink's file naming
	}{
		{name: "the plugin's documented example", text: "1;" + k16 + "\n2;" + k32 + "\n",
			want: Keys{1: mustHex(k16), 2: mustHex(k32)}},
		{name: "comments, blank lines, blanks before, CRLF, no final newline", text: "# keys\n\n  \t# indented comment\r\n1;" + k24 + "\r\n  7;" + k16,
			want: Keys{1: mustHex(k24), 7: mustHex(k16)}},
		{name: "lower case hex and a trailing comment", text: "1;" + strings.ToLower(k32) + " # the binlog key\n",
			want: Keys{1: mustHex(k32)}},
		{name: "the largest id", text: "1;" + k16 + "\n4294967295;" + k16 + "\n",
			want: Keys{1: mustHex(k16), 4294967295: mustHex(k16)}},
		{name: "a later line with the same id wins", text: "1;" + k16 + "\n1;" + k32 + "\n",
			want: Keys{1: mustHex(k32)}},
		{name: "text after a NUL is not read", text: "1;" + k16 + "\n\x00garbage\n",
			want: Keys{1: mustHex(k16)}},
		{name: "id 0", text: "0;" + k16 + "\n", err: "key file keys.txt: Invalid key id at line 1, column 2"},
		{name: "id past 2^32-1", text: "1;" + k16 + "\n4294967296;" + k16 + "\n", err: "key file keys.txt: Invalid key id at line 2, column 10"},
		{name: "no id", text: ";" + k16 + "\n", err: "key file keys.txt: Syntax error at line 1, column 1"},
		{name: "a word", text: "# k\nkey1;" + k16 + "\n", err: "key file keys.txt: Syntax error at line 2, column 1"},
		{name: "no semicolon", text: "1 " + k16 + "\n", err: "key file keys.txt: Syntax error at line 1, column 2"},
		{name: "key of 15 bytes", text: "1;" + k16[:30] + "\n", err: "key file keys.txt: Invalid key at line 1, column 33"},
		{name: "key of 20 bytes", text: "1;" + k16 + "01020304\n", err: "key file keys.txt: Invalid key at line 1, column 43"},
		{name: "key longer than 32 bytes", text: "1;" + k32 + "00\n", err: "key file keys.txt: Invalid key at line 1, column 67"},
		{name: "odd number of hex digits", text: "1;" + k16 + "A\n", err: "key file keys.txt: Invalid key at line 1, column 35"},
		{name: "no key", text: "1;\n", err: "key file keys.txt: Invalid key at line 1, column 3"},
		{name: "no key 1", text: "2;" + k16 + "\n", err: "key file keys.txt: System key id 1 is missing"},
		{name: "empty file", text: "", err: "key file keys.txt: System key id 1 is missing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseKeys("keys.txt", []byte(tc.text), "")
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				var se *SyntaxError
				if !errors.As(err, &se) {
					t.Fatalf("error %T is not a *SyntaxError", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d keys, want %d", len(got), len(tc.want))
			}
			for id, k := range tc.want {
				if !bytes.Equal(got[id], k) {
					t.Fatalf("key %d = %x, want %x", id, got[id], k)
				}
			}
		})
	}
}

func writeFile(t *testing.T, name string, data []byte, mode os.FileMode) string {
	t.Helper()
	if err := os.WriteFile(name, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(name, mode); err != nil { // past the umask
		t.Fatal(err)
	}
	return name
}

// TestLoadKeysReadsWhatOpensslEncrypted: a key file encrypted by the
// openssl binary, as file_key_management's documentation says to, reads
// back with the password file; the wrong password, no password, and a
// password for a plain file are refused as MariaDB refuses them.
func TestLoadKeysReadsWhatOpensslEncrypted(t *testing.T) {
	dir := t.TempDir()
	text := "# binlog key\n1;" + k32 + "\n2;" + k16 + "\n"
	plain := writeFile(t, filepath.Join(dir, "keys.txt"), []byte(text), 0o600)
	pass := writeFile(t, filepath.Join(dir, "pass"), []byte("s3cret words\n"), 0o600)
	enc := filepath.Join(dir, "keys.enc")
	out, err := exec.Command("openssl", "enc", "-aes-256-cbc", "-md", "sha1", "-pass", "file:"+pass, "-in", plain, "-out", enc).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl enc: %v\n%s", err, out)
	}
	if err := os.Chmod(enc, 0o600); err != nil {
		t.Fatal(err)
	}
	wrong := writeFile(t, filepath.Join(dir, "wrong"), []byte("not it"), 0o600)

	keys, err := LoadKeys(enc, pass)
	if err != nil {
		t.Fatalf("LoadKeys(openssl's file): %v", err)
	}
	if !bytes.Equal(keys[1], mustHex(k32)) || !bytes.Equal(keys[2], mustHex(k16)) {
		t.Fatalf("keys %x", keys)
	}
	// The FILE: form of file_key_management_filekey names the same file.
	secret, err := FileKey("FILE:" + pass)
	if err != nil || secret != "s3cret words" {
		t.Fatalf("FileKey(FILE:) = %q, %v", secret, err)
	}
	data, _ := os.ReadFile(enc)
	if _, err := ParseKeys(enc, data, secret); err != nil {
		t.Fatalf("ParseKeys with the FILE: secret: %v", err)
	}
	if s, _ := FileKey("literal"); s != "literal" {
		t.Fatalf("FileKey(literal) = %q", s)
	}
	// And what EncryptKeyFile writes, openssl reads.
	var salt [8]byte
	copy(salt[:], "saltsalt")
	mine := writeFile(t, filepath.Join(dir, "mine.enc"), EncryptKeyFile([]byte(text), "s3cret words", salt), 0o600)
	back, err := exec.Command("openssl", "enc", "-d", "-aes-256-cbc", "-md", "sha1", "-pass", "file:"+pass, "-in", mine).Output()
	if err != nil || string(back) != text {
		t.Fatalf("openssl enc -d of EncryptKeyFile's output: %v %q", err, back)
	}

	for _, tc := range []struct {
		name, keyFile, passFile, want string
	}{
		{"wrong password", enc, wrong, "key file " + enc + ": cannot decrypt: wrong key-file-key-file password?"},
		{"encrypted, no password", enc, "", "key file " + enc + ": encrypted (it starts with \"Salted__\"), but no key-file-key-file is set"},
		{"plain, with a password", plain, pass, "key file " + plain + ": cannot decrypt: not encrypted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadKeys(tc.keyFile, tc.passFile)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to start %q", err, tc.want)
			}
		})
	}
}

// TestLoadKeysRefusesFilesOthersCanRead: key files and their password
// files are secrets, refused like private keys when group or others can
// read or write them, with the file named.
func TestLoadKeysRefusesFilesOthersCanRead(t *testing.T) {
	dir := t.TempDir()
	text := []byte("1;" + k16 + "\n")
	cases := []struct {
		name           string
		keyMode        os.FileMode
		passMode       os.FileMode // 0: no password file
		wantErr, names string
	}{
		{name: "0600 key file", keyMode: 0o600},
		{name: "0400 key file", keyMode: 0o400},
		{name: "0644 key file", keyMode: 0o644, wantErr: "mode 0644", names: "keys"},
		{name: "0640 key file (a group reads it, as a Secret with fsGroup)", keyMode: 0o640},
		{name: "0606 key file", keyMode: 0o606, wantErr: "mode 0606", names: "keys"},
		{name: "0620 key file", keyMode: 0o620, wantErr: "mode 0620", names: "keys"},
		{name: "0644 password file", keyMode: 0o600, passMode: 0o644, wantErr: "mode 0644", names: "pass"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			key := filepath.Join(dir, "keys"+string(rune('a'+i)))
			var pass string
			data := text
			if tc.passMode != 0 {
				pass = writeFile(t, filepath.Join(dir, "pass"+string(rune('a'+i))), []byte("pw"), tc.passMode)
				var salt [8]byte
				data = EncryptKeyFile(text, "pw", salt)
			}
			writeFile(t, key, data, tc.keyMode)
			_, err := LoadKeys(key, pass)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			named := key
			if tc.names == "pass" {
				named = pass
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), named+" is ") {
				t.Fatalf("error %v, want one naming %s and %s", err, named, tc.wantErr)
			}
			if strings.Contains(err.Error(), k16) {
				t.Fatalf("error shows key material: %v", err)
			}
		})
	}
}

func TestReadFileKeyLimits(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name, content, want, err string
	}{
		{"trailing CR LF dropped", "pw\r\n\n", "pw", ""},
		{"256 bytes", strings.Repeat("a", 256), strings.Repeat("a", 256), ""},
		{"257 bytes", strings.Repeat("a", 257), "", "the filekey is too long, max secret size is 256 bytes"},
		{"empty", "\n", "", "empty"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := writeFile(t, filepath.Join(dir, "p"+string(rune('a'+i))), []byte(tc.content), 0o600)
			got, err := ReadFileKey(name)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ReadFileKey = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
