package config

import (
	"crypto/x509/pkix"
	"errors"
	"fmt"

	"flag"
	"github.com/replink/replink/binlog"
	"github.com/replink/replink/relay"
	"github.com/replink/replink/replica"
	"github.com/replink/replink/tlsutil"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func write(t *testing.T, name, body string, perm os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), perm); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadFileErrorsNameFileAndKey(t *testing.T) {
	for _, c := range []struct {
		name, body, key string
	}{
		{"unknown key", "[master]\nhost = \"db\"\nsll-mode = \"REQUIRED\"\n", "master.sll-mode"},
		{"unknown section", "[mastr]\nhost = \"db\"\n", "mastr"},
		{"bad syntax", "[master]\nhost = \n", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := write(t, "replink.toml", c.body, 0o644)
			err := Defaults().LoadFile(f)
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("err %v is not a config error", err)
			}
			if !strings.Contains(err.Error(), f) || c.key != "" && !strings.Contains(err.Error(), c.key) {
				t.Fatalf("error %q should name %s and %q", err, f, c.key)
			}
		})
	}
}

func TestReplicaConfigValidation(t *testing.T) {
	pw := write(t, "pw", "secret\n", 0o600)
	openPW := write(t, "pw-open", "secret\n", 0o644)
	for _, c := range []struct {
		name string
		edit func(*Config)
		key  string
	}{
		{"ok", func(c *Config) {}, ""},
		{"no host", func(c *Config) { c.Master.Host = "" }, "master.host"},
		{"bad start", func(c *Config) { c.Master.Start = "yesterday" }, "master.start"},
		{"bad duration", func(c *Config) { c.Master.HeartbeatPeriod = "often" }, "master.heartbeat-period"},
		{"bad ssl-mode", func(c *Config) { c.Master.SSLMode = "ON" }, "ssl-mode"},
		{"password file readable by others", func(c *Config) { c.Master.PasswordFile = openPW }, "master.password-file"},
		{"no server-id", func(c *Config) { c.Master.ServerID = 0 }, "master.server-id"},
		{"semi-sync without durability", func(c *Config) { c.Master.SemiSync = true; c.Relay.Sync = "none" }, "master.semi-sync"},
		{"candidates", func(c *Config) { c.Master.Candidates = []string{"db2.example.com:3306", "[::1]:3307"} }, ""},
		{"candidate without a port", func(c *Config) { c.Master.Candidates = []string{"db2:3306", "db3"} }, "master.candidates[1]"},
		{"candidate with a bad port", func(c *Config) { c.Master.Candidates = []string{"db2:70000"} }, "master.candidates[0]"},
		{"candidate that is the master", func(c *Config) { c.Master.Candidates = []string{"127.0.0.1:3306"} }, "master.candidates[0]"},
		{"bad failover-wait", func(c *Config) { c.Master.FailoverWait = "soon" }, "master.failover-wait"},
		{"zero failover-wait", func(c *Config) { c.Master.FailoverWait = "0s" }, "master.failover-wait"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := Defaults()
			cfg.File = "x.toml"
			cfg.Master.Host, cfg.Master.User, cfg.Master.PasswordFile, cfg.Master.ServerID = "127.0.0.1", "repl", pw, 4001
			c.edit(cfg)
			rc, err := cfg.ReplicaConfig()
			if c.key == "" {
				if err != nil {
					t.Fatal(err)
				}
				if rc.Password != "secret" {
					t.Fatalf("password from file not read")
				}
				if rc.ReportPort != 3307 {
					t.Fatalf("report port %d, want the relay's 3307 (how SHOW SLAVE HOSTS tells two replinks on one host apart)", rc.ReportPort)
				}
				if rc.FailoverWait != 10*time.Second {
					t.Fatalf("failover-wait %v, want the default 10s", rc.FailoverWait)
				}
				for i, cand := range rc.Candidates {
					if cand.TLS != rc.TLS || cand.User != rc.User || cand.Password != rc.Password || cand.Addr() != cfg.Master.Candidates[i] {
						t.Fatalf("candidate %d = %s as %s, want %s with the master's login and TLS", i, cand.Addr(), cand.User, cfg.Master.Candidates[i])
					}
				}
				return
			}
			var ce *Error
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), c.key) {
				t.Fatalf("err %v, want a config error naming %s", err, c.key)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Fatalf("error leaks the password: %v", err)
			}
		})
	}
}

