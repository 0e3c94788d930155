package charttest

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	certmanagerv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"google.golang.org/protobuf/encoding/protojson"
	loader "helm.sh/helm/v4/pkg/chart/v2/loader"
	extensionsv1alpha1 "istio.io/api/extensions/v1alpha1"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	networkingv1 "istio.io/api/networking/v1"
	securityv1beta1 "istio.io/api/security/v1beta1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/meshguard/meshguard/filterconfig"
)

// host is MeshGuard's Service as the mesh names it, for the release the
// tests render.
const host = "meshguard.meshguard-system.svc.cluster.local"

// checkDeployment checks the Deployment and Service every render has: the
// settings serve would load, the files it would read, the probes, the
// security context, and a Service that reaches the pods' ports.
func checkDeployment(t *testing.T, r rendered, existing []string) (*appsv1.Deployment, map[string]string) {
	t.Helper()
	d := must[*appsv1.Deployment](t, r, "Deployment", "meshguard")
	pod := d.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers", len(pod.Containers))
	}
	c := pod.Containers[0]
	env, err := serveEnv(r, c, existing)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkFiles(r, d, c, env, existing); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Args, []string{"serve"}) || env["HOST"] != "0.0.0.0" {
		t.Errorf("args %v, HOST %q: want serve on every interface", c.Args, env["HOST"])
	}
	// The HTTP port serves TLS exactly when TLS_PORTS names it.
	scheme := corev1.URISchemeHTTP
	if env["TLS_CERT_FILE"] != "" && slices.Contains(strings.Split(env["TLS_PORTS"], ","), "http") {
		scheme = corev1.URISchemeHTTPS
	}
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"liveness", c.LivenessProbe, "/health"}, {"readiness", c.ReadinessProbe, "/ready"}} {
		if p.probe == nil || p.probe.HTTPGet == nil || p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port.StrVal != "http" || p.probe.HTTPGet.Scheme != scheme {
			t.Errorf("%s probe %+v: want GET %s on the http port over %s", p.name, p.probe, p.path, scheme)
		}
	}
	psc, sc := pod.SecurityContext, c.SecurityContext
	if psc == nil || sc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != 65532 ||
		psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("security context: pod %+v, container %+v", psc, sc)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("the pod mounts a Kubernetes API token it has no use for")
	}
	if d.Spec.Template.Annotations["sidecar.istio.io/inject"] != "false" {
		t.Error("MeshGuard's pods must get no sidecar: it would send MeshGuard's own requests to itself")
	}
	sel, err := metav1LabelSelector(d)
	if err != nil {
		t.Fatal(err)
	}
	if !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Fatalf("the selector %v does not select the pods %v", sel, d.Spec.Template.Labels)
	}
	svc := must[*corev1.Service](t, r, "Service", "meshguard")
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Errorf("the Service selects %v, not the pods %v", svc.Spec.Selector, d.Spec.Template.Labels)
	}
	want := map[string]struct {
		port     int32
		protocol string
	}{"http": {3100, "http"}, "grpc": {3101, "grpc"}}
	for _, p := range svc.Spec.Ports {
		w := want[p.Name]
		if p.Port != w.port || p.AppProtocol == nil || *p.AppProtocol != w.protocol || !slices.ContainsFunc(c.Ports, func(cp corev1.ContainerPort) bool { return cp.Name == p.TargetPort.StrVal }) {
			t.Errorf("Service port %+v: want %d, appProtocol %s, to a named container port", p, w.port, w.protocol)
		}
		delete(want, p.Name)
	}
	if len(want) != 0 {
		t.Errorf("the Service lacks the ports %v", want)
	}
	return d, env
}

