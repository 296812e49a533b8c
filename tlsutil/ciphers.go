package tlsutil

import (
	"crypto/tls"
	"fmt"
	"sort"
	"strings"
)

// cipherNames maps OpenSSL cipher names (what MySQL's ssl-cipher and
// Ssl_cipher use for TLS <= 1.2) to Go's suite IDs.
var cipherNames = map[string]uint16{
	"ECDHE-ECDSA-AES128-GCM-SHA256": tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	"ECDHE-RSA-AES128-GCM-SHA256":   tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	"ECDHE-ECDSA-AES256-GCM-SHA384": tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	"ECDHE-RSA-AES256-GCM-SHA384":   tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	"ECDHE-ECDSA-CHACHA20-POLY1305": tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	"ECDHE-RSA-CHACHA20-POLY1305":   tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	"ECDHE-ECDSA-AES128-SHA":        tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
	"ECDHE-RSA-AES128-SHA":          tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
	"ECDHE-ECDSA-AES256-SHA":        tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
	"ECDHE-RSA-AES256-SHA":          tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
	"ECDHE-ECDSA-AES128-SHA256":     tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
	"ECDHE-RSA-AES128-SHA256":       tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,
	"AES128-SHA":                    tls.TLS_RSA_WITH_AES_128_CBC_SHA,
	"AES256-SHA":                    tls.TLS_RSA_WITH_AES_256_CBC_SHA,
	"AES128-GCM-SHA256":             tls.TLS_RSA_WITH_AES_128_GCM_SHA256,
	"AES256-GCM-SHA384":             tls.TLS_RSA_WITH_AES_256_GCM_SHA384,
	"AES128-SHA256":                 tls.TLS_RSA_WITH_AES_128_CBC_SHA256,
	"DES-CBC3-SHA":                  tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA,
	"ECDHE-RSA-DES-CBC3-SHA":        tls.TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA,
	"RC4-SHA":                       tls.TLS_RSA_WITH_RC4_128_SHA,
	"ECDHE-RSA-RC4-SHA":             tls.TLS_ECDHE_RSA_WITH_RC4_128_SHA,
	"ECDHE-ECDSA-RC4-SHA":           tls.TLS_ECDHE_ECDSA_WITH_RC4_128_SHA,
}

// tls13Suites are the TLS 1.3 suites Go implements; it always offers all of
// them and lets no configuration choose.
var tls13Suites = map[string]uint16{
	"TLS_AES_128_GCM_SHA256":       tls.TLS_AES_128_GCM_SHA256,
	"TLS_AES_256_GCM_SHA384":       tls.TLS_AES_256_GCM_SHA384,
	"TLS_CHACHA20_POLY1305_SHA256": tls.TLS_CHACHA20_POLY1305_SHA256,
}

// weakCiphers are accepted only when named and are logged loudly.
var weakCiphers = map[string]bool{"DES-CBC3-SHA": true, "ECDHE-RSA-DES-CBC3-SHA": true,
	"RC4-SHA": true, "ECDHE-RSA-RC4-SHA": true, "ECDHE-ECDSA-RC4-SHA": true}

// CipherName returns the cipher as MySQL's Ssl_cipher shows it: the
// OpenSSL name for TLS <= 1.2 and the IANA name for TLS 1.3.
func CipherName(id uint16) string {
	for name, v := range cipherNames {
		if v == id {
			return name
		}
	}
	for name, v := range tls13Suites {
		if v == id {
			return name
		}
	}
	return tls.CipherSuiteName(id)
}

// VersionName returns the version as MySQL's Ssl_version shows it.
func VersionName(v uint16) string {
	switch v {
	case tls.VersionTLS10:
		return "TLSv1"
	case tls.VersionTLS11:
		return "TLSv1.1"
	case tls.VersionTLS12:
		return "TLSv1.2"
	case tls.VersionTLS13:
		return "TLSv1.3"
	}
	return fmt.Sprintf("0x%04x", v)
}