func TestPrecedenceFlagsOverTOMLOverMyCnf(t *testing.T) {
	cnf := write(t, "my.cnf", `# comment
[mysqld]
port = 1111
[client]
host = cnf-host
port = 3310
user = cnf_user
ssl_mode = REQUIRED
ssl-ca = /cnf/ca.pem
[clientreplink]
user = suffix_user
`, 0o644)
	toml := write(t, "replink.toml", "[master]\nport = 3320\n", 0o644)
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	mf := AddMasterFlags(fs)
	if err := fs.Parse([]string{"--defaults-file", cnf, "--defaults-group-suffix", "replink", "-c", toml, "--ssl-mode", "VERIFY_CA"}); err != nil {
		t.Fatal(err)
	}
	c, err := mf.Load()
	if err != nil {
		t.Fatal(err)
	}
	m := c.Master
	if m.Host != "cnf-host" || m.Port != 3320 || m.User != "suffix_user" || m.SSLMode != "VERIFY_CA" || m.SSLCA != "/cnf/ca.pem" {
		t.Fatalf("got %+v", m)
	}
}

// The mysql client's habits: -h, -P, -u, -p and --password, and whole
// seconds for --connect-timeout.
func TestMysqlClientFlags(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	mf := AddMasterFlags(fs)
	if err := fs.Parse([]string{"-h", "db9", "-P", "4151", "-u", "repl", "--password=secret", "--connect-timeout", "5", "--server-id", "7"}); err != nil {
		t.Fatal(err)
	}
	c, err := mf.Load()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := c.ReplicaConfig()
	if err != nil {
		t.Fatal(err)
	}
	if rc.Host != "db9" || rc.Port != 4151 || rc.User != "repl" || rc.Password != "secret" || rc.ConnectTimeout != 5*time.Second {
		t.Fatalf("got %s:%d as %s, timeout %s", rc.Host, rc.Port, rc.User, rc.ConnectTimeout)
	}
}