func TestDefaultValues(t *testing.T) {
	r := render(t, nil)
	if got, want := r.kinds(), map[string]int{"Deployment": 1, "Service": 1, "ServiceAccount": 1, "Secret": 1, "ConfigMap": 1}; !equalCounts(got, want) {
		t.Fatalf("rendered %v, want %v", got, want)
	}
	d, env := checkDeployment(t, r, nil)
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	if ch.Metadata.AppVersion != ch.Metadata.Version {
		t.Errorf("appVersion %s, version %s: the chart installs the MeshGuard of its own version", ch.Metadata.AppVersion, ch.Metadata.Version)
	}
	if img := d.Spec.Template.Spec.Containers[0].Image; img != "meshguard:"+ch.Metadata.AppVersion {
		t.Errorf("image %s: want meshguard:<appVersion>", img)
	}
	if *d.Spec.Replicas != 1 || env["DATABASE_URL"] != "" {
		t.Errorf("%d replicas, DATABASE_URL %t: want one on SQLite", *d.Spec.Replicas, env["DATABASE_URL"] != "")
	}
	// The generated admin token: long enough for serve, and random.
	if len(env["ADMIN_TOKEN"]) < 32 {
		t.Errorf("a generated admin token of %d characters", len(env["ADMIN_TOKEN"]))
	}
	again := must[*corev1.Secret](t, render(t, nil), "Secret", "meshguard-admin")
	if string(again.Data["token"]) == env["ADMIN_TOKEN"] {
		t.Error("two installs generated the same admin token")
	}
}

func TestFullValues(t *testing.T) {
	vals := loadValues(t, fullValues)
	existing := []string{"meshguard-admin", "meshguard-jwt", "meshguard-db", "meshguard-alerts"}
	r := render(t, vals, monitoringAPI)
	if got, want := r.kinds(), map[string]int{
		"Deployment": 1, "Service": 1, "ServiceAccount": 1, "ConfigMap": 3, "PodDisruptionBudget": 1, "Certificate": 1,
		"ServiceMonitor": 1, "AuthorizationPolicy": 1, "WasmPlugin": 1, "DestinationRule": 1,
	}; !equalCounts(got, want) {
		t.Fatalf("rendered %v, want %v", got, want)
	}
	d, env := checkDeployment(t, r, existing)
	if *d.Spec.Replicas != 3 || env["DATABASE_URL"] == "" {
		t.Errorf("%d replicas on DATABASE_URL %t", *d.Spec.Replicas, env["DATABASE_URL"] != "")
	}
	for _, name := range []string{"ALERT_ON", "ALERT_WEBHOOK_URL", "ALERT_WEBHOOK_SECRET", "ALERT_SLACK_WEBHOOK", "ALERT_EMAIL_TO", "ALERT_SMTP_PASS", "JWT_SECRET", "OTEL_EXPORTER_OTLP_ENDPOINT", "AUDIT_RETENTION_DAYS", "XDS_ENVOY_CERT_FILE", "TLS_CLIENT_CA_FILE"} {
		if env[name] == "" {
			t.Errorf("%s is not set", name)
		}
	}
	pdb := must[*policyv1.PodDisruptionBudget](t, r, "PodDisruptionBudget", "meshguard")
	if sel, err := metav1LabelSelectorOf(pdb.Spec.Selector); err != nil || !sel.Matches(labels.Set(d.Spec.Template.Labels)) || pdb.Spec.MinAvailable.IntValue() != 2 {
		t.Errorf("PodDisruptionBudget %+v: want minAvailable 2 of the pods", pdb.Spec)
	}
	cert := must[*certmanagerv1.Certificate](t, r, "Certificate", "meshguard")
	if !slices.Contains(cert.Spec.DNSNames, host) || cert.Spec.IssuerRef.Name != "mesh-ca" || !r.certificateSecret(tlsVolume(t, d)) {
		t.Errorf("Certificate %+v: want %s, of mesh-ca, into the Secret the pods mount", cert.Spec, host)
	}
	sm := must[*monitoringv1.ServiceMonitor](t, r, "ServiceMonitor", "meshguard")
	ep := sm.Spec.Endpoints
	if len(ep) != 1 || ep[0].Port != "http" || ep[0].Path != "/metrics" || ep[0].Scheme == nil || *ep[0].Scheme != "https" ||
		ep[0].TLSConfig == nil || ep[0].TLSConfig.CA.Secret == nil || ep[0].TLSConfig.CA.Secret.Name != tlsVolume(t, d) {
		t.Errorf("ServiceMonitor endpoints %+v: want /metrics over HTTPS, checked against the certificate's CA", ep)
	}
	checkIstio(t, r, "agents")
}

