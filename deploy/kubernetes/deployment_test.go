package kubernetes

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/replink/replink/config"
	"github.com/replink/replink/tlsutil"
)

// podIndexLabel is the label StatefulSets put on their pods with the
// pod's ordinal (Kubernetes 1.28 and later).
const podIndexLabel = "apps.kubernetes.io/pod-index"

// deployment is the decoded manifests, with the pieces the checks look at.
type deployment struct {
	sts      *appsv1.StatefulSet
	pod      corev1.PodSpec
	podSet   labels.Set // the pod template's labels
	main     corev1.Container
	services map[string]*corev1.Service
	secret   *corev1.Secret
	cm       *corev1.ConfigMap
	pdb      *policyv1.PodDisruptionBudget
	monitor  *monitoringv1.ServiceMonitor
	rule     *monitoringv1.PrometheusRule
	certs    []*certificate // cert-manager Certificates
	toml     string         // the ConfigMap's replink.toml
	cfg      *config.Config // toml loaded by replink's own loader
}

func loadDeployment(t *testing.T) *deployment {
	t.Helper()
	objs := loadManifests(t)
	d := &deployment{services: map[string]*corev1.Service{}}
	one := func(n int, kind string) {
		if n != 1 {
			t.Fatalf("%d %s manifests, want 1", n, kind)
		}
	}
	sts := ofType[*appsv1.StatefulSet](objs)
	one(len(sts), "StatefulSet")
	d.sts, d.pod, d.podSet = sts[0], sts[0].Spec.Template.Spec, labels.Set(sts[0].Spec.Template.Labels)
	cs := d.pod.Containers
	if len(cs) != 1 || cs[0].Name != "replink" {
		t.Fatalf("containers %v, want one, replink", cs)
	}
	d.main = cs[0]
	for _, s := range ofType[*corev1.Service](objs) {
		d.services[s.Name] = s
	}
	secrets, cms := ofType[*corev1.Secret](objs), ofType[*corev1.ConfigMap](objs)
	one(len(secrets), "Secret")
	one(len(cms), "ConfigMap")
	d.secret, d.cm = secrets[0], cms[0]
	pdbs, sms, rules := ofType[*policyv1.PodDisruptionBudget](objs), ofType[*monitoringv1.ServiceMonitor](objs), ofType[*monitoringv1.PrometheusRule](objs)
	one(len(pdbs), "PodDisruptionBudget")
	one(len(sms), "ServiceMonitor")
	one(len(rules), "PrometheusRule")
	d.pdb, d.monitor, d.rule = pdbs[0], sms[0], rules[0]
	d.certs = ofType[*certificate](objs)

	var ok bool
	if d.toml, ok = d.cm.Data["replink.toml"]; !ok {
		t.Fatalf("ConfigMap %s has no replink.toml", d.cm.Name)
	}
	name := filepath.Join(t.TempDir(), "replink.toml")
	if err := os.WriteFile(name, []byte(d.toml), 0o644); err != nil {
		t.Fatal(err)
	}
	d.cfg = config.Defaults()
	if err := d.cfg.LoadFile(name); err != nil {
		t.Fatalf("ConfigMap %s: replink.toml: %v", d.cm.Name, err)
	}
	return d
}

// mount returns the main container's mount of volume vol.
func (d *deployment) mount(c corev1.Container, vol string) (corev1.VolumeMount, bool) {
	for _, m := range c.VolumeMounts {
		if m.Name == vol {
			return m, true
		}
	}
	return corev1.VolumeMount{}, false
}

// volume returns the pod's volume named name.
func (d *deployment) volume(name string) (corev1.Volume, bool) {
	for _, v := range d.pod.Volumes {
		if v.Name == name {
			return v, true
		}
	}
	return corev1.Volume{}, false
}

// containerPort returns the main container's port named name.
func (d *deployment) containerPort(name string) (int32, error) {
	for _, p := range d.main.Ports {
		if p.Name == name {
			return p.ContainerPort, nil
		}
	}
	return 0, fmt.Errorf("container %s has no port named %q", d.main.Name, name)
}

