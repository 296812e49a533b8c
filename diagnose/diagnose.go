// Package diagnose probes the master once and walks the connection step by
// step, naming what failed, why (a tlsutil.Reason) and how to fix it.
package diagnose

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/replink/replink/replica"
	"github.com/replink/replink/tlsutil"
)

// Step is one checked step. A warning step passed but is unsafe
// (plaintext, an unverified server certificate): it still counts as ok.
type Step struct {
	Step    string         `json:"step"`
	OK      bool           `json:"ok"`
	Warning bool           `json:"warning,omitempty"`
	Detail  string         `json:"detail"`
	Reason  tlsutil.Reason `json:"reason,omitempty"`
	Hint    string         `json:"hint,omitempty"`
}

// TLSInfo is what the TLS handshake showed.
type TLSInfo struct {
	Version   string             `json:"version,omitempty"`
	Cipher    string             `json:"cipher,omitempty"`
	PeerChain []tlsutil.CertInfo `json:"peer_chain,omitempty"`
}

// Report is the whole walk.
type Report struct {
	OK     bool           `json:"ok"`
	Reason tlsutil.Reason `json:"reason"`
	Steps  []Step         `json:"steps"`
	TLS    TLSInfo        `json:"tls"`
}

func (r *Report) add(s Step) bool {
	if !s.OK && s.Hint == "" && s.Reason != "" {
		s.Hint = s.Reason.Hint()
	}
	r.Steps = append(r.Steps, s)
	if !s.OK && r.Reason == "" && s.Reason != "" {
		r.Reason = s.Reason
	}
	return s.OK
}

var verifyReasons = map[tlsutil.Reason]bool{tlsutil.ReasonUnknownCA: true, tlsutil.ReasonCertExpired: true,
	tlsutil.ReasonCertNotYetValid: true, tlsutil.ReasonHostnameMismatch: true, tlsutil.ReasonCNOnlyCert: true,
	tlsutil.ReasonRevoked: true}

