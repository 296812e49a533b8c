package tlsutil

import (
	"crypto/sha256"
	"crypto/x509"
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

//go:generate go run gen_oidnames.go /usr/include/openssl/obj_mac.h

// nameAttribute and nameRDNSET read a DER name keeping every value's raw
// encoding (the SET suffix makes encoding/asn1 want a SET).
type nameAttribute struct {
	Type  asn1.RawValue
	Value asn1.RawValue
}

type nameRDNSET []nameAttribute

// OneLine renders a DER-encoded name exactly as OpenSSL 3's
// X509_NAME_oneline (crypto/x509/x509_obj.c) does. MySQL and MariaDB
// strcmp a GRANT's REQUIRE SUBJECT and REQUIRE ISSUER with
// X509_NAME_oneline of the client certificate's names, and
// `openssl x509 -noout -subject -nameopt compat` prints the same string, so a
// REQUIRE string copied from MySQL matches OneLine byte for byte, and
// /status and the metric label show what MySQL would compare.
//
// In certificate order, each attribute is "/NAME=VALUE", except that the
// second and later attributes of a multi-valued RDN start with "+":
// /C=DE/CN=a+OU=b. NAME is OpenSSL's short name for the OID (its long name
// where it has no short one: businessCategory), from opensslNames, or the
// dotted OID when OpenSSL does not know it. VALUE is the raw content octets
// whatever the string type (a UTF8String é is \xC3\xA9, a BMPString é
// \x00\xE9); octets outside 0x20-0x7E are written \xHH, '/' and '+' get a
// backslash before them, and everything else (',', '=', '\\', spaces) stays
// as it is.
//
// OpenSSL 1.1.1 and older differ only for names with a multi-valued RDN
// ('/' between its attributes too) or a '/' or '+' in a value (not
// escaped); a server linked against those prints such names differently.
func OneLine(raw []byte) string {
	var seq []nameRDNSET
	if rest, err := asn1.Unmarshal(raw, &seq); err != nil || len(rest) > 0 {
		return fmt.Sprintf("<unparsable name %x>", raw)
	}
	var b strings.Builder
	for _, rdn := range seq {
		for i, atv := range rdn {
			key, ok := attributeName(atv.Type)
			if !ok {
				return fmt.Sprintf("<unparsable name %x>", raw)
			}
			if i == 0 {
				b.WriteByte('/')
			} else {
				b.WriteByte('+')
			}
			b.WriteString(key)
			b.WriteByte('=')
			value := atv.Value.Bytes
			if atv.Value.IsCompound {
				value = atv.Value.FullBytes // OpenSSL keeps a SEQUENCE or SET value encoded
			}
			for _, c := range value {
				switch {
				case c < ' ' || c > '~':
					fmt.Fprintf(&b, "\\x%02X", c)
				case c == '/' || c == '+':
					b.WriteByte('\\')
					b.WriteByte(c)
				default:
					b.WriteByte(c)
				}
			}
		}
	}
	return b.String()
}

// attributeName is the name X509_NAME_oneline prints for an attribute
// type: OpenSSL's name, or the dotted OID cut to the 79 characters of
// its buffer.
func attributeName(t asn1.RawValue) (string, bool) {
	if t.Class != asn1.ClassUniversal || t.Tag != asn1.TagOID || t.IsCompound {
		return "", false
	}
	var oid x509.OID
	if err := oid.UnmarshalBinary(t.Bytes); err != nil {
		return "", false
	}
	dotted := oid.String()
	if name, ok := opensslNames[dotted]; ok {
		return name, true
	}
	if len(dotted) > 79 {
		dotted = dotted[:79]
	}
	return dotted, true
}