// selects tells whether sel selects the StatefulSet's pods.
func (d *deployment) selects(sel *metav1.LabelSelector) error {
	if sel == nil {
		return errors.New("no selector")
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return fmt.Errorf("selector: %w", err)
	}
	if s.Empty() || !s.Matches(d.podSet) {
		return fmt.Errorf("selector %s does not select the pods (labels %s)", s, d.podSet)
	}
	return nil
}

// listenPort is the port of a host:port listen address in the config.
func listenPort(key, addr string) (int32, error) {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, fmt.Errorf("%s %q: %w", key, addr, err)
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("%s %q: %w", key, addr, err)
	}
	return int32(n), nil
}

// dockerfileUID is the uid of the Dockerfile's last USER instruction.
func dockerfileUID() (int64, error) {
	data, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		return 0, err
	}
	m := regexp.MustCompile(`(?m)^USER\s+(\d+)`).FindAllStringSubmatch(string(data), -1)
	if len(m) == 0 {
		return 0, errors.New("Dockerfile: no numeric USER")
	}
	return strconv.ParseInt(m[len(m)-1][1], 10, 64)
}

// checkProbe: the probe is an HTTP GET of path on the metrics port.
func (d *deployment) checkProbe(kind string, p *corev1.Probe, path string) error {
	if p == nil || p.HTTPGet == nil {
		return fmt.Errorf("%s probe: want an HTTP GET of %s", kind, path)
	}
	if p.HTTPGet.Path != path {
		return fmt.Errorf("%s probe: path %q, want %q", kind, p.HTTPGet.Path, path)
	}
	want, err := listenPort("metrics.listen", d.cfg.Metrics.Listen)
	if err != nil {
		return err
	}
	port := p.HTTPGet.Port
	if port.Type == intstr.String {
		if port.StrVal != "metrics" {
			return fmt.Errorf("%s probe: port %q, want the metrics port", kind, port.StrVal)
		}
		got, err := d.containerPort(port.StrVal)
		if err != nil {
			return fmt.Errorf("%s probe: %w", kind, err)
		}
		if got != want {
			return fmt.Errorf("%s probe: port metrics is %d, [metrics] listen is %s", kind, got, d.cfg.Metrics.Listen)
		}
	} else if port.IntVal != want {
		return fmt.Errorf("%s probe: port %d, [metrics] listen is %s", kind, port.IntVal, d.cfg.Metrics.Listen)
	}
	return nil
}

// checkContainerSecurity: the container runs without privilege.
func checkContainerSecurity(pod corev1.PodSpec, c corev1.Container) error {
	sc, psc := c.SecurityContext, pod.SecurityContext
	if sc == nil {
		return fmt.Errorf("container %s: no securityContext", c.Name)
	}
	var problems []string
	if !(isTrue(sc.RunAsNonRoot) || sc.RunAsNonRoot == nil && psc != nil && isTrue(psc.RunAsNonRoot)) {
		problems = append(problems, "runAsNonRoot is not true")
	}
	if !isTrue(sc.ReadOnlyRootFilesystem) {
		problems = append(problems, "readOnlyRootFilesystem is not true")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		problems = append(problems, "allowPrivilegeEscalation is not false")
	}
	if sc.Privileged != nil && *sc.Privileged {
		problems = append(problems, "privileged")
	}
	if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
		problems = append(problems, "capabilities must drop ALL and add none")
	}
	seccomp := sc.SeccompProfile
	if seccomp == nil && psc != nil {
		seccomp = psc.SeccompProfile
	}
	if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		problems = append(problems, "seccompProfile is not RuntimeDefault")
	}
	if len(problems) > 0 {
		return fmt.Errorf("container %s: %s", c.Name, strings.Join(problems, "; "))
	}
	return nil
}

func isTrue(b *bool) bool { return b != nil && *b }

