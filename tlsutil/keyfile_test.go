package tlsutil

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestKeyFileModes: a key its group can read (a Kubernetes Secret volume
// with defaultMode 0440 and fsGroup, reached through the ..data symlink)
// loads; one that others can read, or its group write, is refused naming
// the file and the chmod that fixes it.
func TestKeyFileModes(t *testing.T) {
	set, err := MakeCertSet(t.TempDir(), []string{"localhost"}, 1, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(set.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		mode    os.FileMode
		symlink bool // the Secret volume layout: key -> ..data/key -> ..<timestamp>/key
		want    string
	}{
		{"owner only", 0o600, false, ""},
		{"owner read only", 0o400, false, ""},
		{"group-readable", 0o640, false, ""},
		{"secret volume: 0440 through ..data", 0o440, true, ""},
		{"world-readable", 0o644, false, "accessible by others (mode 0644); run chmod 600"},
		{"world-readable through ..data", 0o444, true, "accessible by others (mode 0444)"},
		{"others write only", 0o602, false, "accessible by others (mode 0602)"},
		{"group-writable", 0o660, false, "writable or executable by its group (mode 0660); run chmod 600"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			name := filepath.Join(dir, "tls.key")
			file := name
			if c.symlink {
				ts := filepath.Join(dir, "..2026_01_01_00_00_00.000000001")
				if err := os.Mkdir(ts, 0o755); err != nil {
					t.Fatal(err)
				}
				file = filepath.Join(ts, "tls.key")
				if err := os.Symlink(filepath.Base(ts), filepath.Join(dir, "..data")); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink("..data/tls.key", name); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(file, key, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(file, c.mode); err != nil {
				t.Fatal(err)
			}
			_, err := LoadKeyPair(set.ServerCert, name)
			if c.want == "" {
				if err != nil {
					t.Fatalf("mode %04o refused: %v", c.mode, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), name) {
				t.Fatalf("mode %04o: err %v, want %q naming %s", c.mode, err, c.want, name)
			}
			if Classify(err) != ReasonBadLocalKeypair {
				t.Fatalf("reason %q, want %q", Classify(err), ReasonBadLocalKeypair)
			}
		})
	}
}
