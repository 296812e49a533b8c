package config

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ReadMyCnf reads the [client] group (and [client<suffix>] when suffix is
// set) of a my.cnf file, as the C API's MYSQL_READ_DEFAULT_FILE does,
// following !include and !includedir. Option names are normalised to
// dashes.
func ReadMyCnf(name, suffix string) (map[string]string, error) {
	out := map[string]string{}
	groups := map[string]bool{"client": true}
	if suffix != "" {
		groups["client"+suffix] = true
	}
	return out, readMyCnf(name, groups, out, 0)
}

func readMyCnf(name string, groups map[string]bool, out map[string]string, depth int) error {
	if depth > 10 {
		return fmt.Errorf("%s: !include nested too deep", name)
	}
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	in := false
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
			continue
		case strings.HasPrefix(line, "!includedir"):
			dir := strings.TrimSpace(strings.TrimPrefix(line, "!includedir"))
			matches, _ := filepath.Glob(filepath.Join(dir, "*.cnf"))
			for _, m := range matches {
				if err := readMyCnf(m, groups, out, depth+1); err != nil {
					return err
				}
			}
			continue
		case strings.HasPrefix(line, "!include"):
			if err := readMyCnf(strings.TrimSpace(strings.TrimPrefix(line, "!include")), groups, out, depth+1); err != nil {
				return err
			}
			continue
		case line[0] == '[':
			end := strings.IndexByte(line, ']')
			if end < 0 {
				return fmt.Errorf("%s:%d: unterminated group header", name, n)
			}
			in = groups[strings.ToLower(strings.TrimSpace(line[1:end]))]
			continue
		}
		if !in {
			continue
		}
		key, val, _ := strings.Cut(line, "=")
		key = strings.ReplaceAll(strings.ToLower(strings.TrimSpace(key)), "_", "-")
		val = strings.TrimSpace(val)
		if i := strings.Index(val, " #"); i >= 0 && !strings.HasPrefix(val, "\"") && !strings.HasPrefix(val, "'") {
			val = strings.TrimSpace(val[:i])
		}
		if len(val) >= 2 && (val[0] == '"' && val[len(val)-1] == '"' || val[0] == '\'' && val[len(val)-1] == '\'') {
			val = val[1 : len(val)-1]
		}
		out[key] = val
	}
	return sc.Err()
}

// ApplyMyCnf puts the [client] options that replink understands into the
// [master] section.
func (c *Config) ApplyMyCnf(file string, opts map[string]string) error {
	m := &c.Master
	for k, v := range opts {
		switch k {
		case "host":
			m.Host = v
		case "port":
			p, err := strconv.Atoi(v)
			if err != nil {
				return &Error{File: file, Key: "port", Err: fmt.Errorf("%q is not a number", v)}
			}
			m.Port = p
		case "user":
			m.User = v
		case "password":
			m.Password = v
		case "ssl-mode":
			m.SSLMode = v
		case "ssl-ca":
			m.SSLCA = v
		case "ssl-capath":
			m.SSLCAPath = v
		case "ssl-cert":
			m.SSLCert = v
		case "ssl-key":
			m.SSLKey = v
		case "ssl-cipher":
			m.SSLCipher = v
		case "tls-version":
			m.TLSVersion = v
		case "tls-ciphersuites":
			m.TLSCiphersuites = v
		case "ssl-crl":
			m.SSLCRL = v
		case "ssl-crlpath":
			m.SSLCRLPath = v
		case "connect-timeout":
			m.ConnectTimeout = v + "s"
		case "ssl-verify-server-cert":
			if v == "" || v == "1" || strings.EqualFold(v, "on") || strings.EqualFold(v, "true") {
				m.SSLMode = "VERIFY_IDENTITY"
			}
		}
	}
	return nil
}