// checkIstio checks the Istio objects together: the AuthorizationPolicy
// names the provider NOTES.txt tells the user to add, which points at the
// Service's gRPC port; the WasmPlugin fails closed with a configuration the
// filter accepts; the DestinationRule is MeshGuard's Service's.
func checkIstio(t *testing.T, r rendered, workloads string) {
	t.Helper()
	provider := notesProvider(t, r.notes)
	authz := provider.GetEnvoyExtAuthzGrpc()
	if authz.GetService() != host || authz.GetPort() != 3101 || authz.GetFailOpen() {
		t.Errorf("the extension provider %v: want %s:3101, failing closed", provider, host)
	}
	ap := must[*istioResource](t, r, "AuthorizationPolicy", "meshguard")
	apSpec := ap.spec.(*securityv1beta1.AuthorizationPolicy)
	if ap.Namespace != workloads || apSpec.GetAction() != securityv1beta1.AuthorizationPolicy_CUSTOM || apSpec.GetProvider().GetName() != provider.GetName() {
		t.Errorf("AuthorizationPolicy in %s: %v; want CUSTOM in %s with provider %s", ap.Namespace, apSpec, workloads, provider.GetName())
	}
	wp := must[*istioResource](t, r, "WasmPlugin", "meshguard")
	wpSpec := wp.spec.(*extensionsv1alpha1.WasmPlugin)
	if wp.Namespace != workloads || wpSpec.GetFailStrategy() != extensionsv1alpha1.FailStrategy_FAIL_CLOSE || wpSpec.GetPhase() != extensionsv1alpha1.PluginPhase_AUTHN {
		t.Errorf("WasmPlugin in %s: %v", wp.Namespace, wpSpec)
	}
	js, err := protojson.Marshal(wpSpec.GetPluginConfig())
	if err != nil {
		t.Fatal(err)
	}
	fc, err := filterconfig.Parse(js)
	if err != nil {
		t.Fatalf("the filter refuses the pluginConfig: %v\n%s", err, js)
	}
	if fc.Source == nil || fc.Source.Cluster != "outbound|3100||"+host || fc.Source.Authority != host {
		t.Errorf("filter source %+v: want MeshGuard's HTTP port in the mesh", fc.Source)
	}
	dr := must[*istioResource](t, r, "DestinationRule", "meshguard")
	drSpec := dr.spec.(*networkingv1.DestinationRule)
	if drSpec.GetHost() != host || drSpec.GetTrafficPolicy().GetTls().GetMode() != networkingv1.ClientTLSSettings_MUTUAL {
		t.Errorf("DestinationRule %v", drSpec)
	}
}

// notesProvider decodes the meshConfig entry NOTES.txt prints.
func notesProvider(t *testing.T, notes string) *meshv1alpha1.MeshConfig_ExtensionProvider {
	t.Helper()
	mc, err := meshConfigBlock(notes, "# --- meshConfig ---", "# --- end ---")
	if err != nil {
		t.Fatalf("NOTES.txt: %v\n%s", err, notes)
	}
	return mc.GetExtensionProviders()[0]
}

