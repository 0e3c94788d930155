package kubernetes

import (
	"os"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/meshguard/meshguard/envoy"
	"github.com/meshguard/meshguard/envoy/envoytest"
)

func TestAgentWithEnvoy(t *testing.T) {
	data, err := os.ReadFile("agent-with-envoy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	docs := strings.Split(string(data), "\n---\n")
	if len(docs) != 3 {
		t.Fatalf("%d documents", len(docs))
	}
	var cm corev1.ConfigMap
	var dep appsv1.Deployment
	var svc corev1.Service
	for i, into := range []any{&cm, &dep, &svc} {
		if err := yaml.UnmarshalStrict([]byte(docs[i]), into); err != nil {
			t.Fatalf("document %d (%T): %v", i, into, err)
		}
	}
	b, err := envoy.ParseBootstrap([]byte(cm.Data["envoy.yaml"]))
	if err != nil {
		t.Fatalf("the sidecar's configuration: %v", err)
	}
	// The sidecar asks MeshGuard first and denies when it cannot.
	for _, v := range envoytest.CheckBootstrap(b) {
		t.Errorf("the sidecar's configuration: %v", v)
	}
	if l := b.GetStaticResources().GetListeners(); len(l) != 1 || l[0].GetAddress().GetSocketAddress().GetPortValue() != 10000 {
		t.Fatalf("listeners %v", l)
	}
	// MeshGuard is reached over TLS, its certificate checked.
	for _, c := range b.GetStaticResources().GetClusters() {
		if c.GetName() != "meshguard" {
			continue
		}
		var up tlsv3.UpstreamTlsContext
		if err := c.GetTransportSocket().GetTypedConfig().UnmarshalTo(&up); err != nil {
			t.Fatalf("the meshguard cluster has no TLS: %v", err)
		}
		if up.GetCommonTlsContext().GetValidationContext().GetTrustedCa().GetFilename() == "" || len(up.GetCommonTlsContext().GetTlsCertificates()) != 1 {
			t.Fatalf("TLS %v", &up)
		}
	}
	// The Service reaches the agent only through Envoy.
	if svc.Spec.Ports[0].TargetPort.StrVal != "ingress" || len(dep.Spec.Template.Spec.Containers) != 2 {
		t.Fatalf("service %+v", svc.Spec.Ports)
	}
}
