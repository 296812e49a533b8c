package test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/replink/replink/replica"
	"github.com/replink/replink/tlsutil"
)

// mariadbClient runs the mariadb command-line client against replink's
// relay with args and returns its output; it is expected to be refused.
func mariadbClient(t *testing.T, port int, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	base := []string{"--no-defaults", "-h", "127.0.0.1", "-P", fmt.Sprint(port), "--connect-timeout=5", "-e", "SELECT 1"}
	out, err := exec.CommandContext(ctx, binPath("mariadb"), append(base, args...)...).CombinedOutput()
	if err == nil {
		t.Fatalf("mariadb %v logged in: %s", args, out)
	}
	return string(out)
}

// TestRefusalsOnStatus: three slaves refused by replink (a wrong password
// and an unknown user over TLS, an X509 account without a certificate)
// are listed on /status and the status page with peer, user and reason
// (the page said "None since start"); a real mariadbd slave with a wrong
// password, whose TLS handshakes all succeed, counts under
// replink_relay_connections_rejected_total{reason="auth"} and never
// under replink_tls_handshake_failures_total (it was access_denied there).
func TestRefusalsOnStatus(t *testing.T) {
	p, m := newMaster(t)
	r := StartReplink(t, p, m.Port, ReplinkOptions{Users: slaveUsers()})
	tlsArgs := []string{"--ssl", "--ssl-ca=" + p.CAFile, "--ssl-verify-server-cert"}
	cert := []string{"--ssl-cert=" + p.ClientCert, "--ssl-key=" + p.ClientKey}
	for _, c := range []struct {
		args []string
		want string
	}{
		{append(append([]string{"-u", "slave1", "-pwrongpass"}, tlsArgs...), cert...), "1045"},
		{append(append([]string{"-u", "intruder", "-pslavepass"}, tlsArgs...), cert...), "1045"},
		{append([]string{"-u", "slave1", "-pslavepass"}, tlsArgs...), "1045"},
	} {
		if out := mariadbClient(t, r.Port, c.args...); !strings.Contains(out, c.want) {
			t.Fatalf("mariadb %v: %q, want %s", c.args, out, c.want)
		}
	}

	get := func(path string) (string, string) {
		t.Helper()
		resp, err := http.Get("http://" + r.MetricsAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b), resp.Header.Get("Content-Type")
	}
	body, _ := get("/status")
	var doc struct {
		Refusals []struct {
			Time    time.Time `json:"time"`
			Peer    string    `json:"peer"`
			User    string    `json:"user"`
			Reason  string    `json:"reason"`
			Message string    `json:"message"`
		} `json:"recent_refusals"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, x := range doc.Refusals {
		got = append(got, x.User+" "+x.Reason)
		if !strings.HasPrefix(x.Peer, "127.0.0.1:") || x.Message == "" || time.Since(x.Time) > time.Minute {
			t.Errorf("refusal %+v: want the peer, a message and the time", x)
		}
	}
	// Newest first.
	if want := []string{"slave1 require", "intruder auth", "slave1 auth"}; strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Fatalf("/status recent_refusals %q, want %q", got, want)
	}
	page, _ := get("/")
	for _, want := range []string{"Recent refusals (3)", "intruder", "require", "wrong password or unknown user", "client certificate"} {
		if !strings.Contains(page, want) {
			t.Errorf("the status page does not show %q", want)
		}
	}

	// A real slave with a wrong password retries every second.
	auth := map[string]string{"reason": "auth"}
	tlsOK := map[string]string{"link": "replica", "result": "ok"}
	before, okBefore := counterValue(t, r.Reg, "replink_relay_connections_rejected_total", auth), counterValue(t, r.Reg, "replink_tls_handshakes_total", tlsOK)
	slave := StartServer(t, "slave", ServerOptions{ServerID: 3})
	slave.Exec(fmt.Sprintf(`CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='slave1', MASTER_PASSWORD='wrongpass',
		MASTER_SSL=1, MASTER_SSL_CA='%s', MASTER_SSL_CERT='%s', MASTER_SSL_KEY='%s', MASTER_SSL_VERIFY_SERVER_CERT=1,
		MASTER_CONNECT_RETRY=1, MASTER_USE_GTID=no, MASTER_LOG_FILE='mariadb-bin.000001', MASTER_LOG_POS=4`, r.Port, p.CAFile, p.ClientCert, p.ClientKey))
	slave.Exec("START SLAVE")
	waitUntil(t, 30*time.Second, func() bool {
		return counterValue(t, r.Reg, "replink_relay_connections_rejected_total", auth) >= before+2
	})
	slave.Exec("STOP SLAVE")
	if st := slave.SlaveStatus(); st["Last_IO_Errno"] != "1045" || !strings.Contains(st["Last_IO_Error"], "Access denied for user 'slave1'") {
		t.Errorf("slave Last_IO_Errno %q, Last_IO_Error %q, want the 1045 replink answered", st["Last_IO_Errno"], st["Last_IO_Error"])
	}
	if n := counterValue(t, r.Reg, "replink_tls_handshake_failures_total", map[string]string{"link": "replica"}); n != 0 {
		t.Errorf("replink_tls_handshake_failures_total{link=replica} = %v after refused logins whose TLS handshakes succeeded, want 0", n)
	}
	if ok := counterValue(t, r.Reg, "replink_tls_handshakes_total", tlsOK); ok < okBefore+2 {
		t.Errorf("replink_tls_handshakes_total{link=replica,result=ok} went from %v to %v, want the slave's handshakes counted ok", okBefore, ok)
	}
}

// TestMasterAccessDeniedIsNotATLSFailure: the master refusing replink's
// password after a TLS handshake that succeeded is a reconnect with reason
// access_denied and a TLS handshake counted ok, as on the relay side, not
// a TLS handshake failure (it was counted under access_denied there).
func TestMasterAccessDeniedIsNotATLSFailure(t *testing.T) {
	p, m := newMaster(t)
	r := StartReplink(t, p, m.Port, ReplinkOptions{})
	waitUntil(t, 20*time.Second, func() bool { return r.Replica.Status().State == "streaming" })
	r.Stop()
	ep := replica.Endpoint{Host: "127.0.0.1", Port: m.Port, User: "repl", Password: "wrongpass", ConnectTimeout: 5 * time.Second}
	var err error
	if ep.TLS, err = tlsutil.NewClient(tlsutil.ClientOptions{Mode: "VERIFY_IDENTITY", CA: p.CAFile}); err != nil {
		t.Fatal(err)
	}
	r = StartReplink(t, p, m.Port, ReplinkOptions{Dir: r.Dir, Master: &ep})
	denied := map[string]string{"reason": "access_denied"}
	waitUntil(t, 20*time.Second, func() bool { return counterValue(t, r.Reg, "replink_master_reconnects_total", denied) >= 2 })
	if st := r.Replica.Status(); st.LastReason != tlsutil.ReasonAccessDenied {
		t.Errorf("/status last_reason %q, want access_denied", st.LastReason)
	}
	if n := counterValue(t, r.Reg, "replink_tls_handshake_failures_total", map[string]string{"link": "master"}); n != 0 {
		t.Errorf("replink_tls_handshake_failures_total{link=master} = %v after logins refused past a TLS handshake that succeeded, want 0", n)
	}
	if n := counterValue(t, r.Reg, "replink_tls_handshakes_total", map[string]string{"link": "master", "result": "ok"}); n < 2 {
		t.Errorf("replink_tls_handshakes_total{link=master,result=ok} = %v, want each handshake counted ok", n)
	}
}
