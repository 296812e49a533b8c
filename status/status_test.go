package status

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/replink/replink/binlog"
	"github.com/replink/replink/relay"
	"github.com/replink/replink/replica"
	"github.com/replink/replink/tlsutil"
)

// fixture is a daemon's components as cmd/replink builds them, without a
// master: the replica is never run, the relay never listens.
type fixture struct {
	dir     string
	reg     *prometheus.Registry
	sources Sources
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	set, err := tlsutil.MakeCertSet(filepath.Join(t.TempDir(), "certs"), []string{"localhost", "127.0.0.1"}, 30, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	client, err := tlsutil.NewClient(tlsutil.ClientOptions{Mode: "VERIFY_IDENTITY", CA: set.CA, Cert: set.ClientCert, Key: set.ClientKey})
	if err != nil {
		t.Fatal(err)
	}
	server, err := tlsutil.NewServer(tlsutil.ServerOptions{CA: set.CA, Cert: set.ServerCert, Key: set.ServerKey})
	if err != nil {
		t.Fatal(err)
	}

	reg := prometheus.NewRegistry()
	tlsm := tlsutil.NewMetrics(reg)
	dir := filepath.Join(t.TempDir(), "relay")
	rlog, err := binlog.OpenLog(dir, binlog.SyncNone, hclog.NewNullLogger(), binlog.NewMetrics(reg))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rlog.Close() })
	if err := rlog.StartFile("mysql-bin.000007"); err != nil {
		t.Fatal(err)
	}

	rc := replica.Config{Endpoint: replica.Endpoint{Host: "127.0.0.1", Port: unusedPort(t), User: "repl", Password: "replpass",
		TLS: client, ConnectTimeout: time.Second}, ServerID: 4001}
	rep := replica.New(rc, rlog, hclog.NewNullLogger(), replica.NewMetrics(reg), tlsm)
	srv, err := relay.New(relay.Config{Listen: "127.0.0.1:0", ServerID: 4001, TLS: server}, rlog, hclog.NewNullLogger(), tlsm, relay.NewMetrics(reg))
	if err != nil {
		t.Fatal(err)
	}
	// The CA serves both links: it is listed by the client and the server.
	local := func() []tlsutil.CertInfo { return append(client.Certificates(), server.Certificates()...) }
	return &fixture{dir: dir, reg: reg,
		sources: Sources{Replica: rep, Relay: srv, Log: rlog, Local: local, Version: "1.2.3-test", Started: time.Now().Add(-90 * time.Second)}}
}

func unusedPort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// statusJSON is /status as a client reads it: only the field names of the
// external contract.
type statusJSON struct {
	Master struct {
		State string    `json:"state"`
		Since time.Time `json:"since"`
	} `json:"master"`
	Relay struct {
		DataDir  string   `json:"data_dir"`
		Position string   `json:"position"`
		Durable  string   `json:"durable"`
		Files    []string `json:"files"`
	} `json:"relay"`
	LagSec float64 `json:"lag_seconds"`
	Local  []struct {
		Role    string `json:"role"`
		Subject string `json:"subject"`
		SHA256  string `json:"sha256"`
	} `json:"local_certificates"`
	Replicas json.RawMessage `json:"replicas"`
	Version  string          `json:"version"`
	Uptime   string          `json:"uptime"`
}

func get(t *testing.T, h http.Handler, path string) (int, http.Header, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	b, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, rec.Result().Header, string(b)
}

func TestStatusDocument(t *testing.T) {
	f := newFixture(t)
	code, hdr, body := get(t, Handler(f.reg, f.sources), "/status")
	if code != 200 || hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("/status: %d %s", code, hdr.Get("Content-Type"))
	}
	var st statusJSON
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("/status: %v\n%s", err, body)
	}
	if st.Master.State != "connecting" || st.Master.Since.IsZero() {
		t.Errorf("master %+v, want connecting with a since time", st.Master)
	}
	if st.Relay.DataDir != f.dir || st.Relay.Position != "mysql-bin.000007:4" || st.Relay.Durable != "mysql-bin.000007:4" ||
		len(st.Relay.Files) != 1 || st.Relay.Files[0] != "mysql-bin.000007" {
		t.Errorf("relay %+v", st.Relay)
	}
	if string(st.Replicas) != "[]" {
		t.Errorf("replicas %s, want []", st.Replicas)
	}
	if st.Version != "1.2.3-test" || st.LagSec != 0 {
		t.Errorf("version %q, lag %v", st.Version, st.LagSec)
	}
	// client, CA and server: the CA both sides load is listed once.
	var roles []string
	seen := map[string]bool{}
	for _, c := range st.Local {
		roles = append(roles, c.Role)
		if c.SHA256 == "" || c.Subject == "" || seen[c.Role+c.SHA256] {
			t.Errorf("local certificate %+v (listed twice or without fingerprint)", c)
		}
		seen[c.Role+c.SHA256] = true
	}
	if strings.Join(roles, ",") != "client,ca,server" {
		t.Errorf("local certificate roles %v, want [client ca server]", roles)
	}
	if n := len(f.sources.Local()); n != 4 {
		t.Fatalf("the fixture lists %d certificates, want 4 (the CA twice)", n)
	}
}