// meshConfigBlock decodes the `meshConfig:` YAML between two marker lines.
func meshConfigBlock(text, begin, end string) (*meshv1alpha1.MeshConfig, error) {
	_, rest, ok := strings.Cut(text, begin+"\n")
	block, _, ok2 := strings.Cut(rest, end)
	if !ok || !ok2 {
		return nil, fmt.Errorf("no block between %q and %q", begin, end)
	}
	var doc struct {
		MeshConfig json.RawMessage `json:"meshConfig"`
	}
	if err := yaml.UnmarshalStrict([]byte(block), &doc); err != nil {
		return nil, err
	}
	var mc meshv1alpha1.MeshConfig
	if err := protojson.Unmarshal(doc.MeshConfig, &mc); err != nil {
		return nil, fmt.Errorf("meshConfig: %w", err)
	}
	if len(mc.GetExtensionProviders()) != 1 {
		return nil, fmt.Errorf("%d extension providers, want 1", len(mc.GetExtensionProviders()))
	}
	return &mc, nil
}

// TestServiceMonitorNeedsTheCRD: with the ServiceMonitor enabled, a cluster
// without prometheus-operator gets none (it would refuse the release).
func TestServiceMonitorNeedsTheCRD(t *testing.T) {
	vals := loadValues(t, fullValues)
	for _, tc := range []struct {
		name string
		apis []string
		want int
	}{{"without the CRD", nil, 0}, {"with the CRD", []string{monitoringAPI}, 1}} {
		t.Run(tc.name, func(t *testing.T) {
			if got := render(t, vals, tc.apis...).kinds()["ServiceMonitor"]; got != tc.want {
				t.Fatalf("%d ServiceMonitors, want %d", got, tc.want)
			}
		})
	}
}

// TestRefusedValues: from the full values, which render, one change each
// that the chart refuses with a message naming the value to fix.
func TestRefusedValues(t *testing.T) {
	full := loadValues(t, fullValues)
	if _, err := renderChart(full); err != nil {
		t.Fatalf("the full values are refused: %v", err)
	}
	for _, tc := range []struct {
		name string
		sets []string
		want string
	}{
		{"replicas without PostgreSQL", []string{"database.existingSecret="}, "replicaCount: 3 replicas need PostgreSQL"},
		{"a misspelt top-level key", []string{"replicas=2"}, "additional properties 'replicas' not allowed"},
		{"a misspelt nested key", []string{"tls.enabeld=true"}, "at '/tls': additional properties 'enabeld' not allowed"},
		{"a mode serve does not know", []string{"mode=permissive"}, "at '/mode'"},
		{"a persistent volume under several replicas", []string{"persistence.enabled=true"}, "persistence.enabled"},
		{"TLS with no certificate source", []string{"tls.certManager.enabled=false"}, "tls.existingSecret"},
		{"TLS with two certificate sources", []string{"tls.existingSecret=mine"}, "exactly one"},
		{"probes refused by mTLS", []string{"tls.clientAuth=require"}, "tls.clientAuth"},
		{"the admin token as a plain setting", []string{"settings.ADMIN_TOKEN=0123456789abcdef0123"}, "settings.ADMIN_TOKEN"},
		{"an alert secret as a plain setting", []string{"settings.ALERT_SMTP_PASS=pw"}, "settings.ALERT_SMTP_PASS"},
		{"a WasmPlugin without a token", []string{"istio.wasmPlugin.token="}, "istio.wasmPlugin.token"},
		{"a WasmPlugin without a URL", []string{"istio.wasmPlugin.url="}, "istio.wasmPlugin.url"},
		{"a database URL that is not PostgreSQL", []string{"database.existingSecret=", "database.url=mysql://db/meshguard"}, "/database/url"},
		{"a secret reference without a key", []string{"alerts.slack.urlSecretRef.key="}, "alerts.slack.urlSecretRef.key"},
		{"alert email without a server", []string{"alerts.email.smtp.host="}, "alerts.email.smtp.host"},
		// Secrets through settings would be plain env values, readable by
		// whoever may read the Deployment.
		{"the HS256 secret as a plain setting", []string{"settings.JWT_SECRET=0123456789abcdef0123456789abcdef"}, "settings.JWT_SECRET"},
		{"OTLP credentials as a plain setting", []string{"settings.OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer x"}, "settings.OTEL_EXPORTER_OTLP_HEADERS"},
		{"a secret-named setting", []string{"settings.UPSTREAM_API_TOKEN=t"}, "settings.UPSTREAM_API_TOKEN"},
		// Set twice: the later copy (settings) silently wins.
		{"the xDS ext_authz address set again", []string{"settings.XDS_AUTHZ_ADDRESS=attacker.example:3101"}, "settings.XDS_AUTHZ_ADDRESS"},
		{"the xDS HTTP address set again", []string{"settings.XDS_HTTP_ADDRESS=attacker.example:3100"}, "settings.XDS_HTTP_ADDRESS"},
		{"the OTLP endpoint set again", []string{"settings.OTEL_EXPORTER_OTLP_ENDPOINT=http://attacker.example:4318"}, "settings.OTEL_EXPORTER_OTLP_ENDPOINT"},
		// A development switch that lets any client read the xDS configuration.
		{"xDS open to any client", []string{"settings.XDS_INSECURE_ALLOW_UNAUTHENTICATED=true"}, "settings.XDS_INSECURE_ALLOW_UNAUTHENTICATED"},
		// A CUSTOM AuthorizationPolicy without rules never matches: nothing
		// would reach MeshGuard while the policy looks in place.
		{"an AuthorizationPolicy with no rules", []string{"json:istio.authorizationPolicy.rules=[]"}, "authorizationPolicy/rules"},
		{"an AuthorizationPolicy rule that is no object", []string{"istio.authorizationPolicy.rules={}"}, "authorizationPolicy/rules/0"},
		{"an AuthorizationPolicy with rules unset", []string{"istio.authorizationPolicy.rules=null"}, "istio.authorizationPolicy.rules"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := renderChart(with(t, full, tc.sets...))
			if err == nil {
				t.Fatalf("rendered with %v", tc.sets)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name %q", err, tc.want)
			}
		})
	}
}

