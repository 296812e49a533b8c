package tlsutil

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestFingerprintSeesEveryChange: a file rewritten, renamed over, chmodded,
// a hashed directory gaining a file, and a Kubernetes ..data symlink
// swapped to new files each change the fingerprint, naming the file;
// reading unchanged files again does not.
func TestFingerprintSeesEveryChange(t *testing.T) {
	set, err := MakeCertSet(t.TempDir(), []string{"localhost"}, 1, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	other, err := MakeCertSet(t.TempDir(), []string{"localhost"}, 1, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	read := func(name string) []byte {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name   string
		change func(dir string) // dir holds ca.pem, capath/, and the Secret layout tls.crt, tls.key
		want   []string
	}{
		{"nothing", func(string) {}, nil},
		{"cert rewritten in place", func(dir string) {
			must(os.WriteFile(filepath.Join(dir, "cert.pem"), read(other.ServerCert), 0o644))
		}, []string{"ssl-cert cert.pem"}},
		{"key renamed over", func(dir string) {
			must(os.WriteFile(filepath.Join(dir, "key.new"), read(other.ServerKey), 0o600))
			must(os.Rename(filepath.Join(dir, "key.new"), filepath.Join(dir, "key.pem")))
		}, []string{"ssl-key key.pem"}},
		{"key chmodded", func(dir string) { must(os.Chmod(filepath.Join(dir, "key.pem"), 0o644)) }, []string{"ssl-key key.pem"}},
		{"a CA added to ssl-capath", func(dir string) {
			must(os.WriteFile(filepath.Join(dir, "capath", "abcdef01.0"), read(other.CA), 0o644))
		}, []string{"ssl-capath capath", "ssl-capath capath/abcdef01.0"}},
		{"a file ssl-capath does not read", func(dir string) {
			must(os.WriteFile(filepath.Join(dir, "capath", "README"), []byte("x"), 0o644))
		}, nil},
		{"..data swapped", func(dir string) {
			ts := filepath.Join(dir, "secret", "..2026_01_02")
			must(os.Mkdir(ts, 0o755))
			must(os.WriteFile(filepath.Join(ts, "ca.crt"), read(set.CA), 0o440))
			must(os.WriteFile(filepath.Join(ts, "tls.crt"), read(other.ClientCert), 0o440))
			must(os.Symlink("..2026_01_02", filepath.Join(dir, "secret", "..data_tmp")))
			must(os.Rename(filepath.Join(dir, "secret", "..data_tmp"), filepath.Join(dir, "secret", "..data")))
		}, []string{"ssl-cert secret/tls.crt"}},
		{"cert removed", func(dir string) { must(os.Remove(filepath.Join(dir, "cert.pem"))) }, []string{"ssl-cert cert.pem"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			must(os.WriteFile(filepath.Join(dir, "cert.pem"), read(set.ServerCert), 0o644))
			must(os.WriteFile(filepath.Join(dir, "key.pem"), read(set.ServerKey), 0o600))
			must(os.Mkdir(filepath.Join(dir, "capath"), 0o755))
			must(os.WriteFile(filepath.Join(dir, "capath", "01234567.0"), read(set.CA), 0o644))
			sec := filepath.Join(dir, "secret")
			must(os.MkdirAll(filepath.Join(sec, "..2026_01_01"), 0o755))
			must(os.WriteFile(filepath.Join(sec, "..2026_01_01", "ca.crt"), read(set.CA), 0o440))
			must(os.WriteFile(filepath.Join(sec, "..2026_01_01", "tls.crt"), read(set.ClientCert), 0o440))
			must(os.Symlink("..2026_01_01", filepath.Join(sec, "..data")))
			for _, f := range []string{"ca.crt", "tls.crt"} {
				must(os.Symlink(filepath.Join("..data", f), filepath.Join(sec, f)))
			}
			srcs := []Source{{Option: "ssl-cert", Path: filepath.Join(dir, "cert.pem")}, {Option: "ssl-key", Path: filepath.Join(dir, "key.pem")},
				{Option: "ssl-capath", Path: filepath.Join(dir, "capath"), names: hashedCert},
				{Option: "ssl-ca", Path: filepath.Join(sec, "ca.crt")}, {Option: "ssl-cert", Path: filepath.Join(sec, "tls.crt")}}
			before := FingerprintOf("", srcs)
			c.change(dir)
			var got []string
			for _, k := range FingerprintOf("", srcs).Changed(before) {
				opt, file, _ := strings.Cut(k, " ")
				rel, _ := filepath.Rel(dir, file)
				got = append(got, opt+" "+rel)
			}
			if !slices.Equal(got, c.want) {
				t.Fatalf("changed %q, want %q", got, c.want)
			}
		})
	}
}
