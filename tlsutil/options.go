package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"
)

// Mode is the C API's ssl-mode.
type Mode int

const (
	ModeDisabled Mode = iota
	ModePreferred
	ModeRequired
	ModeVerifyCA
	ModeVerifyIdentity
)

var modeNames = []string{"DISABLED", "PREFERRED", "REQUIRED", "VERIFY_CA", "VERIFY_IDENTITY"}

func (m Mode) String() string {
	if int(m) < len(modeNames) {
		return modeNames[m]
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// ParseMode reads an ssl-mode value, case-insensitively as the client does.
func ParseMode(s string) (Mode, error) {
	for i, n := range modeNames {
		if strings.EqualFold(strings.TrimSpace(s), n) {
			return Mode(i), nil
		}
	}
	return 0, fmt.Errorf("unknown ssl-mode %q (DISABLED, PREFERRED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY)", s)
}

// ClientOptions are the C API / mysql client TLS options, by their names.
// An empty Mode means what the mysql client does without --ssl-mode:
// VERIFY_CA when a CA is given, PREFERRED otherwise.
type ClientOptions struct {
	Mode         string
	CA           string
	CAPath       string
	Cert         string
	Key          string
	Cipher       string
	CipherSuites string
	TLSVersion   string
	CRL          string
	CRLPath      string
}

// Client holds the parsed client-side TLS material for one peer. The
// material sits behind an atomic pointer so Reload can replace it while
// connections use it; a failed Reload keeps the old material.
type Client struct {
	mode       Mode
	opts       ClientOptions
	minV, maxV uint16
	suites     []uint16
	warnings   []string
	mat        atomic.Pointer[clientMaterial]
}

type clientMaterial struct {
	roots *x509.CertPool
	cas   []*x509.Certificate
	crls  []*x509.RevocationList
	cert  *tls.Certificate
	leaf  *x509.Certificate
}

// NewClient checks the options as the C API does and loads every file
// they name. Errors name the option and the file.
func NewClient(o ClientOptions) (*Client, error) {
	c := &Client{opts: o}
	hasCA := o.CA != "" || o.CAPath != ""
	if o.Mode == "" {
		c.mode = ModePreferred
		if hasCA {
			c.mode = ModeVerifyCA
		}
	} else {
		m, err := ParseMode(o.Mode)
		if err != nil {
			return nil, fmt.Errorf("ssl-mode: %w", err)
		}
		c.mode = m
	}
	if c.mode == ModeDisabled {
		return c, nil
	}
	if c.mode >= ModeVerifyCA && !hasCA {
		return nil, fmt.Errorf("ssl-ca: CA certificate is required if ssl-mode is VERIFY_CA or VERIFY_IDENTITY")
	}
	if c.mode < ModeVerifyCA && hasCA {
		c.warnings = append(c.warnings, fmt.Sprintf("ssl-mode=%s with ssl-ca/ssl-capath: no verification of server certificate will be done", c.mode))
	}
	if c.mode < ModeVerifyCA && (o.CRL != "" || o.CRLPath != "") {
		c.warnings = append(c.warnings, fmt.Sprintf("ssl-mode=%s: ssl-crl/ssl-crlpath are not checked without certificate verification", c.mode))
	}
	var err error
	if c.minV, c.maxV, err = ParseTLSVersions(o.TLSVersion); err != nil {
		return nil, fmt.Errorf("tls-version: %w", err)
	}
	var weak []string
	if c.suites, weak, err = ParseCipherList(o.Cipher); err != nil {
		return nil, fmt.Errorf("ssl-cipher: %w", err)
	}
	if len(weak) > 0 {
		c.warnings = append(c.warnings, fmt.Sprintf("ssl-cipher names broken ciphers: %s", strings.Join(weak, ", ")))
	}
	if len(c.suites) > 0 && c.minV > tls.VersionTLS12 {
		c.warnings = append(c.warnings, "ssl-cipher has no effect: tls-version allows only TLSv1.3")
	}
	if err := CheckTLS13Suites(o.CipherSuites); err != nil {
		return nil, fmt.Errorf("tls-ciphersuites: %w", err)
	}
	if err := c.Reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// Mode is the effective ssl-mode; DISABLED for a nil client.
func (c *Client) Mode() Mode {
	if c == nil {
		return ModeDisabled
	}
	return c.mode
}

// Use answers the question every connection to the master asks of
// ssl-mode: with a server that offers SSL (serverSSL) or not, is TLS
// used? Without SSL on the server, PREFERRED falls back to plaintext as
// the mysql client does, and the modes that require TLS fail with
// ReasonServerNoSSL. A nil client is DISABLED.
func (c *Client) Use(serverSSL bool) (bool, error) {
	switch {
	case c == nil || c.mode == ModeDisabled:
		return false, nil
	case serverSSL:
		return true, nil
	case c.mode == ModePreferred:
		return false, nil
	}
	return false, &Error{Reason: ReasonServerNoSSL, Err: fmt.Errorf("ssl-mode=%s: SSL is required but the server doesn't support it", c.mode)}
}

// Warnings are the client's warnings about options that do less than a
// reader might think (a CA with ssl-mode=REQUIRED, a broken cipher).
func (c *Client) Warnings() []string { return c.warnings }

// Reload reads the CA, CRL, certificate and key files again. It parses
// everything first and swaps only on success.
func (c *Client) Reload() error { return reload(c) }

// reload stages s's files and commits them when they are all good.
func reload(s interface{ Stage() (func(), error) }) error {
	commit, err := s.Stage()
	if err != nil {
		return err
	}
	commit()
	return nil
}

// Stage reads the CA, CRL, certificate and key files again and returns a
// commit that swaps them in, so a caller can parse several sets of files
// and swap all or none. A nil client (no TLS) stages nothing.
func (c *Client) Stage() (commit func(), err error) {
	if c == nil || c.mode == ModeDisabled {
		return func() {}, nil
	}
	m := &clientMaterial{}
	if c.opts.CA != "" || c.opts.CAPath != "" {
		if m.roots, m.cas, err = LoadCAs(c.opts.CA, c.opts.CAPath); err != nil {
			return nil, err
		}
	}
	if m.crls, err = LoadCRLs(c.opts.CRL, c.opts.CRLPath); err != nil {
		return nil, err
	}
	if c.opts.Cert != "" || c.opts.Key != "" {
		keyFile := c.opts.Key
		if keyFile == "" {
			keyFile = c.opts.Cert // as the C API: the key may sit in the certificate file
		}
		if c.opts.Cert == "" {
			return nil, &Error{Reason: ReasonBadLocalKeypair, Err: fmt.Errorf("ssl-key %s given without ssl-cert", keyFile)}
		}
		cert, err := LoadKeyPair(c.opts.Cert, keyFile)
		if err != nil {
			return nil, err
		}
		m.cert, m.leaf = cert, cert.Leaf
	}
	return func() { c.mat.Store(m) }, nil
}

// Certificates describes the local certificates in use: the client
// certificate and the CAs.
func (c *Client) Certificates() []CertInfo {
	if c == nil {
		return nil
	}
	m := c.mat.Load()
	if m == nil {
		return nil
	}
	var out []CertInfo
	if m.leaf != nil {
		out = append(out, Describe("client", m.leaf))
	}
	for _, ca := range m.cas {
		out = append(out, Describe("ca", ca))
	}
	return out
}

// Config returns the tls.Config for a connection to host, or nil when
// ssl-mode is DISABLED. observe, when not nil, is called with the
// connection state as soon as the peer's certificates are known, before
// they are verified, so a failed verification can still be reported.
func (c *Client) Config(host string, observe func(tls.ConnectionState)) *tls.Config {
	if c.mode == ModeDisabled {
		return nil
	}
	cfg := &tls.Config{
		ServerName:         host,
		InsecureSkipVerify: true, // verification per ssl-mode happens in VerifyConnection
		MinVersion:         c.minV,
		MaxVersion:         c.maxV,
		CipherSuites:       c.suites,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if m := c.mat.Load(); m != nil && m.cert != nil {
				return m.cert, nil
			}
			return &tls.Certificate{}, nil
		},
	}
	mode := c.mode
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if observe != nil {
			observe(cs)
		}
		if mode < ModeVerifyCA {
			return nil
		}
		name := ""
		if mode == ModeVerifyIdentity {
			name = host
		}
		return c.Verify(cs.PeerCertificates, name, time.Now())
	}
	return cfg
}

// Verify checks a peer chain against the CAs and CRLs as ssl-mode
// VERIFY_CA (name empty) or VERIFY_IDENTITY (name set) does. The error
// is an *Error carrying the reason.
func (c *Client) Verify(chain []*x509.Certificate, name string, now time.Time) error {
	m := c.mat.Load()
	if len(chain) == 0 {
		return &Error{Reason: ReasonOther, Err: errors.New("peer sent no certificate")}
	}
	inter := x509.NewCertPool()
	for _, ic := range chain[1:] {
		inter.AddCert(ic)
	}
	opts := x509.VerifyOptions{Roots: m.roots, Intermediates: inter, CurrentTime: now, DNSName: name}
	chains, err := chain[0].Verify(opts)
	if err != nil {
		return &Error{Reason: Classify(err), Err: err}
	}
	if len(m.crls) > 0 || c.opts.CRL != "" || c.opts.CRLPath != "" {
		if err := CheckRevocation(chains[0], m.crls, now); err != nil {
			return err
		}
	}
	return nil
}
