// Package config loads replink's configuration: the TOML file, my.cnf
// [client] groups as the C API reads them, and command-line flags, in
// that order of increasing precedence. Errors name the file and the key.
package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/alecthomas/units"
	"github.com/prometheus/common/model"

	"github.com/replink/replink/binlog"
	"github.com/replink/replink/binlog/atrest"
	"github.com/replink/replink/relay"
	"github.com/replink/replink/replica"
	"github.com/replink/replink/tlsutil"
)

// Error is a configuration error; the command exits 2 on it.
type Error struct {
	File string
	Key  string
	Err  error
}

func (e *Error) Error() string {
	switch {
	case e.File != "" && e.Key != "":
		return fmt.Sprintf("%s: %s: %v", e.File, e.Key, e.Err)
	case e.Key != "":
		return fmt.Sprintf("%s: %v", e.Key, e.Err)
	case e.File != "":
		return fmt.Sprintf("%s: %v", e.File, e.Err)
	}
	return e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Master is the [master] section.
type Master struct {
	Host         string `toml:"host"`
	Port         int    `toml:"port"`
	User         string `toml:"user"`
	Password     string `toml:"password"`
	PasswordFile string `toml:"password-file"`
	ServerID     uint32 `toml:"server-id"`
	Start        string `toml:"start"`
	// Candidates are "host:port" of servers that may become the master
	// after a failover; FailoverWait is how long the master may be
	// unreachable or read-only before replink looks for it among them.
	Candidates      []string `toml:"candidates"`
	FailoverWait    string   `toml:"failover-wait"`
	SSLMode         string   `toml:"ssl-mode"`
	SSLCA           string   `toml:"ssl-ca"`
	SSLCAPath       string   `toml:"ssl-capath"`
	SSLCert         string   `toml:"ssl-cert"`
	SSLKey          string   `toml:"ssl-key"`
	SSLCipher       string   `toml:"ssl-cipher"`
	TLSCiphersuites string   `toml:"tls-ciphersuites"`
	TLSVersion      string   `toml:"tls-version"`
	SSLCRL          string   `toml:"ssl-crl"`
	SSLCRLPath      string   `toml:"ssl-crlpath"`
	ConnectTimeout  string   `toml:"connect-timeout"`
	HeartbeatPeriod string   `toml:"heartbeat-period"`
	SemiSync        bool     `toml:"semi-sync"`
}

// RelayUser is one [[relay.users]] entry.
type RelayUser struct {
	Name         string `toml:"name"`
	Password     string `toml:"password"`
	PasswordFile string `toml:"password-file"`
	Require      string `toml:"require"`
	Issuer       string `toml:"issuer"`
	Subject      string `toml:"subject"`
	Cipher       string `toml:"cipher"`
}

// Relay is the [relay] section.
type Relay struct {
	Listen                 string `toml:"listen"`
	ServerID               uint32 `toml:"server-id"`
	DataDir                string `toml:"data-dir"`
	Sync                   string `toml:"sync"`
	Retain                 string `toml:"retain"`
	KeepForAbsentSlaves    string `toml:"keep-for-absent-slaves"`
	MinFreeSpace           string `toml:"min-free-space"`
	WaitWhenBehind         string `toml:"wait-when-behind"`
	SSLCA                  string `toml:"ssl-ca"`
	SSLCert                string `toml:"ssl-cert"`
	SSLKey                 string `toml:"ssl-key"`
	SSLCRL                 string `toml:"ssl-crl"`
	SSLCRLPath             string `toml:"ssl-crlpath"`
	RequireSecureTransport *bool  `toml:"require-secure-transport"`
	// KeyFile encrypts the relay log at rest with keys in MariaDB
	// file_key_management's format; KeyFileKeyFile is the password of an
	// encrypted one; KeyID is the key new files use.
	KeyFile        string      `toml:"key-file"`
	KeyFileKeyFile string      `toml:"key-file-key-file"`
	KeyID          uint32      `toml:"key-id"`
	Users          []RelayUser `toml:"users"`
}

// Config is the whole file.
type Config struct {
	Master  Master `toml:"master"`
	Relay   Relay  `toml:"relay"`
	Metrics struct {
		Listen string `toml:"listen"`
		// WebConfigFile is an exporter-toolkit web config (TLS, basic auth).
		WebConfigFile string `toml:"web-config-file"`
	} `toml:"metrics"`
	Log struct {
		Level  string `toml:"level"`
		Format string `toml:"format"`
	} `toml:"log"`

	File string `toml:"-"` // where it was read from
}

// Defaults returns the configuration before any file or flag.
func Defaults() *Config {
	c := &Config{}
	c.Master.Port = 3306
	c.Master.Start = "oldest"
	c.Master.ConnectTimeout = "10s"
	c.Master.FailoverWait = "10s"
	c.Master.HeartbeatPeriod = "1s"
	c.Relay.Listen = "127.0.0.1:3307"
	c.Relay.Sync = "transaction"
	c.Relay.Retain = "7d"
	c.Relay.KeepForAbsentSlaves = "24h"
	c.Relay.MinFreeSpace = "5%"
	c.Relay.WaitWhenBehind = "10m"
	c.Relay.KeyID = 1
	c.Metrics.Listen = "127.0.0.1:9105"
	c.Log.Level = "info"
	c.Log.Format = "text"
	return c
}

// LoadFile decodes a TOML file over c. Unknown keys are errors.
func (c *Config) LoadFile(name string) error {
	md, err := toml.DecodeFile(name, c)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return &Error{File: name, Err: fmt.Errorf("line %d: %s", pe.Position.Line, pe.Message)}
		}
		return &Error{File: name, Err: err}
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return &Error{File: name, Key: keys[0], Err: fmt.Errorf("unknown key (unknown: %s)", strings.Join(keys, ", "))}
	}
	c.File = name
	return nil
}