// Run probes the master described by cfg.
func Run(ctx context.Context, cfg replica.Config) *Report {
	r := &Report{}
	defer func() { r.OK = r.Reason == "" && allOK(r.Steps) }()
	mode := cfg.TLS.Mode()

	// 1. TCP connect and greeting, on a connection of our own.
	start := time.Now()
	d := net.Dialer{Timeout: cfg.ConnectTimeout}
	raw, err := d.DialContext(ctx, "tcp", cfg.Addr())
	if err != nil {
		reason := tlsutil.Classify(err)
		r.add(Step{Step: "tcp_connect", Detail: err.Error(), Reason: reason})
		return r
	}
	r.add(Step{Step: "tcp_connect", OK: true, Detail: fmt.Sprintf("%s connected in %s", cfg.Addr(), time.Since(start).Round(time.Microsecond))})
	_ = raw.SetDeadline(time.Now().Add(cfg.ConnectTimeout))
	g, err := replica.ReadGreeting(raw)
	raw.Close()
	if err != nil {
		r.add(Step{Step: "server_greeting", Detail: err.Error(), Reason: tlsutil.Classify(err),
			Hint: "is this a MySQL/MariaDB port? a server that refuses this host (ERR 1130) says so here"})
		return r
	}
	ssl := "does not offer SSL (CLIENT_SSL off: started with --skip-ssl or without ssl_cert/ssl_key)"
	if g.SSL {
		ssl = "offers SSL"
	}
	r.add(Step{Step: "server_greeting", OK: true, Detail: fmt.Sprintf("%s, connection id %d, %s", g.Version, g.ConnectionID, ssl)})

	// 2. SSL request, per ssl-mode.
	usedTLS, err := cfg.TLS.Use(g.SSL)
	switch {
	case err != nil:
		r.add(Step{Step: "ssl_request", Detail: err.Error(), Reason: tlsutil.ReasonServerNoSSL})
		return r
	case usedTLS:
		r.add(Step{Step: "ssl_request", OK: true, Detail: fmt.Sprintf("ssl-mode=%s: asking the server to switch to TLS", mode)})
	case mode == tlsutil.ModeDisabled:
		r.add(Step{Step: "ssl_request", OK: true, Warning: true, Detail: "ssl-mode=DISABLED: plaintext; the replication password and every row cross the network unencrypted"})
	default:
		r.add(Step{Step: "ssl_request", OK: true, Warning: true, Detail: "ssl-mode=PREFERRED and the server has no SSL: plaintext (as the mysql client does)"})
	}

	// 3. TLS handshake, certificate chain, verification, authentication.
	// Connect meters the link; this one connection is counted nowhere.
	c, a, err := cfg.Connect(ctx, "master", tlsutil.NewMetrics(prometheus.NewRegistry()))
	var reason tlsutil.Reason
	if err != nil {
		reason = tlsutil.Classify(err)
	}
	var cs = (*tlsStateView)(nil)
	if a != nil && a.State() != nil {
		st := a.State()
		cs = &tlsStateView{version: tlsutil.VersionName(st.Version), cipher: tlsutil.CipherName(st.CipherSuite), chain: tlsutil.DescribeChain(st.PeerCertificates)}
		r.TLS = TLSInfo{Version: cs.version, Cipher: cs.cipher, PeerChain: cs.chain}
	}
	if usedTLS {
		if cs == nil {
			r.add(Step{Step: "tls_handshake", Detail: errText(err), Reason: reason})
			return r
		}
		r.add(Step{Step: "tls_handshake", OK: true, Detail: fmt.Sprintf("%s, cipher %s", cs.version, cs.cipher)})
		r.add(Step{Step: "certificate_chain", OK: true, Detail: chainText(cs.chain)})
		switch {
		case err != nil && verifyReasons[reason]:
			r.add(Step{Step: "verification", Detail: fmt.Sprintf("ssl-mode=%s: %s", mode, errText(err)), Reason: reason})
			return r
		case mode < tlsutil.ModeVerifyCA:
			r.add(Step{Step: "verification", OK: true, Warning: true, Detail: fmt.Sprintf("ssl-mode=%s: the server certificate is not checked; a man in the middle would see the password (caching_sha2/ed25519 full auth) and every row. Use VERIFY_IDENTITY with ssl-ca", mode)})
		case mode == tlsutil.ModeVerifyCA:
			r.add(Step{Step: "verification", OK: true, Detail: "chain verified against ssl-ca/ssl-capath (VERIFY_CA: host name not checked)"})
		default:
			r.add(Step{Step: "verification", OK: true, Detail: fmt.Sprintf("chain verified and %s matches the certificate (VERIFY_IDENTITY)", cfg.Host)})
		}
	}
	if err != nil {
		step := "authentication"
		if reason == tlsutil.ReasonClientCertRejected || reason == tlsutil.ReasonProtocolVersion || reason == tlsutil.ReasonNoSharedCipher {
			step = "tls_handshake"
		}
		r.add(Step{Step: step, Detail: errText(err), Reason: reason})
		return r
	}
	defer c.Close()
	r.add(Step{Step: "authentication", OK: true, Detail: fmt.Sprintf("logged in as %s", cfg.User)})

	// 4. Fitness for replication.
	checkReplication(r, c, cfg)

	// 5. The servers replink would follow after a failover.
	if len(cfg.Candidates) > 0 {
		writable := true
		if res, err := c.Execute("SELECT @@global.read_only"); err == nil && res.RowNumber() > 0 {
			ro, _ := res.GetInt(0, 0)
			writable = ro == 0
		}
		checkCandidates(ctx, r, cfg, writable)
	}
	return r
}

type tlsStateView struct {
	version, cipher string
	chain           []tlsutil.CertInfo
}

// errText is a failed step's detail: the error from "master host:port"
// on, saying in replink's words what failed where go-mysql names its own
// functions, with the underlying error last.
func errText(err error) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	if i := strings.Index(s, ": master "); i >= 0 {
		s = s[i+2:]
	}
	addr := ""
	if strings.HasPrefix(s, "master ") {
		if i := strings.Index(s, ": "); i >= 0 {
			addr, s = s[:i+2], s[i+2:]
		}
	}
	return addr + ownWords(s)
}

// goMySQLStages are the prefixes go-mysql's client puts on a failed
// connection phase (client/conn.go, handshake), with what failed in
// replink's words; refused is used when the server answered with an ERR
// packet.
var goMySQLStages = []struct{ prefix, failed, refused string }{
	{"readInitialHandshake: ", "reading the server greeting failed", "the server refused the connection"},
	{"writeAuthHandshake: ", "sending the login packet failed", ""},
	{"handleAuthResult: ", "logging in failed", "the server refused the login"},
}

// goMySQLInner are go-mysql's inner prefixes (client/auth.go,
// client/resp.go, packet/conn.go): names of its functions, dropped.
var goMySQLInner = []string{"readAuthResult: ", "ReadPacket: ", "read initial handshake error: ",
	"ReadPacket failed: ", "ReadPacketTo failed: ", "WritePacket failed: ", "WritePacket(single byte) failed: ",
	"WriteAuthSwitchPacket failed: ", "EncryptPassword failed: ", "x509.ParsePKIXPublicKey failed: "}

