package istio

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	extensionsv1alpha1 "istio.io/api/extensions/v1alpha1"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	networkingv1 "istio.io/api/networking/v1"
	securityv1beta1 "istio.io/api/security/v1beta1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/meshguard/meshguard/filterconfig"
	"github.com/meshguard/meshguard/identity"
)

// documents splits a multi-document YAML file.
func documents(t *testing.T, name string) [][]byte {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, d := range strings.Split(string(data), "\n---\n") {
		out = append(out, []byte(d))
	}
	return out
}

// strict decodes a Kubernetes object, refusing unknown fields.
func strict(t *testing.T, doc []byte, into any) {
	t.Helper()
	if err := yaml.UnmarshalStrict(doc, into); err != nil {
		t.Fatalf("%T: %v", into, err)
	}
}

// custom is an Istio resource: Kubernetes metadata and a spec that is an
// istio.io/api message, decoded with protojson (unknown fields refused).
type custom struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              json.RawMessage `json:"spec"`
}

func decodeCustom(t *testing.T, name, apiVersion, kind string, spec proto.Message) custom {
	t.Helper()
	docs := documents(t, name)
	if len(docs) != 1 {
		t.Fatalf("%s: %d documents", name, len(docs))
	}
	var c custom
	strict(t, docs[0], &c)
	if c.APIVersion != apiVersion || c.Kind != kind {
		t.Fatalf("%s: %s %s, want %s %s", name, c.APIVersion, c.Kind, apiVersion, kind)
	}
	if err := protojson.Unmarshal(c.Spec, spec); err != nil {
		t.Fatalf("%s: spec: %v", name, err)
	}
	return c
}

func TestMeshGuardDeployment(t *testing.T) {
	docs := documents(t, "meshguard.yaml")
	if len(docs) != 3 {
		t.Fatalf("%d documents", len(docs))
	}
	var ns corev1.Namespace
	var dep appsv1.Deployment
	var svc corev1.Service
	strict(t, docs[0], &ns)
	strict(t, docs[1], &dep)
	strict(t, docs[2], &svc)
	if ns.Labels["istio-injection"] != "disabled" {
		t.Error("MeshGuard's namespace must not get sidecars (it would authorize itself)")
	}
	c := dep.Spec.Template.Spec.Containers[0]
	if len(c.Ports) != 2 || c.ReadinessProbe.HTTPGet.Path != "/ready" || dep.Spec.Selector.MatchLabels["app"] != "meshguard" {
		t.Errorf("deployment %+v", c)
	}
	if len(svc.Spec.Ports) != 2 || svc.Spec.Ports[1].Port != 3101 {
		t.Errorf("service ports %+v", svc.Spec.Ports)
	}
}

// TestMeshGuardServesTLS: both ports serve TLS from a mounted Secret, the
// probes use HTTPS, and PROXIES_FILE names the proxies allowed.
func TestMeshGuardServesTLS(t *testing.T) {
	var dep appsv1.Deployment
	strict(t, documents(t, "meshguard.yaml")[1], &dep)
	c := dep.Spec.Template.Spec.Containers[0]
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	if env["TLS_CERT_FILE"] == "" || env["TLS_KEY_FILE"] == "" || env["TLS_PORTS"] != "grpc,http" || env["PROXIES_FILE"] == "" || env["TLS_CLIENT_CA_FILE"] == "" || env["TLS_CLIENT_AUTH"] != "verify-if-given" ||
		c.ReadinessProbe.HTTPGet.Scheme != corev1.URISchemeHTTPS || c.LivenessProbe.HTTPGet.Scheme != corev1.URISchemeHTTPS {
		t.Fatalf("env %v, probes %v %v", env, c.ReadinessProbe.HTTPGet.Scheme, c.LivenessProbe.HTTPGet.Scheme)
	}
	var dr networkingv1.DestinationRule
	decodeCustom(t, "destination-rule.yaml", "networking.istio.io/v1", "DestinationRule", &dr)
	tls := dr.GetTrafficPolicy().GetTls()
	// Mutual: the sidecars' certificate is what PROXIES_FILE lists, so
	// MeshGuard believes the principals they report.
	if dr.GetHost() != "meshguard.meshguard-system.svc.cluster.local" || tls.GetMode() != networkingv1.ClientTLSSettings_MUTUAL ||
		tls.GetCaCertificates() == "" || tls.GetClientCertificate() == "" || tls.GetPrivateKey() == "" || len(tls.GetSubjectAltNames()) != 1 {
		t.Fatalf("destination rule %v", &dr)
	}
}