// Duration parses a duration key; "7d" style days are accepted.
func Duration(file, key, v string) (time.Duration, error) {
	t := strings.TrimSpace(v)
	// Whole seconds, as my.cnf and the mysql client take connect-timeout.
	if n, err := strconv.ParseUint(t, 10, 32); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	// As Prometheus takes them (1w, 7d, 1h30m, 500ms), then as Go does
	// (1.5s, 250us), then fractional days (1.5d).
	if d, err := model.ParseDuration(t); err == nil {
		return time.Duration(d), nil
	}
	if d, err := time.ParseDuration(t); err == nil && d >= 0 {
		return d, nil
	}
	if days, ok := strings.CutSuffix(t, "d"); ok {
		if n, err := strconv.ParseFloat(days, 64); err == nil && n >= 0 {
			return time.Duration(n * float64(24*time.Hour)), nil
		}
	}
	return 0, &Error{File: file, Key: key, Err: fmt.Errorf("%q is not a duration (like 10s, 500ms, 7d, 1w, or whole seconds)", v)}
}

// FreeSpace parses a free-space threshold: a share of the file system
// ("5%") or a size as Prometheus takes one (--storage.tsdb.retention.size:
// "20GiB", "512MB", "1.5GB", powers of 1024), with my.cnf's habits too: a
// bare number of bytes, or K, M, G, T without the B ("500M").
func FreeSpace(file, key, v string) (relay.FreeSpace, error) {
	bad := &Error{File: file, Key: key, Err: fmt.Errorf("%q is not a share of the disk or a size (like 5%%, 20GiB, 500MB, 500M)", v)}
	t := strings.TrimSpace(v)
	if p, ok := strings.CutSuffix(t, "%"); ok {
		n, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || n < 0 || n >= 100 {
			return relay.FreeSpace{}, bad
		}
		return relay.FreeSpace{Percent: n}, nil
	}
	if n, err := strconv.ParseUint(t, 10, 63); err == nil {
		return relay.FreeSpace{Bytes: n}, nil
	}
	if last := strings.ToUpper(t[len(t)-min(len(t), 1):]); strings.Contains("KMGTPE", last) && last != "" {
		t += "B" // my.cnf's 500M
	}
	n, err := units.ParseBase2Bytes(t)
	if err != nil || n < 0 {
		return relay.FreeSpace{}, bad
	}
	return relay.FreeSpace{Bytes: uint64(n)}, nil
}

// MasterPassword resolves the password: password-file, then password,
// then the REPLINK_MASTER_PASSWORD environment variable.
func (c *Config) MasterPassword() (string, error) {
	return password(c.File, "master.password-file", c.Master.PasswordFile, c.Master.Password, os.Getenv("REPLINK_MASTER_PASSWORD"))
}

