package tlsutil

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// crlSpec is one CRL of the test CA, its times relative to now.
type crlSpec struct {
	name       string
	thisUpdate time.Duration
	nextUpdate time.Duration
	revokes    bool // lists the leaf
	forged     bool // signed by another key under the CA's name and key id
}

// crlScenarios are sets of CRLs of one issuer, with the first error
// OpenSSL 3.0.19 reports for the leaf (`openssl verify -crl_check_all`),
// "" for OK. The MySQL C API stops at that first error.
var crlScenarios = []struct {
	name string
	crls []crlSpec
	want string
}{
	{"newer CRL revokes", []crlSpec{
		{"old", -10 * time.Hour, 14 * time.Hour, false, false},
		{"new", -time.Hour, 23 * time.Hour, true, false}}, "certificate revoked"},
	{"newer CRL no longer lists the leaf", []crlSpec{
		{"old", -10 * time.Hour, 14 * time.Hour, true, false},
		{"new", -time.Hour, 23 * time.Hour, false, false}}, ""},
	{"CRL from the future revokes, current one does not", []crlSpec{
		{"current", -10 * time.Hour, 14 * time.Hour, false, false},
		{"future", 2 * time.Hour, 26 * time.Hour, true, false}}, ""},
	{"only a CRL from the future", []crlSpec{
		{"future", 2 * time.Hour, 26 * time.Hour, true, false}}, "CRL is not yet valid"},
	{"newer CRL expired, older current one revokes", []crlSpec{
		{"current", -30 * time.Hour, 24 * time.Hour, true, false},
		{"expired", -5 * time.Hour, -time.Hour, false, false}}, "certificate revoked"},
	{"all CRLs expired", []crlSpec{
		{"older", -50 * time.Hour, -30 * time.Hour, true, false},
		{"newer", -20 * time.Hour, -2 * time.Hour, false, false}}, "CRL has expired"},
	{"newer CRL has a bad signature", []crlSpec{
		{"old", -10 * time.Hour, 14 * time.Hour, false, false},
		{"forged", -time.Hour, 23 * time.Hour, false, true}}, "CRL signature failure"},
}

// crlFixture is a CA, a leaf it issued, and the CA file.
type crlFixture struct {
	dir    string
	now    time.Time
	ca     *Issued
	leaf   *Issued
	caFile string
}

