package charttest

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	"sigs.k8s.io/yaml"
)

type meshConfig = meshv1alpha1.MeshConfig

// docBlock returns the fenced block that follows a marker line of a doc.
func docBlock(doc, marker string) (string, error) {
	_, rest, ok := strings.Cut(doc, "<!-- charttest: "+marker+" -->\n```yaml\n")
	block, _, ok2 := strings.Cut(rest, "\n```\n")
	if !ok || !ok2 {
		return "", fmt.Errorf("docs/install.md: no yaml block after the marker %q", marker)
	}
	return block, nil
}

// TestInstallDocIstio: the values docs/install.md gives an Istio user,
// installed as the doc's command says, render Istio objects equal to
// examples/istio's (which their own tests check), and the meshConfig entry
// the doc shows is the one the notes print and examples/istio has.
func TestInstallDocIstio(t *testing.T) {
	data, err := os.ReadFile(repoFile("docs/install.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	install := fmt.Sprintf("helm install %s charts/meshguard --namespace %s -f meshguard-values.yaml", releaseName, namespace)
	if !strings.Contains(doc, install) {
		t.Fatalf("docs/install.md does not say %q, the release the test renders", install)
	}
	block, err := docBlock(doc, "istio-values")
	if err != nil {
		t.Fatal(err)
	}
	vals := map[string]any{}
	if err := yaml.Unmarshal([]byte(block), &vals); err != nil {
		t.Fatal(err)
	}
	r := render(t, vals)
	checkDeployment(t, r, []string{"meshguard-admin", "meshguard-db", "meshguard-policies", "meshguard-proxies"})
	checkIstio(t, r, "agents")

	for _, tc := range []struct {
		kind, file string
	}{
		{"AuthorizationPolicy", "authorization-policy.yaml"},
		{"WasmPlugin", "wasm-plugin.yaml"},
		{"DestinationRule", "destination-rule.yaml"},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			example, err := os.ReadFile(repoFile("examples/istio/" + tc.file))
			if err != nil {
				t.Fatal(err)
			}
			want, err := decode(example)
			if err != nil {
				t.Fatalf("examples/istio/%s: %v", tc.file, err)
			}
			got := must[*istioResource](t, r, tc.kind, want.meta.Name)
			w := want.value.(*istioResource)
			if got.Namespace != w.Namespace || !proto.Equal(got.spec, w.spec) {
				t.Errorf("the chart's %s differs from examples/istio/%s:\nchart   %s %v\nexample %s %v", tc.kind, tc.file, got.Namespace, got.spec, w.Namespace, w.spec)
			}
		})
	}

	fromDoc, err := meshConfigBlock(doc, "<!-- charttest: mesh-config -->\n```yaml", "```")
	if err != nil {
		t.Fatalf("docs/install.md: %v", err)
	}
	example, err := os.ReadFile(repoFile("examples/istio/mesh-config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var op struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Spec       struct {
			MeshConfig json.RawMessage `json:"meshConfig"`
		} `json:"spec"`
	}
	if err := yaml.UnmarshalStrict(example, &op); err != nil {
		t.Fatal(err)
	}
	var fromExample meshConfig
	if err := protojson.Unmarshal(op.Spec.MeshConfig, &fromExample); err != nil {
		t.Fatal(err)
	}
	fromNotes := notesProvider(t, r.notes)
	for name, p := range map[string]proto.Message{"docs/install.md": fromDoc.GetExtensionProviders()[0], "examples/istio/mesh-config.yaml": fromExample.GetExtensionProviders()[0]} {
		if !proto.Equal(p, fromNotes) {
			t.Errorf("the extension provider of %s differs from the notes':\n%v\n%v", name, p, fromNotes)
		}
	}
}
