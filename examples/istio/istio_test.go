package istio

import (
	"encoding/json"
	"fmt"
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

	"github.com/meshguard/meshguard/config"
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
	if err := decodeStrict(doc, into); err != nil {
		t.Fatal(err)
	}
}

func decodeStrict(doc []byte, into any) error {
	if err := yaml.UnmarshalStrict(doc, into); err != nil {
		return fmt.Errorf("%T: %w", into, err)
	}
	return nil
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
	c, err := decodeCustomDoc(docs[0], apiVersion, kind, spec)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return c
}

// decodeCustomDoc decodes one Istio resource of the kind expected,
// refusing unknown fields in its metadata and in its spec.
func decodeCustomDoc(doc []byte, apiVersion, kind string, spec proto.Message) (custom, error) {
	var c custom
	if err := decodeStrict(doc, &c); err != nil {
		return c, err
	}
	if c.APIVersion != apiVersion || c.Kind != kind {
		return c, fmt.Errorf("%s %s, want %s %s", c.APIVersion, c.Kind, apiVersion, kind)
	}
	if err := protojson.Unmarshal(c.Spec, spec); err != nil {
		return c, fmt.Errorf("spec: %w", err)
	}
	return c, nil
}

// meshOperator is the IstioOperator of mesh-config.yaml: its meshConfig
// is an istio.io/api message.
type meshOperator struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Spec       struct {
		MeshConfig json.RawMessage `json:"meshConfig"`
	} `json:"spec"`
}

// decodeMeshConfig decodes an IstioOperator's meshConfig, refusing
// unknown fields in both.
func decodeMeshConfig(doc []byte) (meshOperator, *meshv1alpha1.MeshConfig, error) {
	var op meshOperator
	if err := decodeStrict(doc, &op); err != nil {
		return op, nil, err
	}
	var mc meshv1alpha1.MeshConfig
	if err := protojson.Unmarshal(op.Spec.MeshConfig, &mc); err != nil {
		return op, nil, fmt.Errorf("meshConfig: %w", err)
	}
	return op, &mc, nil
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
	// The environment is one `meshguard serve` accepts: every name a
	// setting, the whole consistent (a Secret's value stands in as "x…").
	env := map[string]string{}
	for _, e := range c.Env {
		v := e.Value
		if e.ValueFrom != nil {
			v = "secret-from-" + e.ValueFrom.SecretKeyRef.Name + "-0123456789abcdef"
			if e.Name == "DATABASE_URL" {
				v = "postgres://meshguard@db/meshguard"
			}
		}
		env[e.Name] = v
	}
	if _, err := config.Load("", func(k string) string { return env[k] }, nil); err != nil {
		t.Errorf("the Deployment's environment does not load: %v", err)
	}
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Errorf("securityContext %+v: want a non-root user on a read-only root filesystem", sc)
	}
	mounted := false
	for _, m := range c.VolumeMounts {
		mounted = mounted || m.MountPath == "/var/lib/meshguard"
	}
	if !mounted {
		t.Error("no volume at /var/lib/meshguard (DATA_DIR): a read-only root filesystem leaves MeshGuard nowhere to write")
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
	op, mc, err := decodeMeshConfig(documents(t, "mesh-config.yaml")[0])
	if err != nil {
		t.Fatal(err)
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

// TestDecodingIsStrict: the helpers the tests above decode with refuse a
// misspelt field, in the Kubernetes half and in the Istio half, and a
// resource of another kind; each accepts the same document spelt right,
// so the refusals are the misspellings'.
func TestDecodingIsStrict(t *testing.T) {
	const (
		deployment = "apiVersion: apps/v1\nkind: Deployment\nspec: {replicas: 2}\n"
		policy     = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p}\nspec: {action: CUSTOM, provider: {name: x}}\n"
		mesh       = "kind: IstioOperator\nspec:\n  meshConfig:\n    extensionProviders: [{name: m, envoyExtAuthzGrpc: {service: s, port: 1, failOpen: false}}]\n"
	)
	decodeDeployment := func(doc string) error { return decodeStrict([]byte(doc), &appsv1.Deployment{}) }
	decodePolicy := func(doc string) error {
		_, err := decodeCustomDoc([]byte(doc), "security.istio.io/v1", "AuthorizationPolicy", &securityv1beta1.AuthorizationPolicy{})
		return err
	}
	decodeMesh := func(doc string) error {
		_, _, err := decodeMeshConfig([]byte(doc))
		return err
	}
	for _, tc := range []struct {
		name     string
		decode   func(string) error
		doc      string
		old, new string
	}{
		{"Deployment field", decodeDeployment, deployment, "replicas", "replica"},
		{"AuthorizationPolicy spec field", decodePolicy, policy, "provider", "provder"},
		{"AuthorizationPolicy metadata field", decodePolicy, policy, "metadata", "metdata"},
		{"AuthorizationPolicy kind", decodePolicy, policy, "kind: AuthorizationPolicy", "kind: PeerAuthentication"},
		{"IstioOperator field", decodeMesh, mesh, "meshConfig", "meshConfg"},
		{"meshConfig failOpen", decodeMesh, mesh, "failOpen", "failOpn"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.decode(tc.doc); err != nil {
				t.Fatalf("the document spelt right is refused: %v", err)
			}
			bad := strings.Replace(tc.doc, tc.old, tc.new, 1)
			if bad == tc.doc {
				t.Fatalf("%q is not in the document", tc.old)
			}
			if err := tc.decode(bad); err == nil {
				t.Fatalf("accepted with %q for %q", tc.new, tc.old)
			}
		})
	}
}