func password(file, key, pwFile, pw, env string) (string, error) {
	if pwFile != "" {
		st, err := os.Stat(pwFile)
		if err != nil {
			return "", &Error{File: file, Key: key, Err: err}
		}
		if st.Mode().Perm()&0o007 != 0 {
			return "", &Error{File: file, Key: key, Err: fmt.Errorf("password file %s is readable by others (mode %04o); chmod 600 it", pwFile, st.Mode().Perm())}
		}
		data, err := os.ReadFile(pwFile)
		if err != nil {
			return "", &Error{File: file, Key: key, Err: err}
		}
		return strings.TrimRight(string(data), "\r\n"), nil
	}
	if pw != "" {
		return pw, nil
	}
	return env, nil
}

// UserPassword resolves a relay user's password.
func (c *Config) UserPassword(i int) (string, error) {
	u := c.Relay.Users[i]
	return password(c.File, fmt.Sprintf("relay.users[%d].password-file", i), u.PasswordFile, u.Password, "")
}

// TLSOptions are the master's TLS options by their C API names.
func (m Master) TLSOptions() tlsutil.ClientOptions {
	return tlsutil.ClientOptions{Mode: m.SSLMode, CA: m.SSLCA, CAPath: m.SSLCAPath, Cert: m.SSLCert, Key: m.SSLKey,
		Cipher: m.SSLCipher, CipherSuites: m.TLSCiphersuites, TLSVersion: m.TLSVersion, CRL: m.SSLCRL, CRLPath: m.SSLCRLPath}
}

// ReplicaConfig validates the [master] section and builds the replica
// configuration, loading the TLS material.
func (c *Config) ReplicaConfig() (replica.Config, error) { return c.replicaConfig(true) }

// ProbeConfig is ReplicaConfig for `replink diagnose`, which probes the
// master without registering: server-id may be left out (then the check
// that no replica of the master uses it is not made).
func (c *Config) ProbeConfig() (replica.Config, error) { return c.replicaConfig(false) }

func (c *Config) replicaConfig(needID bool) (replica.Config, error) {
	m := c.Master
	key := func(k string) string { return "master." + k }
	if m.Host == "" {
		return replica.Config{}, &Error{File: c.File, Key: key("host"), Err: errors.New("is required")}
	}
	if m.Port <= 0 || m.Port > 65535 {
		return replica.Config{}, &Error{File: c.File, Key: key("port"), Err: fmt.Errorf("%d is not a port", m.Port)}
	}
	if m.User == "" {
		return replica.Config{}, &Error{File: c.File, Key: key("user"), Err: errors.New("is required")}
	}
	if m.ServerID == 0 && needID {
		return replica.Config{}, &Error{File: c.File, Key: key("server-id"),
			Err: errors.New("is required: the id replink registers with the master, non-zero and unique among the master's replicas (a second replink with the same id knocks the first off the master)")}
	}
	start, err := replica.ParseStart(m.Start)
	if err != nil {
		return replica.Config{}, &Error{File: c.File, Key: key("start"), Err: err}
	}
	ct, err := Duration(c.File, key("connect-timeout"), m.ConnectTimeout)
	if err != nil {
		return replica.Config{}, err
	}
	hb, err := Duration(c.File, key("heartbeat-period"), m.HeartbeatPeriod)
	if err != nil {
		return replica.Config{}, err
	}
	if hb < 10*time.Millisecond || ct <= 0 {
		return replica.Config{}, &Error{File: c.File, Key: key("heartbeat-period"), Err: errors.New("heartbeat-period must be at least 10ms and connect-timeout positive")}
	}
	pw, err := c.MasterPassword()
	if err != nil {
		return replica.Config{}, err
	}
	tc, err := tlsutil.NewClient(m.TLSOptions())
	if err != nil {
		return replica.Config{}, &Error{File: c.File, Key: "master", Err: err}
	}
	if m.SemiSync {
		if policy, err := c.SyncPolicy(); err == nil && policy == binlog.SyncNone {
			return replica.Config{}, &Error{File: c.File, Key: key("semi-sync"), Err: errors.New("semi-sync acknowledges durable events; it needs relay.sync = \"event\" or \"transaction\"")}
		}
	}
	ep := replica.Endpoint{Host: m.Host, Port: m.Port, User: m.User, Password: pw, TLS: tc, ConnectTimeout: ct}
	wait, err := Duration(c.File, key("failover-wait"), m.FailoverWait)
	if err != nil {
		return replica.Config{}, err
	}
	if wait <= 0 {
		return replica.Config{}, &Error{File: c.File, Key: key("failover-wait"), Err: errors.New("must be positive")}
	}
	seen := map[string]bool{ep.Addr(): true}
	var candidates []replica.Endpoint
	for i, addr := range m.Candidates {
		k := fmt.Sprintf("%s[%d]", key("candidates"), i)
		host, portText, err := net.SplitHostPort(addr)
		if err != nil {
			return replica.Config{}, &Error{File: c.File, Key: k, Err: fmt.Errorf("%q: want host:port: %w", addr, err)}
		}
		port, err := strconv.Atoi(portText)
		if err != nil || port <= 0 || port > 65535 || host == "" {
			return replica.Config{}, &Error{File: c.File, Key: k, Err: fmt.Errorf("%q: want host:port with a port from 1 to 65535", addr)}
		}
		cand := ep
		cand.Host, cand.Port = host, port
		if seen[cand.Addr()] {
			return replica.Config{}, &Error{File: c.File, Key: k, Err: fmt.Errorf("%s is listed twice (host and candidates name each server once)", cand.Addr())}
		}
		seen[cand.Addr()] = true
		candidates = append(candidates, cand)
	}
	return replica.Config{
		Endpoint:        ep,
		ServerID:        m.ServerID,
		ReportPort:      listenPort(c.Relay.Listen),
		RelayEncrypted:  c.Relay.KeyFile != "",
		Start:           start,
		HeartbeatPeriod: hb,
		SemiSync:        m.SemiSync,
		Candidates:      candidates,
		FailoverWait:    wait,
	}, nil
}

