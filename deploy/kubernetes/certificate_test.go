package kubernetes

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// certificate is the part of cert-manager's Certificate (cert-manager.io/v1)
// the manifests use. cert-manager's Go API module is not available here,
// so the manifests are decoded into this instead, strictly: a field not
// listed here (a typo, or one this file does not know) fails the test.
type certificate struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		SecretName     string `json:"secretName"`
		SecretTemplate *struct {
			Labels      map[string]string `json:"labels,omitempty"`
			Annotations map[string]string `json:"annotations,omitempty"`
		} `json:"secretTemplate,omitempty"`
		Duration    string `json:"duration,omitempty"`
		RenewBefore string `json:"renewBefore,omitempty"`
		Subject     *struct {
			Organizations []string `json:"organizations,omitempty"`
		} `json:"subject,omitempty"`
		CommonName  string   `json:"commonName,omitempty"`
		DNSNames    []string `json:"dnsNames,omitempty"`
		IPAddresses []string `json:"ipAddresses,omitempty"`
		Usages      []string `json:"usages,omitempty"`
		PrivateKey  *struct {
			Algorithm      string `json:"algorithm,omitempty"`
			Size           int    `json:"size,omitempty"`
			Encoding       string `json:"encoding,omitempty"`
			RotationPolicy string `json:"rotationPolicy,omitempty"`
		} `json:"privateKey,omitempty"`
		IssuerRef struct {
			Name  string `json:"name"`
			Kind  string `json:"kind,omitempty"`
			Group string `json:"group,omitempty"`
		} `json:"issuerRef"`
	} `json:"spec"`
}

// certManagerKeys are the keys cert-manager writes into a Certificate's
// Secret.
var certManagerKeys = []string{"tls.crt", "tls.key", "ca.crt"}

// expiringSoonDays is where ReplinkCertExpiringSoon fires
// (dashboards/alerts.yml): renewal must come before it.
const expiringSoonDays = 21

// TestCertificates: each Certificate's Secret is mounted (directly, so it
// is updated) by the replink container and named by replink.toml under
// cert-manager's key names: the server certificate as [relay] ssl-cert,
// ssl-key, ssl-ca; the client certificate as [master] ssl-cert, ssl-key.
// They are renewed before the expiry alert fires, with a new key.
func TestCertificates(t *testing.T) {
	d := loadDeployment(t)
	cfgFiles := configFiles(d.cfg)
	for _, c := range []struct {
		name, usage string
		keys        map[string]string // config key -> Secret key
	}{
		{"replink-server", "server auth", map[string]string{"relay.ssl-cert": "tls.crt", "relay.ssl-key": "tls.key", "relay.ssl-ca": "ca.crt"}},
		{"replink-client", "client auth", map[string]string{"master.ssl-cert": "tls.crt", "master.ssl-key": "tls.key"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			i := slices.IndexFunc(d.certs, func(x *certificate) bool { return x.Name == c.name })
			if i < 0 {
				t.Fatalf("no Certificate %s", c.name)
			}
			cert := d.certs[i]
			var errs []error
			vol, mount, err := d.secretMount(cert.Spec.SecretName)
			if err != nil {
				t.Fatal(err)
			}
			for key, secretKey := range c.keys {
				if want := path.Join(mount.MountPath, secretKey); cfgFiles[key] != want {
					errs = append(errs, fmt.Errorf("%s = %q, want %s (the %s of Secret %s, volume %s)", key, cfgFiles[key], want, secretKey, cert.Spec.SecretName, vol.Name))
				}
			}
			if !slices.Contains(cert.Spec.Usages, c.usage) {
				errs = append(errs, fmt.Errorf("usages %q: no %q", cert.Spec.Usages, c.usage))
			}
			duration, err1 := time.ParseDuration(cert.Spec.Duration)
			renew, err2 := time.ParseDuration(cert.Spec.RenewBefore)
			if err := errors.Join(err1, err2); err != nil || renew <= expiringSoonDays*24*time.Hour || renew >= duration {
				errs = append(errs, fmt.Errorf("duration %q, renewBefore %q: want renewal more than %d days before expiry (ReplinkCertExpiringSoon), and before the end (%v)",
					cert.Spec.Duration, cert.Spec.RenewBefore, expiringSoonDays, err))
			}
			if pk := cert.Spec.PrivateKey; pk == nil || pk.RotationPolicy != "Always" {
				errs = append(errs, errors.New("privateKey.rotationPolicy should be Always: a new key with every certificate"))
			}
			if cert.Spec.IssuerRef.Name == "" {
				errs = append(errs, errors.New("no issuerRef.name"))
			}
			if c.usage == "server auth" {
				for _, name := range []string{"replink", d.sts.Spec.ServiceName} {
					if !slices.ContainsFunc(cert.Spec.DNSNames, func(n string) bool {
						return n == name || strings.Contains(n, "."+name+".") || strings.HasPrefix(n, name+".")
					}) {
						errs = append(errs, fmt.Errorf("dnsNames %q: nothing for Service %s", cert.Spec.DNSNames, name))
					}
				}
			}
			if err := errors.Join(errs...); err != nil {
				t.Error(err)
			}
		})
	}
}

// secretMount is the pod volume of Secret name and the replink container's
// mount of it.
func (d *deployment) secretMount(name string) (corev1.Volume, corev1.VolumeMount, error) {
	for _, v := range d.pod.Volumes {
		if v.Secret == nil || v.Secret.SecretName != name {
			continue
		}
		m, ok := d.mount(d.main, v.Name)
		if !ok {
			return v, m, fmt.Errorf("volume %s (Secret %s) is not mounted by the replink container", v.Name, name)
		}
		return v, m, nil
	}
	return corev1.Volume{}, corev1.VolumeMount{}, fmt.Errorf("no pod volume of Secret %s", name)
}