// go-mysql's packet layer flattens a read or write error into its text
// (with %v) and appends ErrBadConn's.
var (
	goMySQLRead  = regexp.MustCompile(`^io\.(?:ReadFull\((?:compressedHeader|header)\)|CopyN) failed\. err (.*?)(?:, copied \d+, expected \d+)?: ` + regexp.QuoteMeta(mysql.ErrBadConn.Error()) + `$`)
	goMySQLWrite = regexp.MustCompile(`^Write failed\. err (.*): ` + regexp.QuoteMeta(mysql.ErrBadConn.Error()) + `$`)
)

// ownWords rewrites an error text from go-mysql's client: "writeAuthHandshake:
// x509: ..." becomes "the server certificate failed verification: x509: ...".
func ownWords(s string) string {
	for _, st := range goMySQLStages {
		rest, ok := strings.CutPrefix(s, st.prefix)
		if !ok {
			continue
		}
		rest = underlying(rest)
		what := st.failed
		switch {
		case st.refused != "" && strings.HasPrefix(rest, "ERROR "):
			what = st.refused
		case st.prefix == "writeAuthHandshake: " && certRejected(rest):
			what = "the server certificate failed verification"
		case st.prefix == "writeAuthHandshake: " && strings.Contains(rest, "tls: "):
			what = "the TLS handshake failed"
		case strings.Contains(rest, "tls: "):
			what = "the server ended the TLS session"
		}
		return what + ": " + rest
	}
	return underlying(s)
}

// underlying drops go-mysql's inner prefixes and names a packet read or
// write failure, keeping its cause.
func underlying(s string) string {
	for again := true; again; {
		again = false
		for _, p := range goMySQLInner {
			if rest, ok := strings.CutPrefix(s, p); ok {
				s, again = rest, true
			}
		}
	}
	if m := goMySQLRead.FindStringSubmatch(s); m != nil {
		return "reading from the server: " + m[1]
	}
	if m := goMySQLWrite.FindStringSubmatch(s); m != nil {
		return "writing to the server: " + m[1]
	}
	return s
}

// certRejected: our own verification of the server certificate failed
// (a tlsutil.Error, which starts with its reason, or an x509 error).
func certRejected(s string) bool {
	if strings.Contains(s, "x509: ") {
		return true
	}
	for _, r := range tlsutil.Reasons {
		if strings.HasPrefix(s, string(r)+": ") {
			return true
		}
	}
	return false
}

func chainText(chain []tlsutil.CertInfo) string {
	var b strings.Builder
	now := time.Now()
	for i, c := range chain {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "[%d] subject %s, issuer %s", i, c.Subject, c.Issuer)
		if len(c.SANs) > 0 {
			fmt.Fprintf(&b, ", SAN %s", strings.Join(c.SANs, ","))
		} else {
			b.WriteString(", no SAN")
		}
		fmt.Fprintf(&b, ", valid %s to %s (%.0f days left)", c.NotBefore.UTC().Format("2006-01-02"), c.NotAfter.UTC().Format("2006-01-02"), c.DaysLeft(now))
	}
	return b.String()
}

func allOK(steps []Step) bool {
	for _, s := range steps {
		if !s.OK {
			return false
		}
	}
	return true
}

// WriteText prints the report for a person. A warning step is marked
// [warn]; it still passes.
func (r *Report) WriteText(w io.Writer) {
	warnings := 0
	for _, s := range r.Steps {
		mark := "ok  "
		switch {
		case !s.OK:
			mark = "FAIL"
		case s.Warning:
			mark = "warn"
			warnings++
		}
		fmt.Fprintf(w, "[%s] %-22s %s\n", mark, s.Step, s.Detail)
		if !s.OK {
			if s.Reason != "" {
				fmt.Fprintf(w, "       reason: %s\n", s.Reason)
			}
			if s.Hint != "" {
				fmt.Fprintf(w, "       fix:    %s\n", s.Hint)
			}
		}
	}
	switch {
	case r.OK && warnings == 1:
		fmt.Fprintln(w, "all checks passed, with 1 warning")
	case r.OK && warnings > 1:
		fmt.Fprintf(w, "all checks passed, with %d warnings\n", warnings)
	case r.OK:
		fmt.Fprintln(w, "all checks passed")
	default:
		fmt.Fprintf(w, "diagnose failed: reason=%s\n", r.Reason)
	}
}

// WriteJSON prints the report as JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
