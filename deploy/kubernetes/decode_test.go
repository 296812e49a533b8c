package kubernetes

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// kinds are the API types the manifests may hold, by apiVersion/kind.
var kinds = map[string]func() any{
	"v1/ConfigMap":                            func() any { return new(corev1.ConfigMap) },
	"v1/Secret":                               func() any { return new(corev1.Secret) },
	"v1/Service":                              func() any { return new(corev1.Service) },
	"apps/v1/StatefulSet":                     func() any { return new(appsv1.StatefulSet) },
	"policy/v1/PodDisruptionBudget":           func() any { return new(policyv1.PodDisruptionBudget) },
	"monitoring.coreos.com/v1/ServiceMonitor": func() any { return new(monitoringv1.ServiceMonitor) },
	"monitoring.coreos.com/v1/PrometheusRule": func() any { return new(monitoringv1.PrometheusRule) },
	"cert-manager.io/v1/Certificate":          func() any { return new(certificate) },
	// The operator's v1alpha1 package would bring k8s.io/apiextensions-apiserver
	// and newer Prometheus client modules into this module: the fields the
	// manifest uses are declared here instead (alertmanager_test.go).
	"monitoring.coreos.com/v1alpha1/AlertmanagerConfig": func() any { return new(alertmanagerConfig) },
}

// docSep splits a multi-document YAML file.
var docSep = regexp.MustCompile(`(?m)^---[ \t]*$`)

// decodeStrict decodes one YAML document into the API type its apiVersion
// and kind name, as the API server's strict field validation does: a
// duplicate key, an unknown field (names are case-sensitive, unlike
// encoding/json's) or a value of the wrong type is an error. It returns nil
// for a document with nothing but comments.
func decodeStrict(doc []byte) (any, error) {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return nil, fmt.Errorf("yaml: %w", err)
	}
	if bytes.Equal(bytes.TrimSpace(j), []byte("null")) {
		return nil, nil
	}
	var tm metav1.TypeMeta
	if err := json.Unmarshal(j, &tm); err != nil {
		return nil, fmt.Errorf("apiVersion/kind: %w", err)
	}
	newObj, ok := kinds[tm.APIVersion+"/"+tm.Kind]
	if !ok {
		return nil, fmt.Errorf("apiVersion %q, kind %q: not a type these manifests are checked against", tm.APIVersion, tm.Kind)
	}
	obj := newObj()
	strict, err := kjson.UnmarshalStrict(j, obj, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", tm.Kind, err)
	}
	if len(strict) > 0 {
		return nil, fmt.Errorf("%s: %w", tm.Kind, errors.Join(strict...))
	}
	return obj, nil
}

// object is one decoded manifest and where it came from.
type object struct {
	where string // file, and document number in a multi-document file
	obj   any
}

// loadManifests decodes every YAML file under this directory.
func loadManifests(t *testing.T) []object {
	t.Helper()
	var objs []object
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !(strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, doc := range docSep.Split(string(data), -1) {
			obj, err := decodeStrict([]byte(doc))
			if err != nil {
				return fmt.Errorf("%s, document %d: %w", path, i+1, err)
			}
			if obj != nil {
				objs = append(objs, object{where: fmt.Sprintf("%s#%d", path, i+1), obj: obj})
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// ofType returns the objects of type T.
func ofType[T any](objs []object) []T {
	var out []T
	for _, o := range objs {
		if v, ok := o.obj.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

// TestManifestsDecodeStrictly: every manifest decodes strictly into its
// API type, and the set is the one the deployment needs.
func TestManifestsDecodeStrictly(t *testing.T) {
	objs := loadManifests(t)
	count := map[string]int{}
	for _, o := range objs {
		m, ok := o.obj.(metav1.Object)
		if !ok {
			t.Fatalf("%s: %T has no metadata", o.where, o.obj)
		}
		if m.GetName() == "" || m.GetLabels()["app.kubernetes.io/name"] != "replink" {
			t.Errorf("%s: want a name and the label app.kubernetes.io/name: replink, got %q %v", o.where, m.GetName(), m.GetLabels())
		}
		if m.GetNamespace() != "" {
			t.Errorf("%s: namespace %q: leave it to kubectl -n", o.where, m.GetNamespace())
		}
		count[fmt.Sprintf("%T", o.obj)]++
	}
	for _, c := range []struct {
		typ  string
		want int
	}{
		{"*v1.ConfigMap", 1},
		{"*v1.Secret", 1},
		{"*v1.Service", 2},
		{"*v1.StatefulSet", 1},
		{"*v1.PodDisruptionBudget", 1},
		{"*v1.ServiceMonitor", 1},
		{"*v1.PrometheusRule", 1},
		{"*kubernetes.certificate", 2},
	} {
		if count[c.typ] != c.want {
			t.Errorf("%d of %s, want %d", count[c.typ], c.typ, c.want)
		}
	}
}

// TestDecodeStrictRejects: the decoder the manifests go through refuses
// what the API server's strict validation refuses.
func TestDecodeStrictRejects(t *testing.T) {
	for _, c := range []struct {
		name, doc, want string
	}{
		{"unknown field", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, nmae: y}\n", `unknown field "metadata.nmae"`},
		{"field in the wrong case", "apiVersion: v1\nkind: ConfigMap\nmetadata: {Name: x}\n", `unknown field "metadata.Name"`},
		{"duplicate key", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: '1', a: '2'}\n", "already set"},
		{"unknown kind", "apiVersion: v1\nkind: Frobnicator\nmetadata: {name: x}\n", "not a type"},
		{"wrong apiVersion", "apiVersion: apps/v1beta1\nkind: StatefulSet\nmetadata: {name: x}\n", "not a type"},
		{"wrong type", "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: x}\nspec: {replicas: two}\n", "replicas"},
		{"unknown field deep in a pod", "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: x}\nspec:\n  template:\n    spec:\n      containers:\n      - name: c\n        readinessProbe: {httpGet: {path: /readyz, port: metrics}, timeout: 3}\n", `unknown field "spec.template.spec.containers[0].readinessProbe.timeout"`},
		{"unknown field in a ServiceMonitor", "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: x}\nspec: {endpoints: [{port: metrics, pth: /metrics}]}\n", `unknown field "spec.endpoints[0].pth"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := decodeStrict([]byte(c.doc))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want an error with %q", err, c.want)
			}
		})
	}
}
