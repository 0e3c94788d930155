package charttest

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	certmanagerv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"helm.sh/helm/v4/pkg/action"
	loader "helm.sh/helm/v4/pkg/chart/v2/loader"
	releasev1 "helm.sh/helm/v4/pkg/release/v1"
	"helm.sh/helm/v4/pkg/strvals"
	extensionsv1alpha1 "istio.io/api/extensions/v1alpha1"
	networkingv1 "istio.io/api/networking/v1"
	securityv1beta1 "istio.io/api/security/v1beta1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

const (
	chartDir    = "../meshguard"
	fullValues  = "../meshguard/ci/full-values.yaml"
	releaseName = "meshguard"
	namespace   = "meshguard-system"
	// monitoringAPI is the API the ServiceMonitor needs the cluster to serve.
	monitoringAPI = "monitoring.coreos.com/v1"
)

// rendered is one render of the chart: its objects, decoded, and its notes.
type rendered struct {
	objects []object
	notes   string
}

// object is one rendered manifest, decoded into its type.
type object struct {
	source string // the template it came from
	kind   string
	meta   metav1.ObjectMeta
	value  any // *appsv1.Deployment, *istioResource, …
}

// istioResource is an Istio object: Kubernetes metadata and a spec that is an
// istio.io/api message.
type istioResource struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              json.RawMessage `json:"spec"`
	spec              proto.Message
}

// loadValues reads a values file, as `helm install -f` does.
func loadValues(t *testing.T, name string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	vals := map[string]any{}
	if err := yaml.Unmarshal(data, &vals); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return vals
}

// with returns vals changed by --set style assignments (--set-json with "json:").
func with(t *testing.T, vals map[string]any, sets ...string) map[string]any {
	t.Helper()
	data, err := json.Marshal(vals)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]any{}
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	for _, s := range sets {
		// "json:" marks a --set-json assignment (an empty list, say).
		parse := strvals.ParseInto
		if js, ok := strings.CutPrefix(s, "json:"); ok {
			s, parse = js, strvals.ParseJSON
		}
		if err := parse(s, out); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	return out
}

// renderChart renders the chart as `helm template` does, offline, with the
// extra APIs the cluster is said to serve.
func renderChart(vals map[string]any, apis ...string) (*releasev1.Release, error) {
	ch, err := loader.Load(chartDir)
	if err != nil {
		return nil, fmt.Errorf("loading the chart: %w", err)
	}
	install := action.NewInstall(action.NewConfiguration())
	install.DryRunStrategy = action.DryRunClient
	install.ReleaseName = releaseName
	install.Namespace = namespace
	install.Replace = true
	install.APIVersions = apis
	r, err := install.Run(ch, vals)
	if err != nil {
		return nil, err
	}
	rel, ok := r.(*releasev1.Release)
	if !ok {
		return nil, fmt.Errorf("release of type %T", r)
	}
	return rel, nil
}

// render renders the chart and decodes every manifest strictly.
func render(t *testing.T, vals map[string]any, apis ...string) rendered {
	t.Helper()
	rel, err := renderChart(vals, apis...)
	if err != nil {
		t.Fatalf("rendering: %v", err)
	}
	out := rendered{notes: rel.Info.Notes}
	for _, doc := range strings.Split(rel.Manifest, "\n---\n") {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		o, err := decode([]byte(doc))
		if err != nil {
			t.Fatalf("%v\n%s", err, doc)
		}
		out.objects = append(out.objects, o)
	}
	return out
}

