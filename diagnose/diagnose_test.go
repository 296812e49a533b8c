package diagnose

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/replink/replink/tlsutil"
)

// TestErrTextOwnWords: a connection error as go-mysql's client returns it,
// wrapped as replica.Endpoint.Connect wraps it, reads in replink's words
// with the underlying error last.
func TestErrTextOwnWords(t *testing.T) {
	// packet/conn.go: errors.Wrapf(mysql.ErrBadConn, "io.ReadFull(header) failed. err %v", err)
	readFailed := func(cause string) error {
		return fmt.Errorf("io.ReadFull(header) failed. err %s: %w", cause, mysql.ErrBadConn)
	}
	accessDenied := mysql.NewError(mysql.ER_ACCESS_DENIED_ERROR, "Access denied for user 'repl'@'127.0.0.1' (using password: YES)")
	hostNotAllowed := mysql.NewError(1130, "Host '10.0.0.9' is not allowed to connect to this MariaDB server")
	cnOnly := &tlsutil.Error{Reason: tlsutil.ReasonCNOnlyCert, Err: errors.New("x509: certificate relies on legacy Common Name field, use SANs instead")}
	for _, c := range []struct {
		name       string
		err        error // as go-mysql returns it
		want       string
		underlying string
	}{
		{"server certificate rejected", fmt.Errorf("writeAuthHandshake: %w", cnOnly),
			"master 127.0.0.1:3306: the server certificate failed verification: " + cnOnly.Error(), cnOnly.Error()},
		{"unknown CA from crypto/tls", fmt.Errorf("writeAuthHandshake: %w", errors.New("tls: failed to verify certificate: x509: certificate signed by unknown authority")),
			"master 127.0.0.1:3306: the server certificate failed verification: tls: failed to verify certificate: x509: certificate signed by unknown authority",
			"tls: failed to verify certificate: x509: certificate signed by unknown authority"},
		{"tls alert in the handshake", fmt.Errorf("writeAuthHandshake: %w", errors.New("remote error: tls: protocol version not supported")),
			"master 127.0.0.1:3306: the TLS handshake failed: remote error: tls: protocol version not supported", "remote error: tls: protocol version not supported"},
		{"login packet not sent", fmt.Errorf("writeAuthHandshake: %w", fmt.Errorf("Write failed. err %s: %w", "write tcp 127.0.0.1:40000->127.0.0.1:3306: write: broken pipe", mysql.ErrBadConn)),
			"master 127.0.0.1:3306: sending the login packet failed: writing to the server: write tcp 127.0.0.1:40000->127.0.0.1:3306: write: broken pipe",
			"write: broken pipe"},
		{"wrong password", fmt.Errorf("handleAuthResult: %w", fmt.Errorf("readAuthResult: %w", accessDenied)),
			"master 127.0.0.1:3306: the server refused the login: " + accessDenied.Error(), accessDenied.Error()},
		{"closed during login", fmt.Errorf("handleAuthResult: %w", fmt.Errorf("readAuthResult: %w", fmt.Errorf("ReadPacket: %w", readFailed("EOF")))),
			"master 127.0.0.1:3306: logging in failed: reading from the server: EOF", "EOF"},
		{"client certificate refused after a TLS 1.3 handshake", fmt.Errorf("handleAuthResult: %w", fmt.Errorf("readAuthResult: %w", fmt.Errorf("ReadPacket: %w", readFailed("remote error: tls: unknown certificate authority")))),
			"master 127.0.0.1:3306: the server ended the TLS session: reading from the server: remote error: tls: unknown certificate authority",
			"remote error: tls: unknown certificate authority"},
		{"full auth packet", fmt.Errorf("handleAuthResult: %w", fmt.Errorf("WritePacket failed: %w", fmt.Errorf("Write failed. err %s: %w", "use of closed network connection", mysql.ErrBadConn))),
			"master 127.0.0.1:3306: logging in failed: writing to the server: use of closed network connection", "use of closed network connection"},
		{"host not allowed", fmt.Errorf("readInitialHandshake: %w", fmt.Errorf("read initial handshake error: %w", hostNotAllowed)),
			"master 127.0.0.1:3306: the server refused the connection: " + hostNotAllowed.Error(), hostNotAllowed.Error()},
		{"greeting timeout", fmt.Errorf("readInitialHandshake: %w", readFailed("read tcp 127.0.0.1:40000->127.0.0.1:3306: i/o timeout")),
			"master 127.0.0.1:3306: reading the server greeting failed: reading from the server: read tcp 127.0.0.1:40000->127.0.0.1:3306: i/o timeout",
			"i/o timeout"},
		{"not go-mysql's", errors.New("protocol error from the server (go-mysql panicked: index out of range)"),
			"master 127.0.0.1:3306: protocol error from the server (go-mysql panicked: index out of range)", "index out of range)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := &tlsutil.Error{Reason: tlsutil.Classify(c.err), Err: fmt.Errorf("master 127.0.0.1:3306: %w", c.err)}
			got := errText(err)
			if got != c.want {
				t.Errorf("errText:\n got %q\nwant %q", got, c.want)
			}
			if !strings.HasSuffix(got, c.underlying) {
				t.Errorf("%q does not end with the underlying error %q", got, c.underlying)
			}
			for _, internal := range []string{"readInitialHandshake", "writeAuthHandshake", "handleAuthResult", "readAuthResult",
				"ReadPacket", "WritePacket", "read initial handshake error", "io.ReadFull", "Write failed", "connection was bad"} {
				if strings.Contains(got, internal) {
					t.Errorf("%q still says go-mysql's %q", got, internal)
				}
			}
		})
	}
	if got := errText(nil); got != "" {
		t.Errorf("errText(nil) = %q", got)
	}
}

