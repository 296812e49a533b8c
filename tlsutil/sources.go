package tlsutil

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
)

// Source is one file, or one OpenSSL hashed directory, that TLS material
// is read from, by the option that names it.
type Source struct {
	Option string // ssl-ca, ssl-capath, ssl-cert, ssl-key, ssl-crl, ssl-crlpath
	Path   string
	// names, for a hashed directory, are the file names read in it
	// (<hash>.N for certificates, <hash>.rN for CRLs); nil for a file.
	names *regexp.Regexp
}

// Sources are the files and directories Stage reads; none for a nil or
// DISABLED client.
func (c *Client) Sources() []Source {
	if c == nil || c.mode == ModeDisabled {
		return nil
	}
	o := c.opts
	return sources(
		Source{Option: "ssl-ca", Path: o.CA}, Source{Option: "ssl-capath", Path: o.CAPath, names: hashedCert},
		Source{Option: "ssl-cert", Path: o.Cert}, Source{Option: "ssl-key", Path: o.Key},
		Source{Option: "ssl-crl", Path: o.CRL}, Source{Option: "ssl-crlpath", Path: o.CRLPath, names: hashedCRL})
}

// Sources are the files and directories Stage reads; none for a nil server.
func (s *Server) Sources() []Source {
	if s == nil {
		return nil
	}
	o := s.opts
	return sources(Source{Option: "ssl-ca", Path: o.CA}, Source{Option: "ssl-cert", Path: o.Cert}, Source{Option: "ssl-key", Path: o.Key},
		Source{Option: "ssl-crl", Path: o.CRL}, Source{Option: "ssl-crlpath", Path: o.CRLPath, names: hashedCRL})
}

func sources(all ...Source) []Source {
	return slices.DeleteFunc(all, func(s Source) bool { return s.Path == "" })
}

// Fingerprint is what a set of sources holds now: for every file read
// (through symlinks, as loading reads it, so a Kubernetes Secret whose
// ..data symlink moved to new files has a new fingerprint) its mode and
// the SHA-256 of its contents, or the error reading it gave. Keys are
// "<prefix><option> <file>".
type Fingerprint map[string]string

// FingerprintOf reads the sources now. prefix tells sides apart
// ("master ", "relay ").
func FingerprintOf(prefix string, srcs []Source) Fingerprint {
	fp := Fingerprint{}
	fp.Add(prefix, srcs)
	return fp
}

// Add reads srcs into fp under prefix.
func (fp Fingerprint) Add(prefix string, srcs []Source) {
	for _, s := range srcs {
		key := prefix + s.Option + " " + s.Path
		if s.names == nil {
			fp[key] = fileDigest(s.Path)
			continue
		}
		names, err := hashedNames(s.Path, s.names)
		if err != nil {
			fp[key] = "error: " + err.Error()
			continue
		}
		fp[key] = fmt.Sprintf("directory of %d", len(names))
		for _, n := range names {
			fp[prefix+s.Option+" "+n] = fileDigest(n)
		}
	}
}

func fileDigest(name string) string {
	st, err := os.Stat(name)
	if err != nil {
		return "error: " + err.Error()
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return "error: " + err.Error()
	}
	sum := sha256.Sum256(data)
	return fmt.Sprintf("%04o %s", st.Mode().Perm(), hex.EncodeToString(sum[:]))
}

// Changed lists the keys (option and file) that differ between fp and
// old: changed, new or gone, sorted.
func (fp Fingerprint) Changed(old Fingerprint) []string {
	var out []string
	for k, v := range fp {
		if ov, ok := old[k]; !ok || ov != v {
			out = append(out, k)
		}
	}
	for k := range old {
		if _, ok := fp[k]; !ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}