// expand does what the kubelet does to $(VAR) in a container's args.
func expand(s string, vars map[string]string) string {
	return regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`).ReplaceAllStringFunc(s, func(ref string) string {
		if v, ok := vars[ref[2:len(ref)-1]]; ok {
			return v
		}
		return ref
	})
}

// TestStatefulSet: a pair of pods, each with its own relay log on its own
// node, unprivileged, probed on the metrics port.
func TestStatefulSet(t *testing.T) {
	d := loadDeployment(t)
	for _, c := range []struct {
		name  string
		check func() error
	}{
		{"a pair", func() error {
			if d.sts.Spec.Replicas == nil || *d.sts.Spec.Replicas != 2 {
				return fmt.Errorf("replicas %v, want 2", d.sts.Spec.Replicas)
			}
			return nil
		}},
		{"its selector selects its pods", func() error { return d.selects(d.sts.Spec.Selector) }},
		{"serviceName is a headless Service for the pods", func() error {
			s, ok := d.services[d.sts.Spec.ServiceName]
			if !ok {
				return fmt.Errorf("serviceName %q: no such Service", d.sts.Spec.ServiceName)
			}
			if s.Spec.ClusterIP != corev1.ClusterIPNone {
				return fmt.Errorf("Service %s: clusterIP %q, want None", s.Name, s.Spec.ClusterIP)
			}
			return d.selects(&metav1.LabelSelector{MatchLabels: s.Spec.Selector})
		}},
		{"each pod has its own volume at data-dir", func() error {
			for _, pvc := range d.sts.Spec.VolumeClaimTemplates {
				if _, shared := d.volume(pvc.Name); shared {
					return fmt.Errorf("volume %s is both a pod volume and a volumeClaimTemplate", pvc.Name)
				}
				if m, ok := d.mount(d.main, pvc.Name); ok && m.MountPath == d.cfg.Relay.DataDir && !m.ReadOnly {
					return nil
				}
			}
			return fmt.Errorf("no volumeClaimTemplate is mounted read-write at [relay] data-dir %s", d.cfg.Relay.DataDir)
		}},
		{"the pods are on different nodes", func() error {
			a := d.pod.Affinity
			if a == nil || a.PodAntiAffinity == nil {
				return errors.New("no podAntiAffinity")
			}
			for _, term := range a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution {
				if term.TopologyKey == "kubernetes.io/hostname" && d.selects(term.LabelSelector) == nil {
					return nil
				}
			}
			return errors.New("no requiredDuringScheduling anti-affinity of the pods on kubernetes.io/hostname")
		}},
		{"the pod runs as the image's non-root user", func() error {
			psc := d.pod.SecurityContext
			if psc == nil || !isTrue(psc.RunAsNonRoot) {
				return errors.New("pod securityContext: runAsNonRoot is not true")
			}
			uid, err := dockerfileUID()
			if err != nil {
				return err
			}
			if psc.RunAsUser == nil || *psc.RunAsUser != uid || uid == 0 {
				return fmt.Errorf("pod securityContext: runAsUser %v, the Dockerfile's USER is %d", psc.RunAsUser, uid)
			}
			if psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				return errors.New("pod securityContext: seccompProfile is not RuntimeDefault")
			}
			return nil
		}},
		{"every container is unprivileged", func() error {
			var errs []error
			for _, c := range append(slices.Clone(d.pod.InitContainers), d.pod.Containers...) {
				errs = append(errs, checkContainerSecurity(d.pod, c))
			}
			return errors.Join(errs...)
		}},
		{"readiness is /readyz on the metrics port", func() error { return d.checkProbe("readiness", d.main.ReadinessProbe, "/readyz") }},
		{"liveness is /healthz on the metrics port", func() error { return d.checkProbe("liveness", d.main.LivenessProbe, "/healthz") }},
		{"startup is /healthz on the metrics port", func() error { return d.checkProbe("startup", d.main.StartupProbe, "/healthz") }},
		{"the relay port is [relay] listen's", func() error {
			want, err := listenPort("relay.listen", d.cfg.Relay.Listen)
			if err != nil {
				return err
			}
			got, err := d.containerPort("relay")
			if err != nil {
				return err
			}
			if got != want {
				return fmt.Errorf("port relay is %d, [relay] listen is %s", got, d.cfg.Relay.Listen)
			}
			return nil
		}},
		{"replink runs the ConfigMap's replink.toml", func() error {
			v, ok := d.volume("config")
			if !ok || v.ConfigMap == nil || v.ConfigMap.Name != d.cm.Name {
				return fmt.Errorf("no volume config from ConfigMap %s", d.cm.Name)
			}
			m, ok := d.mount(d.main, "config")
			if !ok {
				return errors.New("volume config is not mounted")
			}
			if len(d.main.Command) != 0 {
				return fmt.Errorf("command %q: the image's ENTRYPOINT is replink", d.main.Command)
			}
			want := []string{"run", "-c", path.Join(m.MountPath, "replink.toml")}
			if len(d.main.Args) < len(want) || !slices.Equal(d.main.Args[:len(want)], want) {
				return fmt.Errorf("args %q, want %q first", d.main.Args, want)
			}
			return nil
		}},
		{"the master's password comes from the Secret", func() error {
			for _, e := range d.main.Env {
				if e.Name != "REPLINK_MASTER_PASSWORD" {
					continue
				}
				ref := e.ValueFrom
				if ref == nil || ref.SecretKeyRef == nil || ref.SecretKeyRef.Name != d.secret.Name {
					return fmt.Errorf("REPLINK_MASTER_PASSWORD is not from Secret %s", d.secret.Name)
				}
				if _, ok := d.secret.StringData[ref.SecretKeyRef.Key]; !ok {
					return fmt.Errorf("Secret %s has no key %s", d.secret.Name, ref.SecretKeyRef.Key)
				}
				return nil
			}
			return errors.New("no REPLINK_MASTER_PASSWORD")
		}},
		{"the files the config names are mounted, secrets from the Secrets themselves", func() error {
			return d.checkConfigFiles()
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := c.check(); err != nil {
				t.Error(err)
			}
		})
	}
}

// configFiles are the files replink.toml names, by key.
func configFiles(c *config.Config) map[string]string {
	files := map[string]string{
		"master.password-file": c.Master.PasswordFile, "master.ssl-ca": c.Master.SSLCA, "master.ssl-capath": c.Master.SSLCAPath,
		"master.ssl-cert": c.Master.SSLCert, "master.ssl-key": c.Master.SSLKey, "master.ssl-crl": c.Master.SSLCRL,
		"master.ssl-crlpath": c.Master.SSLCRLPath, "relay.ssl-ca": c.Relay.SSLCA, "relay.ssl-cert": c.Relay.SSLCert,
		"relay.ssl-key": c.Relay.SSLKey, "relay.ssl-crl": c.Relay.SSLCRL, "relay.ssl-crlpath": c.Relay.SSLCRLPath,
		"metrics.web-config-file": c.Metrics.WebConfigFile,
	}
	for i, u := range c.Relay.Users {
		files[fmt.Sprintf("relay.users[%d].password-file", i)] = u.PasswordFile
	}
	for k, f := range files {
		if f == "" {
			delete(files, k)
		}
	}
	return files
}

// checkConfigFiles: every file replink.toml names is under a mount of the
// replink container. Those under a Secret's mount are keys of that Secret:
// the replink Secret's, or cert-manager's (tls.crt, tls.key, ca.crt) for
// a Certificate's Secret. Secrets are mounted directly (no init container
// copying them once, no subPath, both of which would keep a renewed
// certificate out of the running pod), read-only, with defaultMode 0440
// and the pod's fsGroup, so replink reads them through its group and
// others cannot.
func (d *deployment) checkConfigFiles() error {
	var errs []error
	if n := len(d.pod.InitContainers); n != 0 {
		errs = append(errs, fmt.Errorf("%d init containers: mount the Secrets directly, a copy made once is never renewed", n))
	}
	if psc := d.pod.SecurityContext; psc == nil || psc.FSGroup == nil || psc.RunAsGroup == nil || *psc.FSGroup != *psc.RunAsGroup {
		errs = append(errs, errors.New("pod securityContext: fsGroup should be set (to runAsGroup): the Secret volumes' files are group-readable by it"))
	}
	keysOf := map[string][]string{} // Secret name -> its keys
	for k := range d.secret.StringData {
		keysOf[d.secret.Name] = append(keysOf[d.secret.Name], k)
	}
	for _, c := range d.certs {
		keysOf[c.Spec.SecretName] = certManagerKeys
	}
	secretOf := map[string]string{} // volume name -> Secret name
	for _, v := range d.pod.Volumes {
		if v.Secret == nil {
			continue
		}
		secretOf[v.Name] = v.Secret.SecretName
		if _, ok := keysOf[v.Secret.SecretName]; !ok {
			errs = append(errs, fmt.Errorf("volume %s: Secret %s is neither the replink Secret nor a Certificate's", v.Name, v.Secret.SecretName))
		}
		if v.Secret.DefaultMode == nil || *v.Secret.DefaultMode != 0o440 {
			errs = append(errs, fmt.Errorf("volume %s: defaultMode should be 0440 (YAML 1.1 octal): readable by the fsGroup, not by others", v.Name))
		}
		m, ok := d.mount(d.main, v.Name)
		if !ok {
			errs = append(errs, fmt.Errorf("volume %s (Secret %s) is not mounted by the replink container", v.Name, v.Secret.SecretName))
		} else if m.SubPath != "" || m.SubPathExpr != "" || !m.ReadOnly {
			errs = append(errs, fmt.Errorf("volume %s: mount it whole and read-only (a subPath mount is never updated)", v.Name))
		}
	}
	for key, f := range configFiles(d.cfg) {
		var under *corev1.VolumeMount
		for i, m := range d.main.VolumeMounts {
			if strings.HasPrefix(f, strings.TrimSuffix(m.MountPath, "/")+"/") {
				under = &d.main.VolumeMounts[i]
			}
		}
		if under == nil {
			errs = append(errs, fmt.Errorf("%s = %s: not under a mount of the replink container", key, f))
			continue
		}
		secret, ok := secretOf[under.Name]
		if !ok {
			continue
		}
		if !slices.Contains(keysOf[secret], path.Base(f)) || path.Dir(f) != path.Clean(under.MountPath) {
			errs = append(errs, fmt.Errorf("%s = %s: Secret %s has no key %s (its keys: %s)", key, f, secret, path.Base(f), strings.Join(keysOf[secret], ", ")))
		}
	}
	return errors.Join(errs...)
}

// TestServerIDPerPod: the pods register with distinct server-ids, from
// the pod-index label through --server-id, parsed by replink's own flags.
func TestServerIDPerPod(t *testing.T) {
	d := loadDeployment(t)
	var indexVar string
	for _, e := range d.main.Env {
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.labels['"+podIndexLabel+"']" {
			indexVar = e.Name
		}
	}
	if indexVar == "" {
		t.Fatalf("no env var from the %s label", podIndexLabel)
	}
	conf := filepath.Join(t.TempDir(), "replink.toml")
	if err := os.WriteFile(conf, []byte(d.toml), 0o644); err != nil {
		t.Fatal(err)
	}
	seen := map[uint32]int{}
	for index := range 3 { // a pair, and a third if it is scaled up
		args := make([]string, len(d.main.Args))
		for i, a := range d.main.Args {
			args[i] = expand(a, map[string]string{indexVar: strconv.Itoa(index)})
		}
		if !slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--server-id=") }) {
			t.Fatalf("args %q: no --server-id", d.main.Args)
		}
		fs := flag.NewFlagSet("run", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		mf := config.AddMasterFlags(fs)
		if err := fs.Parse(args[1:]); err != nil {
			t.Fatalf("pod %d: args %q: %v", index, args, err)
		}
		mf.ConfigFile = conf // the ConfigMap's file, at its mount path in the pod
		c, err := mf.Load()
		if err != nil {
			t.Fatalf("pod %d: %v", index, err)
		}
		id := c.Master.ServerID
		if prev, dup := seen[id]; dup || id == 0 {
			t.Errorf("pod %d: server-id %d (pod %d has it too, or it is 0)", index, id, prev)
		}
		seen[id] = index
	}
}

// TestConfigMapConfigIsValid: the ConfigMap's replink.toml passes replink's
// own validation of every section, with its files replaced by test
// certificates and passwords laid out as the pod sees them: each Secret
// volume's keys, mode 0440 (defaultMode with fsGroup), reached through a
// ..data symlink as the kubelet writes them.
func TestConfigMapConfigIsValid(t *testing.T) {
	d := loadDeployment(t)
	dir := t.TempDir()
	set, err := tlsutil.MakeCertSet(filepath.Join(dir, "pki"), []string{"replink"}, 1, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	certFiles := map[string]map[string]string{ // Secret -> key -> test file
		"replink-server-tls": {"tls.crt": set.ServerCert, "tls.key": set.ServerKey, "ca.crt": set.CA},
		"replink-client-tls": {"tls.crt": set.ClientCert, "tls.key": set.ClientKey, "ca.crt": set.CA},
	}
	toml := d.toml
	for _, v := range d.pod.Volumes {
		if v.Secret == nil {
			continue
		}
		m, ok := d.mount(d.main, v.Name)
		if !ok {
			t.Fatalf("volume %s is not mounted", v.Name)
		}
		vol := filepath.Join(dir, v.Name)
		gen := filepath.Join(vol, "..2026_01_01_00_00_00.000000001")
		if err := os.MkdirAll(gen, 0o755); err != nil {
			t.Fatal(err)
		}
		content := map[string][]byte{}
		for key := range d.secret.StringData {
			content[key] = []byte("test-password\n")
		}
		if files, ok := certFiles[v.Secret.SecretName]; ok {
			content = map[string][]byte{}
			for key, f := range files {
				if content[key], err = os.ReadFile(f); err != nil {
					t.Fatal(err)
				}
			}
		} else if v.Secret.SecretName != d.secret.Name {
			t.Fatalf("volume %s: no test files for Secret %s", v.Name, v.Secret.SecretName)
		}
		for key, data := range content {
			if err := os.WriteFile(filepath.Join(gen, key), data, 0o440); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(filepath.Join(gen, key), os.FileMode(*v.Secret.DefaultMode)); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(filepath.Join("..data", key), filepath.Join(vol, key)); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Symlink(filepath.Base(gen), filepath.Join(vol, "..data")); err != nil {
			t.Fatal(err)
		}
		toml = strings.ReplaceAll(toml, `"`+m.MountPath+"/", `"`+vol+"/")
	}
	toml = strings.ReplaceAll(toml, `"`+d.cfg.Relay.DataDir+`"`, `"`+filepath.Join(dir, "data")+`"`)
	name := filepath.Join(dir, "replink.toml")
	if err := os.WriteFile(name, []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("REPLINK_MASTER_PASSWORD", "test-password")
	c := config.Defaults()
	if err := c.LoadFile(name); err != nil {
		t.Fatal(err)
	}
	c.Master.ServerID = 4000 // the StatefulSet's --server-id=400<pod index>, which wins over the file
	if rc, err := c.ReplicaConfig(); err != nil {
		t.Errorf("[master]: %v", err)
	} else if certs := rc.Endpoint.TLS.Certificates(); !slices.ContainsFunc(certs, func(ci tlsutil.CertInfo) bool { return ci.Role == "client" }) {
		t.Errorf("[master]: no client certificate loaded (%v)", certs)
	}
	if _, _, err := c.RelayLog(); err != nil {
		t.Errorf("[relay]: %v", err)
	}
	rc, err := c.RelayConfig()
	if err != nil {
		t.Errorf("[relay]: %v", err)
	} else if !rc.RequireSecureTransport || rc.TLS == nil {
		t.Error("[relay]: slaves must be required to use TLS")
	}
}

// TestServices: slaves reach the ready pods on the relay port; the
// headless Service lists every pod, ready or not.
func TestServices(t *testing.T) {
	d := loadDeployment(t)
	for _, c := range []struct {
		service   string
		headless  bool
		portNames []string
	}{
		{"replink", false, []string{"relay"}},
		{d.sts.Spec.ServiceName, true, []string{"relay", "metrics"}},
	} {
		t.Run(c.service, func(t *testing.T) {
			s, ok := d.services[c.service]
			if !ok {
				t.Fatalf("no Service %s", c.service)
			}
			if err := d.selects(&metav1.LabelSelector{MatchLabels: s.Spec.Selector}); err != nil {
				t.Error(err)
			}
			if (s.Spec.ClusterIP == corev1.ClusterIPNone) != c.headless || s.Spec.PublishNotReadyAddresses != c.headless {
				t.Errorf("clusterIP %q, publishNotReadyAddresses %v; want headless and listing unready pods: %v",
					s.Spec.ClusterIP, s.Spec.PublishNotReadyAddresses, c.headless)
			}
			var names []string
			for _, p := range s.Spec.Ports {
				names = append(names, p.Name)
				target, err := d.containerPort(p.TargetPort.StrVal)
				if p.TargetPort.Type != intstr.String || err != nil || target != p.Port {
					t.Errorf("port %s: %d → %s: want the container port of that name, and the same number", p.Name, p.Port, p.TargetPort.String())
				}
			}
			if !slices.Equal(names, c.portNames) {
				t.Errorf("ports %q, want %q", names, c.portNames)
			}
		})
	}
}

// TestPodDisruptionBudget: at most one of the pair is down at a time.
func TestPodDisruptionBudget(t *testing.T) {
	d := loadDeployment(t)
	if err := d.selects(d.pdb.Spec.Selector); err != nil {
		t.Error(err)
	}
	if mu := d.pdb.Spec.MaxUnavailable; mu == nil || *mu != intstr.FromInt32(1) || d.pdb.Spec.MinAvailable != nil {
		t.Errorf("maxUnavailable %v, minAvailable %v: want maxUnavailable 1 only", mu, d.pdb.Spec.MinAvailable)
	}
}

// TestServiceMonitor: Prometheus scrapes every pod's /metrics, with a job
// label that the alert rules' ReplinkTargetDown matches.
func TestServiceMonitor(t *testing.T) {
	d := loadDeployment(t)
	sel, err := metav1.LabelSelectorAsSelector(&d.monitor.Spec.Selector)
	if err != nil {
		t.Fatal(err)
	}
	var selected []*corev1.Service
	for _, s := range d.services {
		if !sel.Empty() && sel.Matches(labels.Set(s.Labels)) {
			selected = append(selected, s)
		}
	}
	if len(selected) != 1 || selected[0].Name != d.sts.Spec.ServiceName {
		t.Fatalf("ServiceMonitor selects %d Services, want the headless %s only (pods are scraped once, ready or not)", len(selected), d.sts.Spec.ServiceName)
	}
	s := selected[0]
	if len(d.monitor.Spec.Endpoints) != 1 {
		t.Fatalf("%d endpoints, want 1", len(d.monitor.Spec.Endpoints))
	}
	ep := d.monitor.Spec.Endpoints[0]
	if !slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == ep.Port && p.TargetPort.StrVal == "metrics" }) {
		t.Errorf("endpoint port %q is not Service %s's metrics port", ep.Port, s.Name)
	}
	if ep.Path != "" && ep.Path != "/metrics" {
		t.Errorf("endpoint path %q, want /metrics", ep.Path)
	}
	job := s.Name
	if d.monitor.Spec.JobLabel != "" {
		job = s.Labels[d.monitor.Spec.JobLabel]
	}
	var matcher string
	for _, g := range d.rule.Spec.Groups {
		for _, r := range g.Rules {
			if r.Alert == "ReplinkTargetDown" {
				if m := regexp.MustCompile(`job=~"([^"]*)"`).FindStringSubmatch(r.Expr.String()); m != nil {
					matcher = m[1]
				}
			}
		}
	}
	if matcher == "" {
		t.Fatal(`no ReplinkTargetDown alert with a job=~"..." matcher`)
	}
	if !regexp.MustCompile("^(?:" + matcher + ")$").MatchString(job) {
		t.Errorf("job %q does not match ReplinkTargetDown's job=~%q", job, matcher)
	}
}