// listenPort is the port of a host:port listen address, 0 when it has
// none (the relay's own check names the key).
func listenPort(addr string) uint16 {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return 0
	}
	return uint16(n)
}

// AtRest is the relay log's encryption at rest from [relay] key-file,
// key-file-key-file and key-id: nil when key-file is not set. The key
// files are read now; their errors name the key.
func (c *Config) AtRest() (*atrest.Sealer, error) {
	keys, err := c.AtRestKeys()
	if keys == nil || err != nil {
		return nil, err
	}
	s, err := atrest.NewSealer(keys, c.Relay.KeyID)
	if err != nil {
		return nil, &Error{File: c.File, Key: "relay.key-id", Err: fmt.Errorf("%w in %s", err, c.Relay.KeyFile)}
	}
	return s, nil
}

// AtRestKeys reads [relay] key-file (with key-file-key-file): nil when
// key-file is not set. Errors name the key at fault.
func (c *Config) AtRestKeys() (atrest.Keys, error) {
	r := c.Relay
	if r.KeyFile == "" {
		if r.KeyFileKeyFile != "" {
			return nil, &Error{File: c.File, Key: "relay.key-file-key-file", Err: errors.New("is set but relay.key-file is not")}
		}
		return nil, nil
	}
	keys, err := atrest.LoadKeys(r.KeyFile, r.KeyFileKeyFile)
	if err != nil {
		key := "relay.key-file"
		if r.KeyFileKeyFile != "" && (strings.Contains(err.Error(), r.KeyFileKeyFile) || errors.Is(err, atrest.ErrWrongFileKey) || errors.Is(err, atrest.ErrNotEncrypted)) {
			key = "relay.key-file-key-file"
		}
		return nil, &Error{File: c.File, Key: key, Err: err}
	}
	return keys, nil
}

// RelayLog validates the relay log's keys of [relay]: where it lives
// (data-dir) and when it is fsynced (sync).
func (c *Config) RelayLog() (dir string, policy binlog.SyncPolicy, err error) {
	if c.Relay.DataDir == "" {
		return "", "", &Error{File: c.File, Key: "relay.data-dir", Err: errors.New("is required")}
	}
	if policy, err = c.SyncPolicy(); err != nil {
		return "", "", err
	}
	return c.Relay.DataDir, policy, nil
}

