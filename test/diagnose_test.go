package test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"

	"github.com/replink/replink/diagnose"
	"github.com/replink/replink/replica"
	"github.com/replink/replink/tlsutil"
)

func TestDiagnose(t *testing.T) {
	p := NewPKI(t)
	m := StartSSLServer(t, "diag", p, 1)
	m.SetupReplUsers()
	m.Exec("CREATE USER 'noprivs'@'%' IDENTIFIED BY 'replpass'")
	plain := StartServer(t, "diagplain", ServerOptions{ServerID: 2})
	cfg := func(port int, user string, o tlsutil.ClientOptions) replica.Config {
		c, err := tlsutil.NewClient(o)
		if err != nil {
			t.Fatal(err)
		}
		return replica.Config{Endpoint: replica.Endpoint{Host: "127.0.0.1", Port: port, User: user, Password: "replpass", TLS: c, ConnectTimeout: 5 * time.Second}, ServerID: 4001}
	}
	verify := tlsutil.ClientOptions{Mode: "VERIFY_IDENTITY", CA: p.CAFile}
	cases := []struct {
		name      string
		cert, key string
		cfg       replica.Config
		ok        bool
		failStep  string
		reason    tlsutil.Reason
		hintPart  string
	}{
		{"healthy", p.ServerCert, p.ServerKey, cfg(m.Port, "repl", verify), true, "", "", ""},
		{"cn-only cert", p.CNOnlyCert, p.CNOnlyKey, cfg(m.Port, "repl", verify), false, "verification", tlsutil.ReasonCNOnlyCert, "VERIFY_CA"},
		{"expired cert", p.ExpiredCert, p.ExpiredKey, cfg(m.Port, "repl", verify), false, "verification", tlsutil.ReasonCertExpired, "renew"},
		{"no replication privilege", p.ServerCert, p.ServerKey, cfg(m.Port, "noprivs", verify), false, "replication_privilege", tlsutil.ReasonAccessDenied, "GRANT REPLICATION SLAVE"},
		{"wrong password", p.ServerCert, p.ServerKey, func() replica.Config { c := cfg(m.Port, "repl", verify); c.Password = "nope"; return c }(), false, "authentication", tlsutil.ReasonAccessDenied, ""},
		{"server without ssl", "", "", cfg(plain.Port, "repl", verify), false, "ssl_request", tlsutil.ReasonServerNoSSL, "enable TLS"},
		{"nothing listening", "", "", cfg(FreePort(t), "repl", verify), false, "tcp_connect", tlsutil.ReasonConnectionRefused, ""},
		{"same server_id", p.ServerCert, p.ServerKey, func() replica.Config { c := cfg(m.Port, "repl", verify); c.ServerID = 1; return c }(), false, "server_id", "other", "server-id"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.cert != "" {
				m.InstallCert(c.cert, c.key)
			}
			rep := diagnose.Run(context.Background(), c.cfg)
			var b strings.Builder
			rep.WriteText(&b)
			t.Log("\n" + b.String())
			if rep.OK != c.ok {
				t.Fatalf("ok = %v, want %v", rep.OK, c.ok)
			}
			if c.ok {
				if rep.TLS.Version == "" || len(rep.TLS.PeerChain) == 0 {
					t.Fatalf("no TLS details in a healthy report: %+v", rep.TLS)
				}
				return
			}
			var failed *diagnose.Step
			for i := range rep.Steps {
				if !rep.Steps[i].OK {
					failed = &rep.Steps[i]
					break
				}
			}
			if failed == nil || failed.Step != c.failStep || failed.Reason != c.reason {
				t.Fatalf("first failed step %+v, want %s with reason %s", failed, c.failStep, c.reason)
			}
			if !strings.Contains(failed.Hint, c.hintPart) {
				t.Fatalf("hint %q does not mention %q", failed.Hint, c.hintPart)
			}
			// The detail says what failed in replink's words, not go-mysql's.
			for _, internal := range []string{"readInitialHandshake", "writeAuthHandshake", "handleAuthResult", "readAuthResult", "ReadPacket"} {
				if strings.Contains(failed.Detail, internal) {
					t.Fatalf("detail %q names go-mysql's %s", failed.Detail, internal)
				}
			}
		})
	}

	// Plaintext or an unchecked server certificate passes, as a warning.
	t.Run("warnings", func(t *testing.T) {
		m.InstallCert(p.ServerCert, p.ServerKey)
		plain.SetupReplUsers()
		for _, c := range []struct {
			name string
			cfg  replica.Config
			step string
		}{
			{"REQUIRED", cfg(m.Port, "repl", tlsutil.ClientOptions{Mode: "REQUIRED"}), "verification"},
			{"DISABLED", cfg(m.Port, "repl", tlsutil.ClientOptions{Mode: "DISABLED"}), "ssl_request"},
			{"PREFERRED without SSL", cfg(plain.Port, "repl", tlsutil.ClientOptions{Mode: "PREFERRED"}), "ssl_request"},
		} {
			rep := diagnose.Run(context.Background(), c.cfg)
			var b strings.Builder
			rep.WriteText(&b)
			t.Logf("%s:\n%s", c.name, b.String())
			if !rep.OK {
				t.Fatalf("%s: a warning failed the report", c.name)
			}
			var warned []string
			for _, s := range rep.Steps {
				if s.Warning {
					warned = append(warned, s.Step)
				}
			}
			if len(warned) != 1 || warned[0] != c.step || !strings.Contains(b.String(), "[warn] "+c.step) {
				t.Fatalf("%s: warning steps %v, want [%s]", c.name, warned, c.step)
			}
		}
	})
}