func TestBuild(t *testing.T) {
	f := newFixture(t)
	now := f.sources.Started.Add(90 * time.Second)
	d := f.sources.Build(now)
	if d.Uptime != "1m30s" || !d.Now.Equal(now) {
		t.Errorf("uptime %q, now %v", d.Uptime, d.Now)
	}

	// Without a relay server (nil) and without local certificates.
	s := f.sources
	s.Relay, s.Local = nil, nil
	d = s.Build(now)
	if d.Slaves == nil || len(d.Slaves) != 0 || d.Local != nil {
		t.Errorf("slaves %#v, local %#v", d.Slaves, d.Local)
	}
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"replicas":[]`) {
		t.Errorf("replicas not an empty list: %s", b)
	}
}

func TestProbes(t *testing.T) {
	f := newFixture(t)
	h := Handler(f.reg, f.sources)
	for _, c := range []struct {
		path string
		code int
		body string
	}{
		{"/healthz", 200, "ok\n"},
		{"/readyz", 503, ": connecting for "},
		{"/metrics", 200, "replink_master_up 0"},
		{"/metrics", 200, "replink_replicas_connected 0"},
		{"/", 200, "replink: connecting"},
		{"/nothing-here", 404, "not found"},
	} {
		code, _, body := get(t, h, c.path)
		if code != c.code || !strings.Contains(body, c.body) {
			t.Errorf("%s: %d %q, want %d with %q", c.path, code, body, c.code, c.body)
		}
	}
}

func TestWriteText(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	since := now.Add(-90 * time.Second)
	notAfter := now.Add(30 * 24 * time.Hour)
	relayPart := Relay{Position: "mysql-bin.000007:1234", Durable: "mysql-bin.000007:1000"}
	for _, c := range []struct {
		name  string
		doc   Doc
		lines []string
	}{
		{"connecting", Doc{Master: replica.Status{State: "connecting", Since: since}, Relay: relayPart, Slaves: []relay.SlaveStatus{},
			Local: []tlsutil.CertInfo{{Role: "client", Subject: "/CN=replink client", NotAfter: notAfter}, {Role: "ca", Subject: "/CN=replink CA", NotAfter: notAfter}}},
			[]string{
				"master:     connecting since 2026-11-30T11:58:30Z (1m30s)",
				"position:   mysql-bin.000007:1234 (durable mysql-bin.000007:1000)",
				"lag:        0.0s",
				"reconnects: 0",
				"slaves:     0",
				"local client /CN=replink client expires 2026-12-30 (30 days)",
				"local ca     /CN=replink CA expires 2026-12-30 (30 days)",
			}},
		{"streaming over TLS with a slave and a past failure", Doc{
			Master: replica.Status{State: "streaming", Since: since, ServerVersion: "10.11.19-MariaDB", Flavor: "mariadb", TLSVersion: "TLSv1.3",
				Cipher: "TLS_AES_128_GCM_SHA256", Reconnects: 2, LastError: "dial tcp: connection refused", LastReason: tlsutil.ReasonConnectionRefused,
				PeerChain: []tlsutil.CertInfo{{Subject: "/CN=db1", Issuer: "/CN=replink CA", NotAfter: notAfter}},
				Failures:  []replica.FailureRecord{{Time: since, Reason: tlsutil.ReasonConnectionRefused, Error: "dial tcp: connection refused", Hint: "check the port"}}},
			Relay: relayPart, LagSec: 1.5,
			Slaves: []relay.SlaveStatus{{ServerID: 7, User: "slave", Peer: "10.0.0.7:40000", Position: "mysql-bin.000007:1000", LagBytes: 234, TLS: "TLSv1.3"}},
			Away: []relay.RememberedStatus{{ServerID: 9, User: "slave", Peer: "10.0.0.9:40000", Position: "mysql-bin.000005:400", LagBytes: 5000,
				AwaySince: since, KeptUntil: since.Add(24 * time.Hour)}}},
			[]string{
				"master:     streaming since 2026-11-30T11:58:30Z (1m30s)",
				"server:     10.11.19-MariaDB (mariadb)",
				"tls:        TLSv1.3 TLS_AES_128_GCM_SHA256",
				"  cert[0]   /CN=db1  issuer /CN=replink CA  expires 2026-12-30 (30 days)",
				"lag:        1.5s",
				"reconnects: 2",
				"last error: dial tcp: connection refused (reason connection_refused)",
				"  2026-11-30T11:58:30Z connection_refused: dial tcp: connection refused",
				"    fix: check the port",
				"slaves:     1",
				"  server_id 7  slave  10.0.0.7:40000  at mysql-bin.000007:1000  234 bytes behind  tls TLSv1.3",
				"  server_id 9  slave  10.0.0.9:40000  away since 2026-11-30T11:58:30Z  at mysql-bin.000005:400  5000 bytes behind  kept until 2026-12-01T11:58:30Z",
			}},
		{"streaming in plaintext", Doc{Master: replica.Status{State: "streaming", Since: since}, Relay: relayPart},
			[]string{"tls:        none (plaintext)"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var b strings.Builder
			WriteText(&b, c.doc, now)
			got := strings.Split(b.String(), "\n")
			for _, want := range c.lines {
				found := false
				for _, l := range got {
					found = found || l == want
				}
				if !found {
					t.Errorf("no line %q in:\n%s", want, b.String())
				}
			}
		})
	}
}