func equalCounts(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func metav1LabelSelector(d *appsv1.Deployment) (labels.Selector, error) {
	return metav1LabelSelectorOf(d.Spec.Selector)
}

// tlsVolume is the Secret the pods mount as their TLS files.
func tlsVolume(t *testing.T, d *appsv1.Deployment) string {
	t.Helper()
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Name == "tls" && v.Secret != nil {
			return v.Secret.SecretName
		}
	}
	t.Fatal("no tls volume")
	return ""
}

// TestNotesWarnWhenNothingIsEnforced: the values that keep the chart's
// objects in place while MeshGuard allows or records nothing are allowed
// (a first install watches in audit mode) but NOTES.txt says so loudly.
func TestNotesWarnWhenNothingIsEnforced(t *testing.T) {
	for _, tc := range []struct {
		name string
		sets []string
		want []string // each in the warning; none: no warning at all
	}{
		{"the defaults", nil, nil},
		{"audit mode", []string{"mode=audit"}, []string{"MODE=audit", "allows every request"}},
		{"the audit trail off", []string{"settings.AUDIT_ENABLED=false"}, []string{"AUDIT_ENABLED=false", "records no decision"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			notes := render(t, with(t, map[string]any{}, tc.sets...)).notes
			if len(tc.want) == 0 {
				if strings.Contains(notes, "WARNING") {
					t.Fatalf("a warning with %v:\n%s", tc.sets, notes)
				}
				return
			}
			if !strings.Contains(notes, "WARNING") {
				t.Fatalf("no warning with %v:\n%s", tc.sets, notes)
			}
			for _, w := range tc.want {
				if !strings.Contains(notes, w) {
					t.Errorf("the notes do not say %q:\n%s", w, notes)
				}
			}
		})
	}
}