// TestWriteTextWarning: a step that passed unsafely is shown as [warn]
// without a fix line, and the report still passes.
func TestWriteTextWarning(t *testing.T) {
	r := &Report{}
	r.add(Step{Step: "tls_handshake", OK: true, Detail: "TLSv1.3, cipher TLS_AES_128_GCM_SHA256"})
	r.add(Step{Step: "verification", OK: true, Warning: true, Detail: "ssl-mode=REQUIRED: the server certificate is not checked"})
	r.add(Step{Step: "authentication", OK: true, Detail: "logged in as repl"})
	r.OK = r.Reason == "" && allOK(r.Steps)
	if !r.OK {
		t.Fatal("a warning failed the report")
	}
	var b strings.Builder
	r.WriteText(&b)
	want := "[ok  ] tls_handshake          TLSv1.3, cipher TLS_AES_128_GCM_SHA256\n" +
		"[warn] verification           ssl-mode=REQUIRED: the server certificate is not checked\n" +
		"[ok  ] authentication         logged in as repl\n" +
		"all checks passed, with 1 warning\n"
	if b.String() != want {
		t.Fatalf("text:\n%s\nwant:\n%s", b.String(), want)
	}

	// JSON only adds "warning", on the warning step.
	var out strings.Builder
	if err := r.WriteJSON(&out); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		OK    bool                         `json:"ok"`
		Steps []map[string]json.RawMessage `json:"steps"`
	}
	if err := json.Unmarshal([]byte(out.String()), &doc); err != nil {
		t.Fatal(err)
	}
	if !doc.OK || len(doc.Steps) != 3 {
		t.Fatalf("JSON %s", out.String())
	}
	for i, s := range doc.Steps {
		for _, k := range []string{"step", "ok", "detail"} {
			if _, ok := s[k]; !ok {
				t.Errorf("step %d lacks %q: %s", i, k, out.String())
			}
		}
		w, has := s["warning"]
		if (i == 1) != has || (has && string(w) != "true") {
			t.Errorf("step %d warning %s (present %v): %s", i, w, has, out.String())
		}
	}
}

// TestWriteTextFailure: a failed step keeps [FAIL] with its reason and fix.
func TestWriteTextFailure(t *testing.T) {
	r := &Report{}
	r.add(Step{Step: "ssl_request", OK: true, Warning: true, Detail: "ssl-mode=DISABLED: plaintext"})
	r.add(Step{Step: "authentication", Detail: "the server refused the login: ERROR 1045 (28000): Access denied", Reason: tlsutil.ReasonAccessDenied})
	r.OK = r.Reason == "" && allOK(r.Steps)
	var b strings.Builder
	r.WriteText(&b)
	for _, want := range []string{"[warn] ssl_request ", "[FAIL] authentication ", "       reason: access_denied\n",
		"       fix:    " + tlsutil.ReasonAccessDenied.Hint() + "\n", "diagnose failed: reason=access_denied\n"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, b.String())
		}
	}
	if r.OK {
		t.Error("a failed step passed the report")
	}
}
