package test

import (
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/replink/replink/tlsutil"
)

// certDir holds TLS files laid out as an operator or Kubernetes lays
// them out, and replaces them under a running replink.
type certDir struct {
	t      *testing.T
	dir    string
	secret bool // a Secret volume: name -> ..data/name, ..data -> ..N/, files 0440
	files  map[string][]byte
	n      int
}

func newCertDir(t *testing.T, secret bool, files map[string][]byte) *certDir {
	t.Helper()
	c := &certDir{t: t, dir: t.TempDir(), secret: secret, files: map[string][]byte{}}
	c.install(files)
	return c
}

func (c *certDir) path(name string) string { return filepath.Join(c.dir, name) }

// install replaces files. A plain directory gets each new file written
// beside the old and renamed over it, one at a time; a Secret gets a new
// ..N directory with all its files and its ..data symlink swapped to it
// at once, as the kubelet updates a Secret volume.
func (c *certDir) install(files map[string][]byte) {
	c.t.Helper()
	must := func(err error) {
		c.t.Helper()
		if err != nil {
			c.t.Fatal(err)
		}
	}
	maps.Copy(c.files, files)
	if !c.secret {
		for _, name := range slices.Sorted(maps.Keys(files)) {
			mode := os.FileMode(0o644)
			if strings.HasSuffix(name, ".key") {
				mode = 0o600
			}
			tmp := c.path("." + name + ".tmp")
			must(os.WriteFile(tmp, files[name], mode))
			must(os.Rename(tmp, c.path(name)))
		}
		return
	}
	c.n++
	gen := fmt.Sprintf("..2026_12_05_00_00_00.%09d", c.n)
	must(os.Mkdir(c.path(gen), 0o755))
	for name, data := range c.files {
		must(os.WriteFile(filepath.Join(c.path(gen), name), data, 0o440))
		must(os.Chmod(filepath.Join(c.path(gen), name), 0o440))
		if _, err := os.Lstat(c.path(name)); err != nil {
			must(os.Symlink(filepath.Join("..data", name), c.path(name)))
		}
	}
	old, _ := os.Readlink(c.path("..data"))
	must(os.Symlink(gen, c.path("..data_tmp")))
	must(os.Rename(c.path("..data_tmp"), c.path("..data")))
	if old != "" {
		must(os.RemoveAll(c.path(old)))
	}
}