// SyncPolicy is [relay] sync, checked.
func (c *Config) SyncPolicy() (binlog.SyncPolicy, error) {
	policy, err := binlog.ParseSyncPolicy(c.Relay.Sync)
	if err != nil {
		return "", &Error{File: c.File, Key: "relay.sync", Err: err}
	}
	return policy, nil
}

// RelayConfig validates the [relay] section and builds the relay server
// configuration, loading the TLS material.
func (c *Config) RelayConfig() (relay.Config, error) {
	r := c.Relay
	key := func(k string) string { return "relay." + k }
	host, _, err := net.SplitHostPort(r.Listen)
	if err != nil {
		return relay.Config{}, &Error{File: c.File, Key: key("listen"), Err: err}
	}
	id := r.ServerID
	if id == 0 {
		id = c.Master.ServerID
	}
	tlsSrv, err := tlsutil.NewServer(tlsutil.ServerOptions{CA: r.SSLCA, Cert: r.SSLCert, Key: r.SSLKey, CRL: r.SSLCRL, CRLPath: r.SSLCRLPath})
	if err != nil {
		return relay.Config{}, &Error{File: c.File, Key: "relay", Err: err}
	}
	// TLS is required by default when slaves can reach the port from
	// another host; on loopback it is the operator's choice.
	ip := net.ParseIP(host)
	requireSecure := !(host == "localhost" || ip != nil && ip.IsLoopback())
	if r.RequireSecureTransport != nil {
		requireSecure = *r.RequireSecureTransport
	}
	if requireSecure && tlsSrv == nil {
		return relay.Config{}, &Error{File: c.File, Key: key("require-secure-transport"),
			Err: fmt.Errorf("is on (the default for a non-loopback listen address %s) but relay.ssl-cert/ssl-key are not set", r.Listen)}
	}
	retain, err := Duration(c.File, key("retain"), r.Retain)
	if err != nil {
		return relay.Config{}, err
	}
	keepAbsent, err := Duration(c.File, key("keep-for-absent-slaves"), r.KeepForAbsentSlaves)
	if err != nil {
		return relay.Config{}, err
	}
	minFree, err := FreeSpace(c.File, key("min-free-space"), r.MinFreeSpace)
	if err != nil {
		return relay.Config{}, err
	}
	waitBehind, err := Duration(c.File, key("wait-when-behind"), r.WaitWhenBehind)
	if err != nil {
		return relay.Config{}, err
	}
	cfg := relay.Config{Listen: r.Listen, ServerID: id, TLS: tlsSrv, RequireSecureTransport: requireSecure, Retain: retain,
		KeepForAbsentSlaves: keepAbsent, MinFreeSpace: minFree, WaitWhenBehind: waitBehind}
	for i, u := range r.Users {
		k := fmt.Sprintf("relay.users[%d]", i)
		if u.Name == "" {
			return relay.Config{}, &Error{File: c.File, Key: k + ".name", Err: errors.New("is required")}
		}
		req, err := relay.ParseRequire(u.Require)
		if err != nil {
			return relay.Config{}, &Error{File: c.File, Key: k + ".require", Err: err}
		}
		if (u.Issuer != "" || u.Subject != "") && req != relay.RequireX509 {
			req = relay.RequireX509 // ISSUER/SUBJECT imply a certificate, as in MySQL
		}
		if req != relay.RequireNone && tlsSrv == nil {
			return relay.Config{}, &Error{File: c.File, Key: k + ".require", Err: fmt.Errorf("%s needs relay.ssl-cert and relay.ssl-key", req)}
		}
		pw, err := c.UserPassword(i)
		if err != nil {
			return relay.Config{}, err
		}
		if pw == "" {
			key := k + ".password"
			if u.PasswordFile != "" {
				key = k + ".password-file"
			}
			return relay.Config{}, &Error{File: c.File, Key: key, Err: fmt.Errorf("user %q has no password: an account without one is refused, as the relay log holds every row of the master", u.Name)}
		}
		cfg.Users = append(cfg.Users, relay.User{Name: u.Name, Password: pw, Require: req, Issuer: u.Issuer, Subject: u.Subject, Cipher: u.Cipher})
	}
	return cfg, nil
}
