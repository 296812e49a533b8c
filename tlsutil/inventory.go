package tlsutil

import (
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// CertInfo describes one certificate for metrics, /status and diagnose.
type CertInfo struct {
	Role      string    `json:"role,omitempty"` // client, server, ca, peer
	Subject   string    `json:"subject"`        // OpenSSL one-line form, as REQUIRE SUBJECT compares it
	Issuer    string    `json:"issuer"`
	SANs      []string  `json:"sans,omitempty"`
	Serial    string    `json:"serial"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	SHA256    string    `json:"sha256"`
	IsCA      bool      `json:"is_ca,omitempty"`
}

// DaysLeft is the whole days until NotAfter at now (negative once expired).
func (ci CertInfo) DaysLeft(now time.Time) float64 {
	return ci.NotAfter.Sub(now).Hours() / 24
}

// Describe makes the CertInfo of a certificate.
func Describe(role string, c *x509.Certificate) CertInfo {
	sum := sha256.Sum256(c.Raw)
	ci := CertInfo{Role: role, Subject: OneLine(c.RawSubject), Issuer: OneLine(c.RawIssuer),
		Serial: strings.ToUpper(c.SerialNumber.Text(16)), NotBefore: c.NotBefore, NotAfter: c.NotAfter,
		SHA256: hex.EncodeToString(sum[:]), IsCA: c.IsCA}
	for _, d := range c.DNSNames {
		ci.SANs = append(ci.SANs, "DNS:"+d)
	}
	for _, ip := range c.IPAddresses {
		ci.SANs = append(ci.SANs, "IP:"+ip.String())
	}
	return ci
}

// DescribeChain describes a peer chain, leaf first.
func DescribeChain(chain []*x509.Certificate) []CertInfo {
	out := make([]CertInfo, 0, len(chain))
	for _, c := range chain {
		out = append(out, Describe("peer", c))
	}
	return out
}

var oidShort = map[string]string{
	"2.5.4.6": "C", "2.5.4.8": "ST", "2.5.4.7": "L", "2.5.4.10": "O", "2.5.4.11": "OU",
	"2.5.4.3": "CN", "2.5.4.5": "serialNumber", "2.5.4.9": "street", "2.5.4.17": "postalCode",
	"2.5.4.4": "SN", "2.5.4.42": "GN", "2.5.4.12": "title", "2.5.4.46": "dnQualifier",
	"0.9.2342.19200300.100.1.25": "DC", "0.9.2342.19200300.100.1.1": "UID",
	"1.2.840.113549.1.9.1": "emailAddress",
}

// OneLine renders a DER-encoded name in OpenSSL's X509_NAME_oneline form,
// in certificate order: /C=US/ST=CA/O=Example/CN=repl-client. MySQL's
// REQUIRE ISSUER and REQUIRE SUBJECT compare against exactly this string.
func OneLine(raw []byte) string {
	var seq pkix.RDNSequence
	if rest, err := asn1.Unmarshal(raw, &seq); err != nil || len(rest) > 0 {
		return fmt.Sprintf("<unparsable name %x>", raw)
	}
	var b strings.Builder
	for _, rdn := range seq {
		for _, atv := range rdn {
			key, ok := oidShort[atv.Type.String()]
			if !ok {
				key = atv.Type.String()
			}
			b.WriteString("/")
			b.WriteString(key)
			b.WriteString("=")
			b.WriteString(fmt.Sprint(atv.Value))
		}
	}
	return b.String()
}