// ParseCipherList maps an ssl-cipher value (colon separated OpenSSL names)
// to Go suite IDs. Cipher-string syntax such as HIGH:!aNULL has no Go
// counterpart and is refused, as is any name Go cannot do. weak lists the
// names that are accepted but broken (3DES, RC4).
func ParseCipherList(s string) (ids []uint16, weak []string, err error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil, nil
	}
	for _, name := range strings.FieldsFunc(s, func(r rune) bool { return r == ':' || r == ',' || r == ' ' }) {
		if strings.ContainsAny(name[:1], "!+-@") || strings.Contains(name, "+") || isCipherKeyword(name) {
			return nil, nil, fmt.Errorf("%q is OpenSSL cipher-string syntax, which Go cannot interpret; list explicit cipher names such as ECDHE-RSA-AES256-GCM-SHA384", name)
		}
		if _, ok := tls13Suites[name]; ok {
			return nil, nil, fmt.Errorf("%s is a TLS 1.3 suite; ssl-cipher applies to TLS 1.2 and below (use tls-ciphersuites)", name)
		}
		id, ok := cipherNames[name]
		if !ok {
			return nil, nil, fmt.Errorf("cipher %s is not available in Go's TLS (supported: %s)", name, strings.Join(supportedCipherNames(), ", "))
		}
		if weakCiphers[name] {
			weak = append(weak, name)
		}
		ids = append(ids, id)
	}
	return ids, weak, nil
}

func isCipherKeyword(s string) bool {
	switch s {
	case "ALL", "HIGH", "MEDIUM", "LOW", "DEFAULT", "COMPLEMENTOFALL", "COMPLEMENTOFDEFAULT",
		"AES", "AESGCM", "CHACHA20", "ECDHE", "EECDH", "RSA", "kRSA", "aRSA", "SHA", "SHA256", "SHA384", "aNULL", "eNULL":
		return true
	}
	return false
}

func supportedCipherNames() []string {
	var out []string
	for name := range cipherNames {
		if !weakCiphers[name] {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// CheckTLS13Suites validates tls-ciphersuites. Go's TLS 1.3 always offers
// TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384 and
// TLS_CHACHA20_POLY1305_SHA256; a list naming all of them is honoured as
// is, a restriction Go cannot enforce is refused rather than ignored.
func CheckTLS13Suites(s string) error {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	seen := map[string]bool{}
	for _, name := range strings.Split(s, ":") {
		name = strings.TrimSpace(name)
		if _, ok := tls13Suites[name]; !ok {
			return fmt.Errorf("TLS 1.3 suite %s is not available in Go's TLS (it offers TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256)", name)
		}
		seen[name] = true
	}
	if len(seen) != len(tls13Suites) {
		return fmt.Errorf("Go's TLS 1.3 cannot be restricted to %q: it always offers all of TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256; leave tls-ciphersuites empty, or limit tls-version to TLSv1.2 and use ssl-cipher", s)
	}
	return nil
}

// ParseTLSVersions maps a tls-version list to a min/max pair. Holes
// (TLSv1.1,TLSv1.3) cannot be expressed in Go and are refused.
func ParseTLSVersions(s string) (minV, maxV uint16, err error) {
	if strings.TrimSpace(s) == "" {
		return tls.VersionTLS12, tls.VersionTLS13, nil
	}
	order := []string{"TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"}
	ids := []uint16{tls.VersionTLS10, tls.VersionTLS11, tls.VersionTLS12, tls.VersionTLS13}
	var have [4]bool
	for _, v := range strings.Split(s, ",") {
		v = strings.TrimSpace(v)
		found := false
		for i, name := range order {
			if strings.EqualFold(v, name) {
				have[i], found = true, true
			}
		}
		if !found {
			return 0, 0, fmt.Errorf("unknown TLS version %q (accepted: TLSv1, TLSv1.1, TLSv1.2, TLSv1.3)", v)
		}
	}
	lo, hi := -1, -1
	for i := range have {
		if have[i] {
			if lo < 0 {
				lo = i
			}
			hi = i
		}
	}
	for i := lo; i <= hi; i++ {
		if !have[i] {
			return 0, 0, fmt.Errorf("tls-version %q has a hole at %s; Go can only enforce a contiguous range", s, order[i])
		}
	}
	return ids[lo], ids[hi], nil
}