func TestMeshConfig(t *testing.T) {
	docs := documents(t, "mesh-config.yaml")
	var op struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Spec       struct {
			MeshConfig json.RawMessage `json:"meshConfig"`
		} `json:"spec"`
	}
	strict(t, docs[0], &op)
	var mc meshv1alpha1.MeshConfig
	if err := protojson.Unmarshal(op.Spec.MeshConfig, &mc); err != nil {
		t.Fatalf("meshConfig: %v", err)
	}
	p := mc.GetExtensionProviders()[0]
	authz := p.GetEnvoyExtAuthzGrpc()
	if op.Kind != "IstioOperator" || p.GetName() != "meshguard" || authz.GetPort() != 3101 || authz.GetFailOpen() {
		t.Fatalf("provider %v", p)
	}
}

func TestAuthorizationPolicy(t *testing.T) {
	var ap securityv1beta1.AuthorizationPolicy
	c := decodeCustom(t, "authorization-policy.yaml", "security.istio.io/v1", "AuthorizationPolicy", &ap)
	if ap.GetAction() != securityv1beta1.AuthorizationPolicy_CUSTOM || ap.GetProvider().GetName() != "meshguard" {
		t.Fatalf("policy %v", &ap)
	}
	// The SPIFFE ID the comment binds is a valid one, in the form Istio
	// gives the workloads of the policy's namespace.
	data, err := os.ReadFile("authorization-policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(data), "--spiffe-id ")
	id, _, _ := strings.Cut(rest, "\n")
	if !ok || !identity.ValidSPIFFEID(id) || !strings.HasPrefix(id, "spiffe://cluster.local/ns/"+c.Namespace+"/sa/") {
		t.Fatalf("--spiffe-id %q: want a valid SPIFFE ID of a service account in namespace %s", id, c.Namespace)
	}
}

// TestWasmPlugin: the WasmPlugin fails closed, and its pluginConfig, as the
// filter receives it (JSON), is a configuration the filter accepts: a
// source on MeshGuard's HTTP port in the mesh.
func TestWasmPlugin(t *testing.T) {
	var wp extensionsv1alpha1.WasmPlugin
	decodeCustom(t, "wasm-plugin.yaml", "extensions.istio.io/v1alpha1", "WasmPlugin", &wp)
	if wp.GetFailStrategy() != extensionsv1alpha1.FailStrategy_FAIL_CLOSE || wp.GetPhase() != extensionsv1alpha1.PluginPhase_AUTHN {
		t.Fatalf("plugin %v", &wp)
	}
	js, err := protojson.Marshal(wp.GetPluginConfig())
	if err != nil {
		t.Fatal(err)
	}
	c, err := filterconfig.Parse(js)
	if err != nil {
		t.Fatalf("the filter refuses the pluginConfig: %v\n%s", err, js)
	}
	if c.Source == nil || !strings.HasPrefix(c.Source.Cluster, "outbound|3100||meshguard.meshguard-system.svc") {
		t.Fatalf("source %+v: want MeshGuard's HTTP port (3100) in the mesh", c.Source)
	}
}

// TestDecodingIsStrict: a misspelt field is refused, in both halves.
func TestDecodingIsStrict(t *testing.T) {
	var dep appsv1.Deployment
	if err := yaml.UnmarshalStrict([]byte("apiVersion: apps/v1\nkind: Deployment\nspec: {replica: 2}\n"), &dep); err == nil {
		t.Error("a misspelt Deployment field was accepted")
	}
	var ap securityv1beta1.AuthorizationPolicy
	if err := protojson.Unmarshal([]byte(`{"action":"CUSTOM","provder":{"name":"x"}}`), &ap); err == nil {
		t.Error("a misspelt AuthorizationPolicy field was accepted")
	}
}