// TestDiagnoseServerIDInUse: a replica registered with replink's
// server-id under another name (another host, or this host with another
// relay port: a second replink here) fails the server_id step, naming it;
// one under replink's own name (replink itself) does not. A user who may
// not list the master's replicas gets a warning, not an ok.
func TestDiagnoseServerIDInUse(t *testing.T) {
	p, m := newMaster(t)
	tc, err := tlsutil.NewClient(tlsutil.ClientOptions{Mode: "VERIFY_IDENTITY", CA: p.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	cfg := replica.Config{Endpoint: replica.Endpoint{Host: "127.0.0.1", Port: m.Port, User: "repl", Password: "replpass", TLS: tc, ConnectTimeout: 5 * time.Second}, ServerID: 4001, ReportPort: 3307}
	register := func(host string, port uint16) *client.Conn {
		c, err := client.Connect(m.Addr(), "repl", "replpass", "")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		pkt := []byte{0, 0, 0, 0, 0x15, 0xa1, 0x0f, 0, 0, byte(len(host))} // COM_REGISTER_SLAVE, server-id 4001
		pkt = append(pkt, host...)
		pkt = append(pkt, 0, 0, byte(port), byte(port>>8), 0, 0, 0, 0, 0, 0, 0, 0) // user, password, port, rank, master id
		c.ResetSequence()
		if err := c.WritePacket(pkt); err != nil {
			t.Fatal(err)
		}
		if _, err := c.ReadOKPacket(); err != nil {
			t.Fatal(err)
		}
		return c
	}
	self := replica.ReportHost()
	m.Exec("CREATE USER 'replonly'@'%' IDENTIFIED BY 'replpass'", "GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'replonly'@'%'")
	limited := cfg
	limited.User = "replonly"
	for _, c := range []struct {
		host     string
		port     uint16
		cfg      replica.Config
		ok, warn bool
	}{
		{self, 3307, cfg, true, false},
		{"db-replica-7", 3307, cfg, false, false},
		{self, 3308, cfg, false, false},
		{"db-replica-7", 3307, limited, true, true},
	} {
		conn := register(c.host, c.port)
		rep := diagnose.Run(context.Background(), c.cfg)
		var step diagnose.Step
		for _, s := range rep.Steps {
			if s.Step == "server_id" {
				step = s
			}
		}
		t.Logf("registered from %s:%d, diagnosed as %s: server_id step %+v", c.host, c.port, c.cfg.User, step)
		if step.OK != c.ok || step.Warning != c.warn || (!c.ok && (!strings.Contains(step.Detail, c.host) || !strings.Contains(step.Hint, "own server-id"))) ||
			(c.warn && !strings.Contains(step.Hint, "REPLICATION MASTER ADMIN")) {
			t.Fatalf("replica on %s:%d registered with 4001, diagnosed as %s: step %+v", c.host, c.port, c.cfg.User, step)
		}
		conn.Close()
		waitUntil(t, 10*time.Second, func() bool { return len(m.Query("SHOW SLAVE HOSTS")) == 0 })
	}
}
