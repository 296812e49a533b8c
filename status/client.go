package status

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/exporter-toolkit/web"
	"gopkg.in/yaml.v2"

	"github.com/replink/replink/replica"
	"github.com/replink/replink/tlsutil"
)

// Ready reports whether replink streams from the master and stores what
// it receives (a failure to store ends the stream, so streaming means
// storing), and why not. /readyz and `replink status` both answer with it.
func Ready(m replica.Status, now time.Time) (bool, string) {
	if m.State == "streaming" {
		return true, fmt.Sprintf("streaming from %s since %s", m.Master, m.Since.Format(time.RFC3339))
	}
	why := fmt.Sprintf("not streaming from %s: %s for %s", m.Master, m.State, now.Sub(m.Since).Round(time.Second))
	if m.LastError != "" {
		why += fmt.Sprintf(" (reason %s: %s)", m.LastReason, m.LastError)
	}
	return false, why
}

// ClientOptions say how `replink status` reaches a daemon's [metrics]
// listener. The TLS options carry the mysql client's names and meaning.
type ClientOptions struct {
	// Addr is host:port; a wildcard host (0.0.0.0, ::, none) is asked on
	// loopback.
	Addr string
	// WebConfig is the daemon's web-config-file: when it sets
	// tls_server_config, the listener speaks HTTPS, and without SSLCA the
	// certificate it names is the one trusted (pinned).
	WebConfig string
	// SSLMode is DISABLED (HTTP), REQUIRED (HTTPS, no verification),
	// VERIFY_CA or VERIFY_IDENTITY; empty: VERIFY_CA with WebConfig's TLS
	// or SSLCA, else DISABLED.
	SSLMode string
	// SSLCA verifies the server; SSLCert and SSLKey are the client
	// certificate a web config with client_auth_type asks for.
	SSLCA, SSLCert, SSLKey string
	// User and Password answer a web config's basic_auth_users.
	User, Password string
	Timeout        time.Duration
}

// Fetch reads the /status document of a running replink; body is the
// JSON as served. Its errors say what the listener spoke and what to
// give instead when the client and the listener disagree.
func Fetch(ctx context.Context, o ClientOptions) (doc Doc, body []byte, err error) {
	addr, err := loopback(o.Addr)
	if err != nil {
		return doc, nil, err
	}
	tc, err := o.tlsConfig(addr)
	if err != nil {
		return doc, nil, err
	}
	scheme := "http"
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true}
	if tc != nil {
		scheme, tr.TLSClientConfig = "https", tc
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	cl := &http.Client{Timeout: o.Timeout, Transport: tr}
	url := scheme + "://" + addr + "/status"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return doc, nil, fmt.Errorf("%s: %w", url, err)
	}
	if o.User != "" {
		req.SetBasicAuth(o.User, o.Password)
	}
	resp, err := cl.Do(req)
	if err != nil {
		if tc != nil && strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") {
			return doc, nil, fmt.Errorf("%s: the listener speaks plain HTTP (no tls_server_config in its web-config-file): use --ssl-mode=DISABLED: %w", url, err)
		}
		return doc, nil, fmt.Errorf("%s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return doc, nil, fmt.Errorf("%s: reading the answer: %w", url, err)
	}
	first := firstLine(body)
	switch {
	case tc == nil && resp.StatusCode == http.StatusBadRequest && strings.Contains(string(body), "HTTP request to an HTTPS server"):
		return doc, nil, fmt.Errorf("%s: the listener speaks HTTPS (its web-config-file sets tls_server_config): give -c with the daemon's configuration, or --ssl-ca (or --ssl-mode=REQUIRED)", url)
	case resp.StatusCode == http.StatusUnauthorized:
		return doc, nil, fmt.Errorf("%s: HTTP 401: the listener wants a user and password (basic_auth_users in its web-config-file): give --user and --password-file", url)
	case resp.StatusCode != http.StatusOK:
		return doc, nil, fmt.Errorf("%s: HTTP %d: %s", url, resp.StatusCode, first)
	}
	if ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); ct != "application/json" {
		return doc, nil, fmt.Errorf("%s: not replink's /status (Content-Type %q, starting %q)", url, resp.Header.Get("Content-Type"), first)
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return doc, nil, fmt.Errorf("%s: not replink's /status document (starting %q): %w", url, first, err)
	}
	if doc.Master.State == "" {
		return doc, nil, fmt.Errorf("%s: not replink's /status document: no master state", url)
	}
	return doc, body, nil
}

