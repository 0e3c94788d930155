package kubernetes

import (
	"os"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/meshguard/meshguard/envoy"
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
	if l := b.GetStaticResources().GetListeners(); len(l) != 1 || l[0].GetAddress().GetSocketAddress().GetPortValue() != 10000 {
		t.Fatalf("listeners %v", l)
	}
	// The Service reaches the agent only through Envoy.
	if svc.Spec.Ports[0].TargetPort.StrVal != "ingress" || len(dep.Spec.Template.Spec.Containers) != 2 {
		t.Fatalf("service %+v", svc.Spec.Ports)
	}
}