// localSerials reads /status and returns the serial of replink's own
// certificate of each role (client, server).
func localSerials(t *testing.T, r *Replink) map[string]string {
	t.Helper()
	resp, err := http.Get("http://" + r.MetricsAddr + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Local []struct {
			Role   string `json:"role"`
			Serial string `json:"serial"`
		} `json:"local_certificates"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, c := range doc.Local {
		if c.Role != "ca" {
			out[c.Role] = c.Serial
		}
	}
	return out
}

func serialOf(is *tlsutil.Issued) string { return strings.ToUpper(is.Cert.SerialNumber.Text(16)) }

// dumpThreads are the ids of the master's Binlog Dump connections.
func dumpThreads(m *Server) []string {
	var ids []string
	for _, row := range m.Query("SELECT id FROM information_schema.processlist WHERE command = 'Binlog Dump' ORDER BY id") {
		ids = append(ids, row[0])
	}
	return ids
}

// slavePeers are the relay's dumping slaves, server id and peer address.
func slavePeers(r *Replink) []string {
	var out []string
	for _, s := range r.Relay.Slaves() {
		out = append(out, fmt.Sprintf("%d@%s", s.ServerID, s.Peer))
	}
	slices.Sort(out)
	return out
}

func issueServer(t *testing.T, p *PKI) *tlsutil.Issued {
	t.Helper()
	now := time.Now()
	is, err := p.CA.Issue(tlsutil.CertSpec{Subject: pkix.Name{Organization: []string{"replink-test"}, CommonName: "localhost"},
		Hosts: []string{"localhost", "127.0.0.1", "::1"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(90 * 24 * time.Hour).Truncate(time.Second), Server: true})
	if err != nil {
		t.Fatal(err)
	}
	return is
}

// TestRenewedCertificatesAreReloaded: the relay's server certificate and
// the client certificate replink presents to the master are renewed by
// replacing their files under a running replink — renamed over, and as
// Kubernetes updates a Secret volume (a new ..N directory, ..data swapped
// to it). Without SIGHUP replink loads them: /status shows the new
// serials, the reload is counted, the master link (its dump thread) and
// the connected slave (its connection) stay as they were and go on
// replicating, a new slave connection gets the new server certificate,
// and a new connection to the master presents the new client certificate
// (the master's account then requires its subject).
func TestRenewedCertificatesAreReloaded(t *testing.T) {
	for _, layout := range []struct {
		name   string
		secret bool
	}{{"renamed over", false}, {"kubernetes secret volume", true}} {
		t.Run(layout.name, func(t *testing.T) {
			p, m := newMaster(t)
			m.Exec(fmt.Sprintf("ALTER USER 'replx'@'%%' REQUIRE SUBJECT '%s'", ClientSubject))
			read := func(name string) []byte {
				b, err := os.ReadFile(name)
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
			ca := read(p.CAFile)
			srv := newCertDir(t, layout.secret, map[string][]byte{"ca.crt": ca, "tls.crt": read(p.ServerCert), "tls.key": read(p.ServerKey)})
			cli := newCertDir(t, layout.secret, map[string][]byte{"ca.crt": ca, "tls.crt": read(p.ClientCert), "tls.key": read(p.ClientKey)})
			r := StartReplink(t, p, m.Port, ReplinkOptions{Users: slaveUsers(), MasterUser: "replx", MasterCert: cli.path("tls.crt"), MasterKey: cli.path("tls.key"),
				ServerCert: srv.path("tls.crt"), ServerKey: srv.path("tls.key"), CertWatch: 200 * time.Millisecond})
			metric := func(name string, labels map[string]string) float64 { return counterValue(t, r.Reg, name, labels) }
			waitUntil(t, 20*time.Second, func() bool { return metric("replink_master_up", nil) == 1 })
			m.Exec("CREATE DATABASE IF NOT EXISTS app", "CREATE TABLE app.t (id INT PRIMARY KEY)", "INSERT INTO app.t VALUES (1)")
			slave := startSlave(t, p, r.Port)
			waitSlaveCaughtUp(t, m, slave, 30*time.Second)
			dumps, peers := dumpThreads(m), slavePeers(r)
			if len(dumps) != 1 || len(peers) != 1 {
				t.Fatalf("master dump threads %v, relay slaves %v; want one each", dumps, peers)
			}
			stillConnected := func(step string, rows int) {
				t.Helper()
				m.Exec(fmt.Sprintf("INSERT INTO app.t VALUES (%d)", rows))
				waitSlaveCaughtUp(t, m, slave, 30*time.Second)
				if got := metric("replink_master_reconnects_total", nil); got != 0 {
					t.Errorf("%s: replink_master_reconnects_total %v, want 0", step, got)
				}
				if got := dumpThreads(m); !slices.Equal(got, dumps) {
					t.Errorf("%s: the master's dump threads are %v, were %v: the master link was redone", step, got, dumps)
				}
				if got := slavePeers(r); !slices.Equal(got, peers) {
					t.Errorf("%s: the relay's slaves are %v, were %v: the slave reconnected", step, got, peers)
				}
			}

			// The relay's server certificate.
			oldServer := localSerials(t, r)["server"]
			renewed := issueServer(t, p)
			srv.install(map[string][]byte{"tls.crt": renewed.CertPEM, "tls.key": renewed.KeyPEM})
			waitUntil(t, 10*time.Second, func() bool { return localSerials(t, r)["server"] == serialOf(renewed) })
			if ok, failed := metric("replink_cert_reloads_total", map[string]string{"result": "ok"}), metric("replink_cert_reloads_total", map[string]string{"result": "failed"}); ok != 1 || failed != 0 {
				t.Errorf("after the server certificate: reloads ok %v failed %v, want 1 and 0 (was %s)", ok, failed, oldServer)
			}
			stillConnected("server certificate renewed", 2)
			if got := relayServerSerial(t, p, r.Port); got != renewed.Cert.SerialNumber.String() {
				t.Errorf("a new slave connection got serial %s, want the renewed %s", got, renewed.Cert.SerialNumber)
			}

			// The client certificate toward the master, reissued with a new subject.
			now := time.Now()
			client, err := p.CA.Issue(tlsutil.CertSpec{Subject: pkix.Name{Organization: []string{"replink-test"}, CommonName: "repl-client-renewed"},
				NotBefore: now.Add(-time.Hour), NotAfter: now.Add(90 * 24 * time.Hour), Client: true})
			if err != nil {
				t.Fatal(err)
			}
			cli.install(map[string][]byte{"tls.crt": client.CertPEM, "tls.key": client.KeyPEM})
			waitUntil(t, 10*time.Second, func() bool { return localSerials(t, r)["client"] == serialOf(client) })
			if ok := metric("replink_cert_reloads_total", map[string]string{"result": "ok"}); ok != 2 {
				t.Errorf("after the client certificate: reloads ok %v, want 2", ok)
			}
			stillConnected("client certificate renewed", 3)
			m.Exec(fmt.Sprintf("ALTER USER 'replx'@'%%' REQUIRE SUBJECT '%s'", tlsutil.OneLine(client.Cert.RawSubject)))
			m.Exec("KILL CONNECTION " + dumps[0])
			waitUntil(t, 30*time.Second, func() bool {
				d := dumpThreads(m)
				return len(d) == 1 && d[0] != dumps[0] && metric("replink_master_up", nil) == 1
			})
			m.Exec("INSERT INTO app.t VALUES (4)")
			waitSlaveCaughtUp(t, m, slave, 30*time.Second)
			if denied := metric("replink_tls_handshake_failures_total", map[string]string{"link": "master", "reason": "access_denied"}); denied != 0 {
				t.Errorf("%v access_denied failures toward the master: the old client certificate was presented", denied)
			}
			if !strings.Contains(r.Logs(), "certificates reloaded") || !strings.Contains(r.Logs(), "tls.crt") {
				t.Errorf("the log does not say which files changed:\n%s", r.Logs())
			}
		})
	}
}

// TestHalfWrittenCertificatePairIsRetried: a new certificate arrives
// before its key. The reload fails once (counted once, logged once, not
// again on every poll), the old pair stays in use, and when the key
// arrives the new pair is loaded.
func TestHalfWrittenCertificatePairIsRetried(t *testing.T) {
	p, m := newMaster(t)
	read := func(name string) []byte {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	srv := newCertDir(t, false, map[string][]byte{"tls.crt": read(p.ServerCert), "tls.key": read(p.ServerKey)})
	r := StartReplink(t, p, m.Port, ReplinkOptions{Users: slaveUsers(), ServerCert: srv.path("tls.crt"), ServerKey: srv.path("tls.key"), CertWatch: 100 * time.Millisecond})
	metric := func(name string, labels map[string]string) float64 { return counterValue(t, r.Reg, name, labels) }
	reloads := func(result string) float64 {
		return metric("replink_cert_reloads_total", map[string]string{"result": result})
	}
	waitUntil(t, 20*time.Second, func() bool { return metric("replink_master_up", nil) == 1 })
	oldSerial := relayServerSerial(t, p, r.Port)

	renewed := issueServer(t, p)
	srv.install(map[string][]byte{"tls.crt": renewed.CertPEM}) // the key is not there yet
	waitUntil(t, 10*time.Second, func() bool { return reloads("failed") >= 1 })
	time.Sleep(time.Second) // ten more polls of the same files
	if f, ok, last := reloads("failed"), reloads("ok"), metric("replink_config_last_reload_successful", nil); f != 1 || ok != 0 || last != 0 {
		t.Fatalf("with the new certificate and the old key: reloads failed %v ok %v, last successful %v; want 1, 0, 0", f, ok, last)
	}
	if n := strings.Count(r.Logs(), "certificate reload failed"); n != 1 {
		t.Fatalf("the failed reload was logged %d times, want once:\n%s", n, r.Logs())
	}
	if got := relayServerSerial(t, p, r.Port); got != oldSerial {
		t.Fatalf("after the failed reload the relay presents %s, want the old %s", got, oldSerial)
	}
	if metric("replink_master_up", nil) != 1 || metric("replink_master_reconnects_total", nil) != 0 {
		t.Fatal("the master link did not stay up through the failed reload")
	}

	srv.install(map[string][]byte{"tls.key": renewed.KeyPEM})
	waitUntil(t, 10*time.Second, func() bool { return reloads("ok") == 1 })
	if got := relayServerSerial(t, p, r.Port); got != renewed.Cert.SerialNumber.String() {
		t.Fatalf("after the key arrived the relay presents %s, want the renewed %s", got, renewed.Cert.SerialNumber)
	}
	if f, last := reloads("failed"), metric("replink_config_last_reload_successful", nil); f != 1 || last != 1 {
		t.Fatalf("after the key arrived: reloads failed %v, last successful %v; want 1 and 1", f, last)
	}
}

// TestSecretVolumeKeyAccepted: replink, the binary, runs with its relay
// key in a Kubernetes Secret volume (root-owned there, group-readable
// through fsGroup: 0440 here, reached through ..data); a key others can
// read is still refused, with exit 2 naming the file and the fix.
func TestSecretVolumeKeyAccepted(t *testing.T) {
	p, m := newMaster(t)
	read := func(name string) []byte {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	sec := newCertDir(t, true, map[string][]byte{"ca.crt": read(p.CAFile), "tls.crt": read(p.ServerCert), "tls.key": read(p.ServerKey)})
	relayPort, metricsPort := FreePort(t), FreePort(t)
	conf := WriteReplinkConfig(t, p, m.Port, relayPort, metricsPort, t.TempDir())
	data := strings.NewReplacer(fmt.Sprintf("ssl-cert = %q", p.ServerCert), fmt.Sprintf("ssl-cert = %q", sec.path("tls.crt")),
		fmt.Sprintf("ssl-key = %q", p.ServerKey), fmt.Sprintf("ssl-key = %q", sec.path("tls.key"))).Replace(string(read(conf)))
	if !strings.Contains(data, sec.path("tls.key")) {
		t.Fatalf("the config does not name the Secret's key:\n%s", data)
	}
	if err := os.WriteFile(conf, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	proc := StartProcess(t, conf, filepath.Join(t.TempDir(), "replink.log"))
	waitReady(t, metricsPort)
	if got := relayServerSerial(t, p, relayPort); got == "" {
		t.Fatal("no certificate on the relay port")
	}
	proc.Signal(syscall.SIGTERM)
	proc.Wait(20 * time.Second)

	target, err := filepath.EvalSymlinks(sec.path("tls.key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(target, 0o444); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(ReplinkBinary(t), "run", "-c", conf).CombinedOutput()
	code := -1
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	}
	if code != 2 || !strings.Contains(string(out), sec.path("tls.key")) || !strings.Contains(string(out), "chmod 600") ||
		!strings.Contains(string(out), "accessible by others (mode 0444)") {
		t.Fatalf("a world-readable key: exit %d (%v), want 2 naming the file and chmod:\n%s", code, err, out)
	}
}

// TestMasterCAAddedWithoutSIGHUP: the master moves to a certificate from
// a new CA and replink's handshakes fail with unknown_ca; once the new CA
// is added to replink's ssl-ca file, replink, the binary with its default
// watch interval, reloads it by itself and the link comes back, no SIGHUP.
func TestMasterCAAddedWithoutSIGHUP(t *testing.T) {
	p, m := newMaster(t)
	relayPort, metricsPort := FreePort(t), FreePort(t)
	proc := StartProcess(t, WriteReplinkConfig(t, p, m.Port, relayPort, metricsPort, t.TempDir()), filepath.Join(t.TempDir(), "replink.log"))
	metric := func(name string, labels map[string]string) float64 {
		return counterValue(t, scrapeMetrics(t, metricsPort), name, labels)
	}
	waitReady(t, metricsPort)

	newCA, _, certFile, keyFile := newCAMasterCert(t)
	m.InstallCert(certFile, keyFile)
	for _, id := range dumpThreads(m) {
		m.Exec("KILL CONNECTION " + id)
	}
	waitUntil(t, 20*time.Second, func() bool {
		return metric("replink_tls_handshake_failures_total", map[string]string{"link": "master", "reason": "unknown_ca"}) >= 1
	})

	old, err := os.ReadFile(p.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	replaceFile(t, p.CAFile, append(old, newCA.CertPEM...), 0o644)
	waitUntil(t, 30*time.Second, func() bool { return metric("replink_master_up", nil) == 1 })
	if ok := metric("replink_cert_reloads_total", map[string]string{"result": "ok"}); ok != 1 {
		t.Errorf("reloads ok %v, want 1", ok)
	}
	proc.Signal(syscall.SIGTERM)
	proc.Wait(20 * time.Second)
	log, _ := os.ReadFile(proc.LogFile)
	if !strings.Contains(string(log), "certificates reloaded") || !strings.Contains(string(log), "trigger=\"files changed\"") ||
		!strings.Contains(string(log), "master ssl-ca "+p.CAFile) {
		t.Fatalf("the log does not say the CA file changed:\n%s", tail(log, 3000))
	}
}