func TestDuration(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Duration // -1: refused
	}{
		{"10s", 10 * time.Second}, {"7d", 7 * 24 * time.Hour}, {"1w", 7 * 24 * time.Hour}, {"1h30m", 90 * time.Minute},
		{"1.5d", 36 * time.Hour}, {"500ms", 500 * time.Millisecond}, {"1.5s", 1500 * time.Millisecond},
		{"5", 5 * time.Second}, {"0", 0}, // whole seconds, as my.cnf's connect-timeout
		{"x", -1}, {"-1s", -1}, {"-5", -1}, {"1w2", -1},
	} {
		got, err := Duration("f", "k", c.in)
		if c.want < 0 {
			if err == nil {
				t.Errorf("Duration(%q) = %v, want an error", c.in, got)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("Duration(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
}

func TestFreeSpace(t *testing.T) {
	for _, c := range []struct {
		in   string
		want relay.FreeSpace
		ok   bool
	}{
		{"5%", relay.FreeSpace{Percent: 5}, true},
		{"0.5 %", relay.FreeSpace{Percent: 0.5}, true},
		{"20GiB", relay.FreeSpace{Bytes: 20 << 30}, true},
		{"500M", relay.FreeSpace{Bytes: 500 << 20}, true},
		{"1073741824", relay.FreeSpace{Bytes: 1 << 30}, true},
		{"0", relay.FreeSpace{}, true},
		{"512MB", relay.FreeSpace{Bytes: 512 << 20}, true},
		{"1.5GiB", relay.FreeSpace{Bytes: 3 << 29}, true},
		{"1GB512MB", relay.FreeSpace{Bytes: 1<<30 + 512<<20}, true},
		{"2PiB", relay.FreeSpace{Bytes: 2 << 50}, true},
		{"10kB", relay.FreeSpace{}, false},
		{"100%", relay.FreeSpace{}, false},
		{"-1%", relay.FreeSpace{}, false},
		{"lots", relay.FreeSpace{}, false},
		{"99999999999T", relay.FreeSpace{}, false},
	} {
		got, err := FreeSpace("f", "relay.min-free-space", c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("FreeSpace(%q) = %+v, %v; want %+v, ok %v", c.in, got, err, c.want, c.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "relay.min-free-space") {
			t.Errorf("FreeSpace(%q): %v does not name the key", c.in, err)
		}
	}
}

// The shipped example configurations must load: no unknown keys, valid values.
func TestShippedConfigsLoad(t *testing.T) {
	files, _ := filepath.Glob("../deploy/*/replink.toml")
	if len(files) == 0 {
		t.Fatal("no shipped configurations found")
	}
	for _, f := range files {
		c := Defaults()
		if err := c.LoadFile(f); err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if _, err := Duration(f, "master.heartbeat-period", c.Master.HeartbeatPeriod); err != nil {
			t.Error(err)
		}
		if c.Relay.RequireSecureTransport == nil || !*c.Relay.RequireSecureTransport || c.Relay.SSLCert == "" {
			t.Errorf("%s: a shipped configuration should require TLS from slaves", f)
		}
	}
}

func FuzzLoadFile(f *testing.F) {
	for _, s := range []string{
		"[master]\nhost = \"db\"\nport = 3306\n",
		"[relay]\nlisten = \"127.0.0.1:3307\"\n[[relay.users]]\nname = \"s\"\nrequire = \"X509\"\n",
		"[master]\nheartbeat-period = \"1s\"\nstart = \"gtid:0-1-5\"\n",
		"[master", "= =", "[metrics]\nlisten = 5\n",
	} {
		f.Add(s)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, body string) {
		name := filepath.Join(dir, "fuzz.toml")
		if err := os.WriteFile(name, []byte(body), 0o644); err != nil {
			t.Skip()
		}
		c := Defaults()
		done := make(chan struct{})
		var loadErr error
		go func() { loadErr = c.LoadFile(name); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("LoadFile took over 5s on %q", body)
		}
		if err := loadErr; err != nil {
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("load error is not a config error: %v", err)
			}
			return
		}
		// Validation that reads no files (the fuzzer invents paths such as /dev/zero).
		steps := []struct {
			name string
			f    func()
		}{
			{"ParseStart", func() { _, _ = replica.ParseStart(c.Master.Start) }},
			{"Duration heartbeat", func() { _, _ = Duration(name, "k", c.Master.HeartbeatPeriod) }},
			{"Duration retain", func() { _, _ = Duration(name, "k", c.Relay.Retain) }},
			{"Duration keep-for-absent-slaves", func() { _, _ = Duration(name, "k", c.Relay.KeepForAbsentSlaves) }},
			{"FreeSpace", func() { _, _ = FreeSpace(name, "k", c.Relay.MinFreeSpace) }},
			{"Duration wait-when-behind", func() { _, _ = Duration(name, "k", c.Relay.WaitWhenBehind) }},
			{"ParseSyncPolicy", func() { _, _ = binlog.ParseSyncPolicy(c.Relay.Sync) }},
			{"ParseMode", func() { _, _ = tlsutil.ParseMode(c.Master.SSLMode) }},
			{"ParseCipherList", func() { _, _, _ = tlsutil.ParseCipherList(c.Master.SSLCipher) }},
			{"ParseTLSVersions", func() { _, _, _ = tlsutil.ParseTLSVersions(c.Master.TLSVersion) }},
		}
		for _, st := range steps {
			done := make(chan struct{})
			go func() { st.f(); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatalf("%s took over 5s on %q", st.name, body)
			}
		}
	})
}

func TestRelayRequiresTLSOffLoopback(t *testing.T) {
	for _, c := range []struct {
		listen   string
		explicit *bool
		wantErr  bool
	}{
		{"127.0.0.1:3307", nil, false},
		{"[::1]:3307", nil, false},
		{"localhost:3307", nil, false},
		{"0.0.0.0:3307", nil, true},
		{"10.1.2.3:3307", nil, true},
		{"0.0.0.0:3307", new(bool), false}, // explicitly off
	} {
		cfg := Defaults()
		cfg.File = "x.toml"
		cfg.Relay.Listen = c.listen
		cfg.Relay.RequireSecureTransport = c.explicit
		_, err := cfg.RelayConfig()
		if (err != nil) != c.wantErr {
			t.Errorf("listen %s: %v", c.listen, err)
		}
		if err != nil && !strings.Contains(err.Error(), "relay.require-secure-transport") {
			t.Errorf("error %v does not name the key", err)
		}
	}
}

func TestRelayUsersNeedAPassword(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.pass")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		user RelayUser
		key  string
	}{
		{"no password at all", RelayUser{Name: "slave1"}, "relay.users[0].password"},
		{"an empty password file", RelayUser{Name: "slave1", PasswordFile: empty}, "relay.users[0].password-file"},
		{"a password", RelayUser{Name: "slave1", Password: "pw"}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := Defaults()
			cfg.File = "x.toml"
			cfg.Relay.Users = []RelayUser{c.user}
			_, err := cfg.RelayConfig()
			if c.key == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var ce *Error
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), "x.toml: "+c.key) {
				t.Fatalf("err %v, want a config error naming x.toml and %s", err, c.key)
			}
		})
	}
}