func firstLine(b []byte) string {
	line, _, _ := bytes.Cut(bytes.TrimSpace(b), []byte("\n"))
	if len(line) > 120 {
		line = line[:120]
	}
	return string(line)
}

// loopback is addr with a wildcard host replaced by loopback.
func loopback(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("address %q: want host:port: %w", addr, err)
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, port), nil
}

// webTLS is the part of an exporter-toolkit web config a client needs.
type webTLS struct {
	// tls: the listener speaks HTTPS; certs are its certificate chain.
	tls        bool
	certs      []*x509.Certificate
	clientAuth string
	file       string
}

// readWebConfig reads a web config's tls_server_config (its cert_file
// relative to the file, as exporter-toolkit takes it).
func readWebConfig(path string) (webTLS, error) {
	w := webTLS{file: path}
	if path == "" {
		return w, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return w, fmt.Errorf("web config: %w", err)
	}
	var c web.Config
	if err := yaml.Unmarshal(data, &c); err != nil {
		return w, fmt.Errorf("web config %s: %w", path, err)
	}
	t := c.TLSConfig
	if t.TLSCertPath == "" && t.TLSCert == "" {
		return w, nil
	}
	w.tls, w.clientAuth = true, t.ClientAuth
	pemData := []byte(t.TLSCert)
	if t.TLSCertPath != "" {
		p := t.TLSCertPath
		if !filepath.IsAbs(p) {
			p = filepath.Join(filepath.Dir(path), p)
		}
		if pemData, err = os.ReadFile(p); err != nil {
			return w, fmt.Errorf("web config %s: tls_server_config.cert_file: %w", path, err)
		}
	}
	if w.certs, err = tlsutil.ParseCerts("tls_server_config's certificate", pemData); err != nil {
		return w, fmt.Errorf("web config %s: %w", path, err)
	}
	return w, nil
}

// tlsConfig is the client's TLS configuration; nil for plain HTTP.
func (o ClientOptions) tlsConfig(addr string) (*tls.Config, error) {
	wc, err := readWebConfig(o.WebConfig)
	if err != nil {
		return nil, err
	}
	mode := strings.ToUpper(o.SSLMode)
	if mode == "" {
		mode = "DISABLED"
		if wc.tls || o.SSLCA != "" {
			mode = "VERIFY_CA"
		}
	}
	if mode == "DISABLED" {
		return nil, nil
	}
	host, _, _ := net.SplitHostPort(addr)
	if (o.SSLCert == "") != (o.SSLKey == "") {
		return nil, errors.New("--ssl-cert and --ssl-key go together")
	}
	if o.SSLCert == "" && wc.tls && strings.HasPrefix(wc.clientAuth, "Require") {
		return nil, fmt.Errorf("the listener wants a client certificate (web config %s: client_auth_type %s): give --ssl-cert and --ssl-key", wc.file, wc.clientAuth)
	}
	switch mode {
	case "REQUIRED", "VERIFY_CA", "VERIFY_IDENTITY":
	default:
		return nil, fmt.Errorf("--ssl-mode %q: want DISABLED, REQUIRED, VERIFY_CA or VERIFY_IDENTITY", o.SSLMode)
	}
	if mode != "REQUIRED" && o.SSLCA == "" && wc.tls {
		// The daemon's own certificate, read from the files it serves:
		// the same certificate or nothing, whatever names it holds.
		want := wc.certs[0].Raw
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host, InsecureSkipVerify: true,
			VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
				if len(raw) == 0 || !bytes.Equal(raw[0], want) {
					return fmt.Errorf("the listener's certificate is not the one in %s's tls_server_config", wc.file)
				}
				return nil
			}}
		if o.SSLCert != "" {
			kp, err := tlsutil.LoadKeyPair(o.SSLCert, o.SSLKey)
			if err != nil {
				return nil, err
			}
			cfg.Certificates = []tls.Certificate{*kp}
		}
		return cfg, nil
	}
	// Otherwise as the master link verifies, with the mysql client's
	// ssl-mode meaning.
	c, err := tlsutil.NewClient(tlsutil.ClientOptions{Mode: mode, CA: o.SSLCA, Cert: o.SSLCert, Key: o.SSLKey})
	if err != nil {
		return nil, err
	}
	return c.Config(host, nil), nil
}