// decode decodes one manifest into the type its apiVersion and kind name,
// refusing unknown fields; a kind the chart should not render is an error.
func decode(doc []byte) (object, error) {
	source := ""
	if first, _, ok := strings.Cut(string(doc), "\n"); ok && strings.HasPrefix(first, "# Source: ") {
		source = strings.TrimPrefix(first, "# Source: ")
	}
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return object{}, fmt.Errorf("%s: %w", source, err)
	}
	o := object{source: source, kind: tm.Kind}
	var into any
	var spec proto.Message
	switch tm.APIVersion + " " + tm.Kind {
	case "apps/v1 Deployment":
		into = &appsv1.Deployment{}
	case "v1 Service":
		into = &corev1.Service{}
	case "v1 ServiceAccount":
		into = &corev1.ServiceAccount{}
	case "v1 Secret":
		into = &corev1.Secret{}
	case "v1 ConfigMap":
		into = &corev1.ConfigMap{}
	case "v1 PersistentVolumeClaim":
		into = &corev1.PersistentVolumeClaim{}
	case "policy/v1 PodDisruptionBudget":
		into = &policyv1.PodDisruptionBudget{}
	case "cert-manager.io/v1 Certificate":
		into = &certmanagerv1.Certificate{}
	case "monitoring.coreos.com/v1 ServiceMonitor":
		into = &monitoringv1.ServiceMonitor{}
	case "security.istio.io/v1 AuthorizationPolicy":
		spec = &securityv1beta1.AuthorizationPolicy{}
	case "extensions.istio.io/v1alpha1 WasmPlugin":
		spec = &extensionsv1alpha1.WasmPlugin{}
	case "networking.istio.io/v1 DestinationRule":
		spec = &networkingv1.DestinationRule{}
	default:
		return o, fmt.Errorf("%s: unexpected %s %s", source, tm.APIVersion, tm.Kind)
	}
	if spec != nil {
		r := &istioResource{spec: spec}
		if err := yaml.UnmarshalStrict(doc, r); err != nil {
			return o, fmt.Errorf("%s: %s: %w", source, tm.Kind, err)
		}
		if err := protojson.Unmarshal(r.Spec, spec); err != nil {
			return o, fmt.Errorf("%s: %s spec: %w", source, tm.Kind, err)
		}
		o.meta, o.value = r.ObjectMeta, r
		return o, nil
	}
	if err := yaml.UnmarshalStrict(doc, into); err != nil {
		return o, fmt.Errorf("%s: %s: %w", source, tm.Kind, err)
	}
	m, ok := into.(metav1.Object)
	if !ok {
		return o, fmt.Errorf("%s: %T has no metadata", source, into)
	}
	o.meta = metav1.ObjectMeta{Name: m.GetName(), Namespace: m.GetNamespace(), Labels: m.GetLabels(), Annotations: m.GetAnnotations()}
	o.value = into
	return o, nil
}

// errNotFound: the render has no object of that kind and name.
var errNotFound = errors.New("not rendered")

// get returns the object of that kind and name.
func get[T any](r rendered, kind, name string) (T, error) {
	var zero T
	for _, o := range r.objects {
		if o.kind == kind && o.meta.Name == name {
			v, ok := o.value.(T)
			if !ok {
				return zero, fmt.Errorf("%s %s is a %T", kind, name, o.value)
			}
			return v, nil
		}
	}
	return zero, fmt.Errorf("%s %s: %w", kind, name, errNotFound)
}

func must[T any](t *testing.T, r rendered, kind, name string) T {
	t.Helper()
	v, err := get[T](r, kind, name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// kinds counts the rendered objects by kind.
func (r rendered) kinds() map[string]int {
	out := map[string]int{}
	for _, o := range r.objects {
		out[o.kind]++
	}
	return out
}

// repoFile is a file of the repository, from this module's directory.
func repoFile(name string) string { return filepath.Join("..", "..", name) }

// metav1LabelSelectorOf converts a label selector, refusing an empty one
// (it would select everything).
func metav1LabelSelectorOf(s *metav1.LabelSelector) (labels.Selector, error) {
	if s == nil || (len(s.MatchLabels) == 0 && len(s.MatchExpressions) == 0) {
		return nil, errors.New("an empty selector")
	}
	return metav1.LabelSelectorAsSelector(s)
}