// TestRelayCRLKeys: [relay] ssl-crl and ssl-crlpath are read with the
// relay's certificates; a file that is not a CRL, an unhashed directory or
// a CRL without ssl-ca is a configuration error naming the key and file.
func TestRelayCRLKeys(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	ca, err := tlsutil.NewCA(pkix.Name{CommonName: "config test CA"}, now.Add(-time.Hour), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	server, err := ca.Issue(tlsutil.CertSpec{Subject: pkix.Name{CommonName: "relay"}, Hosts: []string{"127.0.0.1"}, Server: true,
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	caFile, _, err := ca.Write(dir, "ca")
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := server.Write(dir, "server")
	if err != nil {
		t.Fatal(err)
	}
	crl, err := ca.CRL(nil, now.Add(-time.Hour), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	crlFile := write(t, "crl.pem", string(crl), 0o644)
	for _, c := range []struct {
		name, keys string
		want       []string // in the error; none: loads
	}{
		{"ssl-crl", fmt.Sprintf("ssl-ca = %q\nssl-crl = %q\n", caFile, crlFile), nil},
		{"ssl-crl is not a CRL", fmt.Sprintf("ssl-ca = %q\nssl-crl = %q\n", caFile, caFile), []string{"relay", "ssl-crl " + caFile}},
		{"ssl-crl missing", fmt.Sprintf("ssl-ca = %q\nssl-crl = %q\n", caFile, crlFile+".gone"), []string{"relay", "ssl-crl " + crlFile + ".gone"}},
		{"ssl-crlpath unhashed", fmt.Sprintf("ssl-ca = %q\nssl-crlpath = %q\n", caFile, dir), []string{"relay", "ssl-crlpath " + dir, "openssl rehash"}},
		{"ssl-crl without ssl-ca", fmt.Sprintf("ssl-crl = %q\n", crlFile), []string{"relay", "ssl-crl", "need ssl-ca"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			body := fmt.Sprintf("[relay]\nlisten = \"0.0.0.0:3307\"\nssl-cert = %q\nssl-key = %q\n%s", certFile, keyFile, c.keys)
			f := write(t, "replink.toml", body, 0o644)
			cfg := Defaults()
			if err := cfg.LoadFile(f); err != nil {
				t.Fatal(err)
			}
			rc, err := cfg.RelayConfig()
			if c.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if rc.TLS == nil {
					t.Fatal("no server TLS built")
				}
				return
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("err %v, want a config error", err)
			}
			for _, w := range append(c.want, f) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
		})
	}
}

func TestAtRestKeys(t *testing.T) {
	keys := write(t, "keys", "1;"+strings.Repeat("ab", 32)+"\n2;"+strings.Repeat("cd", 16)+"\n", 0o600)
	open := write(t, "keys-open", "1;"+strings.Repeat("ab", 32)+"\n", 0o644)
	bad := write(t, "keys-bad", "1;nothex\n", 0o600)
	for _, c := range []struct {
		name          string
		file, pass    string
		id            uint32
		key, mentions string // "" key: no error
	}{
		{"off", "", "", 1, "", ""},
		{"key 2", keys, "", 2, "", ""},
		{"password without a key file", "", keys, 1, "relay.key-file-key-file", "relay.key-file is not"},
		{"readable by others", open, "", 1, "relay.key-file", "0644"},
		{"not a key file", bad, "", 1, "relay.key-file", "Invalid key"},
		{"no such key id", keys, "", 7, "relay.key-id", "no key with id 7"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := Defaults()
			cfg.File = "x.toml"
			cfg.Relay.KeyFile, cfg.Relay.KeyFileKeyFile, cfg.Relay.KeyID = c.file, c.pass, c.id
			s, err := cfg.AtRest()
			if c.key == "" {
				if err != nil || (c.file != "" && s == nil) || (c.file == "" && s != nil) {
					t.Fatalf("AtRest() = %v, %v", s, err)
				}
				return
			}
			var ce *Error
			if !errors.As(err, &ce) || ce.Key != c.key || !strings.Contains(err.Error(), c.mentions) {
				t.Fatalf("err %v, want a config error on %s saying %q", err, c.key, c.mentions)
			}
			if strings.Contains(err.Error(), "abab") {
				t.Fatalf("error shows key material: %v", err)
			}
		})
	}
}
