package test

import (
	"context"
	"strings"
	"testing"
	"time"

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
		})
	}
}