func newCRLFixture(t *testing.T) *crlFixture {
	t.Helper()
	f := &crlFixture{dir: t.TempDir(), now: time.Now().Truncate(time.Second)}
	var err error
	if f.ca, err = NewCA(pkix.Name{Organization: []string{"replink"}, CommonName: "CRL test CA"}, f.now.Add(-72*time.Hour), f.now.Add(72*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if f.leaf, err = f.ca.Issue(CertSpec{Subject: pkix.Name{CommonName: "db1"}, Hosts: []string{"db1"}, Server: true,
		NotBefore: f.now.Add(-72 * time.Hour), NotAfter: f.now.Add(72 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if f.caFile, _, err = f.ca.Write(f.dir, "ca"); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *crlFixture) crl(t *testing.T, s crlSpec) []byte {
	t.Helper()
	var revoked []*x509.Certificate
	if s.revokes {
		revoked = append(revoked, f.leaf.Cert)
	}
	ca := f.ca
	if s.forged {
		other, err := NewCA(pkix.Name{CommonName: "other"}, f.now.Add(-time.Hour), f.now.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		impostor := *f.ca.Cert
		impostor.PublicKey = other.Key.Public()
		ca = &Issued{Cert: &impostor, Key: other.Key}
	}
	b, err := ca.CRL(revoked, f.now.Add(s.thisUpdate), f.now.Add(s.nextUpdate))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// verify is replink's verdict on the leaf: "" for OK, else the error text.
func (f *crlFixture) verify(t *testing.T, opts ClientOptions) string {
	t.Helper()
	opts.Mode, opts.CA = "VERIFY_CA", f.caFile
	cl, err := NewClient(opts)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	if err := cl.Verify([]*x509.Certificate{f.leaf.Cert}, "", f.now); err != nil {
		if Classify(err) != ReasonRevoked {
			t.Errorf("reason %s, want %s: %v", Classify(err), ReasonRevoked, err)
		}
		return err.Error()
	}
	return ""
}

// opensslVerify is `openssl verify -crl_check_all` on the leaf at f.now:
// "" for OK, else the first error it reports.
func (f *crlFixture) opensslVerify(t *testing.T, args ...string) string {
	t.Helper()
	leafFile := filepath.Join(f.dir, "leaf.pem")
	if err := os.WriteFile(leafFile, f.leaf.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	args = append([]string{"verify", "-attime", fmt.Sprint(f.now.Unix()), "-crl_check_all", "-CAfile", f.caFile}, args...)
	out, _ := exec.Command("openssl", append(args, leafFile)...).CombinedOutput()
	for _, line := range strings.Split(string(out), "\n") {
		// error 23 at 0 depth lookup: certificate revoked
		if strings.HasPrefix(line, "error ") && strings.Contains(line, " depth lookup: ") {
			return line[strings.Index(line, " depth lookup: ")+len(" depth lookup: "):]
		}
	}
	if strings.Contains(string(out), leafFile+": OK") {
		return ""
	}
	t.Fatalf("openssl %s: %s", strings.Join(args, " "), out)
	return ""
}

func orders(n int) [][]int {
	if n == 2 {
		return [][]int{{0, 1}, {1, 0}}
	}
	return [][]int{{0}}
}

// TestCRLSelectionMatchesOpenSSL puts the CRLs of each scenario, in both
// orders, into one ssl-crl bundle and into an ssl-crlpath directory as
// <hash>.r0, <hash>.r1, and wants replink's verdict to be OpenSSL's.
func TestCRLSelectionMatchesOpenSSL(t *testing.T) {
	_, lookErr := exec.LookPath("openssl")
	for _, sc := range crlScenarios {
		for _, order := range orders(len(sc.crls)) {
			var names []string
			var pems [][]byte
			f := newCRLFixture(t)
			for _, i := range order {
				names = append(names, sc.crls[i].name)
				pems = append(pems, f.crl(t, sc.crls[i]))
			}
			t.Run(sc.name+"/"+strings.Join(names, ",")+"/ssl-crl", func(t *testing.T) {
				bundle := filepath.Join(f.dir, "crls.pem")
				var all []byte
				for _, p := range pems {
					all = append(all, p...)
				}
				if err := os.WriteFile(bundle, all, 0o644); err != nil {
					t.Fatal(err)
				}
				checkVerdict(t, f.verify(t, ClientOptions{CRL: bundle}), sc.want)
				if lookErr != nil {
					t.Skip("openssl not installed: checked against the recorded OpenSSL 3.0 verdict only")
				}
				if got := f.opensslVerify(t, "-CRLfile", bundle); got != sc.want {
					t.Errorf("openssl verify -CRLfile: %q, recorded %q", got, sc.want)
				}
			})
			t.Run(sc.name+"/"+strings.Join(names, ",")+"/ssl-crlpath", func(t *testing.T) {
				dir := filepath.Join(f.dir, "crls")
				if err := os.Mkdir(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				hash := "0badc0de" // replink does not check the hash itself
				if lookErr == nil {
					first := filepath.Join(f.dir, "first-crl.pem")
					if err := os.WriteFile(first, pems[0], 0o644); err != nil {
						t.Fatal(err)
					}
					out, err := exec.Command("openssl", "crl", "-hash", "-noout", "-in", first).Output()
					if err != nil {
						t.Fatal(err)
					}
					hash = strings.TrimSpace(string(out))
				}
				for i, p := range pems {
					if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s.r%d", hash, i)), p, 0o644); err != nil {
						t.Fatal(err)
					}
				}
				checkVerdict(t, f.verify(t, ClientOptions{CRLPath: dir}), sc.want)
				if lookErr != nil {
					t.Skip("openssl not installed: checked against the recorded OpenSSL 3.0 verdict only")
				}
				if got := f.opensslVerify(t, "-CApath", dir); got != sc.want {
					t.Errorf("openssl verify -CApath: %q, recorded %q", got, sc.want)
				}
			})
		}
	}
}

func checkVerdict(t *testing.T, got, want string) {
	t.Helper()
	switch {
	case want == "" && got != "":
		t.Errorf("replink: %s; OpenSSL: OK", got)
	case want != "" && got == "":
		t.Errorf("replink: OK; OpenSSL: %s", want)
	case want != "" && !strings.Contains(got, want):
		t.Errorf("replink: %s; OpenSSL: %s", got, want)
	}
}

// TestDeltaCRLRefused: replink applies complete CRLs only, so a delta CRL
// (deltaCRLIndicator) in ssl-crl or ssl-crlpath is a configuration error
// naming the file, not a CRL silently used or silently dropped.
func TestDeltaCRLRefused(t *testing.T) {
	f := newCRLFixture(t)
	base := f.crl(t, crlSpec{"base", -10 * time.Hour, 14 * time.Hour, false, false})
	baseNumber := big.NewInt(f.now.Add(-10 * time.Hour).Unix()) // Issued.CRL numbers CRLs by thisUpdate
	ind, err := asn1.Marshal(baseNumber)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(f.now.Unix()), ThisUpdate: f.now.Add(-time.Hour), NextUpdate: f.now.Add(23 * time.Hour),
		RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: f.leaf.Cert.SerialNumber, RevocationTime: f.now.Add(-time.Hour)}},
		ExtraExtensions:           []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 27}, Critical: true, Value: ind}},
	}, f.ca.Cert, f.ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	delta := pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})

	bundle := filepath.Join(f.dir, "crls.pem")
	if err := os.WriteFile(bundle, append(append([]byte{}, base...), delta...), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(f.dir, "crls")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, p := range [][]byte{base, delta} {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("0badc0de.r%d", i)), p, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, opts := range []ClientOptions{{CRL: bundle}, {CRLPath: dir}} {
		opts.Mode, opts.CA = "VERIFY_CA", f.caFile
		_, err := NewClient(opts)
		if err == nil || !strings.Contains(err.Error(), "delta CRL") {
			t.Errorf("ssl-crl=%q ssl-crlpath=%q: NewClient error %v, want a refused delta CRL", opts.CRL, opts.CRLPath, err)
		}
	}
}
